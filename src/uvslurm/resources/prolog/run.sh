# shellcheck shell=bash
# shellcheck disable=SC2154 # set in other sections: the prolog's state (fast.sh, lib.sh)
# uvslurm prolog, section run: the command, and the job's records of how it started and ended. A
# warm start that the memo answered in a job that records its end (fast.sh) reads this section,
# and then none after it.


_uvslurm_log() { printf 'uvslurm: %s\n' "$*" >&2; }

# _uvslurm_since VAR START_US: milliseconds since START_US, without forking
_uvslurm_since() { printf -v "$1" '%d' $(((${EPOCHREALTIME/[.,]/} - $2) / 1000)); }

# _uvslurm_owned DIR: DIR is a directory of this user's and not a symlink (only its owner can
# change who may write into it)
_uvslurm_owned() { [[ -d $1 && ! -L $1 && -O $1 ]]; }

# _uvslurm_runargs VAR [CACHE_ARG...]: set the array VAR to the command as `uv run` runs it: with
# the selection (`--package M` runs in the member) and the interpreter the venv was made for
# (else uv warns that it is not the project's); a PEP 723 script's venv is the active one
_uvslurm_runargs() {
  local -n _ra_out=$1
  local -a _ra_tls
  shift
  # (and, where it sets _uvslurm_tlsoff, the exec leaves SSL_CERT_DIR and SSL_CERT_FILE out of
  # uv's environment: _uvslurm_tls)
  _uvslurm_tls _ra_tls
  # shellcheck disable=SC2206 # UVSLURM_SYNC_ARGS is a list of validated flags
  _ra_out=("$_uvslurm_uv" run --no-sync "${_ra_tls[@]}" "$@" --project "$UVSLURM_PROJECT"
    ${UVSLURM_PYTHON:+--python "$UVSLURM_PYTHON"} ${UVSLURM_SYNC_ARGS:-})
  [ -z "${UVSLURM_SCRIPT:-}" ] || { export VIRTUAL_ENV=$_uvslurm_venv
    _ra_out=("$_uvslurm_uv" run --active --frozen "$@" --script); }
  _ra_out+=("${UVSLURM_CMD[@]}")
}

