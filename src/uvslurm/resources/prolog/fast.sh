# shellcheck shell=bash
# shellcheck disable=SC2154 # UVSLURM_CMD: set by the job script's templated block
# uvslurm prolog, section fast: the prolog's state, the helpers a warm start runs, and a warm
# start that the memo answers: then bash reads none of the sections after this one
# (docs/design.md, "The warm start's memo").

# What the prolog does and takes (its inputs): see the section lib, after this one.

# The prolog's state, shared by its sections (every other variable is local to a function):
_uvslurm_t0=${EPOCHREALTIME/[.,]/} # the prolog's start (us): the ready line counts from it
_uvslurm_uv=""      # the uv executable: UVSLURM_UV, else uv on PATH (main)
_uvslurm_fp=""      # the fingerprint's hash, 12 hex digits (key)
_uvslurm_pdir=""    # <depot>/<project id>: the project's directory in the depot (key)
_uvslurm_keyname="" # <fingerprint>-<lock hash>: the name of the venv in it (key)
_uvslurm_lkey=""    # <project id>-<key>: the name of the venv's node-local copies (key)
_uvslurm_venv=""    # the venv the command runs from (main, place, spread)
_uvslurm_state=""   # how that venv was made ready: warm | placed | cold | repaired
_uvslurm_lockfd=""  # the descriptor of the lock that _uvslurm_lock took
_uvslurm_me=""      # <node>-<boot>-<pid>: this builder, in its lease and build directory names
_uvslurm_claims=()  # the claims (_uvslurm_claim) held, innermost last
_uvslurm_usefd=""   # the descriptor that holds the depot venv for as long as the job runs
_uvslurm_copyfd=""  # the one that holds its node-local copy (place: _uvslurm_holdcopy)
_uvslurm_mnt=""     # this job's mount of a squashfs image, unmounted when the command ends
_uvslurm_nomount="" # 1: mount no image (it would not last: prepare, node steps, several nodes)
_uvslurm_gone=""    # the venv that _uvslurm_intact found incomplete (said once, not per check)
_uvslurm_lockhash="" # sha256 of the uv.lock the venv is built from (key)
_uvslurm_lockmoved="" # 1: the project's uv.lock is not the one submitted (key)
_uvslurm_loaded=""  # 1: the functions that a warm start does not read are defined (_uvslurm_load)
_uvslurm_hit=""     # the fingerprint, when the memo answered (fast: main.sh then only runs)
_uvslurm_hitms=""   # and how long that took (ms)
_uvslurm_pyexe=""   # the interpreter the venv is made with, and its inode (_uvslurm_python)
_uvslurm_pyino=""
_uvslurm_nlnote=""  # why no node-local disk took the venv, when that is how things are (place)
_uvslurm_nltried="" # 1: a node-local copy was tried (and failed: the depot by chance)
_uvslurm_self=${BASH_SOURCE[0]:-} # this script's file, where _uvslurm_load finds them (a job
[[ $_uvslurm_self == /* || -z $_uvslurm_self ]] || _uvslurm_self=$PWD/$_uvslurm_self # may cd)

_uvslurm_log() { printf 'uvslurm: %s\n' "$*" >&2; }


# _uvslurm_since VAR START_US: milliseconds since START_US, without forking
_uvslurm_since() { printf -v "$1" '%d' $(((${EPOCHREALTIME/[.,]/} - $2) / 1000)); }

# _uvslurm_owned DIR: DIR is a directory of this user's and not a symlink. Builtins only (the
# warm path forks nothing): only its owner can change who may write into it.
_uvslurm_owned() { [ -d "$1" ] && ! [ -L "$1" ] && [ -O "$1" ]; }

# _uvslurm_privtmp: uv keeps lock files in $TMPDIR (uv-<hash>.lock, mode 0666); in a shared /tmp
# another user can hold one and hang every uv call of this job. A TMPDIR that is this user's
# alone (a per-job one) stays; a shared one is replaced by a private directory inside it, for
# uv and for the command (files there age out as the rest of that directory does).
_uvslurm_privtmp() {
  local base=${TMPDIR:-/tmp} d
  base=${base%/}
  if _uvslurm_owned "$base" && ! [ -k "$base" ]; then return 0; fi
  d="$base/uvslurm-$UID"
  [ -e "$d" ] || [ -L "$d" ] || mkdir -m 700 "$d" 2>/dev/null
  # nothing is created in a directory someone else planted there
  if _uvslurm_owned "$d" && { [ -e "$d/tmp" ] || [ -L "$d/tmp" ] ||
    mkdir -m 700 "$d/tmp" 2>/dev/null; } && _uvslurm_owned "$d/tmp"; then
    export TMPDIR="$d/tmp"
  else
    _uvslurm_log "warning: $d is not a private directory of this user;" \
      "uv keeps its lock files in the shared $base"
  fi
}

# _uvslurm_ready VENV: VENV has its marker and python, is this user's, and is still whole
_uvslurm_ready() {
  [ -f "$1/.uvslurm-ready" ] && [ -x "$1/bin/python" ] && _uvslurm_owned "$1" &&
    _uvslurm_intact "$1"
}

# _uvslurm_intact VENV: are the files that VENV's marker samples (its check= line, written at
# build time: per package its RECORD and one other file) still there, and not empty? A purge of
# old files on scratch, a node-local cleaner, or a cache clean under a venv of links fails it;
# the venv is then not ready (rebuilt, or copied again), and the log says why, once. Builtins
# only, no fork: ~1 ms for the 54 files of a 27-package venv on this VM. A marker that samples
# nothing (written before markers did) passes, and so does a depot venv with an image while jobs
# place venvs: placing it reads the image (one file), not the directory's files.
_uvslurm_intact() {
  local p l
  local -a f
  if [ "${UVSLURM_NODE_LOCAL:-auto}" != never ] &&
    { [ -f "$1.squashfs" ] || [ -f "$1.tar.zst" ]; }; then
    return 0
  fi
  local -a lines=()
  mapfile -t lines 2>/dev/null <"$1/.uvslurm-ready"
  for l in "${lines[@]}"; do
    case $l in
      check=*) ;;
      modules=*) return 0 ;; # the fingerprint: the marker samples nothing
      *) continue ;;
    esac
    # split by the shell's own word splitting (a here-string is read a byte at a time)
    local - IFS
    set -f
    IFS=$'\x1f'
    # shellcheck disable=SC2206 # split on purpose
    f=(${l#check=})
    IFS=$' \t\n'
    set +f
    for p in "${f[@]}"; do
      [ -s "$1/$p" ] && continue
      [ "$_uvslurm_gone" = "$1" ] || _uvslurm_log "warning: $1 is incomplete ($p is missing" \
        "or empty: a purge of old files?); not using it"
      _uvslurm_gone=$1
      return 1
    done
    return 0
  done
  return 0
}

# _uvslurm_ino VAR FILE: FILE's inode number, from /proc/self/fdinfo of a descriptor open on it
# (Linux >= 5.14; no process), or "" when that is not known
_uvslurm_ino() {
  # names unlike the caller's VAR: printf -v sets the innermost variable of that name
  local _ino_fd _ino_t=""
  local -a _ino_a=()
  if { exec {_ino_fd}<"$2"; } 2>/dev/null; then
    # (mapfile: several times faster than read, which handles a character at a time)
    mapfile -t _ino_a </proc/self/fdinfo/"$_ino_fd"
    exec {_ino_fd}<&-
  fi 2>/dev/null
  for _ino_t in "${_ino_a[@]:1}"; do [[ $_ino_t == ino:* ]] && break; done
  [[ $_ino_t == ino:* ]] || _ino_t=""
  _ino_t=${_ino_t#ino:}
  printf -v "$1" '%s' "${_ino_t//[!0-9]/}"
}

# _uvslurm_ldso VAR: the ELF interpreter every dynamic program of this architecture names (it is
# glibc's, installed with the C library: its identity is the libc's), in this mount namespace
_uvslurm_ldso() {
  local p
  case ${HOSTTYPE:-} in
    x86_64) p=/lib64/ld-linux-x86-64.so.2 ;;
    aarch64) p=/lib/ld-linux-aarch64.so.1 ;;
    powerpc64le | ppc64le) p=/lib64/ld64.so.2 ;;
    riscv64) p=/lib/ld-linux-riscv64-lp64d.so.1 ;;
    *) p=/lib/ld-linux.so.2 ;;
  esac
  printf -v "$1" '%s' "$p"
}

# _uvslurm_os VAR: ID-VERSION_ID of /etc/os-release, read each time (a few lines, no process):
# a container or mount namespace with another os-release gets its own key
_uvslurm_os() {
  local t id ver
  local -a lines=()
  mapfile -t lines 2>/dev/null </etc/os-release
  # the first of each, as the os-release(5) parsers take them
  for t in "${lines[@]}"; do
    case $t in
      ID=*) [ -n "${id+1}" ] || id=${t#ID=} ;;
      VERSION_ID=*) [ -n "${ver+1}" ] || ver=${t#VERSION_ID=} ;;
    esac
  done
  id=${id-} ver=${ver-}
  id=${id#[\"\']}; id=${id%[\"\']}; ver=${ver#[\"\']}; ver=${ver%[\"\']}
  printf -v "$1" '%s' "$id-$ver"
}

# _uvslurm_finduv: _uvslurm_uv, the uv recorded at submit time, else the one on PATH
_uvslurm_finduv() {
  _uvslurm_uv=${UVSLURM_UV:-}
  [ -n "$_uvslurm_uv" ] && [ -x "$_uvslurm_uv" ] && return 0
  _uvslurm_uv=$(command -v uv)
}

# _uvslurm_factsname VAR LD: the file in the depot that keeps this node's machine facts, named by
# the identity of what they are read from (_uvslurm_facts): the node, its boot, the OS, glibc's
# loader LD and the uv binary
_uvslurm_factsname() {
  local boot="" ldid uvid os
  read -r boot </proc/sys/kernel/random/boot_id 2>/dev/null
  _uvslurm_ino ldid "$2"
  _uvslurm_ino uvid "$_uvslurm_uv"
  _uvslurm_os os
  printf -v "$1" '%s' "$UVSLURM_DEPOT/.facts/${HOSTNAME:-node}-${boot:-0}" \
    "-${os//[^A-Za-z0-9._-]/_}-${ldid:-0}-${uvid:-0}"
}

# _uvslurm_pyfresh EXE INO REF: is the interpreter found before (EXE, of inode INO) still the
# one uv finds? Yes while EXE is the same file and neither it, nor uv's Python directory, nor
# the project's files, nor a directory of PATH up to EXE's changed since the file REF was written.
_uvslurm_pyfresh() {
  local d here=${UVSLURM_PROJECT:-/} pydir exedir
  local -a dirs
  pydir=${UV_PYTHON_INSTALL_DIR:-${XDG_DATA_HOME:-${HOME:-/}/.local/share}/uv/python}
  # where uv looks from: the project, or a PEP 723 script's directory
  [ -z "${UVSLURM_SCRIPT:-}" ] || here=${UVSLURM_SCRIPT%/*}
  [ -n "$1" ] && [ "$1" -nt "$3" ] && return 1
  # PATH's directories: split by the shell's own word splitting (no globbing: `local -` keeps
  # `set -f` to this function), 10x faster here than a here-string or a loop of expansions
  local - IFS=:
  set -f
  # shellcheck disable=SC2206 # split on purpose
  dirs=("$pydir" "$here/pyproject.toml" "$here/.python-version" ${PATH:-})
  IFS=$' \t\n'
  set +f
  exedir=${1%/*}
  for d in "${dirs[@]}"; do
    [[ -n $d && $d -nt $3 ]] && return 1
    # uv takes the first fit along PATH: directories after the one it took cannot matter
    [[ $d == "$exedir" ]] && break
  done
  [ -z "$1" ] && return 0
  _uvslurm_ino d "$1"
  [ "$d" = "$2" ]
}

# _uvslurm_jobhold VENV: in a Slurm job, hold the ready depot VENV for as long as the job (or
# its array) lives, without a process: open .uvslurm-used with truncation (its mtime: the last
# use, which gc also compares before and after it renames a venv away) and create
# .uvslurm-job-<cluster>-<job id> beside it. `uvslurm depot gc/rm` ask Slurm whether that job is
# still queued or running, on every node alike, whatever the filesystem's flocks do (docs/
# design.md, "Holds"). False outside a job, or when the files cannot be written (a flock then),
# or when VENV vanished after the open (gc renamed it away: rebuild under the lock).
_uvslurm_jobhold() {
  local c=${SLURM_CLUSTER_NAME:-} id=${SLURM_ARRAY_JOB_ID:-${SLURM_JOB_ID:-}}
  [ -n "$id" ] && [[ $id != *[!0-9]* && $c != *[!A-Za-z0-9._-]* ]] || return 1
  { : >"$1/.uvslurm-used" && : >"$1/.uvslurm-job-${c:--}-$id"; } 2>/dev/null || return 1
  [ -f "$1/.uvslurm-ready" ] && [ -x "$1/bin/python" ] && _uvslurm_owned "$1"
}

# _uvslurm_memo_in VAR: what the fingerprint, the key and the choice of the depot venv read
# from the environment, as one line: the prolog's settings (but the command's own), the
# variables they read, the node (the name of its facts file: boot, OS, glibc, uv) and the GPU
# driver. The files they read are checked apart (_uvslurm_fast). One printf, few loops: every
# builtin call costs the warm start µs (tests/test_fast.py checks that every variable the
# prolog's sections read is here or harmless).
_uvslurm_memo_in() {
  local n f ld gpu="" out
  _uvslurm_ldso ld
  _uvslurm_factsname f "$ld"
  [ -r /proc/driver/nvidia/version ] && read -r gpu </proc/driver/nvidia/version
  printf -v out '%s\x1f' 3 "${UVSLURM_PROJECT:-}" "${UVSLURM_SCRIPT:-}" "${UVSLURM_PROJECT_ID:-}" \
    "${UVSLURM_LOCK_HASH:-}" "${UVSLURM_LOCK_DIR:-}" "${UVSLURM_UV:-}" "${UVSLURM_DEPOT:-}" \
    "${UVSLURM_NODE_LOCAL:-}" "${UVSLURM_OFFLINE:-}" "${UVSLURM_PYTHON:-}" \
    "${UVSLURM_SYNC_ARGS:-}" "${UVSLURM_FP_ENV:-}" "${UVSLURM_FP_COMMANDS:-}" \
    "${UVSLURM_FP_MODULES:-}" "${UVSLURM_FP_IGNORE:-}" "${UVSLURM_PLATFORMS:-}" \
    "${UVSLURM_IMAGE:-}" "${UVSLURM_REBUILD:-}" \
    "${UVSLURM_REBUILD_SOURCES:-}" "${PATH:-}" "${HOME:-}" "${XDG_DATA_HOME:-}" \
    "${LOADEDMODULES:-}" "${_LMFILES_:-}" "${HOSTNAME:-}" "${HOSTTYPE:-}" "${CONDA_PREFIX:-}" \
    "$f" "$gpu"
  # where node-local disk is looked for, and whether it is this job's own (place.sh:
  # _uvslurm_perjob): the job's id in those paths, delimited, stands for any job's
  if [ "${UVSLURM_NODE_LOCAL:-auto}" != never ]; then
    _uvslurm_jobless f "/${SLURM_TMPDIR:-}"$'\x1f'"${TMPDIR:-}/"
    out+=$f$'\x1f'"${SLURM_TASKS_PER_NODE:-1}"
  fi
  # shellcheck disable=SC2086 # UVSLURM_FP_ENV is a list of names that submit checked
  for n in ${UVSLURM_FP_ENV:-} "${!UV_@}"; do out+=$'\x1f'"$n=${!n:-}"; done
  printf -v "$1" '%s' "$out"
}

# _uvslurm_jobless VAR TEXT: TEXT with this job's ids, where a path names them (delimited by
# non-digits), as <task> (an array task's <array id>_<task id>) and <job>: what a per-job
# directory's path is for any job. `_uvslurm_jobless VAR TEXT back` puts them back.
_uvslurm_jobless() {
  local t=$2 a="${SLURM_ARRAY_JOB_ID:-}_${SLURM_ARRAY_TASK_ID:-}" j=${SLURM_JOB_ID:-}
  if [ "${3:-}" = back ]; then
    [[ $a == _* || $a == *_ ]] || t=${t//"<task>"/$a}
    t=${t//"<job>"/$j}
  else
    [[ $a == _* || $a == *_ || $t != *[!0-9]"$a"[!0-9]* ]] || t=${t//"$a"/"<task>"}
    [[ -z $j || $t != *[!0-9]"$j"[!0-9]* ]] || t=${t//"$j"/"<job>"}
  fi
  printf -v "$1" '%s' "$t"
}

# _uvslurm_fast: a warm start in a job from the venv the memo names for these inputs, or back to
# the caller (the full path) when anything differs: the inputs, a file the fingerprint reads
# (uv, glibc's loader, the interpreter and the directories uv finds it by: none changed since
# the memo), the lock (the same bytes as the submitted one's copy), or the venv (ready and
# whole, as _uvslurm_ready sees it). Then it holds the venv as the full path does, logs the
# same lines and hands over to the command. Jobs of several nodes, images, node-local copies,
# snapshots, scripts, fingerprint commands and rebuilt packages on GPU nodes take the full path.
# (Glob patterns, not =~: a regular expression costs ~0.1 ms to compile, every time.)
_uvslurm_fast() {
  local in memo k key="" lh exe ino text note ld t IFS
  local -a run lines
  local -a lnow lold lcur
  [ "${UVSLURM_MODE:-run}" = run ] && [ -n "${UVSLURM_PROJECT_ID:-}" ] &&
    [ ${#UVSLURM_LOCK_HASH} = 64 ] && [[ $UVSLURM_LOCK_HASH != *[!0-9a-f]* ]] &&
    [ -n "${SLURM_JOB_ID:-}" ] && [[ $SLURM_JOB_ID != *[!0-9]* ]] &&
    [ "${SLURM_JOB_NUM_NODES:-1}" = 1 ] && [[ ${UVSLURM_DEPOT:-} == /* ]] &&
    [ -z "${UVSLURM_SCRIPT:-}${UVSLURM_SNAPSHOT:-}${UVSLURM_FP_COMMANDS:-}" ] || return 0
  [ -z "${UVSLURM_REBUILD:-}" ] || ! [ -e /proc/driver/nvidia/version ] || return 0
  _uvslurm_finduv || return 0
  _uvslurm_privtmp
  memo="$UVSLURM_DEPOT/$UVSLURM_PROJECT_ID/.memo"
  _uvslurm_owned "$UVSLURM_DEPOT" && _uvslurm_owned "${memo%/*}" && [ -f "$memo" ] &&
    ! [ -L "$memo" ] && [ -O "$memo" ] || return 0
  _uvslurm_memo_in in
  mapfile -t lines 2>/dev/null <"$memo"
  for k in "${lines[@]}"; do
    [[ $k == "$in"$'\x1e'* ]] || continue
    # the fields, split by the shell (a here-string would be read a byte at a time)
    set -f
    IFS=$'\x1e'
    # shellcheck disable=SC2206 # split on purpose
    lines=($k)
    unset IFS
    set +f
    key=${lines[1]:-} lh=${lines[2]:-} exe=${lines[3]:-} ino=${lines[4]:-}
    text=${lines[5]:-} note=${lines[6]:-}
    break
  done
  # what is read back names no path but the interpreter's, which is only compared
  [ ${#key} = 21 ] && [ "${key:12:1}" = - ] && [[ ${key/-/} != *[!0-9a-f]* ]] &&
    [ "$lh" = "$UVSLURM_LOCK_HASH" ] && [ "${lh:0:8}" = "${key#*-}" ] || return 0
  _uvslurm_ldso ld
  ! [ "$_uvslurm_uv" -nt "$memo" ] && ! [ "$ld" -nt "$memo" ] &&
    _uvslurm_pyfresh "$exe" "$ino" "$memo" || return 0
  # the lock this node sees holds the bytes of the submitted one (kept as .lock-<hash>), and
  # the project's own is that one too (else the full path says that it changed); mapfile keeps
  # every byte but NUL, which no uv.lock has
  mapfile lnow 2>/dev/null <"${UVSLURM_LOCK_DIR:-$UVSLURM_PROJECT}/uv.lock"
  mapfile lold 2>/dev/null <"${memo%/*}/.lock-${lh:0:16}"
  IFS=
  [ ${#lnow[@]} -gt 0 ] && [ "${lnow[*]}" == "${lold[*]}" ] &&
    [ -O "${memo%/*}/.lock-${lh:0:16}" ] || return 0
  if [ -n "${UVSLURM_LOCK_DIR:-}" ]; then
    mapfile lcur 2>/dev/null <"$UVSLURM_PROJECT/uv.lock"
    [ "${lcur[*]}" == "${lnow[*]}" ] || return 0
  fi
  unset IFS
  _uvslurm_pdir=${memo%/*}
  _uvslurm_keyname=$key
  _uvslurm_venv="$_uvslurm_pdir/$key"
  _uvslurm_ready "$_uvslurm_venv" && _uvslurm_jobhold "$_uvslurm_venv" || return 0
  _uvslurm_fp=${key%%-*}
  _uvslurm_lkey="${_uvslurm_pdir##*/}-$key"
  _uvslurm_lockhash=$lh
  _uvslurm_state=warm
  _uvslurm_since t "$_uvslurm_t0"
  _uvslurm_log "fingerprint $_uvslurm_fp in $t ms (remembered)"
  [ -z "$note" ] || { _uvslurm_jobless note "$note" back; _uvslurm_log "note: $note"; }
  _uvslurm_log "ready (warm) in $t ms: $_uvslurm_venv"
  _uvslurm_hit=${text//$'\x1f'/$'\n'}
  _uvslurm_hitms=$t
  export UV_PROJECT_ENVIRONMENT="$_uvslurm_venv"
  # nothing left to do but the command: it replaces this shell. A job that records how it ends
  # reads on (main.sh runs it, and stays).
  if [ -z "${UVSLURM_RECORD:-}" ]; then
    unset VIRTUAL_ENV
    _uvslurm_runargs run
    exec "${run[@]}"
  fi
}

# _uvslurm_runargs VAR [CACHE_ARG...]: set the array VAR to the command as `uv run` runs it: with
# the selection (`--package M` runs in the member) and the interpreter the venv was made for
# (else uv warns that it is not the project's); a PEP 723 script's venv is the active one
_uvslurm_runargs() {
  local -n _ra_out=$1
  shift
  # shellcheck disable=SC2206 # UVSLURM_SYNC_ARGS is a list of validated flags
  _ra_out=("$_uvslurm_uv" run --no-sync "$@" --project "$UVSLURM_PROJECT"
    ${UVSLURM_PYTHON:+--python "$UVSLURM_PYTHON"} ${UVSLURM_SYNC_ARGS:-})
  [ -z "${UVSLURM_SCRIPT:-}" ] || { export VIRTUAL_ENV=$_uvslurm_venv
    _ra_out=("$_uvslurm_uv" run --active --frozen "$@" --script); }
  _ra_out+=("${UVSLURM_CMD[@]}")
}

# _uvslurm_memo_write FINGERPRINT: remember this start's inputs and venv for the next
# (_uvslurm_fast), with the 7 latest other lines. Best effort, and only into a depot that
# others cannot write into: a lost race or a read-only depot costs the next start the full path.
_uvslurm_memo_write() {
  local in memo="$_uvslurm_pdir/.memo" line text
  [ -n "${UVSLURM_PROJECT_ID:-}" ] && [ "$_uvslurm_pdir" = "$UVSLURM_DEPOT/$UVSLURM_PROJECT_ID" ] &&
    [ -f "$_uvslurm_pdir/.lock-${_uvslurm_lockhash:0:16}" ] && _uvslurm_private "$UVSLURM_DEPOT" &&
    _uvslurm_owned "$_uvslurm_pdir" || return 0
  _uvslurm_memo_in in
  # inputs with a newline or \x1e could not be found again: not remembered
  [[ $in != *[$'\n\x1e']* ]] || return 0
  text=${1//$'\n'/$'\x1f'}
  {
    printf '%s\x1e' "$in" "$_uvslurm_keyname" "$_uvslurm_lockhash" "$_uvslurm_pyexe" \
      "$_uvslurm_pyino" "${text//$'\x1e'/_}"
    _uvslurm_jobless line " ${_uvslurm_nlnote//[$'\n\x1e']/_} "
    line=${line# }
    printf '%s\n' "${line% }"
    local -i n=0
    if [ -f "$memo" ] && [ -O "$memo" ]; then
      while IFS= read -r line && ((n < 7)); do
        [ "${line%%$'\x1e'*}" = "$in" ] && continue
        printf '%s\n' "$line"
        n+=1
      done <"$memo"
    fi
  } >"$memo.$$" 2>/dev/null && mv -f "$memo.$$" "$memo" 2>/dev/null
  rm -f "$memo.$$" 2>/dev/null
  return 0
}

# the memo answers most warm starts; the rest read on
_uvslurm_fast
