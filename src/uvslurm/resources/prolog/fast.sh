# shellcheck shell=bash
# shellcheck disable=SC2154 # UVSLURM_CMD: set by the job script's templated block
# uvslurm prolog, section fast: a warm start that the memo answers (docs/design.md, "The warm
# start's memo") runs `uv run` before bash reads the sections after it; and the helpers it shares
# with them. Nothing else: bash parses every word here on every start.

_uvslurm_t0=${EPOCHREALTIME/[.,]/} # the prolog's start (us): the ready line counts from it
_uvslurm_in=""  # the inputs of this start, as the memo remembers them (below)
_uvslurm_pendf="" _uvslurm_pendfd="" # this start's pending file and its lock (below; lib.sh)
# bash's own work here is on bytes, and a multibyte locale makes it decode every character (~12%
# of a warm start): C until the section ends. Unless the job had an LC_ALL (exported, it is put
# back before anything runs), this is a variable of this shell alone, not the command's.
_uvslurm_lc=${LC_ALL-$'\x01'}
LC_ALL=C

# _uvslurm_intact VENV: are the files that VENV's marker samples (its check= line, written at
# build time: per package its RECORD and one other file) still there and not empty? A purge of
# old files on scratch, a node-local cleaner, or a cache clean under a venv of links fails it; the
# venv is then not ready, and the log says why, once. A marker that samples nothing passes, and so
# does a depot venv with an image while jobs place venvs (placing reads the image, not the files).
_uvslurm_intact() {
  local p l - IFS
  local -a f lines=()
  [[ ${UVSLURM_NODE_LOCAL:-auto} != never && (-f $1.squashfs || -f $1.tar.zst) ]] && return 0
  # (check= is a marker's fifth line: build.sh)
  mapfile -t -n 8 lines 2>/dev/null <"$1/.uvslurm-ready"
  for l in "${lines[@]}"; do
    [[ $l == check=* ]] || continue
    set -f
    IFS=$'\x1f'
    # shellcheck disable=SC2206 # split on purpose (a here-string is read a byte at a time)
    f=(${l#check=})
    unset IFS
    for p in "${f[@]}"; do
      [[ -s $1/$p ]] || {
        # (printf: the warm start runs this before _uvslurm_log is defined)
        [ "${_uvslurm_gone:-}" = "$1" ] || printf 'uvslurm: warning: %s\n' "$1 is incomplete ($p" \
          "is missing or empty: a purge of old files?); not using it" >&2
        _uvslurm_gone=$1
        return 1
      }
    done
    return 0
  done
  return 0
}

# _uvslurm_ino VAR FILE...: the inode numbers of FILEs, space-separated ("" for one that cannot be
# opened), from /proc/self/fdinfo of a descriptor open on each (Linux >= 5.14; no process)
_uvslurm_ino() {
  # names unlike the caller's VAR: printf -v sets the innermost variable of that name
  local _ino_v=$1 _ino_f _ino_fd _ino_t _ino_out=""
  local -a _ino_a
  shift
  for _ino_f; do
    _ino_a=()
    if { exec {_ino_fd}<"$_ino_f"; } 2>/dev/null; then
      # (mapfile: several times faster than read, which takes a character at a time)
      mapfile -t -n 4 _ino_a </proc/self/fdinfo/"$_ino_fd"
      exec {_ino_fd}<&-
    fi 2>/dev/null
    # its fourth line (fs/proc/fd.c): "ino:<TAB><number>"
    _ino_t=${_ino_a[3]:-}
    [[ $_ino_t == ino:* ]] || _ino_t=""
    _ino_out+=" ${_ino_t//[!0-9]/}"
  done
  printf -v "$_ino_v" '%s' "${_ino_out# }"
}

# _uvslurm_ldso VAR: the ELF interpreter that every dynamic program of this architecture names
# (glibc's, installed with the C library: its identity is the libc's)
_uvslurm_ldso() {
  local p=/lib/ld-linux.so.2
  case ${HOSTTYPE:-} in
    x86_64) p=/lib64/ld-linux-x86-64.so.2 ;;
    aarch64) p=/lib/ld-linux-aarch64.so.1 ;;
    powerpc64le | ppc64le) p=/lib64/ld64.so.2 ;;
    riscv64) p=/lib/ld-linux-riscv64-lp64d.so.1 ;;
  esac
  printf -v "$1" '%s' "$p"
}

