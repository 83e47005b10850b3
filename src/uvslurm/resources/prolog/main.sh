# shellcheck shell=bash
# shellcheck disable=SC2154 # set in other sections: _uvslurm_t0 (lib.sh), the key (key.sh)
# uvslurm prolog, section main: the steps in order (uv, fingerprint, key, a ready venv, its
# node-local copy, the other nodes), then the mode: run, activate, prepare or fingerprint.

_uvslurm_main() {
  local t base fingerprint beat=""
  local -a bases
  _uvslurm_finduv || _uvslurm_die "uv not found (recorded: '${UVSLURM_UV:-}');" \
    "put uv on PATH or set UVSLURM_UV"
  [[ ${UVSLURM_DEPOT:-} == /* ]] ||
    _uvslurm_die "UVSLURM_DEPOT is not an absolute path: '${UVSLURM_DEPOT:-}'"
  _uvslurm_privtmp
  _uvslurm_fingerprint fingerprint
  if [ "${UVSLURM_MODE:-run}" = fingerprint ]; then
    _uvslurm_report "$fingerprint"
    exit 0
  fi
  local lock=$UVSLURM_PROJECT/uv.lock fix="uv lock" s=${UVSLURM_SCRIPT:-}
  [ -z "$s" ] || { lock=$s.lock; fix="uv lock --script ${s##*/}"; }
  [ -f "${s:-$UVSLURM_PROJECT/pyproject.toml}" ] ||
    _uvslurm_die "no ${s:-pyproject.toml in $UVSLURM_PROJECT}"
  # a depot (or project directory in it) that someone else made could hold a "ready" venv of
  # theirs: only directories of this user's are used
  _uvslurm_owned "$UVSLURM_DEPOT" ||
    _uvslurm_die "the depot $UVSLURM_DEPOT is not a directory of yours (another user's, or a" \
      "symlink); set UVSLURM_DEPOT (or \`depot\` in the config) to a directory you own"
  _uvslurm_key "$fingerprint" remember ||
    _uvslurm_die "cannot read $lock (run '$fix' on a login node)"
  if [ -e "$_uvslurm_pdir" ] || [ -L "$_uvslurm_pdir" ]; then
    _uvslurm_owned "$_uvslurm_pdir" ||
      _uvslurm_die "$_uvslurm_pdir is not a directory of yours (another user's, or a symlink);" \
        "remove it, or set UVSLURM_DEPOT to a directory you own"
  fi
  _uvslurm_since t "$_uvslurm_t0"
  _uvslurm_log "fingerprint $_uvslurm_fp in $t ms"

  local depot_venv="$_uvslurm_pdir/$_uvslurm_keyname"
  _uvslurm_state=warm
  _uvslurm_venv=""
  _uvslurm_nl_candidates bases
  # every node of a job must run from one path: a job-private mount on the first node would not
  # be that (the other nodes' copies are made in a step whose processes end with it)
  if [ "${SLURM_JOB_NUM_NODES:-1}" -gt 1 ] 2>/dev/null; then _uvslurm_nomount=1; fi
  # warm: a ready venv where the command would run from
  for base in "${bases[@]}"; do
    [ -n "$base" ] || continue
    # held (_uvslurm_holdcopy) against other jobs' pruning of node-local copies
    if _uvslurm_owned "$base/uvslurm-$UID" &&
      _uvslurm_holdcopy "$base/uvslurm-$UID/$_uvslurm_lkey"; then
      _uvslurm_venv="$base/uvslurm-$UID/$_uvslurm_lkey"
      break
    fi
  done
  # a job whose command runs on from the depot venv keeps its hold fresh (lib.sh: _uvslurm_hold):
  # from the hold's own background process where no node-local copy can take over
  case ${UVSLURM_MODE:-run} in run | activate) beat=later ;; esac
  [ -n "$beat" ] && [ -z "${bases[*]}" ] && beat=now
  if [ -z "$_uvslurm_venv" ]; then
    if ! _uvslurm_hold "$depot_venv" "${beat#later}" job; then
      # building: the depot must also be closed to others (only its owner can open it again)
      _uvslurm_private "$UVSLURM_DEPOT" ||
        _uvslurm_die "the depot $UVSLURM_DEPOT is writable by other users; run chmod go-w on" \
          "it, or set UVSLURM_DEPOT to a private directory"
      mkdir -p "$_uvslurm_pdir" 2>/dev/null || _uvslurm_die "cannot create the depot directory" \
        "$_uvslurm_pdir (set UVSLURM_DEPOT to a writable place)"
      # one builder per key: flock where it works, a lease where it does not (lib.sh)
      _uvslurm_claim "$_uvslurm_pdir" "$_uvslurm_keyname" "$depot_venv"
      # another job may have finished it while this one waited
      _uvslurm_ready "$depot_venv" || _uvslurm_build "$fingerprint"
      _uvslurm_hold "$depot_venv" "${beat#later}" job ||
        _uvslurm_die "$depot_venv is not usable after building it"
      _uvslurm_unclaim
    fi
    _uvslurm_localize "$depot_venv"
  fi
  _uvslurm_spread "$depot_venv"
  # last use of the depot venv when the command runs from a node-local copy (no hold needed)
  [ -n "${_uvslurm_usefd:-}" ] || : >"$depot_venv/.uvslurm-used" 2>/dev/null
  # no node-local copy took over after all: the depot venv's hold is kept fresh from here
  if [ "$beat" = later ] && [ -n "${_uvslurm_usefd:-}" ] && [ "$_uvslurm_venv" = "$depot_venv" ]
  then
    _uvslurm_beat "$depot_venv" &
    disown $! # (a batch script's `wait` must not wait for it)
  fi
  _uvslurm_since t "$_uvslurm_t0"
  _uvslurm_log "ready ($_uvslurm_state) in $t ms: $_uvslurm_venv"
  [ "${UVSLURM_MODE:-run}" = prepare ] || _uvslurm_record start "$t" "$fingerprint"
  # the next start with these inputs runs from this venv without the steps above (fast.sh):
  # when it ran from the depot under a job's hold, and not because a copy failed this time
  if [ "${UVSLURM_MODE:-run}" = run ] && [ "$_uvslurm_venv" = "$depot_venv" ] &&
    [ -z "${_uvslurm_usefd:-}${_uvslurm_nltried:-}${_uvslurm_lockmoved:-}" ] &&
    [ "${SLURM_JOB_NUM_NODES:-1}" = 1 ] && [ -n "${UVSLURM_PROJECT_ID:-}" ] &&
    [ -f "$_uvslurm_pdir/.lock-${_uvslurm_lockhash:0:16}" ]; then
    _uvslurm_memo_write "$fingerprint"
  fi
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
    if [ -e "$UVSLURM_RECORD/$id.end" ]; then rm -f "$UVSLURM_RECORD/$id.end" 2>/dev/null; fi
  else
    printf -v t '%sexit_code=%s\n' "$t" "$2"
  fi
  { [ ! -L "$f" ] && printf '%s' "$t" >"$f"; } 2>/dev/null
  return 0
}

