# shellcheck shell=bash
# uvslurm prolog, section key: where this project + fingerprint + lock has its venv in the
# depot: a key made of their contents (compared byte for byte, or hashed).

# _uvslurm_key FINGERPRINT [remember]: the fingerprint hash and the depot location of this
# project + FINGERPRINT (the text) + lock, in _uvslurm_fp, _uvslurm_pdir, _uvslurm_keyname and
# _uvslurm_lkey. Made of contents only, never of file times: a lock copied with rsync -a, scp -p
# or cp -p can be older than anything remembered. With UVSLURM_PROJECT_ID (computed at submit
# time) the fingerprint's hash is remembered per text in <project dir>/.keys, and a lock of at
# most 64 KiB is kept as .lock-<its hash>: when the submitted lock's copy is there and holds the
# same bytes as the node's uv.lock (compared by bash, ~0.1 ms), the key forks nothing. Otherwise
# one sha256sum call hashes uv.lock as this node sees it (2-5 ms), and a lock that differs from
# the one submitted is said in the log.
_uvslurm_key() {
  local text=$1 out ph="" fh="" lh="" name k v cache="" lock LC_ALL=C
  local now="" copy="" kept="" was=${UVSLURM_LOCK_HASH:-}
  local enc=${text//$'\n'/$'\x1f'}
  # the lock submitted, in its content-addressed copy (UVSLURM_LOCK_DIR), is what the venv is
  # built from; without one (prepare, env, older scripts) the project's own
  lock="${UVSLURM_LOCK_DIR:-$UVSLURM_PROJECT}/uv.lock"
  [ -n "${UVSLURM_LOCK_DIR:-}" ] && [ -f "$lock" ] || lock="$UVSLURM_PROJECT/uv.lock"
  [ -z "${UVSLURM_SCRIPT:-}" ] || lock="$UVSLURM_SCRIPT.lock"
  if [ -n "${UVSLURM_PROJECT_ID:-}" ]; then
    _uvslurm_pdir="$UVSLURM_DEPOT/$UVSLURM_PROJECT_ID"
    cache="$_uvslurm_pdir/.keys"
    if [ -f "$cache" ] && [ -O "$cache" ]; then
      while IFS=$'\x1e' read -r k v; do
        # only a fingerprint hash: what is read back never names a path
        if [ "$v" = "$enc" ] && [[ $k =~ ^[0-9a-f]{12}$ ]]; then fh=$k; break; fi
      done 2>/dev/null <"$cache" # replaced meanwhile (a rename): read as if absent
    fi
  fi
  if [ -n "$cache" ]; then
    # the node's lock, if small (bash's read: no process); NUL bytes, which no uv.lock has, drop
    { IFS= read -r -d '' -N 65537 now <"$lock"; } 2>/dev/null
    [ ${#now} -le 65536 ] || now=""
    copy="$_uvslurm_pdir/.lock-${was:0:16}"
    if [ -n "$now" ] && [[ $was =~ ^[0-9a-f]{64}$ ]] && [ -f "$copy" ] && [ -O "$copy" ]; then
      local old=""
      kept=1
      { IFS= read -r -d "" -N 65537 old <"$copy"; } 2>/dev/null
      [ -n "$fh" ] && [ "$now" == "$old" ] && lh=$was
    fi
  fi
  if [ -n "$lh" ]; then
    :
  elif [ -n "$fh" ]; then
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
  _uvslurm_lockhash=${lh:0:64}
  if [ -n "$was" ] && [ "${lh:0:64}" != "$was" ]; then
    _uvslurm_lockmoved=1
    _uvslurm_log "warning: $lock changed after submission (sha256 ${UVSLURM_LOCK_HASH:0:12}" \
      "then, ${lh:0:12} now); using the venv of this uv.lock, the one the command runs with"
  elif [ "$lock" != "$UVSLURM_PROJECT/uv.lock" ] && [ "${2:-}" = remember ]; then
    _uvslurm_lockdiff
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
  if [ "${2:-}" = remember ] && [ -n "$cache" ] &&
    [ "$_uvslurm_pdir" = "$UVSLURM_DEPOT/$UVSLURM_PROJECT_ID" ]; then
    # the warm path finds both remembered and forks nothing here
    [ -n "$ph" ] && _uvslurm_remember_fp "$enc"
    # a copy is kept of the submitted lock only: only a job's start compares with one
    [ -n "$now" ] && [ -z "$kept" ] && [ "${lh:0:64}" = "$was" ] && _uvslurm_keep_lock "$lh" "$now"
    # one too big for bash to read here is kept too, copied: the memo compares it (fast.sh)
    if [ -z "$now" ] && [ "${lh:0:64}" = "$was" ] && ! [ -f "$_uvslurm_pdir/.lock-${was:0:16}" ]
    then
      _uvslurm_keep_lock "$lh" "" "$lock"
    fi
  fi
  return 0
}

# _uvslurm_lockdiff: the job builds from the lock submitted; say in one line when the project's
# uv.lock is another one by now (a `uv add` while the job was queued). Bytes compared by bash
# when both are small (no process), else by cmp.
_uvslurm_lockdiff() {
  local a="" b="" same=""
  { IFS= read -r -d '' -N 65537 a <"$UVSLURM_LOCK_DIR/uv.lock"; } 2>/dev/null
  { IFS= read -r -d '' -N 65537 b <"$UVSLURM_PROJECT/uv.lock"; } 2>/dev/null
  if [ ${#a} -le 65536 ] && [ ${#b} -le 65536 ]; then
    [ "$a" == "$b" ] && same=1
  elif cmp -s "$UVSLURM_LOCK_DIR/uv.lock" "$UVSLURM_PROJECT/uv.lock"; then
    same=1
  fi
  [ -n "$same" ] && return 0
  _uvslurm_lockmoved=1
  _uvslurm_log "note: $UVSLURM_PROJECT/uv.lock changed since submission; this job runs the" \
    "lock submitted (sha256 ${_uvslurm_lockhash:0:12}), kept in $UVSLURM_LOCK_DIR"
}

# _uvslurm_remember_fp ENCODED: remember the fingerprint hash of a fingerprint text (newlines
# as \x1f) in .keys, with the 7 latest others. Best effort, as _uvslurm_keep_lock.
_uvslurm_remember_fp() {
  local cache="$_uvslurm_pdir/.keys"
  _uvslurm_private "$UVSLURM_DEPOT" && _uvslurm_mkpdir || return 0
  {
    printf '%s\x1e%s\n' "$_uvslurm_fp" "$1"
    if [ -f "$cache" ]; then head -n 7 "$cache"; fi
  } >"$cache.$$" 2>/dev/null && mv -f "$cache.$$" "$cache" 2>/dev/null ||
    rm -f "$cache.$$" 2>/dev/null
  return 0
}

# _uvslurm_keep_lock HASH BYTES [FILE]: keep a small uv.lock's BYTES (or a copy of FILE) as
# .lock-<HASH>, only if they hash to HASH (what was read may not be what sha256sum read). Best
# effort: a lost race only costs a sha256sum next time.
_uvslurm_keep_lock() {
  local copy="$_uvslurm_pdir/.lock-${1:0:16}" out
  _uvslurm_private "$UVSLURM_DEPOT" && _uvslurm_mkpdir || return 0
  if [ -n "${3:-}" ]; then cp -- "$3" "$copy.$$"; else printf '%s' "$2" >"$copy.$$"; fi \
    2>/dev/null &&
    out=$(sha256sum "$copy.$$" 2>/dev/null) &&
    [ "${out%% *}" = "$1" ] && mv -f "$copy.$$" "$copy" 2>/dev/null ||
    rm -f "$copy.$$" 2>/dev/null
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