# _uvslurm_pyfresh EXE INO REF: is the interpreter found before (EXE, of inode INO) still the one
# uv finds? Yes while EXE is the same file and neither it, nor uv's Python directory, nor the
# project's files, nor a directory of PATH up to EXE's changed since the file REF was written.
_uvslurm_pyfresh() {
  local d here=${UVSLURM_PROJECT:-/} p=":${PATH:-}:" - IFS=:
  local -a dirs
  # where uv looks from: the project, or a PEP 723 script's directory
  [ -z "${UVSLURM_SCRIPT:-}" ] || here=${UVSLURM_SCRIPT%/*}
  # uv takes the first fit along PATH: the directories after the one it took cannot matter
  [ -z "$1" ] || p=${p%%:"${1%/*}":*}
  # PATH's directories, split by the shell's own word splitting (no globbing); "" is never newer
  set -f
  # shellcheck disable=SC2206 # split on purpose
  dirs=("$1" "${1%/*}"
    "${UV_PYTHON_INSTALL_DIR:-${XDG_DATA_HOME:-${HOME:-/}/.local/share}/uv/python}"
    "$here/pyproject.toml" "$here/.python-version" $p)
  for d in "${dirs[@]}"; do [[ $d -nt $3 ]] && return 1; done
  [ -z "$1" ] && return 0
  _uvslurm_ino d "$1"
  [ "$d" = "$2" ]
}

# _uvslurm_jobless VAR TEXT [back]: TEXT with this job's ids, where a path names them (delimited
# by non-digits: job 42 in /tmp/job_42, not in /tmp/pytest-16242), as <task> (an array task's
# <array id>_<task id>) and <job>: a per-job directory's path for any job; with `back` they are
# put back
_uvslurm_jobless() {
  local t=" $2 " p a="${SLURM_ARRAY_JOB_ID:-}_${SLURM_ARRAY_TASK_ID:-}" j=${SLURM_JOB_ID:-}
  local -a ids=()
  if [ "${3:-}" = back ]; then
    [[ $a == _* || $a == *_ ]] || t=${t//"<task>"/$a}
    t=${t//"<job>"/$j}
  else
    [[ $a == _* || $a == *_ ]] || ids=("$a" "<task>")
    [ -z "$j" ] || ids+=("$j" "<job>")
    while ((${#ids[@]})); do
      # the first delimited one, until none is left (its delimiters stay)
      while [[ $t == *[!0-9]"${ids[0]}"[!0-9]* ]]; do
        p=${t%%[!0-9]"${ids[0]}"[!0-9]*}
        t=$p${t:${#p}:1}${ids[1]}${t:${#p}+1+${#ids[0]}}
      done
      ids=("${ids[@]:2}")
    done
  fi
  t=${t# }
  printf -v "$1" '%s' "${t% }"
}

# _uvslurm_tls VAR: uv builds its HTTP client at every `uv run`, though `--no-sync` never uses it,
# and so reads every certificate that SSL_CERT_DIR and SSL_CERT_FILE name (~7 ms a start for the
# 290 files of a Debian /etc/ssl/certs: a fifth of a warm start). When the job exports them as
# plain paths, VAR gets `--env-file FILE` and _uvslurm_tlsoff is set: the exec of uv leaves them
# out of uv's environment, and uv gives the command FILE's variables that its own lacks, so the
# command sees them as they were. FILE holds the lines and never changes (a new content takes
# the next free name: a start that read one can trust uv to read the same); it is this user's,
# in the project's depot directory. Not with env files of the user's (uv would read only ours),
# and not for a PEP 723 script, whose `uv run` may install.
_uvslurm_tls() {
  local -n _tl_out=$1
  local _tl_want="" _tl_f _tl_i -
  local -a _tl_m
  _tl_out=() _uvslurm_tlsoff=""
  [[ -n ${SSL_CERT_DIR:-}${SSL_CERT_FILE:-} && -z ${UV_ENV_FILE+1}${UV_NO_ENV_FILE+1} ]] &&
    [[ -z ${UVSLURM_SCRIPT:-} && ${UVSLURM_SYNC_ARGS:-} != *env-file* ]] &&
    [[ $_uvslurm_pdir != *' '* ]] || return 0 # (uv splits --env-file's value at spaces)
  for _tl_i in SSL_CERT_DIR SSL_CERT_FILE; do
    [ -n "${!_tl_i:-}" ] || continue
    # exported (a shell variable is neither uv's nor the command's), and bytes that a dotenv
    # line keeps as they are
    [[ ${!_tl_i@a} == *x* && ${!_tl_i} != *[!A-Za-z0-9/._+,:@%=~-]* ]] || return 0
    _tl_want+="$_tl_i=${!_tl_i}"$'\n'
  done
  for _tl_i in 0 1 2 3; do
    _tl_f=$_uvslurm_pdir/.tls-env-$_tl_i
    # a new file (O_EXCL; `local -` sets -C back), written whole by one write; one that is
    # there (made by another start meanwhile, too) is read: a start that reads it half-made
    # takes the next name
    if [[ ! -e $_tl_f && ! -L $_tl_f ]]; then
      set -C
      { printf '%s' "$_tl_want" >"$_tl_f"; } 2>/dev/null && break
    fi
    _tl_m=()
    [[ -f $_tl_f && ! -L $_tl_f && -O $_tl_f ]] && mapfile -d '' _tl_m 2>/dev/null <"$_tl_f"
    [ "${_tl_m[0]:-}" = "$_tl_want" ] && break
    _tl_f=""
  done
  [ -n "$_tl_f" ] || return 0
  _tl_out=(--env-file "$_tl_f") _uvslurm_tlsoff=1
}

# The warm start that the memo answers: one pass, left by `break` for the full path at the first
# thing that differs. What it checks and why: after it (bash reads none of that on a hit).
while [ "${UVSLURM_MODE:-run}" = run ] && [ -n "${UVSLURM_PROJECT_ID:-}" ] &&
  [[ ${#UVSLURM_LOCK_HASH} == 64 && $UVSLURM_LOCK_HASH != *[!0-9a-f]* ]] &&
  [[ -n ${SLURM_JOB_ID:-} && $SLURM_JOB_ID != *[!0-9]* && ${SLURM_JOB_NUM_NODES:-1} == 1 ]] &&
  [[ ${UVSLURM_DEPOT:-} == /* && -z ${UVSLURM_SCRIPT:-}${UVSLURM_SNAPSHOT:-} ]] &&
  [[ -z ${UVSLURM_FP_COMMANDS:-} && (-z ${UVSLURM_REBUILD:-} || ! -e /proc/driver/nvidia/version) ]]
do
  # uv as recorded (the full path also looks on PATH); uv's lock files in a TMPDIR of this user's
  # alone: a per-job one, or the private one that _uvslurm_privtmp made in a shared one
  _uvslurm_uv=${UVSLURM_UV:-} _uvslurm_k=${TMPDIR:-/tmp}
  [[ -n $_uvslurm_uv && -x $_uvslurm_uv ]] || break
  _uvslurm_k=${_uvslurm_k%/}
  if [[ ! -d $_uvslurm_k || -L $_uvslurm_k || ! -O $_uvslurm_k || -k $_uvslurm_k ]]; then
    _uvslurm_k=$_uvslurm_k/uvslurm-$UID
    [[ -d $_uvslurm_k && ! -L $_uvslurm_k && -O $_uvslurm_k ]] &&
      [[ -d $_uvslurm_k/tmp && ! -L $_uvslurm_k/tmp && -O $_uvslurm_k/tmp ]] || break
    export TMPDIR=$_uvslurm_k/tmp
  fi
  _uvslurm_ld="" _uvslurm_ids="" _uvslurm_boot="" _uvslurm_gpu="" _uvslurm_os=()
  _uvslurm_ldso _uvslurm_ld
  _uvslurm_ino _uvslurm_ids "$_uvslurm_ld" "$_uvslurm_uv"
  { read -r _uvslurm_boot </proc/sys/kernel/random/boot_id; mapfile -t _uvslurm_os </etc/os-release
  } 2>/dev/null
  [[ -r /proc/driver/nvidia/version ]] && read -r _uvslurm_gpu </proc/driver/nvidia/version
  printf -v _uvslurm_in '%s\x1f' 8 "${UVSLURM_PROJECT:-}" "$UVSLURM_PROJECT_ID" \
    "$UVSLURM_LOCK_HASH" "${UVSLURM_LOCK_DIR:-}" "${UVSLURM_UV:-}" "$UVSLURM_DEPOT" \
    "${UVSLURM_NODE_LOCAL:-}" "${UVSLURM_OFFLINE:-}" "${UVSLURM_PYTHON:-}" \
    "${UVSLURM_SYNC_ARGS:-}" \
    "${UVSLURM_FP_ENV:-}" "${UVSLURM_FP_MODULES:-}" "${UVSLURM_FP_IGNORE:-}" \
    "${UVSLURM_PLATFORMS:-}" "${UVSLURM_IMAGE:-}" "${UVSLURM_REBUILD:-}" \
    "${UVSLURM_REBUILD_SOURCES:-}" "${PATH:-}" "${HOME:-}" "${XDG_DATA_HOME:-}" \
    "${LOADEDMODULES:-}" "${_LMFILES_:-}" "${HOSTNAME:-}" "${HOSTTYPE:-}" "${CONDA_PREFIX:-}" \
    "$_uvslurm_boot" "${_uvslurm_os[*]}" "$_uvslurm_ids" "$_uvslurm_gpu"
  # where node-local disk is looked for, and whether it is this job's own (place.sh)
  if [ "${UVSLURM_NODE_LOCAL:-auto}" != never ]; then
    _uvslurm_jobless _uvslurm_k "/${SLURM_TMPDIR:-}"$'\x1f'"${TMPDIR:-}/"
    _uvslurm_in+=$_uvslurm_k$'\x1f'"${SLURM_TASKS_PER_NODE:-1}"
  fi
  # shellcheck disable=SC2086 # UVSLURM_FP_ENV is a list of names that submit checked
  for _uvslurm_k in ${UVSLURM_FP_ENV:-} "${!UV_@}"; do
    _uvslurm_in+=$'\x1f'"$_uvslurm_k=${!_uvslurm_k:-}"
  done
  _uvslurm_pdir="$UVSLURM_DEPOT/$UVSLURM_PROJECT_ID"
  _uvslurm_m=$_uvslurm_pdir/.memo
  [[ -d $UVSLURM_DEPOT && ! -L $UVSLURM_DEPOT && -O $UVSLURM_DEPOT ]] &&
    [[ -d $_uvslurm_pdir && ! -L $_uvslurm_pdir && -O $_uvslurm_pdir ]] || break
  # two lines per start remembered, the latest first: its inputs, then what they gave (key, lock
  # hash, interpreter, its inode, note, whether env(1) restores default signals: section run,
  # whether the lock is big).
  # The first pair answers most starts: the others are read only when it does not. (test's =
  # compares bytes; [[ == ]] would match a pattern.)
  _uvslurm_f=() _uvslurm_a=()
  if [[ -f $_uvslurm_m && ! -L $_uvslurm_m && -O $_uvslurm_m ]]; then
    mapfile -t -n 2 _uvslurm_a 2>/dev/null <"$_uvslurm_m"
    [ "${_uvslurm_a[0]:-}" = "$_uvslurm_in" ] ||
      mapfile -t -s 2 _uvslurm_a 2>/dev/null <"$_uvslurm_m"
  fi
  for ((_uvslurm_k = 0; _uvslurm_k < ${#_uvslurm_a[@]}; _uvslurm_k += 2)); do
    [ "${_uvslurm_a[_uvslurm_k]}" = "$_uvslurm_in" ] || continue
    set -f
    IFS=$'\x1e'
    # shellcheck disable=SC2206 # split on purpose (a here-string is read a byte at a time)
    _uvslurm_f=(${_uvslurm_a[_uvslurm_k + 1]})
    unset IFS
    set +f
    break
  done
  # Nothing remembered for these inputs yet. Starts with the same inputs (the tasks of an array
  # on a new node) would each take the full path at once: the first makes a pending file that it
  # holds a flock on until its memo is written; the others wait for that flock, then ask the
  # memo again (once). Only files of this user's in the project's directory, as the memo.
  if [ -z "${_uvslurm_f[0]:-}" ] && [ -z "$_uvslurm_pendf" ]; then
    _uvslurm_pendf=-
    for _uvslurm_k in "$_uvslurm_pdir"/.pending-*; do
      [[ -f $_uvslurm_k && ! -L $_uvslurm_k && -O $_uvslurm_k ]] &&
        { IFS= read -r _uvslurm_w <"$_uvslurm_k"; } 2>/dev/null &&
        [ "$_uvslurm_w" = "$_uvslurm_in" ] && { exec {_uvslurm_w}<"$_uvslurm_k"; } 2>/dev/null ||
        continue
      _uvslurm_t=${EPOCHREALTIME/[.,]/}
      printf 'uvslurm: waiting for %s, a start with the same inputs\n' \
        "${_uvslurm_k##*/.pending-}" >&2
      flock -s "$_uvslurm_w" 2>/dev/null
      exec {_uvslurm_w}<&-
      # (still there: that start was killed before it could remove it)
      [ ! -e "$_uvslurm_k" ] || rm -f "$_uvslurm_k"
      printf 'uvslurm: waited %s ms for %s, a start with the same inputs\n' \
        $(((${EPOCHREALTIME/[.,]/} - _uvslurm_t) / 1000)) "${_uvslurm_k##*/.pending-}" >&2
      continue 2
    done
    set -C # (a new file: O_EXCL)
    { exec {_uvslurm_pendfd}>"$_uvslurm_pdir/.pending-${HOSTNAME:-node}-$$"; } 2>/dev/null &&
      _uvslurm_pendf=$_uvslurm_pdir/.pending-${HOSTNAME:-node}-$$
    set +C
    [ "$_uvslurm_pendf" != - ] && flock -n "$_uvslurm_pendfd" 2>/dev/null &&
      printf '%s\n' "$_uvslurm_in" >&"$_uvslurm_pendfd"
    break
  fi
  # what is read back names no path but the interpreter's, which is only compared
  _uvslurm_keyname=${_uvslurm_f[0]:-} _uvslurm_lockhash=${_uvslurm_f[1]:-}
  [[ ${#_uvslurm_keyname} == 21 && ${_uvslurm_keyname:12:1} == - ]] &&
    [[ ${_uvslurm_keyname/-/} != *[!0-9a-f]* && $_uvslurm_lockhash == "$UVSLURM_LOCK_HASH" ]] &&
    [[ ${_uvslurm_keyname#*-} == "${_uvslurm_lockhash:0:8}" ]] &&
    [[ ! $_uvslurm_uv -nt $_uvslurm_m && ! $_uvslurm_ld -nt $_uvslurm_m ]] &&
    _uvslurm_pyfresh "${_uvslurm_f[2]:-}" "${_uvslurm_f[3]:-}" "$_uvslurm_m" || break
  # the project's lock holds the bytes of the submitted one: the copy kept beside the memo, or
  # the submitted copy that the job builds from (unchanged since the memo: it is uvslurm's own).
  # (mapfile keeps every byte but NUL, which no uv.lock has)
  _uvslurm_k=$_uvslurm_pdir/.lock-${_uvslurm_lockhash:0:16}
  [ -z "${UVSLURM_LOCK_DIR:-}" ] || _uvslurm_k=$UVSLURM_LOCK_DIR/uv.lock
  [[ -O $_uvslurm_k && ! $_uvslurm_k -nt $_uvslurm_m ]] || break
  # bash reads and compares ~5 KB per ms: a lock the memo knew as big (over 32 KiB) is cmp's
  if [ "${_uvslurm_f[6]:-}" = 1 ]; then
    cmp -s -- "$UVSLURM_PROJECT/uv.lock" "$_uvslurm_k" || break
  else
    mapfile -d '' _uvslurm_a 2>/dev/null <"$UVSLURM_PROJECT/uv.lock"
    mapfile -d '' _uvslurm_os 2>/dev/null <"$_uvslurm_k"
    [[ -n ${_uvslurm_a[0]:-} ]] && [ "${_uvslurm_a[0]}" = "${_uvslurm_os[0]:-}" ] || break
  fi
  # the venv ready (_uvslurm_ready) and held by this job (_uvslurm_jobhold: its id beside it)
  _uvslurm_venv=$_uvslurm_pdir/$_uvslurm_keyname
  _uvslurm_k=${SLURM_ARRAY_JOB_ID:-$SLURM_JOB_ID}
  [[ -f $_uvslurm_venv/.uvslurm-ready && -x $_uvslurm_venv/bin/python ]] &&
    [[ -d $_uvslurm_venv && ! -L $_uvslurm_venv && -O $_uvslurm_venv ]] &&
    _uvslurm_intact "$_uvslurm_venv" && [[ $_uvslurm_k != *[!0-9]* ]] &&
    [[ ${SLURM_CLUSTER_NAME:-} != *[!A-Za-z0-9._-]* ]] &&
    { : >"$_uvslurm_venv/.uvslurm-used" &&
      : >"$_uvslurm_venv/.uvslurm-job-${SLURM_CLUSTER_NAME:--}-$_uvslurm_k"; } 2>/dev/null &&
    [[ -f $_uvslurm_venv/.uvslurm-ready && -x $_uvslurm_venv/bin/python ]] || break
  _uvslurm_fp=${_uvslurm_keyname%%-*} _uvslurm_state=warm _uvslurm_hit=1
  _uvslurm_lkey="$UVSLURM_PROJECT_ID-$_uvslurm_keyname"
  _uvslurm_hitms=$(((${EPOCHREALTIME/[.,]/} - _uvslurm_t0) / 1000)) _uvslurm_k=""
  [ -z "${_uvslurm_f[4]:-}" ] || _uvslurm_jobless _uvslurm_k "note: ${_uvslurm_f[4]}" back
  printf 'uvslurm: %s\n' "fingerprint $_uvslurm_fp in $_uvslurm_hitms ms (remembered)" \
    ${_uvslurm_k:+"$_uvslurm_k"} "ready (warm) in $_uvslurm_hitms ms: $_uvslurm_venv" >&2
  export UV_PROJECT_ENVIRONMENT="$_uvslurm_venv"
  # a job that records how it ends reads on (the section run runs the command, and stays)
  [ -z "${UVSLURM_RECORD:-}" ] || break
  # nothing left to do but the command: it replaces this shell
  unset VIRTUAL_ENV
  _uvslurm_tls _uvslurm_a
  [ -z "${_uvslurm_tlsoff:-}" ] || unset SSL_CERT_DIR SSL_CERT_FILE
  [ "$_uvslurm_lc" = $'\x01' ] || LC_ALL=$_uvslurm_lc
  # as _uvslurm_runargs has it (section run) for a project's command
  # shellcheck disable=SC2086,SC2093 # validated flags; (when uv cannot run, the job ends)
  exec "$_uvslurm_uv" run --no-sync "${_uvslurm_a[@]}" --project "$UVSLURM_PROJECT" \
    ${UVSLURM_PYTHON:+--python "$UVSLURM_PYTHON"} ${UVSLURM_SYNC_ARGS:-} "${UVSLURM_CMD[@]}"
done
# The pass above: a warm start in a job, from the venv that the memo names for these inputs.
# Top-level code, not a function: bash copies a function's body at its definition and again at
# every call; the helpers it calls are those whose logic the full path shares. The inputs
# (_uvslurm_in, one line, which the full path's writer reuses) are what the fingerprint, the key
# and the choice of the depot venv read from the environment: the prolog's settings (but the
# command's own), the variables they read, the node (boot, /etc/os-release, and by inode glibc's
# loader and uv), the GPU driver, and where node-local disk is looked for (a job's id in those
# paths stands for any job's); tests/test_fast.py checks that none is missing. What the
# environment cannot show is checked apart: uv, glibc's loader, the interpreter and the
# directories uv finds it by (none changed since the memo), the lock (the bytes the venv was
# built from) and the venv (ready and whole). Then the job holds the venv as the full path does,
# logs the same lines and hands over to the command. Jobs of several nodes, snapshots, scripts,
# fingerprint commands and rebuilt packages on GPU nodes take the full path. (Glob patterns, not
# =~: a regular expression costs ~0.1 ms to compile.)

# the rest read on, in the job's own locale
if [ "$_uvslurm_lc" = $'\x01' ]; then unset LC_ALL; else LC_ALL=$_uvslurm_lc; fi
unset _uvslurm_f _uvslurm_ld _uvslurm_ids _uvslurm_boot _uvslurm_gpu _uvslurm_os _uvslurm_k \
  _uvslurm_m _uvslurm_a _uvslurm_w _uvslurm_t