# _uvslurm_record start MS FINGERPRINT | end EXIT_CODE: what this job found on its node, or
# how it ended, for its manifest (`uvslurm show`, `uvslurm jobs`): key=value lines in
# $UVSLURM_RECORD/<job id>[_<task>].start|.end (the fingerprint's components after a
# `components:` line), written with one write (no rename: no process; a reader that comes
# between the open and the write sees an empty record, as if none yet). Only in a job with a
# record directory of this user's; never fails the job.
_uvslurm_record() {
  local id=${SLURM_JOB_ID:-} f v t
  [ -n "${UVSLURM_RECORD:-}" ] && [ -n "$id" ] || return 0
  [ -n "${SLURM_ARRAY_TASK_ID:-}" ] && id="${SLURM_ARRAY_JOB_ID:-}_$SLURM_ARRAY_TASK_ID"
  [[ -n $id && $id != *[!0-9_]* && $id != _* && $id != *_ && $id != *_*_* ]] &&
    [ -d "$UVSLURM_RECORD" ] && ! [ -L "$UVSLURM_RECORD" ] &&
    [ -O "$UVSLURM_RECORD" ] || return 0
  f="$UVSLURM_RECORD/$id.$1"
  printf -v t 'time=%s\nnode=%s\n' "${EPOCHREALTIME/,/.}" "${SLURMD_NODENAME:-${HOSTNAME:-}}"
  if [ "$1" = start ]; then
    v=${_uvslurm_venv//$'\n'/\\n}
    printf -v t '%snodes=%s\nready=%s\nready_ms=%s\nvenv=%s\nfingerprint=%s\nlock_sha256=%s\n' \
      "$t" "${SLURM_JOB_NODELIST:-}" "$_uvslurm_state" "$2" "$v" "$_uvslurm_fp" "$_uvslurm_lockhash"
    printf -v t '%slock_moved=%s\ncomponents:\n%s\n' "$t" "${_uvslurm_lockmoved:-0}" "$3"
    # a requeued job starts again: its earlier end is not this run's
    # (emptied, which reads as none: no process)
    v=$UVSLURM_RECORD/$id.end
    if [[ -f $v && ! -L $v ]]; then : >"$v"; fi 2>/dev/null
  else
    printf -v t '%sexit_code=%s\n' "$t" "$2"
  fi
  { [ ! -L "$f" ] && printf '%s' "$t" >"$f"; } 2>/dev/null
  return 0
}

# _uvslurm_exec: run mode: the command through `uv run --no-sync` with this venv, as the job's
# process; this shell stays only to unmount a mounted image when the command ends
_uvslurm_exec() {
  local rc child sig c
  local -a run cachearg=()
  unset VIRTUAL_ENV
  # uv's interpreter probe of a node-local venv is kept in a private cache beside it, not in the
  # user's shared one, where the path of every new copy would be written (a mounted image's path
  # is new in every job: no cache at all). --cache-dir and --no-cache do not reach the command:
  # it sees the user's UV_CACHE_DIR as it was (docs/design.md, "uv's cache on compute nodes").
  # A script with inline metadata (PEP 723) runs in uv's environment for it, in the user's cache.
  # shellcheck disable=SC2154 # UVSLURM_CMD is set by the job script's templated block
  # (a `-- ./x.py` command: a script target has UVSLURM_SCRIPT, and its venv in the depot)
  if [ -z "${UVSLURM_SCRIPT:-}" ] && [[ ${UVSLURM_CMD[0]:-} == *.py ]] &&
    [ -f "${UVSLURM_CMD[0]}" ] &&
    { read -r -d '' c <"${UVSLURM_CMD[0]}"; [[ $'\n'$c == *$'\n# /// script\n'* ]]; }; then
    :
  elif [ -n "${_uvslurm_mnt:-}" ]; then
    cachearg=(--no-cache)
  elif [[ $_uvslurm_venv != "$_uvslurm_pdir"/* ]]; then
    c=${_uvslurm_venv%/*}/.uv-cache
    if { [ ! -e "$c" ] && [ ! -L "$c" ]; } || _uvslurm_owned "$c"; then
      cachearg=(--cache-dir "$c")
    fi
  fi
  _uvslurm_runargs run "${cachearg[@]}"
  # uv runs without the job's certificates, which it hands to the command (_uvslurm_tls); what
  # this shell does after (unmount, record) needs none
  [ -z "${_uvslurm_tlsoff:-}" ] || unset SSL_CERT_DIR SSL_CERT_FILE
  # this shell stays only to unmount a mounted image or to record how the job ended
  if [ -z "${_uvslurm_mnt:-}" ] && { [ -z "${UVSLURM_RECORD:-}" ] || [ -z "${SLURM_JOB_ID:-}" ]; }
  then
    exec "${run[@]}"
  fi
  if [ -t 0 ]; then
    # at a terminal (uvslurm srun): in the foreground, where the terminal's signals reach it
    trap '[ -z "${_uvslurm_mnt:-}" ] || _uvslurm_umount; exit 143' TERM
    "${run[@]}"
    rc=$?
  else
    # in a batch job: in the background, so that signals for the batch shell alone
    # (sbatch --signal=B:USR1@60, scancel --batch) are passed on, as an exec would let them
    # through. A command started in the background ignores SIGINT and SIGQUIT; in a background
    # subshell, trap may set them back to the default (POSIX interpretation 751) before the
    # exec, without a process (bash 5.2 already does in a subshell; older ones may not).
    { trap - INT QUIT; exec "${run[@]}"; } <&0 &
    child=$!
    for sig in HUP INT QUIT TERM USR1 USR2; do
      # shellcheck disable=SC2064 # the signal and the pid are fixed here
      trap "kill -$sig $child 2>/dev/null" "$sig"
    done
    # a trapped signal ends a wait early: wait again while the command runs
    while kill -0 "$child" 2>/dev/null; do wait "$child"; done
    wait "$child"
    rc=$?
  fi
  # (only a start that mounted an image, on the full path, has read the place section)
  [ -z "${_uvslurm_mnt:-}" ] || _uvslurm_umount
  _uvslurm_record end "$rc"
  exit "$rc"
}

# _uvslurm_marker_fp VAR VENV: the fingerprint whose hash names VENV, as its marker holds it (from
# its first line, modules=, to the end)
_uvslurm_marker_fp() {
  local -a _mf_m=()
  local _mf_i _mf_t=""
  mapfile -t _mf_m 2>/dev/null <"$2/.uvslurm-ready"
  for _mf_i in "${!_mf_m[@]}"; do
    [[ ${_mf_m[_mf_i]} != modules=* ]] || break
  done
  [[ ${_mf_m[_mf_i]:-} != modules=* ]] || printf -v _mf_t '%s\n' "${_mf_m[@]:_mf_i}"
  printf -v "$1" '%s' "${_mf_t%$'\n'}"
}

# a start that the memo answered in a job that records how it ends: its record, then the command
if [ -n "${_uvslurm_hit:-}" ]; then
  _uvslurm_marker_fp _uvslurm_hit "$_uvslurm_venv"
  _uvslurm_record start "$_uvslurm_hitms" "$_uvslurm_hit"
  _uvslurm_exec
fi
