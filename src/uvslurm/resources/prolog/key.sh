# shellcheck shell=bash
# uvslurm prolog, section key: where this project + fingerprint + lock has its venv in the
# depot: a key made of their contents (one sha256sum call per start).

# _uvslurm_key FINGERPRINT [remember]: the fingerprint hash and the depot location of this
# project + FINGERPRINT (the text) + lock, in _uvslurm_fp, _uvslurm_pdir, _uvslurm_keyname and
# _uvslurm_lkey. Made of contents only, never of file times: uv.lock is hashed on every start,
# as this node sees it (a lock copied with rsync -a, scp -p or cp -p can be older than anything
# remembered), and compared with the hash of the one submitted. One sha256sum call, the warm
# path's only fork but the hold's flock (2-5 ms on this busy VM: fork and exec ~2 ms, ~2 ms per
# 350 KB of lock). The fingerprint's hash is remembered per text in <project dir>/.keys (with
# UVSLURM_PROJECT_ID, computed at submit time), so that sha256sum then reads the lock alone.
_uvslurm_key() {
  local text=$1 out ph="" fh="" lh name k v cache="" lock="$UVSLURM_PROJECT/uv.lock" LC_ALL=C
  local enc=${text//$'\n'/$'\x1f'}
  if [ -n "${UVSLURM_PROJECT_ID:-}" ]; then
    _uvslurm_pdir="$UVSLURM_DEPOT/$UVSLURM_PROJECT_ID"
    cache="$_uvslurm_pdir/.keys"
    if [ -f "$cache" ] && [ -O "$cache" ]; then
      while IFS=$'\x1e' read -r k v; do
        # only a fingerprint hash: what is read back never names a path
        if [ "$v" = "$enc" ] && [[ $k =~ ^[0-9a-f]{12}$ ]]; then fh=$k; break; fi
      done <"$cache"
    fi
  fi
  if [ -n "$fh" ]; then
    out=$(sha256sum "$lock" 2>/dev/null)
    lh=${out%% *}
  else
    out=$(sha256sum /dev/fd/3 - "$lock" 3<<<"$UVSLURM_PROJECT" <<<"$text" 2>/dev/null)
    { read -r ph _; read -r fh _; read -r lh _; } <<<"$out"
  fi
  _uvslurm_fp=${fh:0:12}
  # sha256sum prefixes a line with '\' when the file name holds a newline or backslash
  ph=${ph#\\}; lh=${lh#\\}
  [ ${#lh} -ge 64 ] || return 1
  if [ -n "${UVSLURM_LOCK_HASH:-}" ] && [ "${lh:0:64}" != "$UVSLURM_LOCK_HASH" ]; then
    _uvslurm_log "warning: $lock changed after submission (sha256 ${UVSLURM_LOCK_HASH:0:12}" \
      "then, ${lh:0:12} now); using the venv of this uv.lock, the one the command runs with"
  fi
  if [ -n "$ph" ]; then
    name=${UVSLURM_PROJECT##*/}
    name=${name//[^A-Za-z0-9._-]/_}
    _uvslurm_pdir="$UVSLURM_DEPOT/${name:0:40}-${ph:0:10}"
  fi
  _uvslurm_keyname="${_uvslurm_fp}-${lh:0:8}"
  # node-local copies are named by project and key, as the depot's are: two checkouts of one
  # repository have the same lock and fingerprint, and each venv's editable install points at
  # its own checkout
  _uvslurm_lkey="${_uvslurm_pdir##*/}-$_uvslurm_keyname"
  # remember the fingerprint's hash (best effort; a lost race only costs hashing the text again)
  if [ "${2:-}" = remember ] && [ -n "$ph" ] && [ -n "$cache" ] &&
    [ "$_uvslurm_pdir" = "$UVSLURM_DEPOT/$UVSLURM_PROJECT_ID" ] &&
    _uvslurm_private "$UVSLURM_DEPOT" && mkdir -p "$_uvslurm_pdir" 2>/dev/null; then
    {
      printf '%s\x1e%s\n' "$_uvslurm_fp" "$enc"
      if [ -f "$cache" ]; then head -n 7 "$cache"; fi
    } >"$cache.$$" 2>/dev/null && mv -f "$cache.$$" "$cache" 2>/dev/null
    rm -f "$cache.$$" 2>/dev/null
  fi
  return 0
}

# _uvslurm_report FINGERPRINT: fingerprint mode's output: the hash, the venv's depot path (in a
# project with a lock) and the components
_uvslurm_report() {
  _uvslurm_pdir=""
  if ! { [ -n "${UVSLURM_PROJECT:-}" ] && _uvslurm_key "$1"; }; then
    # outside a project (or without a lock) there is no venv, but there is a fingerprint
    _uvslurm_pdir=""
    read -r _uvslurm_fp _ < <(sha256sum <<<"$1")
    _uvslurm_fp=${_uvslurm_fp:0:12}
  fi
  printf 'fingerprint=%s\n' "${_uvslurm_fp:-}"
  [ -n "$_uvslurm_pdir" ] && printf 'venv=%s/%s\n' "$_uvslurm_pdir" "$_uvslurm_keyname"
  printf '%s\n' "$1"
}