# _uvslurm_atexit: the EXIT trap of a batch script run after the prolog: unmount a mounted
# image, record the script's exit code
_uvslurm_atexit() {
  local rc=$?
  _uvslurm_umount
  _uvslurm_record end "$rc"
}

# _uvslurm_exec: run mode: the command through `uv run --no-sync` with this venv, as the job's
# process; this shell stays only to unmount a mounted image when the command ends
_uvslurm_exec() {
  local rc child sig c
  local -a run dfl cache=()
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
    cache=(--no-cache)
  elif [[ $_uvslurm_venv != "$_uvslurm_pdir"/* ]]; then
    c=${_uvslurm_venv%/*}/.uv-cache
    if { [ ! -e "$c" ] && [ ! -L "$c" ]; } || _uvslurm_owned "$c"; then cache=(--cache-dir "$c"); fi
  fi
  _uvslurm_runargs run "${cache[@]}"
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
    # through. Background commands start with SIGINT and SIGQUIT ignored; env restores them.
    dfl=()
    env --default-signal=INT true 2>/dev/null && dfl=(env "--default-signal=INT,QUIT")
    "${dfl[@]}" "${run[@]}" <&0 &
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

# _uvslurm_snapshot: `submit --snapshot`: the command (or the batch script's body) runs in the
# copy of the project's git-tracked files made at submission, from the directory that mirrors the
# one it was submitted from, with the copy's src/ first on the import path (a packaged
# project's editable install points at the project's own)
_uvslurm_snapshot() {
  local here
  [ -n "${UVSLURM_SNAPSHOT:-}" ] || return 0
  # the code of now is not what was asked for
  _uvslurm_owned "$UVSLURM_SNAPSHOT" || _uvslurm_die "the snapshot $UVSLURM_SNAPSHOT is gone" \
    "(\`uvslurm depot rm\`?) or not yours; submit again"
  here=$(pwd -P)
  case $here in
    "$UVSLURM_PROJECT") cd "$UVSLURM_SNAPSHOT" || return 0 ;;
    "$UVSLURM_PROJECT"/*) cd "$UVSLURM_SNAPSHOT${here#"$UVSLURM_PROJECT"}" 2>/dev/null ||
      cd "$UVSLURM_SNAPSHOT" || return 0 ;;
  esac
  if [ -d "$UVSLURM_SNAPSHOT/src" ]; then
    export PYTHONPATH="$UVSLURM_SNAPSHOT/src${PYTHONPATH:+:$PYTHONPATH}"
  fi
  _uvslurm_log "running in the snapshot $UVSLURM_SNAPSHOT"
}

# a mount made by `uvslurm prepare` would outlive it
[ "${UVSLURM_MODE:-run}" = prepare ] && _uvslurm_nomount=1
# the memo answered (fast.sh): only the job's record of its start is left of the steps
if [ -n "$_uvslurm_hit" ]; then
  _uvslurm_record start "$_uvslurm_hitms" "$_uvslurm_hit"
else
  _uvslurm_main
fi
export UV_PROJECT_ENVIRONMENT="$_uvslurm_venv"
[ "${UVSLURM_MODE:-run}" = prepare ] || _uvslurm_snapshot
case ${UVSLURM_MODE:-run} in
  run) _uvslurm_exec ;;
  prepare)
    printf '%s\n' "$_uvslurm_venv"
    exit 0
    ;;
  activate)
    # the job body runs `python` and `uv run` against this venv; uv must not re-sync it
    export VIRTUAL_ENV="$_uvslurm_venv" PATH="$_uvslurm_venv/bin:$PATH" UV_NO_SYNC=1 UV_FROZEN=1
    # a `module load` below comes after the venv was keyed: said once in the log
    _uvslurm_watch_modules
    unset PYTHONHOME
    # a mounted image lasts as long as the job script (a trap on EXIT of your own replaces this)
    # and its exit code is recorded for the job's manifest
    [ -n "${_uvslurm_mnt:-}${UVSLURM_RECORD:-}" ] && trap _uvslurm_atexit EXIT
    # every function of the prolog but those that trap calls (uvslurm/prolog.py writes the list)
    unset -f _uvslurm_FUNCTIONS
    ;;
  *) _uvslurm_die "unknown UVSLURM_MODE '${UVSLURM_MODE}'" ;;
esac
