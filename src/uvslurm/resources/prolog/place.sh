# shellcheck shell=bash
# shellcheck disable=SC2154 # set in other sections: the key (key.sh)
# uvslurm prolog, section place: the depot venv copied (or its image unpacked or mounted) onto
# node-local disk, where the command then runs from; the depot when there is no such disk.

# _uvslurm_nl_candidates ARRAY: set ARRAY to the node-local candidates, in order of preference
_uvslurm_nl_candidates() {
  local -n _uvslurm_nl_out=$1
  case ${UVSLURM_NODE_LOCAL:-auto} in
    never) _uvslurm_nl_out=() ;;
    auto) _uvslurm_nl_out=("${SLURM_TMPDIR:-}" "${TMPDIR:-}" /tmp) ;;
    *) _uvslurm_nl_out=("$UVSLURM_NODE_LOCAL") ;;
  esac
}

# _uvslurm_userdir VAR BASE: set VAR to BASE/uvslurm-UID, ours alone; false when it is not. A
# directory or symlink that someone else planted there (shared /tmp) is refused, never followed.
_uvslurm_userdir() {
  local d="$2/uvslurm-$UID" mode
  # another task of the job may make it at the same moment: then it is checked like any other
  if [ ! -e "$d" ] && [ ! -L "$d" ]; then
    mkdir -m 700 "$d" 2>/dev/null || [ -d "$d" ] || return 1
  fi
  [ -d "$d" ] && [ ! -L "$d" ] && [ -O "$d" ] || return 1
  mode=$(stat -c %a "$d" 2>/dev/null) && [ "$mode" = 700 ] || return 1
  printf -v "$1" '%s' "$d"
}

# _uvslurm_local_for BASE DEPOT_DIR WHY: is BASE node-local disk worth copying the venv to? Not
# when it is a network filesystem, and (in auto mode) not when it is the depot's own filesystem:
# a copy there gains nothing and costs the time and space of a second venv. Either reason goes
# into the variable named WHY.
_uvslurm_local_for() {
  local out t1 i1 t2 i2
  # one stat call: filesystem type and id of BASE and of the depot
  out=$(stat -f -c '%T %i' "$1" "$2" 2>/dev/null) || return 1
  { read -r t1 i1; read -r t2 i2; } <<<"$out"
  case $t1 in nfs* | lustre | gpfs | beegfs | cifs | smb* | fuse* | ceph | 9p | panfs | wekafs)
    printf -v "$3" '%s' "$1 is on a network filesystem ($t1)"
    return 1 ;;
  esac
  if [ "${UVSLURM_NODE_LOCAL:-auto}" = auto ] && [ "$i1" = "$i2" ] && [ "$t1" = "$t2" ]; then
    printf -v "$3" '%s' "$1 is on the depot's filesystem"
    return 1
  fi
}

