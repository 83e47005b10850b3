# shellcheck shell=bash
# shellcheck disable=SC2154 # set in other sections: _uvslurm_t0 (fast.sh), the key (key.sh)
# uvslurm prolog, section main: the steps in order (uv, fingerprint, key, a ready venv, its
# node-local copy, the other nodes), then the mode: run, activate, prepare or fingerprint.

_uvslurm_main() {
  local t base fingerprint beat="" copies=1
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
  if [ "${SLURM_JOB_NUM_NODES:-1}" -gt 1 ] 2>/dev/null; then
    # every node of a job must run from one path: a job-private mount on the first node would
    # not be that (the other nodes' copies are made in a step whose processes end with it)
    _uvslurm_nomount=1
    # and the other nodes copy from the depot venv (spread.sh): a copy on this node alone does
    # not serve when the depot has lost its venv (a purge, another depot)
    _uvslurm_ready "$depot_venv" || copies=""
  fi
  # warm: a ready venv where the command would run from
  for base in "${bases[@]}"; do
    [ -n "$base" ] && [ -n "$copies" ] || continue
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
      _uvslurm_mkpdir || _uvslurm_die "cannot create the depot directory" \
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
  # (a copy of the same key can serve a job whose depot lacks the venv: nothing to record then)
  [ -n "${_uvslurm_usefd:-}" ] || { : >"$depot_venv/.uvslurm-used"; } 2>/dev/null
  # no node-local copy took over after all: the depot venv's hold is kept fresh from here
  if [ "$beat" = later ] && [ -n "${_uvslurm_usefd:-}" ] && [ "$_uvslurm_venv" = "$depot_venv" ]
  then
    _uvslurm_unpend
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
    _uvslurm_memo_write
  fi
  _uvslurm_unpend
}

# _uvslurm_atexit: the EXIT trap of a batch script run after the prolog: unmount a mounted
# image, record the script's exit code
_uvslurm_atexit() {
  local rc=$?
  _uvslurm_umount
  _uvslurm_record end "$rc"
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
_uvslurm_main
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
