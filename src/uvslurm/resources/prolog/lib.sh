# shellcheck shell=bash
# shellcheck disable=SC2154 # set in other sections: _uvslurm_t0 (fast.sh)
# uvslurm prolog, section lib: the prolog's state and inputs, and the helpers of the full path
# (loading the rest, the depot, locks, leases, holds with flock).

# uvslurm prolog: make this project's venv ready on this node, then hand over to the command.
#
# It runs on compute nodes where uvslurm itself is not installed: it needs bash >= 5, coreutils,
# flock (util-linux) and uv. `uvslurm submit` pastes it into the job script after a block of
# variable assignments; `uvslurm prepare` and `uvslurm fingerprint` run the same text with the
# same variables in the environment. Its sections are src/uvslurm/resources/prolog/*.sh. Inputs:
#   UVSLURM_PROJECT     absolute project (workspace root) directory, or UVSLURM_SCRIPT
#   UVSLURM_SCRIPT      a PEP 723 script ("": none), locked in <script>.lock
#   UVSLURM_PROJECT_ID  the project's directory name in the depot, computed at submit time
#   UVSLURM_LOCK_HASH   sha256 of the uv.lock submitted ("": not known); the key is made of the
#                       uv.lock this node sees, with a warning when that one differs
#   UVSLURM_LOCK_DIR    the submitted copy of pyproject.toml and uv.lock that the venv is built
#                       from ("": the project's own)
#   UVSLURM_RECORD      directory where a job records its start and end ("": none)
#   UVSLURM_SNAPSHOT    the copy of the project's git-tracked files the command runs in
#   UVSLURM_UV          uv executable recorded at submit time (falls back to uv on PATH)
#   UVSLURM_DEPOT       depot root: <depot>/<project>-<hash>/<key>/ is one venv
#   UVSLURM_NODE_LOCAL  auto | never | a directory
#   UVSLURM_OFFLINE     auto | true | false  (auto: offline inside a Slurm job)
#   UVSLURM_PYTHON      the Python request (--python, else the project's; "": none)
#   UVSLURM_SYNC_ARGS   uv selection flags (--extra X, --group Y, --no-dev...), word-split
#   UVSLURM_FP_ENV      extra variable names that belong in the fingerprint, word-split
#   UVSLURM_FP_COMMANDS commands whose output belongs in the fingerprint, each ended by \x1e
#   UVSLURM_FP_MODULES  0 to leave loaded modules out of the fingerprint
#   UVSLURM_FP_IGNORE   loaded modules left out of the fingerprint: names or patterns, word-split
#   UVSLURM_PLATFORMS   the platforms besides the login node's that submit fetched for
#   UVSLURM_IMAGE       none | tar.zst | squashfs: also keep each depot venv as one file, which
#                       nodes unpack (or, squashfs where FUSE works, mount) instead of copying
#   UVSLURM_REBUILD     packages built from source per fingerprint, comma-separated
#   UVSLURM_REBUILD_SOURCES  their locked sources: name \x1f version \x1f kind \x1f path \x1e ...
#   UVSLURM_MODE        run: exec UVSLURM_CMD through `uv run --no-sync`
#                       activate: return with the venv active (the job script body follows)
#                       prepare: print the venv path    fingerprint: print components and key
# Each step logs one "uvslurm: ..." line with its duration to stderr. When the environment
# cannot be prepared the script exits 75 (EX_TEMPFAIL), a code users' programs rarely use.
#
# Venv lifecycle: a venv directory is published by renaming a private build directory that
# already holds the ready marker, so a reader sees either nothing or a complete venv. uv's own
# venv is not safe against kill -9 mid-install (files missing while `uv sync --check` passes).