# _uvslurm_perjob DIR: is DIR this job's own node-local directory (its path, or the root of the
# mount it is on, names the job, as a per-job TMPDIR that the site's prolog makes does) in a job
# of one task on one node? A copy
# there serves one process and goes with the job: 16 array tasks copied a 183 MB venv 16 times
# (4.2-4.4x one job's start on this 2-core VM), and one process importing from the depot reads
# fewer of its files than a copy does. Where many tasks of the job import, the copy pays.
_uvslurm_perjob() {
  local id=${SLURM_JOB_ID:-} n=${SLURM_TASKS_PER_NODE:-1}
  [[ $id =~ ^[0-9]+$ ]] && [ "${SLURM_JOB_NUM_NODES:-1}" = 1 ] && [ "${n%%[(,]*}" = 1 ] || return 1
  [[ ${SLURM_ARRAY_JOB_ID:-}_${SLURM_ARRAY_TASK_ID:-} =~ ^[0-9]+_[0-9]+$ ]] &&
    id+="|${BASH_REMATCH[0]}"
  [[ /$1/ =~ [^0-9]($id)[^0-9] ]] && return 0
  # Slurm's job_container/tmpfs mounts <BasePath>/<job id>/... on /tmp for each job: the path
  # does not name the job, the root of the mount it is on (its line of mountinfo) does
  local root mp best="" broot=""
  while read -r _ _ _ root mp _; do
    [ "$mp" != / ] && [[ $1/ == "$mp"/* ]] && ((${#mp} > ${#best})) && best=$mp broot=$root
  done </proc/self/mountinfo 2>/dev/null
  [[ -n $best && /$broot/ =~ [^0-9]($id)[^0-9] ]]
}

# _uvslurm_copy SRC DST: copy a venv, site-packages entries in parallel: a venv is thousands of
# small files, and one cp process leaves the node's cores and the disk's queue idle
# (4,900 files to tmpfs: cp -a 290-365 ms, this 185-230 ms, uv sync --frozen copy 350-390 ms).
_uvslurm_copy() {
  local src=$1 dst=$2 sp jobs=${SLURM_CPUS_ON_NODE:-2}
  local -a found
  ((jobs < 2)) && jobs=2
  ((jobs > 8)) && jobs=8
  found=("$src"/lib/python*/site-packages)
  [ -d "${found[0]}" ] || { cp -a "$src" "$dst"; return; }
  sp=${found[0]#"$src"/}             # lib/pythonX.Y/site-packages
  mkdir -p "$dst/$sp" &&
    (cd "$src" && find . -mindepth 1 -maxdepth 1 ! -name lib -exec cp -a -t "$dst" {} +) &&
    (cd "$src/${sp%/*}" && find . -mindepth 1 -maxdepth 1 ! -name site-packages \
      -exec cp -a -t "$dst/${sp%/*}" {} +) &&
    (cd "$src/$sp" && find . -mindepth 1 -maxdepth 1 -print0 |
      xargs -0 -r -n 16 -P "$jobs" cp -a -t "$dst/$sp")
}

# _uvslurm_mount IMAGE DIR: mount a squashfs image read-only in DIR, this user's node-local
# directory, for this job only (FUSE: no root needed where the site allows it). The mount ends
# with the command (_uvslurm_umount), or with squashfuse when Slurm ends the job's processes.
_uvslurm_mount() {
  local t mnt=$2/.$_uvslurm_lkey.mnt-${SLURM_JOB_ID:-0}-$$
  [ -z "${_uvslurm_nomount:-}" ] && [ -r /dev/fuse ] && [ -w /dev/fuse ] || return 1
  command -v squashfuse >/dev/null || return 1
  t=${EPOCHREALTIME/[.,]/}
  mkdir "$mnt" 2>/dev/null || return 1
  _uvslurm_unpend # (squashfuse stays, with the descriptors it was started with)
  if ! squashfuse "$1" "$mnt" 2>/dev/null || ! _uvslurm_ready "$mnt"; then
    _uvslurm_fuse_off "$mnt"
    rmdir "$mnt" 2>/dev/null
    return 1
  fi
  _uvslurm_mnt=$mnt
  _uvslurm_since t "$t"
  _uvslurm_log "mounted the image $1 on $mnt in $t ms"
  _uvslurm_venv=$mnt
}

# _uvslurm_fuse_off [-z] DIR: unmount a FUSE mount of this user (fuse 2 or fuse 3 tools)
_uvslurm_fuse_off() { { fusermount -u "$@" || fusermount3 -u "$@"; } 2>/dev/null; }

# _uvslurm_umount: end this job's mount, if it has one (also after the prolog: an EXIT trap)
_uvslurm_umount() {
  [ -n "${_uvslurm_mnt:-}" ] || return 0
  _uvslurm_fuse_off "$_uvslurm_mnt" && rmdir "$_uvslurm_mnt" 2>/dev/null
  _uvslurm_mnt=""
}

# _uvslurm_unstale DIR: remove mount points that killed jobs left in DIR (their squashfuse is gone)
_uvslurm_unstale() {
  local m
  for m in "$1"/.*.mnt-*; do
    [ -d "$m" ] || continue
    rmdir "$m" 2>/dev/null && continue
    # still mounted: a running job's mount, or a dead one ("Transport endpoint is not connected")
    if ! stat "$m/" >/dev/null 2>&1; then
      _uvslurm_fuse_off -z "$m" && rmdir "$m" 2>/dev/null
    fi
  done
}

# _uvslurm_holdcopy COPY: hold a ready node-local copy as _uvslurm_hold holds a depot venv (its
# last use recorded, a shared flock for as long as the job runs), so that another job's pruning
# leaves it alone; the descriptor goes into _uvslurm_copyfd. False when COPY is not ready.
_uvslurm_holdcopy() {
  local depotfd=${_uvslurm_usefd:-} rc=0
  _uvslurm_usefd=""
  _uvslurm_hold "$1" || rc=1
  _uvslurm_copyfd=$_uvslurm_usefd
  _uvslurm_usefd=$depotfd
  return "$rc"
}

# _uvslurm_rmcopy COPY: remove a node-local copy unless a job holds it or is placing it, or began
# using it while this looked (a hold records the use before its flock is taken)
_uvslurm_rmcopy() {
  local c=$1 lfd ufd="" trash="${1%/*}/.${1##*/}.trash-$$" before after rc=1
  exec {lfd}>>"$c.lock" || return 1
  if flock -n "$lfd" 2>/dev/null; then
    before=$(stat -c %y "$c/.uvslurm-used" 2>/dev/null)
    if { [ -z "$before" ] || { exec {ufd}<>"$c/.uvslurm-used" && flock -n "$ufd"; }; } &&
      mv -T "$c" "$trash"; then
      after=$(stat -c %y "$trash/.uvslurm-used" 2>/dev/null)
      if [ "$after" = "$before" ]; then
        rc=0
        rm -f "$c.lock" # while held: a waiter re-checks the file it locked (_uvslurm_lock)
      else
        mv -T "$trash" "$c"
      fi
    fi
  fi
  [ -n "$ufd" ] && exec {ufd}>&-
  exec {lfd}>&-
  [ "$rc" = 0 ] && rm -rf "$trash"
  return "$rc"
} 2>/dev/null

# _uvslurm_prune UD NEED_KB: node-local disks are out of `uvslurm depot gc`'s sight, so before a
# copy is placed in UD (this user's node-local directory) this removes this user's older copies
# there (names <project id>-<key> only), oldest last use first, while more than 3 others are left
# or the disk has less free than NEED_KB + 10 %. Never a copy that a job holds or is placing, nor
# one used in the last hour (a hold's flock is taken in the background, and the other nodes of a
# job of several nodes do not hold theirs while it runs).
_uvslurm_prune() {
  local ud=$1 need=$2 keep=3 grace=3600 t c m n df avail="" i line k v size gone=0 freed=0
  # a copy's name, <project id>-<key> (names.NODE_COPY)
  local name='[A-Za-z0-9._-]{0,40}-[0-9a-f]{10}-[0-9a-f]{12}-[0-9a-f]{8}'
  local -a found=() old=()
  t=${EPOCHREALTIME/[.,]/}
  for c in "$ud"/.*.trash-*; do
    # what a killed pruner was removing (a live one's pid still runs)
    [[ ${c##*/} =~ ^\.$name\.trash-([0-9]+)$ ]] && ! kill -0 "${BASH_REMATCH[1]}" 2>/dev/null &&
      _uvslurm_owned "$c" && rm -rf "$c"
  done
  for c in "$ud"/*; do
    [[ ${c##*/} =~ ^$name$ ]] && [ "${c##*/}" != "$_uvslurm_lkey" ] && _uvslurm_owned "$c" ||
      continue
    if [ -e "$c/.uvslurm-used" ]; then found+=("$c/.uvslurm-used"); else found+=("$c"); fi
  done
  n=${#found[@]}
  [ "$n" -gt 0 ] || return 0
  # last uses (epoch seconds), oldest first; and the free space
  while read -r m c; do
    i=${#old[@]}
    while ((i > 0)) && ((${old[i - 1]%% *} > m)); do old[i]=${old[i - 1]}; i=$((i - 1)); done
    old[i]="$m ${c%/.uvslurm-used}"
  done < <(stat -c '%Y %n' -- "${found[@]}" 2>/dev/null)
  df=$(df -Pk "$ud" 2>/dev/null) && read -r _ _ _ avail _ <<<"${df##*$'\n'}"
  for line in "${old[@]}"; do
    m=${line%% *} c=${line#* }
    if ((n <= keep)) && { [ -z "$avail" ] || ((avail >= need + need / 10 + 1024)); }; then break; fi
    ((EPOCHSECONDS - m >= grace)) || break
    size=0
    while IFS='=' read -r k v; do [ "$k" = size_kb ] && size=$v && break; done <"$c/.uvslurm-ready"
    _uvslurm_rmcopy "$c" || continue
    n=$((n - 1)) gone=$((gone + 1)) freed=$((freed + ${size:-0}))
    [ -n "$avail" ] && avail=$((avail + ${size:-0}))
  done 2>/dev/null
  if [ "$gone" -gt 0 ]; then
    _uvslurm_since t "$t"
    _uvslurm_log "removed $gone node-local copies unused for an hour or more from $ud" \
      "(${freed} KB) in $t ms"
  fi
}

_uvslurm_unpack() {
  local -
  set -o pipefail
  case $1 in
    *.squashfs) unsquashfs -q -n -d "$2" "$1" >/dev/null ;;
    *) mkdir -p "$2" && zstd -q -d -c "$1" | tar -C "$2" -xf - ;;
  esac
}

# _uvslurm_place DEPOT_VENV BASE: copy the depot venv onto node-local disk BASE (caller checked
# nothing valid is there). Returns 1 if the disk cannot take it; the caller then runs from the
# depot.
_uvslurm_place() {
  local src=$1 base=$2 ud dst tmp t need avail df k v img=""
  local -a copy
  _uvslurm_userdir ud "$base" || {
    _uvslurm_log "warning: $base/uvslurm-$UID is not a private directory of this user;" \
      "not using it"
    return 1
  }
  dst="$ud/$_uvslurm_lkey"
  if [ -f "$src.squashfs" ]; then
    _uvslurm_unstale "$ud"
    _uvslurm_mount "$src.squashfs" "$ud" && return 0
    command -v unsquashfs >/dev/null && img=$src.squashfs
  fi
  [ -z "$img" ] && [ -f "$src.tar.zst" ] && img=$src.tar.zst
  _uvslurm_lock "$dst.lock" "$dst" || {
    _uvslurm_log "warning: cannot lock $dst.lock (flock does not work on $base); using the depot"
    return 1
  }
  if _uvslurm_holdcopy "$dst"; then _uvslurm_unlock; _uvslurm_venv=$dst; return 0; fi
  t=${EPOCHREALTIME/[.,]/}
  need="" avail=""
  while IFS='=' read -r k v; do [ "$k" = size_kb ] && need=$v && break; done <"$src/.uvslurm-ready"
  _uvslurm_prune "$ud" "${need:-0}"
  # a big venv is not copied onto a disk without room for it; a small one just tries (a failed
  # copy falls back to the depot as well)
  if [ "${need:-0}" -ge 100000 ]; then
    df=$(df -Pk "$ud" 2>/dev/null) && read -r _ _ _ avail _ <<<"${df##*$'\n'}"
  fi
  if [ -n "$need" ] && [ -n "$avail" ] && [ "$avail" -lt $((need + need / 10 + 1024)) ]; then
    _uvslurm_unlock
    _uvslurm_log "warning: node-local $base has ${avail} KB free, the venv needs ${need} KB;" \
      "using the depot"
    return 1
  fi
  tmp="$ud/.$_uvslurm_lkey.tmp-$$"
  # leftovers of a killed placement (we hold the lock)
  for k in "$dst" "$ud/.$_uvslurm_lkey".tmp-*; do [ -e "$k" ] && rm -rf "$k"; done
  # the image when there is one; below ~100 MB one cp beats the processes of a parallel copy
  if [ -n "$img" ]; then
    copy=(_uvslurm_unpack "$img" "$tmp")
  elif [ "${need:-0}" -lt 100000 ]; then
    copy=(cp -a "$src" "$tmp")
  else
    copy=(_uvslurm_copy "$src" "$tmp")
  fi
  if ! "${copy[@]}" 2>/dev/null || ! mv -T "$tmp" "$dst"; then
    rm -rf "$tmp" "$dst"
    _uvslurm_unlock
    _uvslurm_log "warning: copying the venv to node-local $base failed (disk full?);" \
      "using the depot"
    return 1
  fi
  # held before others may look: their pruning leaves a copy in use alone
  _uvslurm_holdcopy "$dst"
  _uvslurm_unlock
  _uvslurm_since t "$t"
  _uvslurm_log "placed on node-local $dst${img:+ from the image} in $t ms"
  _uvslurm_venv=$dst
}

# _uvslurm_nl_base VAR NOTE DEPOT_VENV: set VAR to the first writable candidate worth placing
# DEPOT_VENV on; false when there is none (the command runs from the depot), NOTE then says why
# the candidates were passed over ("" when none was there to pass over). VAR and NOTE are named
# neither c, seen, n, w nor cands.
_uvslurm_nl_base() {
  local c seen=":" n="" w=""
  local -a cands
  _uvslurm_nl_candidates cands
  for c in "${cands[@]}"; do
    # /tmp is only a candidate once
    [ -n "$c" ] && [[ $seen != *":$c:"* ]] || continue
    seen+="$c:"
    [ -d "$c" ] && [ -w "$c" ] || continue
    # (an image stays placed: mounting it costs ms, and it spares the shared filesystem)
    if [ "${UVSLURM_NODE_LOCAL:-auto}" = auto ] && ! [ -f "$3.squashfs" ] &&
      ! [ -f "$3.tar.zst" ] && _uvslurm_perjob "$c"; then
      n+="; $c is this job's own (it goes when the job ends) and the job runs one task"
      continue
    fi
    if ! _uvslurm_local_for "$c" "$_uvslurm_pdir" w; then n+="; $w"; continue; fi
    printf -v "$1" '%s' "$c"
    return 0
  done
  printf -v "$2" '%s' "${n#; }"
  return 1
}

# _uvslurm_localize DEPOT_VENV: run from the first writable, node-local candidate that takes a
# copy of DEPOT_VENV (state "placed"), else from DEPOT_VENV itself
_uvslurm_localize() {
  local base note=""
  _uvslurm_venv=$1
  if _uvslurm_nl_base base note "$1"; then
    _uvslurm_nltried=1
    if _uvslurm_place "$1" "$base"; then
      [ "$_uvslurm_state" = warm ] && _uvslurm_state=placed
    fi
  elif [ -n "$note" ]; then
    _uvslurm_nlnote="$note; running from the depot"
    _uvslurm_log "note: $_uvslurm_nlnote"
  fi
}