# The prolog's state, shared by its sections (every other variable is local to a function;
# _uvslurm_t0 and _uvslurm_in: fast.sh)
_uvslurm_uv=""      # the uv executable: UVSLURM_UV, else uv on PATH (main)
_uvslurm_fp=""      # the fingerprint's hash, 12 hex digits (key)
_uvslurm_pdir=""    # <depot>/<project id>: the project's directory in the depot (key)
_uvslurm_keyname="" # <fingerprint>-<lock hash>: the name of the venv in it (key)
_uvslurm_lkey=""    # <project id>-<key>: the name of the venv's node-local copies (key)
_uvslurm_venv=""    # the venv the command runs from (main, place, spread)
_uvslurm_state=""   # how that venv was made ready: warm | placed | cold | repaired
_uvslurm_lockhash="" # sha256 of the uv.lock the venv is built from (key)
_uvslurm_gone=${_uvslurm_gone-} # the venv that _uvslurm_intact found incomplete (said once)
_uvslurm_pendf=${_uvslurm_pendf-}   # this start's pending file (fast.sh), "-" for none
_uvslurm_pendfd=${_uvslurm_pendfd-} # the descriptor of its flock, which starts with the same
# inputs wait for: released by _uvslurm_unpend, before anything that would inherit it lives on
_uvslurm_lockfd=""  # the descriptor of the lock that _uvslurm_lock took
_uvslurm_me=""      # <node>-<boot>-<pid>: this builder, in its lease and build directory names
_uvslurm_claims=()  # the claims (_uvslurm_claim) held, innermost last
_uvslurm_usefd=""   # the descriptor that holds the depot venv for as long as the job runs
_uvslurm_copyfd=""  # the one that holds its node-local copy (place: _uvslurm_holdcopy)
_uvslurm_mnt=""     # this job's mount of a squashfs image, unmounted when the command ends
_uvslurm_nomount="" # 1: mount no image (it would not last: prepare, node steps, several nodes)
_uvslurm_lockmoved="" # 1: the project's uv.lock is not the one submitted (key)
_uvslurm_loaded=""  # 1: the functions that a warm start does not read are defined (_uvslurm_load)
_uvslurm_pyexe=""   # the interpreter the venv is made with, and its inode (_uvslurm_python)
_uvslurm_pyino=""
_uvslurm_pybuild="" # what the build's uv venv is given as --python (_uvslurm_python)
_uvslurm_factsnew="" # 1: facts asked at this start, not yet in the facts file (fingerprint)
_uvslurm_nlnote=""  # why no node-local disk took the venv, when that is how things are (place)
_uvslurm_nltried="" # 1: a node-local copy was tried (and failed: the depot by chance)
_uvslurm_privok=""  # the directory that _uvslurm_private found private at this start
_uvslurm_self=${BASH_SOURCE[0]:-} # this script's file, where _uvslurm_load finds the rest (a job
[[ $_uvslurm_self == /* || -z $_uvslurm_self ]] || _uvslurm_self=$PWD/$_uvslurm_self # may cd)

# _uvslurm_privtmp: uv keeps lock files in $TMPDIR (uv-<hash>.lock, mode 0666); in a shared /tmp
# another user can hold one and hang every uv call of this job. A TMPDIR of this user's alone (a
# per-job one) stays; a shared one is replaced by a private directory inside it.
_uvslurm_privtmp() {
  local base=${TMPDIR:-/tmp} d
  base=${base%/}
  _uvslurm_owned "$base" && ! [[ -k $base ]] && return 0
  d="$base/uvslurm-$UID"
  [[ -e $d || -L $d ]] || mkdir -m 700 "$d" 2>/dev/null
  # nothing is created in a directory someone else planted there
  if _uvslurm_owned "$d" && { [[ -e $d/tmp || -L $d/tmp ]] || mkdir -m 700 "$d/tmp" 2>/dev/null
  } && _uvslurm_owned "$d/tmp"; then
    export TMPDIR="$d/tmp"
  else
    _uvslurm_log "warning: $d is not a private directory of this user;" \
      "uv keeps its lock files in the shared $base"
  fi
}

# _uvslurm_finduv: _uvslurm_uv, the uv recorded at submit time, else the one on PATH
_uvslurm_finduv() {
  _uvslurm_uv=${UVSLURM_UV:-}
  [[ -n $_uvslurm_uv && -x $_uvslurm_uv ]] && return 0
  _uvslurm_uv=$(command -v uv)
}

# _uvslurm_ready VENV: VENV has its marker and python, is this user's, and is still whole
_uvslurm_ready() {
  [[ -f $1/.uvslurm-ready && -x $1/bin/python ]] && _uvslurm_owned "$1" && _uvslurm_intact "$1"
}

# _uvslurm_jobhold VENV: in a Slurm job, hold the ready depot VENV for as long as the job (or its
# array) lives, without a process: truncate .uvslurm-used (the last use) and create
# .uvslurm-job-<cluster>-<job id> beside it; `uvslurm depot gc/rm` ask Slurm whether that job
# still lives (docs/design.md, "A job's hold"). False outside a job, when the files cannot be
# written (a flock then), or when VENV vanished after the open (gc renamed it away).
_uvslurm_jobhold() {
  local c=${SLURM_CLUSTER_NAME:-} id=${SLURM_ARRAY_JOB_ID:-${SLURM_JOB_ID:-}}
  [[ -n $id && $id != *[!0-9]* && $c != *[!A-Za-z0-9._-]* ]] || return 1
  { : >"$1/.uvslurm-used" && : >"$1/.uvslurm-job-${c:--}-$id"; } 2>/dev/null || return 1
  [[ -f $1/.uvslurm-ready && -x $1/bin/python ]] && _uvslurm_owned "$1"
}

_uvslurm_die() {
  _uvslurm_log "error: $*"
  _uvslurm_unpend
  while [ ${#_uvslurm_claims[@]} -gt 0 ]; do _uvslurm_unclaim; done
  exit 75
}

# _uvslurm_load: define the functions that a warm start does not run (building, leases, placing,
# pruning, jobs of several nodes). bash parses a script as it runs it, and parsing them cost
# every warm start ~5 ms; so the joined prolog (uvslurm/prolog.py) holds a one-line stub for each,
# which calls this and then the real one, and ends with the real ones as comment lines that bash
# skips. This reads them once from the job script's own file (or the `bash -c` text of `uvslurm
# srun`), where they are its last lines, between "#### uvslurm prolog, the rest: N lines" and
# "#### uvslurm prolog, end of the rest: N lines ####".
_uvslurm_load() {
  local src n k code end='^#### uvslurm prolog, end of the rest: ([0-9]+) lines ####$'
  local -a lines rest
  [ -z "${_uvslurm_loaded:-}" ] || return 0
  for src in "$_uvslurm_self" "bash -c"; do
    lines=()
    if [ "$src" = "bash -c" ]; then
      # (uvslurm srun's text, joined from its pieces: commands/srun.py)
      src=${_uvslurm_text:-${BASH_EXECUTION_STRING:-}}
      [ -z "$src" ] || mapfile -t lines <<<"${src%$'\n'}"
    elif [ -f "$src" ] && [ -r "$src" ]; then
      mapfile -t lines <"$src"
    fi
    n=${#lines[@]}
    ((n > 0)) && [[ ${lines[n - 1]} =~ $end ]] || continue
    k=${BASH_REMATCH[1]}
    ((n >= k + 2)) && [[ ${lines[n - k - 2]} == "#### uvslurm prolog, the rest: $k lines"* ]] ||
      continue
    rest=("${lines[@]:n-k-1:k}")
    printf -v code '%s\n' "${rest[@]#\#}"
    eval "$code"
    _uvslurm_loaded=1
    return 0
  done
  _uvslurm_die "the end of the job script $_uvslurm_self is not the uvslurm prolog's (its" \
    "last lines hold the code that builds and places venvs); submit the job again with uvslurm"
}

# _uvslurm_unpend: the starts waiting for this one's memo (fast.sh: the pending file) may ask it
# again: the memo is written, or will not be, or a process that would inherit the flock is
# about to be left running (a hold's flock and heartbeat, a mount; the command starts after the
# steps of main.sh, which end with this). The file goes first: a start that comes after finds
# no file and the memo.
_uvslurm_unpend() {
  [ -n "$_uvslurm_pendfd" ] || return 0
  rm -f "$_uvslurm_pendf"
  exec {_uvslurm_pendfd}>&-
  _uvslurm_pendfd=""
}

# _uvslurm_private DIR: ... and neither group nor others may write into it (one stat)
_uvslurm_private() {
  local m
  _uvslurm_owned "$1" || return 1
  # (asked up to five times a start, of the depot: its stat once)
  [ "$1" = "$_uvslurm_privok" ] && return 0
  m=$(stat -c %a "$1" 2>/dev/null) && (((8#$m & 8#022) == 0)) && _uvslurm_privok=$1
}

# _uvslurm_mkpdir: the project's directory in the depot, made if missing (a mkdir process less
# when it is there)
_uvslurm_mkpdir() { [ -d "$_uvslurm_pdir" ] || mkdir -p "$_uvslurm_pdir" 2>/dev/null; }

# _uvslurm_mkdepot: create a missing depot, private, with the marker that tells `uvslurm depot
# gc/rm` it is uvslurm's to clean (they touch no directory without it)
_uvslurm_mkdepot() {
  [ -e "$UVSLURM_DEPOT" ] || [ -L "$UVSLURM_DEPOT" ] && return 0
  { mkdir -p "${UVSLURM_DEPOT%/*}" && mkdir -m 700 "$UVSLURM_DEPOT" &&
    printf 'uvslurm depot\n' >"$UVSLURM_DEPOT/.uvslurm-depot"; } 2>/dev/null
}


# _uvslurm_sorted VAR LIST: the ':'-separated LIST sorted bytewise, so that module load order
# and the user's locale do not change the fingerprint
_uvslurm_sorted() {
  local LC_ALL=C x i
  local -a items=() out=()
  IFS=: read -r -a items <<<"$2"
  for x in "${items[@]}"; do
    [ -n "$x" ] || continue
    i=${#out[@]}
    while ((i > 0)) && [[ ${out[i - 1]} > $x ]]; do out[i]=${out[i - 1]}; i=$((i - 1)); done
    out[i]=$x
  done
  local IFS=:
  printf -v "$1" '%s' "${out[*]}"
}










# _uvslurm_hold VENV [BEAT [job]]: is the depot VENV ready? If so, record its last use and hold
# it for as long as this job runs, so that `uvslurm depot gc/rm` leave it alone. With "job", in
# a Slurm job: the job's id beside it (_uvslurm_jobhold, no process). Otherwise: opening
# .uvslurm-used with truncation sets its mtime without a process, and a shared flock on that fd,
# inherited by the command, lasts until it ends; flock runs in the background (+0.2 ms instead
# of +1.3 ms; gc also spots a use that started while it looked, by the mtime). With BEAT (a run
# whose command goes on), the same background process then records a use every minute: where
# flock does not reach across nodes (per node, or failing), that is the hold gc and rm on
# another node can see (docs/design.md, "A job's hold"). False when the venv is not ready, or
# vanished after the open (gc removed it: rebuild under the lock).
_uvslurm_hold() {
  local w
  _uvslurm_ready "$1" || return 1
  [ "${3:-}" = job ] && _uvslurm_jobhold "$1" && return 0
  # the hold's descriptor is read-write: the Linux NFSv4 client refuses a shared flock on a
  # write-only one (EBADF), and gc would then remove a venv in use
  if { : >"$1/.uvslurm-used" && exec {_uvslurm_usefd}<>"$1/.uvslurm-used"; } 2>/dev/null; then
    # where it fails, flock's own error message is the warning line: it begins with the name
    # flock runs under (no slash in it), so no other process is needed to report it
    w="uvslurm: warning: cannot hold the depot venv while the job runs (flock does not work"
    w+=" on the depot's filesystem; \`uvslurm depot gc\` could remove it meanwhile), flock -s on fd"
    _uvslurm_unpend # (that flock lives as long as the job)
    if [ -z "${2:-}" ]; then
      exec -a "$w" flock -s "$_uvslurm_usefd" &
    else
      # (also where that flock fails: then the refreshed use is the only hold there is)
      ( (exec -a "$w" flock -s "$_uvslurm_usefd"); _uvslurm_beat "$1") &
      # not one of the job's own: a batch script's `wait` must not wait for it
      disown $!
    fi
  else
    _uvslurm_log "warning: cannot open $1/.uvslurm-used to hold the venv while the job runs"
  fi
  # still there (gc renames a venv away before it removes it); whole, it was a moment ago
  [ -f "$1/.uvslurm-ready" ] && [ -x "$1/bin/python" ] && _uvslurm_owned "$1"
}

# _uvslurm_beat VENV: in the background, record a use of the depot VENV every minute for as long
# as this job lives (_uvslurm_hold), keeping none of the job's descriptors: its locks stay the
# job's alone, and its output ends with the job
_uvslurm_beat() {
  local c
  exec </dev/null >/dev/null 2>&1
  for c in "${_uvslurm_usefd:-}" "${_uvslurm_copyfd:-}" "${_uvslurm_lockfd:-}" \
    "${_uvslurm_claims[@]%%$'\x1f'*}"; do
    [ -n "$c" ] && exec {c}>&-
  done
  local n=0
  # a use a minute, in steps of 5 s: where Slurm does not kill what a job leaves behind (no
  # cgroup process tracking), the loop ends within 5 s of the job, not a minute later
  while sleep 5 && kill -0 $$; do
    n=$((n + 1))
    if [ $((n % 12)) = 0 ]; then : >"$1/.uvslurm-used" || return 0; fi
  done
}

# _uvslurm_lock FILE WHAT: take an exclusive flock on FILE (fd in _uvslurm_lockfd), saying so
# when another process holds it. `uvslurm depot gc/rm` delete a lock file while holding it, so
# a waiter checks that it locked the file still at FILE (-ef: same inode, no process).
# Returns 1 when flock itself fails (exit 71, not 1 = busy): a filesystem without working file
# locks (NFS without lockd, Lustre mounted without -o flock); the caller decides what that means.
_uvslurm_lock() {
  local t="" rc
  while :; do
    exec {_uvslurm_lockfd}>>"$1" || _uvslurm_die "cannot open lock file $1"
    flock -n "$_uvslurm_lockfd" 2>/dev/null
    rc=$?
    if [ "$rc" = 1 ]; then
      if [ -z "$t" ]; then
        t=${EPOCHREALTIME/[.,]/}
        _uvslurm_log "waiting for another process preparing $2"
      fi
      flock "$_uvslurm_lockfd" 2>/dev/null
      rc=$?
    fi
    if [ "$rc" != 0 ]; then exec {_uvslurm_lockfd}>&-; return 1; fi
    [ "$1" -ef "/dev/fd/$_uvslurm_lockfd" ] && break
    exec {_uvslurm_lockfd}>&-
  done
  if [ -n "$t" ]; then
    _uvslurm_since t "$t"
    _uvslurm_log "waited $t ms for $2"
  fi
}
_uvslurm_unlock() { exec {_uvslurm_lockfd}>&-; }

# Builders of one key exclude each other by a claim: the flock above where it works (waiters
# sleep in the kernel), then a lease, which needs no working flock. Where flock is coherent
# (local disks, NFS with lockd, Lustre -o flock, GPFS) the lease is always free; where flock works
# per node only (BeeGFS by default, Lustre -o localflock, NFS -o local_lock=all) or fails (Lustre
# without -o flock), the lease alone keeps a second node from building. A lease is a file created
# exclusively (O_EXCL) that names its owner; a background heartbeat touches it (and the owner's
# build directory) every 2 s. It is taken over when its owner is provably dead (on this node
# since its boot, its pid gone) or when its heartbeat stopped for 15 s of the waiter's own clock
# (clock skew between nodes does not matter). A suspended owner can thus lose its lease: two nodes
# then build the key once each; correctness never rests on the lease (builds are private, a
# publish never replaces a venv, leftovers go only when their owner is provably gone).

# _uvslurm_whoami: _uvslurm_me, this process as builder: <node>-<first 8 hex of boot id>-<pid>
_uvslurm_whoami() {
  local node=${SLURMD_NODENAME:-${HOSTNAME:-node}} boot=""
  [ -n "$_uvslurm_me" ] && return 0
  { read -r boot </proc/sys/kernel/random/boot_id; } 2>/dev/null
  boot=${boot//-/}
  _uvslurm_me="${node//[^A-Za-z0-9._]/_}-${boot:0:8}-$$"
}

# _uvslurm_started VAR PID: set VAR to the start time of process PID (clock ticks after boot);
# false when there is no such process here. Builtins only.
_uvslurm_started() {
  local s
  local -a f
  { read -r s <"/proc/$2/stat"; } 2>/dev/null || return 1
  read -r -a f <<<"${s##*) }"
  printf -v "$1" '%s' "${f[19]:-}"
}

# _uvslurm_gone OWNER [START]: is OWNER (<node>-<boot>-<pid>) provably dead? Only when it ran on
# this node since this boot and no process has its pid (or one started at another time than
# START); an owner on another node is never judged here.
_uvslurm_gone() {
  local pid=${1##*-} st=""
  _uvslurm_whoami
  [[ $pid =~ ^[0-9]+$ ]] && [ "${1%-*}" = "${_uvslurm_me%-*}" ] || return 1
  _uvslurm_started st "$pid" || return 0
  [ -n "${2:-}" ] && [ "$st" != "$2" ]
}

# _uvslurm_lease_take LEASE LINE: create LEASE holding LINE, unless it exists. 0: taken; 1: it
# exists; 2: it could not be created or written (the directory is gone or not writable).
_uvslurm_lease_take() {
  local - fd
  set -C # noclobber: a new file is opened with O_EXCL
  if ! { exec {fd}>"$1"; } 2>/dev/null; then
    [ -e "$1" ] && return 1
    return 2
  fi
  if ! printf '%s\n' "$2" >&"$fd"; then exec {fd}>&-; rm -f "$1"; return 2; fi
  exec {fd}>&-
}

# _uvslurm_lease_break LEASE LINE: remove LEASE if it still holds LINE (a stale owner's). Breakers
# take turns by LEASE.break, itself created exclusively: then nothing else can change LEASE (its
# owner is dead, and takers only create it where it is missing), so the check and the removal
# cannot remove a fresh lease. A LEASE.break older than a minute is a dead breaker's: it goes.
_uvslurm_lease_break() {
  local m cur=""
  if ! _uvslurm_lease_take "$1.break" "$_uvslurm_me"; then
    m=$(stat -c %Y "$1.break" 2>/dev/null) && ((EPOCHSECONDS - m > 60)) && rm -f "$1.break"
    return 0
  fi
  { read -r cur <"$1"; } 2>/dev/null
  [ "$cur" = "$2" ] && rm -f "$1"
  rm -f "$1.break"
}

# _uvslurm_claim DIR NAME WHAT: the right to build DIR/NAME (WHAT, for the log): the flock on
# DIR/NAME.lock where flock works, then the lease DIR/.NAME.lease. Waits while another live
# process holds either. Released by _uvslurm_unclaim (and by _uvslurm_die).
_uvslurm_claim() {
  local lease="$1/.$2.lease" fd="" line start="" cur owner ostart seen="" since=0 m t="" rc
  local tries=0 beat c locks="$UVSLURM_DEPOT/.uvslurm-locks" kind="" wait=15
  _uvslurm_whoami
  # what `uvslurm doctor` (or a job) found out about the depot's flocks, if anything
  { read -r kind <"$locks"; } 2>/dev/null
  if _uvslurm_lock "$1/$2.lock" "$3"; then
    fd=$_uvslurm_lockfd
    # This process holds the key's flock, which a live builder holds for as long as its lease.
    # Where flocks are known to exclude across nodes, a lease found now is a dead builder's:
    # taken over at once. Where nothing is known, one heartbeat (2 s) tells: a lease that stays
    # still for 6 s goes; one that moves proves that flock works per node only (written down).
    case $kind in coherent) wait=0 ;; per-node | failing) ;; *) wait=6 ;; esac
  else
    _uvslurm_log "note: flock does not work on the filesystem of $1; builders of $3 take" \
      "turns by a lease file instead"
    [ "$kind" = failing ] ||
      printf 'failing\nflock fails on %s\n' "${_uvslurm_me%-*-*}" >"$locks" 2>/dev/null
  fi
  _uvslurm_started start $$
  line="$_uvslurm_me ${start:-0} ${SRANDOM:-$RANDOM}"
  while :; do
    _uvslurm_lease_take "$lease" "$line"
    rc=$?
    [ "$rc" = 0 ] && break
    if [ "$rc" = 2 ]; then
      tries=$((tries + 1))
      [ "$tries" -lt 3 ] || _uvslurm_die "cannot create $lease (is the depot writable?)"
      continue
    fi
    cur=""
    # reading opens the file: NFS clients then check its attributes with the server
    { read -r cur <"$lease"; } 2>/dev/null
    m=$(stat -c %Y "$lease" 2>/dev/null) || continue
    if [ "$cur $m" != "$seen" ]; then
      if [ -n "$seen" ] && [ "$wait" = 6 ] && [ "${seen% *}" = "$cur" ]; then
        wait=15
        printf 'per-node\na live lease of %s while %s held its flock\n' "${cur%% *}" \
          "$_uvslurm_me" >"$locks" 2>/dev/null
      fi
      seen="$cur $m" since=$EPOCHSECONDS
    fi
    read -r owner ostart _ <<<"$cur"
    # its owner died on this node, its heartbeat stopped (15 s ago; or, see above, 0 or 6 s
    # ago), or it is ten minutes old
    if _uvslurm_gone "${owner:-?}" "$ostart" ||
      ((EPOCHSECONDS - since >= wait || EPOCHSECONDS - m > 600)); then
      _uvslurm_lease_break "$lease" "$cur"
      continue
    fi
    if [ -z "$t" ]; then
      t=${EPOCHREALTIME/[.,]/}
      _uvslurm_log "waiting for another process preparing $3"
    fi
    sleep 0.5
  done
  # the heartbeat: touches the lease and this builder's directory while this shell lives and the
  # lease is still its own (no lock descriptor of ours stays open in it)
  (
    for c in "$fd" "${_uvslurm_claims[@]%%$'\x1f'*}" "$_uvslurm_pendfd"; do
      [ -n "$c" ] && exec {c}>&-
    done
    while sleep 2; do
      kill -0 $$ 2>/dev/null && { read -r cur <"$lease"; } 2>/dev/null &&
        [ "$cur" = "$line" ] || exit 0
      touch -c "$lease" "$1/.$2.build-$_uvslurm_me"
    done
  ) </dev/null >/dev/null 2>&1 &
  beat=$!
  _uvslurm_claims+=("$fd"$'\x1f'"$lease"$'\x1f'"$line"$'\x1f'"$beat")
  if [ -n "$t" ]; then
    _uvslurm_since t "$t"
    _uvslurm_log "waited $t ms for $3"
  fi
}

# _uvslurm_unclaim: release the innermost claim: its heartbeat, its lease (if still its own) and
# its flock
_uvslurm_unclaim() {
  local n=$((${#_uvslurm_claims[@]} - 1)) fd lease line beat cur=""
  [ "$n" -ge 0 ] || return 0
  IFS=$'\x1f' read -r fd lease line beat <<<"${_uvslurm_claims[n]}"
  unset "_uvslurm_claims[n]"
  kill "$beat" 2>/dev/null
  wait "$beat" 2>/dev/null
  { read -r cur <"$lease"; } 2>/dev/null && [ "$cur" = "$line" ] && rm -f "$lease"
  [ -n "$fd" ] && exec {fd}>&-
  return 0
}

# _uvslurm_sweep DIR NAME: remove what dead builders of DIR/NAME left (build directories, broken
# venvs set aside): those of a provably dead owner (_uvslurm_gone), and those that
# nothing touched for ten minutes (a live builder's heartbeat touches its directory every 2 s).
# Another node's build in progress is left alone; so are `uvslurm depot gc`'s own (trash-gc-*).
_uvslurm_sweep() {
  local d owner m
  for d in "$1/.$2".build-* "$1/.$2".trash-*; do
    [ -e "$d" ] || [ -L "$d" ] || continue
    owner=${d#"$1/.$2."}
    owner=${owner#*-}
    case $owner in gc-*) continue ;; esac
    if [ "$owner" != "$_uvslurm_me" ] && ! _uvslurm_gone "$owner"; then
      m=$(stat -c %Y "$d" 2>/dev/null) && ((EPOCHSECONDS - m > 600)) || continue
    fi
    rm -rf "$d"
  done
}

# _uvslurm_memo_write: remember this start's inputs and venv for the next (_uvslurm_fast, section
# fast): two lines, the inputs and what they gave, before the 7 latest others. Best effort, and
# only into a depot that others cannot write into: a lost race or a read-only depot costs the
# next start the full path.
_uvslurm_memo_write() {
  local in=$_uvslurm_in memo="$_uvslurm_pdir/.memo" note i big=""
  local -i n=0
  local -a m=()
  # the inputs are those _uvslurm_fast read at this start (it does only in a job, where it can
  # be answered); with a newline they could not be found again
  [[ -n $in && $in != *$'\n'* ]] && [ -n "${UVSLURM_PROJECT_ID:-}" ] &&
    [ "$_uvslurm_pdir" = "$UVSLURM_DEPOT/$UVSLURM_PROJECT_ID" ] &&
    [ -f "$_uvslurm_pdir/.lock-${_uvslurm_lockhash:0:16}" ] && _uvslurm_private "$UVSLURM_DEPOT" &&
    _uvslurm_owned "$_uvslurm_pdir" || return 0
  _uvslurm_jobless note " ${_uvslurm_nlnote//[$'\n\x1e']/_} "
  note=${note# }
  [ -f "$memo" ] && [ -O "$memo" ] && mapfile -t m 2>/dev/null <"$memo"
  # a big lock is compared by cmp, a small one by bash (fast.sh)
  { IFS= read -r -d '' -N 32769 big <"$_uvslurm_pdir/.lock-${_uvslurm_lockhash:0:16}"; } 2>/dev/null
  if [ ${#big} -gt 32768 ]; then big=1; else big=0; fi
  {
    printf '%s\n' "$in"
    # (the sixth field, once whether env(1) restores signals, stays empty: fields keep places)
    printf '%s\x1e' "$_uvslurm_keyname" "$_uvslurm_lockhash" "$_uvslurm_pyexe" "$_uvslurm_pyino" \
      "${note% }" ""
    printf '%s\n' "$big"
    for ((i = 0; i + 1 < ${#m[@]} && n < 7; i += 2)); do
      [ "${m[i]}" = "$in" ] && continue
      printf '%s\n' "${m[i]}" "${m[i + 1]}"
      n+=1
    done
  } >"$memo.$$" 2>/dev/null && mv -f "$memo.$$" "$memo" 2>/dev/null ||
    rm -f "$memo.$$" 2>/dev/null
  return 0
}
