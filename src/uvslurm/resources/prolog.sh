#!/bin/bash
# shellcheck shell=bash
# uvslurm prolog: make this project's venv ready on this node, then hand over to the command.
#
# It runs on compute nodes where uvslurm itself is not installed: it needs bash >= 5, coreutils,
# flock (util-linux) and uv. `uvslurm submit` pastes it into the job script after a block of
# variable assignments; `uvslurm prepare` and `uvslurm fingerprint` run this file with the same
# variables in the environment. Inputs:
#   UVSLURM_PROJECT     absolute project directory (pyproject.toml, uv.lock)
#   UVSLURM_UV          uv executable recorded at submit time (falls back to uv on PATH)
#   UVSLURM_DEPOT       depot root: <depot>/<project>-<hash>/<key>/ is one venv
#   UVSLURM_NODE_LOCAL  auto | never | a directory
#   UVSLURM_OFFLINE     auto | true | false  (auto: offline inside a Slurm job)
#   UVSLURM_PYTHON      the Python request of the project ("" when it names none)
#   UVSLURM_SYNC_ARGS   uv selection flags (--extra X, --group Y, --no-dev...), word-split
#   UVSLURM_FP_ENV      extra variable names that belong in the fingerprint, word-split
#   UVSLURM_FP_COMMANDS commands whose output belongs in the fingerprint, each ended by \x1e
#   UVSLURM_FP_MODULES  0 to leave loaded modules out of the fingerprint
#   UVSLURM_IMAGE       none | tar.zst | squashfs: also keep each depot venv as one file, which
#                       nodes unpack (or, squashfs where FUSE works, mount) instead of copying
#   UVSLURM_REBUILD     packages built from source per fingerprint, comma-separated
#   UVSLURM_REBUILD_SOURCES  their locked sources: name \x1f version \x1f kind \x1f path \x1e ...
#   UVSLURM_MODE        run: exec UVSLURM_CMD through `uv run --no-sync`
#                       activate: return with the venv active (the job script body follows)
#                       prepare: print the venv path    fingerprint: print components and key
# Each step logs one "uvslurm: ..." line with its duration to stderr. When the environment cannot
# be prepared the script exits 75 (EX_TEMPFAIL), a code users' programs rarely use.
#
# Venv lifecycle: a venv directory is published by renaming a private build directory that
# already holds the ready marker, so a reader sees either nothing or a complete venv. uv's own
# venv is not safe against kill -9 mid-install (files missing while `uv sync --check` passes).

_uvslurm_t0=${EPOCHREALTIME/[.,]/}

_uvslurm_log() { printf 'uvslurm: %s\n' "$*" >&2; }
_uvslurm_die() { _uvslurm_log "error: $*"; exit 75; }
# _uvslurm_since VAR START_US: milliseconds since START_US, without forking
_uvslurm_since() { printf -v "$1" '%d' $(((${EPOCHREALTIME/[.,]/} - $2) / 1000)); }

# _uvslurm_owned DIR: DIR is a directory of this user's and not a symlink. Builtins only (the
# warm path forks nothing): only its owner can change who may write into it.
_uvslurm_owned() { [ -d "$1" ] && ! [ -L "$1" ] && [ -O "$1" ]; }
# _uvslurm_private DIR: ... and neither group nor others may write into it (one stat)
_uvslurm_private() {
  local m
  _uvslurm_owned "$1" && m=$(stat -c %a "$1" 2>/dev/null) && (((8#$m & 8#022) == 0))
}

# _uvslurm_mkdepot: create a missing depot, private, with the marker that tells `uvslurm depot
# gc/rm` it is uvslurm's to clean (they touch no directory without it)
_uvslurm_mkdepot() {
  [ -e "$UVSLURM_DEPOT" ] || [ -L "$UVSLURM_DEPOT" ] && return 0
  { mkdir -p "${UVSLURM_DEPOT%/*}" && mkdir -m 700 "$UVSLURM_DEPOT" &&
    printf 'uvslurm depot\n' >"$UVSLURM_DEPOT/.uvslurm-depot"; } 2>/dev/null
}

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
  if _uvslurm_owned "$d" && { [ -e "$d/tmp" ] || [ -L "$d/tmp" ] || mkdir -m 700 "$d/tmp" 2>/dev/null; } &&
    _uvslurm_owned "$d/tmp"; then
    export TMPDIR="$d/tmp"
  else
    _uvslurm_log "warning: $d is not a private directory of this user; uv keeps its lock files in the shared $base"
  fi
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

# CPU identity from the first processor block of /proc/cpuinfo: vendor, family, model and the
# feature flags decide what a -march=native build may use.
_uvslurm_cpu() {
  local k v acc=""
  while IFS=: read -r k v; do
    [ -z "$k" ] && break
    k=${k%"${k##*[![:space:]]}"}
    case $k in
      vendor_id | "cpu family" | model | flags | "CPU implementer" | "CPU architecture" | \
        "CPU variant" | "CPU part" | Features) acc+="${k// /_}=${v# } " ;;
    esac
  done </proc/cpuinfo
  printf -v "$1" '%s' "${acc% }"
}

# Facts of the machine (CPU, OS, glibc, uv version) are cached per boot in the depot, so the warm
# path forks nothing for them; the cache is stale when the uv binary is newer than it.
_uvslurm_facts() {
  local boot="" f k v glibc="" uvv="" cpu="" os=""
  read -r boot </proc/sys/kernel/random/boot_id 2>/dev/null
  f="$UVSLURM_DEPOT/.facts/${HOSTNAME:-node}-${boot:-0}"
  _uvslurm_mkdepot
  if ! _uvslurm_owned "$UVSLURM_DEPOT"; then f=""; fi
  if [ -n "$f" ] && [ -f "$f" ] && ! [ "$_uvslurm_uv" -nt "$f" ]; then
    while IFS='=' read -r k v; do
      case $k in
        glibc) glibc=$v ;;
        cpu) cpu=$v ;;
        os) os=$v ;;
        uv) [ "${v%% *}" = "$_uvslurm_uv" ] && uvv=${v#* } ;;
      esac
    done <"$f"
  fi
  if [ -z "$glibc" ] || [ -z "$uvv" ] || [ -z "$os" ]; then
    _uvslurm_cpu cpu
    _uvslurm_os os
    glibc=$(getconf GNU_LIBC_VERSION 2>/dev/null) || glibc=unknown
    uvv=$("$_uvslurm_uv" --version 2>/dev/null) || _uvslurm_die "cannot run uv at '$_uvslurm_uv'"
    # best effort: a read-only depot only costs these subprocesses on the next run; nothing is
    # written into a depot that others could write into (they could plant links there)
    if [ -n "$f" ] && _uvslurm_private "$UVSLURM_DEPOT" && mkdir -p "${f%/*}" 2>/dev/null; then
      printf 'glibc=%s\ncpu=%s\nos=%s\nuv=%s %s\n' "$glibc" "$cpu" "$os" "$_uvslurm_uv" "$uvv" >"$f.$$" 2>/dev/null &&
        mv -f "$f.$$" "$f" 2>/dev/null
    fi
  fi
  _uvslurm_glibc=$glibc
  _uvslurm_uvversion=$uvv
  _uvslurm_cpuid=$cpu
  _uvslurm_osid=$os
}

_uvslurm_os() {
  local k v id="" ver=""
  while IFS='=' read -r k v; do
    v=${v#\"}; v=${v%\"}
    case $k in ID) id=$v ;; VERSION_ID) ver=$v ;; esac
  done </etc/os-release
  printf -v "$1" '%s' "$id-$ver"
}

# The fingerprint: everything that decides which binaries a venv may contain. Unrelated
# environment (PWD, job ids, PATH) is not part of it, and neither is Lmod's _ModuleTable*.
_uvslurm_fingerprint() {
  local mods="" loaded="" mpath="" gpu="none" name fp cmd out
  # UVSLURM_FP_MODULES=0 (fingerprint.modules = false) leaves the module system out
  if [ "${UVSLURM_FP_MODULES:-1}" != 0 ]; then
    _uvslurm_sorted mods "${_LMFILES_:-}"
    _uvslurm_sorted loaded "${LOADEDMODULES:-}"
    mpath=${MODULEPATH:-}
  fi
  _uvslurm_facts
  if [ -r /proc/driver/nvidia/version ]; then read -r gpu </proc/driver/nvidia/version; fi
  fp="modules=$loaded
modulefiles=$mods
modulepath=$mpath
arch=$HOSTTYPE
cpu=$_uvslurm_cpuid
glibc=$_uvslurm_glibc
os=$_uvslurm_osid
python=${UVSLURM_PYTHON:-}
uv=$_uvslurm_uvversion
gpu=$gpu
sync=${UVSLURM_SYNC_ARGS:-}
rebuild=${UVSLURM_REBUILD:-}"
  for name in ${UVSLURM_FP_ENV:-}; do
    fp+=$'\n'"env.$name=${!name:-}"
  done
  # fingerprint.commands (e.g. "mpicc -show"): each costs a process on every job start
  if [ -n "${UVSLURM_FP_COMMANDS:-}" ]; then
    while IFS= read -r -d $'\x1e' cmd; do
      out=$(bash -c "$cmd" 2>&1) || out="failed($?): $out"
      fp+=$'\n'"cmd.$cmd=${out//$'\n'/ }"
    done <<<"$UVSLURM_FP_COMMANDS"
  fi
  _uvslurm_fp_text=$fp
}

# _uvslurm_key [remember]: the fingerprint hash and the depot location of this project +
# fingerprint + lock. Hashing takes one sha256sum call (project path, components and uv.lock at
# once); with UVSLURM_PROJECT_ID (computed at submit time) the result is remembered in
# <project dir>/.keys, which is trusted while uv.lock is not newer than it, so the warm path
# forks nothing at all.
_uvslurm_key() {
  local out ph fh lh name k v cache="" lock="$UVSLURM_PROJECT/uv.lock" LC_ALL=C
  local enc=${_uvslurm_fp_text//$'\n'/$'\x1f'}
  if [ -n "${UVSLURM_PROJECT_ID:-}" ]; then
    _uvslurm_pdir="$UVSLURM_DEPOT/$UVSLURM_PROJECT_ID"
    cache="$_uvslurm_pdir/.keys"
    if [ -f "$cache" ] && [ -O "$cache" ] && [ -f "$lock" ] && ! [ "$lock" -nt "$cache" ]; then
      while IFS=$'\x1e' read -r k v; do
        # only names of the depot's own grammar: a key never leads out of the project directory
        if [ "$v" = "$enc" ] && [[ $k =~ ^[0-9a-f]{12}-[0-9a-f]{8}$ ]]; then
          _uvslurm_keyname=$k
          _uvslurm_fp=${k%%-*}
          _uvslurm_lkey="${_uvslurm_pdir##*/}-$k"
          return 0
        fi
      done <"$cache"
    fi
  fi
  out=$(sha256sum /dev/fd/3 - "$lock" 3<<<"$UVSLURM_PROJECT" <<<"$_uvslurm_fp_text" 2>/dev/null)
  { read -r ph _; read -r fh _; read -r lh _; } <<<"$out"
  _uvslurm_fp=${fh:0:12}
  # sha256sum prefixes a line with '\' when the file name holds a newline or backslash
  ph=${ph#\\}; lh=${lh#\\}
  [ ${#lh} -ge 64 ] || return 1
  name=${UVSLURM_PROJECT##*/}
  name=${name//[^A-Za-z0-9._-]/_}
  _uvslurm_pdir="$UVSLURM_DEPOT/${name:0:40}-${ph:0:10}"
  _uvslurm_keyname="${_uvslurm_fp}-${lh:0:8}"
  # node-local copies are named by project and key, as the depot's are: two checkouts of one
  # repository have the same lock and fingerprint, and each venv's editable install points at
  # its own checkout
  _uvslurm_lkey="${_uvslurm_pdir##*/}-$_uvslurm_keyname"
  # remember it (best effort; a lost race only costs one sha256sum next time)
  if [ "${1:-}" = remember ] && [ -n "$cache" ] && [ "$_uvslurm_pdir" = "$UVSLURM_DEPOT/$UVSLURM_PROJECT_ID" ] &&
    _uvslurm_private "$UVSLURM_DEPOT" && mkdir -p "$_uvslurm_pdir" 2>/dev/null; then
    {
      printf '%s\x1e%s\n' "$_uvslurm_keyname" "$enc"
      if [ -f "$cache" ] && ! [ "$lock" -nt "$cache" ]; then head -n 7 "$cache"; fi
    } >"$cache.$$" 2>/dev/null && mv -f "$cache.$$" "$cache" 2>/dev/null
    rm -f "$cache.$$" 2>/dev/null
  fi
  return 0
}

_uvslurm_ready() { [ -f "$1/.uvslurm-ready" ] && [ -x "$1/bin/python" ] && _uvslurm_owned "$1"; }

# _uvslurm_hold VENV: is the depot VENV ready? If so, record its last use and hold it for as long
# as this job runs, so that `uvslurm depot gc/rm` leave it alone: opening .uvslurm-used with
# truncation sets its mtime without a process, and a shared flock on that fd, inherited by the
# command, lasts until the job ends. flock runs in the background: +0.2 ms instead of +1.3 ms
# on the warm path (gc also spots a use that started while it looked, by the mtime). False when
# the venv is not ready, or vanished after the open (gc removed it: rebuild under the lock).
_uvslurm_hold() {
  _uvslurm_ready "$1" || return 1
  # the hold's descriptor is read-write: the Linux NFSv4 client refuses a shared flock on a
  # write-only one (EBADF), and gc would then remove a venv in use
  if { : >"$1/.uvslurm-used" && exec {_uvslurm_usefd}<>"$1/.uvslurm-used"; } 2>/dev/null; then
    flock -s "$_uvslurm_usefd" 2>/dev/null &
  fi
  _uvslurm_ready "$1"
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

_uvslurm_sync() {  # _uvslurm_sync VENV [--offline]
  local venv=$1
  shift
  # shellcheck disable=SC2086 # UVSLURM_SYNC_ARGS is a list of validated flags
  UV_PROJECT_ENVIRONMENT=$venv VIRTUAL_ENV='' "$_uvslurm_uv" sync -q --frozen "$@" \
    --project "$UVSLURM_PROJECT" ${UVSLURM_SYNC_ARGS:-}
}

# _uvslurm_uvnet WHAT CMD...: run a uv command, offline inside jobs (UVSLURM_OFFLINE=auto) with
# one retry on the network when the shared cache has a gap; offline=true makes a gap fatal.
# _uvslurm_fresh VENV [uv sync flags...]: a new relocatable venv at VENV (it can be renamed into
# place and copied to node-local disk), synced. It starts from nothing each time: after a sync
# that failed or was killed half-way, a second sync into the same venv can report success with
# files missing (uv does not check what is installed), measured here after a killed offline
# sync and its retry with the network.
_uvslurm_fresh() {
  rm -rf "$1"
  (cd "$UVSLURM_PROJECT" && VIRTUAL_ENV='' "$_uvslurm_uv" venv -q --relocatable \
    ${UVSLURM_PYTHON:+--python "$UVSLURM_PYTHON"} "$1") || return 1
  _uvslurm_sync "$@"
}

# Run by a new venv's python before it is published: every file that its packages' RECORDs
# list is there (bytecode aside), the check `uv sync --check` does not make.
_uvslurm_complete='
import csv, glob, os, sys
missing = []
for rec in glob.glob(os.path.join(sys.prefix, "lib", "python*", "site-packages", "*.dist-info", "RECORD")):
    site = os.path.dirname(os.path.dirname(rec))
    with open(rec, newline="", encoding="utf-8") as f:
        missing += [r[0] for r in csv.reader(f) if r and not r[0].endswith(".pyc")
                    and not os.path.lexists(os.path.join(site, r[0]))]
if missing:
    sys.exit("uvslurm: %d files of the new venv are missing, e.g. %s" % (len(missing), missing[0]))
'

_uvslurm_uvnet() {
  local what=$1
  shift
  if [ "$_uvslurm_offline" = true ]; then
    "$@" --offline && return 0
    [ "${UVSLURM_OFFLINE:-auto}" = true ] && return 1
    _uvslurm_log "warning: offline $what failed (a gap in the uv cache?); retrying with network access"
  fi
  "$@"
}

# _uvslurm_wheel NAME VERSION KIND SRC PYTHON: the wheel of a `rebuild` package for this
# fingerprint, in <depot>/.wheels/NAME-VERSION/<fingerprint>/. Built at most once per fingerprint
# and depot (under a lock), from a pristine copy of SRC: uv's cache would reuse one build for
# every module set, and setuptools would reuse stale objects in a shared source tree.
_uvslurm_wheel() {
  local d="$UVSLURM_DEPOT/.wheels/$1-$2" fp=$_uvslurm_fp t tmp fd srcdir
  local -a found
  mkdir -p "$d" && exec {fd}>>"$d/$fp.lock" && flock "$fd" || return 1
  found=("$d/$fp"/*.whl)
  if [ -f "${found[0]}" ]; then
    exec {fd}>&-
    : >"$d/$fp/.uvslurm-used" 2>/dev/null
    _uvslurm_whl=${found[0]}
    _uvslurm_log "reused the $1 $2 wheel built for fingerprint $fp"
    return 0
  fi
  t=${EPOCHREALTIME/[.,]/}
  tmp="$d/.$fp.build-${HOSTNAME:-node}-$$"
  rm -rf "$d/.$fp".build-*
  mkdir -p "$tmp/src" &&
    case $3 in
      archive) tar -xf "$4" -C "$tmp/src" ;;
      *) cp -a "$4/." "$tmp/src/" && rm -rf "$tmp/src/build" "$tmp/src"/*.egg-info ;;
    esac || { rm -rf "$tmp"; exec {fd}>&-; return 1; }
  found=("$tmp/src"/*)
  srcdir=$tmp/src
  if [ ${#found[@]} -eq 1 ] && [ -d "${found[0]}" ]; then srcdir=${found[0]}; fi
  _uvslurm_log "building $1 $2 from source for fingerprint $fp"
  if ! _uvslurm_uvnet "build of $1" "$_uvslurm_uv" build -q --wheel --python "$5" \
    --out-dir "$tmp/dist" "$srcdir" || ! mv -T "$tmp/dist" "$d/$fp"; then
    rm -rf "$tmp"
    exec {fd}>&-
    return 1
  fi
  rm -rf "$tmp"
  exec {fd}>&-
  found=("$d/$fp"/*.whl)
  _uvslurm_whl=${found[0]}
  _uvslurm_since t "$t"
  _uvslurm_log "built the $1 $2 wheel for fingerprint $fp in $t ms"
}

# Build the key's venv in the depot (caller holds the key lock). Sets _uvslurm_state.
_uvslurm_build() {
  local pd=$_uvslurm_pdir key=$_uvslurm_keyname t size name version kind src
  local tmp="$pd/.$key.build-${HOSTNAME:-node}-$$"
  local -a skip=() rebuild=() wheels=()
  t=${EPOCHREALTIME/[.,]/}
  # leftovers of killed builders: only the lock holder builds, so none of them is alive
  rm -rf "$pd/.$key".build-* "$pd/.$key".trash-* "$pd/$key.tar.zst" "$pd/$key.squashfs"
  if [ -e "$pd/$key" ]; then _uvslurm_state=repaired; else _uvslurm_state=cold; fi
  # an image is unpacked by many processes: compile the bytecode once, here
  if [ "${UVSLURM_IMAGE:-none}" != none ]; then skip+=(--compile-bytecode); fi
  _uvslurm_offline=false
  case ${UVSLURM_OFFLINE:-auto} in
    true) _uvslurm_offline=true ;;
    auto) [ -n "${SLURM_JOB_ID:-}" ] && _uvslurm_offline=true ;;
  esac
  if [ -n "${UVSLURM_REBUILD_SOURCES:-}" ]; then
    while IFS=$'\x1f' read -r -d $'\x1e' name version kind src; do
      rebuild+=("$name" "$version" "$kind" "$src")
      skip+=(--no-install-package "$name")
    done <<<"$UVSLURM_REBUILD_SOURCES"
  fi
  _uvslurm_uvnet "uv sync" _uvslurm_fresh "$tmp" "${skip[@]}" ||
    { rm -rf "$tmp"; _uvslurm_die "uv venv or uv sync failed for $UVSLURM_PROJECT (see above)"; }
  while [ ${#rebuild[@]} -gt 0 ]; do
    _uvslurm_wheel "${rebuild[@]:0:4}" "$tmp/bin/python" ||
      { rm -rf "$tmp"; _uvslurm_die "building ${rebuild[0]} ${rebuild[1]} from source failed (see above)"; }
    wheels+=("$_uvslurm_whl")
    rebuild=("${rebuild[@]:4}")
  done
  if [ ${#wheels[@]} -gt 0 ]; then
    VIRTUAL_ENV='' "$_uvslurm_uv" pip install -q --python "$tmp/bin/python" --no-deps --offline "${wheels[@]}" ||
      { rm -rf "$tmp"; _uvslurm_die "installing the rebuilt wheels failed"; }
  fi
  "$tmp/bin/python" -c "$_uvslurm_complete" ||
    { rm -rf "$tmp"; _uvslurm_die "the new venv is incomplete or its python does not start (see above)"; }
  size=$(du -sk "$tmp" 2>/dev/null) && size=${size%%[[:space:]]*}
  printf 'key=%s\nproject=%s\nsize_kb=%s\nbuilt_on=%s\n%s\n' "$key" "$UVSLURM_PROJECT" "${size:-0}" \
    "${SLURMD_NODENAME:-${HOSTNAME:-}}" "$_uvslurm_fp_text" >"$tmp/.uvslurm-ready" ||
    { rm -rf "$tmp"; _uvslurm_die "cannot write to the depot $pd"; }
  if [ -e "$pd/$key" ]; then mv "$pd/$key" "$pd/.$key.trash-$$" && rm -rf "$pd/.$key.trash-$$"; fi
  mv -T "$tmp" "$pd/$key" || { rm -rf "$tmp"; _uvslurm_die "cannot publish $pd/$key"; }
  _uvslurm_since t "$t"
  _uvslurm_log "built $pd/$key with uv sync --frozen$([ "$_uvslurm_offline" = true ] && echo ' --offline') in $t ms"
  if [ "${UVSLURM_IMAGE:-none}" != none ]; then _uvslurm_pack "$pd/$key"; fi
}

# Node-local candidates in order of preference
_uvslurm_nl_candidates() {
  _uvslurm_nl=()
  case ${UVSLURM_NODE_LOCAL:-auto} in
    never) return ;;
    auto) _uvslurm_nl=("${SLURM_TMPDIR:-}" "${TMPDIR:-}" /tmp) ;;
    *) _uvslurm_nl=("$UVSLURM_NODE_LOCAL") ;;
  esac
}

# _uvslurm_userdir BASE: BASE/uvslurm-UID, ours alone. A directory or symlink that someone else
# planted there (shared /tmp) is refused, never followed.
_uvslurm_userdir() {
  local d="$1/uvslurm-$UID" mode
  # another task of the job may make it at the same moment: then it is checked like any other
  if [ ! -e "$d" ] && [ ! -L "$d" ]; then mkdir -m 700 "$d" 2>/dev/null || [ -d "$d" ] || return 1; fi
  [ -d "$d" ] && [ ! -L "$d" ] && [ -O "$d" ] || return 1
  mode=$(stat -c %a "$d" 2>/dev/null) && [ "$mode" = 700 ] || return 1
  _uvslurm_ud=$d
}

# _uvslurm_local_for BASE DEPOT_DIR: is BASE node-local disk worth copying the venv to? Not when
# it is a network filesystem, and (in auto mode) not when it is the depot's own filesystem: a
# copy there gains nothing and costs the time and space of a second venv.
_uvslurm_local_for() {
  local out t1 i1 t2 i2
  # one stat call: filesystem type and id of BASE and of the depot
  out=$(stat -f -c '%T %i' "$1" "$2" 2>/dev/null) || return 1
  { read -r t1 i1; read -r t2 i2; } <<<"$out"
  case $t1 in nfs* | lustre | gpfs | beegfs | cifs | smb* | fuse* | ceph | 9p | panfs | wekafs)
    _uvslurm_why="$1 is on a network filesystem ($t1)"
    return 1 ;;
  esac
  if [ "${UVSLURM_NODE_LOCAL:-auto}" = auto ] && [ "$i1" = "$i2" ] && [ "$t1" = "$t2" ]; then
    _uvslurm_why="$1 is on the depot's filesystem"
    return 1
  fi
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
    (cd "$src/${sp%/*}" && find . -mindepth 1 -maxdepth 1 ! -name site-packages -exec cp -a -t "$dst/${sp%/*}" {} +) &&
    (cd "$src/$sp" && find . -mindepth 1 -maxdepth 1 -print0 | xargs -0 -r -n 16 -P "$jobs" cp -a -t "$dst/$sp")
}

# With an image the depot keeps, next to each venv directory, one file of it (bytecode compiled
# once, at build time): placing it on a node then reads one file from the shared filesystem
# instead of thousands. tar.zst is unpacked; squashfs is mounted where FUSE works (a few ms,
# whatever the size), else unpacked.
_uvslurm_pack() {
  local venv=$1 img="$1.$UVSLURM_IMAGE" t size tool
  local -
  set -o pipefail
  t=${EPOCHREALTIME/[.,]/}
  if [ "$UVSLURM_IMAGE" = squashfs ]; then
    tool=mksquashfs
    mksquashfs "$venv" "$img.tmp-$$" -comp zstd -Xcompression-level 1 -noappend -quiet -no-progress >/dev/null
  else
    tool=zstd
    tar -C "$venv" -cf - . | zstd -q -1 -T0 -o "$img.tmp-$$"
  fi && mv -f "$img.tmp-$$" "$img"
  if [ -f "$img" ]; then
    size=$(du -k "$img" 2>/dev/null) && size=${size%%[[:space:]]*}
    _uvslurm_since t "$t"
    _uvslurm_log "packed the image $img (${size:-?} KB) in $t ms"
  else
    rm -f "$img.tmp-$$"
    _uvslurm_log "warning: could not pack $img (is $tool installed?); nodes will copy the directory"
  fi
}

# _uvslurm_mount IMAGE: mount a squashfs image read-only in this user's node-local directory,
# for this job only (FUSE: no root needed where the site allows it). The mount ends with the
# command (_uvslurm_umount), or with squashfuse when Slurm ends the job's processes.
_uvslurm_mount() {
  local t mnt=$_uvslurm_ud/.$_uvslurm_lkey.mnt-${SLURM_JOB_ID:-0}-$$
  [ -z "${_uvslurm_nomount:-}" ] && [ -r /dev/fuse ] && [ -w /dev/fuse ] || return 1
  command -v squashfuse >/dev/null || return 1
  t=${EPOCHREALTIME/[.,]/}
  mkdir "$mnt" 2>/dev/null || return 1
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
    # still mounted: the mount of a running job, or a dead one ("Transport endpoint is not connected")
    if ! stat "$m/" >/dev/null 2>&1; then
      _uvslurm_fuse_off -z "$m" && rmdir "$m" 2>/dev/null
    fi
  done
}

_uvslurm_unpack() {
  local -
  set -o pipefail
  case $1 in
    *.squashfs) unsquashfs -q -n -d "$2" "$1" >/dev/null ;;
    *) mkdir -p "$2" && zstd -q -d -c "$1" | tar -C "$2" -xf - ;;
  esac
}

# Copy the depot venv onto node-local disk (caller checked nothing valid is there). Returns 1 if
# the disk cannot take it; the caller then runs from the depot.
_uvslurm_place() {
  local src=$1 base=$2 dst tmp t need avail df k v img=""
  local -a copy
  _uvslurm_userdir "$base" || { _uvslurm_log "warning: $base/uvslurm-$UID is not a private directory of this user; not using it"; return 1; }
  dst="$_uvslurm_ud/$_uvslurm_lkey"
  if [ -f "$src.squashfs" ]; then
    _uvslurm_unstale "$_uvslurm_ud"
    _uvslurm_mount "$src.squashfs" && return 0
    command -v unsquashfs >/dev/null && img=$src.squashfs
  fi
  [ -z "$img" ] && [ -f "$src.tar.zst" ] && img=$src.tar.zst
  _uvslurm_lock "$dst.lock" "$dst" || { _uvslurm_log "warning: cannot lock $dst.lock (flock does not work on $base); using the depot"; return 1; }
  if _uvslurm_ready "$dst"; then _uvslurm_unlock; _uvslurm_venv=$dst; return 0; fi
  t=${EPOCHREALTIME/[.,]/}
  need="" avail=""
  while IFS='=' read -r k v; do [ "$k" = size_kb ] && need=$v && break; done <"$src/.uvslurm-ready"
  # a big venv is not copied onto a disk without room for it; a small one just tries (a failed
  # copy falls back to the depot as well)
  if [ "${need:-0}" -ge 100000 ]; then
    df=$(df -Pk "$_uvslurm_ud" 2>/dev/null) && read -r _ _ _ avail _ <<<"${df##*$'\n'}"
  fi
  if [ -n "$need" ] && [ -n "$avail" ] && [ "$avail" -lt $((need + need / 10 + 1024)) ]; then
    _uvslurm_unlock
    _uvslurm_log "warning: node-local $base has ${avail} KB free, the venv needs ${need} KB; using the depot"
    return 1
  fi
  tmp="$_uvslurm_ud/.$_uvslurm_lkey.tmp-$$"
  # leftovers of a killed placement (we hold the lock)
  for k in "$dst" "$_uvslurm_ud/.$_uvslurm_lkey".tmp-*; do [ -e "$k" ] && rm -rf "$k"; done
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
    _uvslurm_log "warning: copying the venv to node-local $base failed (disk full?); using the depot"
    return 1
  fi
  _uvslurm_unlock
  _uvslurm_since t "$t"
  _uvslurm_log "placed on node-local $dst${img:+ from the image} in $t ms"
  _uvslurm_venv=$dst
}

# _uvslurm_localize DEPOT_VENV: run from the first writable, node-local candidate that takes a
# copy of DEPOT_VENV (state "placed"), else from DEPOT_VENV itself
_uvslurm_localize() {
  local base seen=":" fallback_note="" _uvslurm_why=""
  _uvslurm_venv=$1
  for base in "${_uvslurm_nl[@]}"; do
    # /tmp is only a candidate once
    [ -n "$base" ] && [[ $seen != *":$base:"* ]] || continue
    seen+="$base:"
    [ -d "$base" ] && [ -w "$base" ] || continue
    if ! _uvslurm_local_for "$base" "$_uvslurm_pdir"; then fallback_note=$_uvslurm_why; continue; fi
    if _uvslurm_place "$1" "$base"; then
      [ "$_uvslurm_state" = warm ] && _uvslurm_state=placed
    fi
    break
  done
  if [ -n "$fallback_note" ] && [ "$_uvslurm_venv" = "$1" ]; then
    _uvslurm_log "note: $fallback_note; running from the depot"
  fi
}

# _uvslurm_node: one task of the step that _uvslurm_spread starts on every node of the job:
# place DEPOT_VENV on this node's disk, unless WANTED (the first node's copy) is ready here, and
# print "node state ms path"
_uvslurm_node() {
  local t
  _uvslurm_t0=${EPOCHREALTIME/[.,]/}
  _uvslurm_state=warm
  _uvslurm_nomount=1 # a mount would end with this step
  _uvslurm_nl_candidates
  # the first node's path, if this node has it in a private directory of this user already
  if [ "${2##*/}" = "$_uvslurm_lkey" ] && _uvslurm_owned "${2%/*}" && _uvslurm_ready "$2"; then
    _uvslurm_venv=$2
  else
    _uvslurm_localize "$1"
  fi
  _uvslurm_since t "$_uvslurm_t0"
  printf '%s %s %s %s\n' "${SLURMD_NODENAME:-${HOSTNAME:-?}}" "$_uvslurm_state" "$t" "$_uvslurm_venv"
}

# _uvslurm_spread DEPOT_VENV: in a job of several nodes whose venv runs from node-local disk,
# every node gets its own copy, once, before the command starts: one task per node places it.
# The command's tasks (srun steps) inherit one VIRTUAL_ENV/PATH, so this needs the node-local
# path to be the same on every node (as per-job TMPDIRs usually are); where it is not, or the
# step fails, the job runs from the depot, which every node sees.
_uvslurm_spread() {
  local t out node state ms path bad="" summary="" n=0
  local -a fns
  [ "${SLURM_JOB_NUM_NODES:-1}" -gt 1 ] 2>/dev/null && [ -n "${SLURM_JOB_ID:-}" ] || return 0
  # in a step of several nodes (`uvslurm srun -N 2`), each node's tasks run this prolog themselves
  [ "${SLURM_STEP_NUM_NODES:-1}" -gt 1 ] 2>/dev/null && return 0
  [ "$_uvslurm_venv" != "$1" ] || return 0
  t=${EPOCHREALTIME/[.,]/}
  mapfile -t fns < <(compgen -A function _uvslurm_)
  # the functions travel inline: the job script exists only on the first node
  out=$(srun --overlap --quiet --nodes="$SLURM_JOB_NUM_NODES" \
    --ntasks="$SLURM_JOB_NUM_NODES" --ntasks-per-node=1 --cpus-per-task=1 --kill-on-bad-exit=0 \
    bash -c "$(declare -p UVSLURM_PROJECT UVSLURM_DEPOT UVSLURM_NODE_LOCAL _uvslurm_uv \
      _uvslurm_pdir _uvslurm_keyname _uvslurm_lkey 2>/dev/null; declare -f "${fns[@]}")
      _uvslurm_node \"\$1\" \"\$2\"" uvslurm-node "$1" "$_uvslurm_venv") || bad="the step that prepares each node failed"
  while read -r node state ms path; do
    [ -n "$node" ] || continue
    n=$((n + 1))
    summary+=" $node: $state $ms ms;"
    [ "$path" = "$_uvslurm_venv" ] || bad="${bad:-node-local paths differ between nodes ($node: $path)}"
  done <<<"$out"
  [ "$n" -eq "$SLURM_JOB_NUM_NODES" ] || bad=${bad:-"only $n of $SLURM_JOB_NUM_NODES nodes answered"}
  _uvslurm_since t "$t"
  if [ -n "$bad" ]; then
    _uvslurm_log "note: $bad; every node runs from the depot"
    _uvslurm_venv=$1
    [ "$_uvslurm_state" = placed ] && _uvslurm_state=warm
    return 0
  fi
  _uvslurm_log "prepared $n nodes in $t ms:${summary%;}"
}

_uvslurm_main() {
  local t base
  _uvslurm_uv=${UVSLURM_UV:-}
  if [ -z "$_uvslurm_uv" ] || ! [ -x "$_uvslurm_uv" ]; then
    _uvslurm_uv=$(command -v uv) || _uvslurm_die "uv not found (recorded: '${UVSLURM_UV:-}'); put uv on PATH or set UVSLURM_UV"
  fi
  [[ ${UVSLURM_DEPOT:-} == /* ]] || _uvslurm_die "UVSLURM_DEPOT is not an absolute path: '${UVSLURM_DEPOT:-}'"
  _uvslurm_privtmp
  _uvslurm_fingerprint
  if [ "${UVSLURM_MODE:-run}" = fingerprint ]; then
    _uvslurm_pdir=""
    if ! { [ -n "${UVSLURM_PROJECT:-}" ] && _uvslurm_key; }; then
      # outside a project (or without a lock) there is no venv, but there is a fingerprint
      _uvslurm_pdir=""
      read -r _uvslurm_fp _ < <(sha256sum <<<"$_uvslurm_fp_text")
      _uvslurm_fp=${_uvslurm_fp:0:12}
    fi
    printf 'fingerprint=%s\n' "${_uvslurm_fp:-}"
    [ -n "$_uvslurm_pdir" ] && printf 'venv=%s/%s\n' "$_uvslurm_pdir" "$_uvslurm_keyname"
    printf '%s\n' "$_uvslurm_fp_text"
    exit 0
  fi
  [ -f "$UVSLURM_PROJECT/pyproject.toml" ] || _uvslurm_die "no pyproject.toml in $UVSLURM_PROJECT"
  # a depot (or project directory in it) that someone else made could hold a "ready" venv of
  # theirs: only directories of this user's are used
  _uvslurm_owned "$UVSLURM_DEPOT" ||
    _uvslurm_die "the depot $UVSLURM_DEPOT is not a directory of yours (another user's, or a symlink); set UVSLURM_DEPOT (or \`depot\` in the config) to a directory you own"
  _uvslurm_key remember || _uvslurm_die "cannot read $UVSLURM_PROJECT/uv.lock (run 'uv lock' on a login node)"
  if [ -e "$_uvslurm_pdir" ] || [ -L "$_uvslurm_pdir" ]; then
    _uvslurm_owned "$_uvslurm_pdir" ||
      _uvslurm_die "$_uvslurm_pdir is not a directory of yours (another user's, or a symlink); remove it, or set UVSLURM_DEPOT to a directory you own"
  fi
  _uvslurm_since t "$_uvslurm_t0"
  _uvslurm_log "fingerprint $_uvslurm_fp in $t ms"

  local depot_venv="$_uvslurm_pdir/$_uvslurm_keyname"
  _uvslurm_state=warm
  _uvslurm_venv=""
  _uvslurm_nl_candidates
  # every node of a job must run from one path: a job-private mount on the first node would not
  # be that (the other nodes' copies are made in a step whose processes end with it)
  if [ "${SLURM_JOB_NUM_NODES:-1}" -gt 1 ] 2>/dev/null; then _uvslurm_nomount=1; fi
  # warm: a ready venv where the command would run from
  for base in "${_uvslurm_nl[@]}"; do
    [ -n "$base" ] || continue
    if _uvslurm_owned "$base/uvslurm-$UID" && _uvslurm_ready "$base/uvslurm-$UID/$_uvslurm_lkey"; then
      _uvslurm_venv="$base/uvslurm-$UID/$_uvslurm_lkey"
      break
    fi
  done
  if [ -z "$_uvslurm_venv" ]; then
    if ! _uvslurm_hold "$depot_venv"; then
      # building: the depot must also be closed to others (only its owner can open it again)
      _uvslurm_private "$UVSLURM_DEPOT" ||
        _uvslurm_die "the depot $UVSLURM_DEPOT is writable by other users; run chmod go-w on it, or set UVSLURM_DEPOT to a private directory"
      mkdir -p "$_uvslurm_pdir" 2>/dev/null || _uvslurm_die "cannot create the depot directory $_uvslurm_pdir (set UVSLURM_DEPOT to a writable place)"
      _uvslurm_lock "$depot_venv.lock" "$depot_venv" ||
        _uvslurm_die "cannot lock $depot_venv.lock: flock does not work on the depot's filesystem; set UVSLURM_DEPOT (or \`depot\` in the config) to a directory on a filesystem with working file locks"
      # another job may have finished it while this one waited
      _uvslurm_ready "$depot_venv" || _uvslurm_build
      _uvslurm_hold "$depot_venv" || _uvslurm_die "$depot_venv is not usable after building it"
      _uvslurm_unlock
    fi
    _uvslurm_localize "$depot_venv"
  fi
  _uvslurm_spread "$depot_venv"
  # last use of the depot venv when the command runs from a node-local copy (no hold needed)
  [ -n "${_uvslurm_usefd:-}" ] || : >"$depot_venv/.uvslurm-used" 2>/dev/null
  _uvslurm_since t "$_uvslurm_t0"
  _uvslurm_log "ready ($_uvslurm_state) in $t ms: $_uvslurm_venv"
}

# a mount made by `uvslurm prepare` would outlive it
[ "${UVSLURM_MODE:-run}" = prepare ] && _uvslurm_nomount=1
_uvslurm_main
export UV_PROJECT_ENVIRONMENT="$_uvslurm_venv"
case ${UVSLURM_MODE:-run} in
  run)
    unset VIRTUAL_ENV
    # shellcheck disable=SC2154 # UVSLURM_CMD is set by the job script's templated block
    _uvslurm_run=("$_uvslurm_uv" run --no-sync --project "$UVSLURM_PROJECT" "${UVSLURM_CMD[@]}")
    [ -n "${_uvslurm_mnt:-}" ] || exec "${_uvslurm_run[@]}"
    # A mounted image: this shell stays, to unmount it when the command ends.
    if [ -t 0 ]; then
      # at a terminal (uvslurm srun): in the foreground, where the terminal's signals reach it
      trap '_uvslurm_umount; exit 143' TERM
      "${_uvslurm_run[@]}"
      _uvslurm_rc=$?
    else
      # in a batch job: in the background, so that signals for the batch shell alone
      # (sbatch --signal=B:USR1@60, scancel --batch) are passed on, as an exec would let them
      # through. Background commands start with SIGINT and SIGQUIT ignored; env restores them.
      _uvslurm_dfl=()
      env --default-signal=INT true 2>/dev/null && _uvslurm_dfl=(env "--default-signal=INT,QUIT")
      "${_uvslurm_dfl[@]}" "${_uvslurm_run[@]}" <&0 &
      _uvslurm_child=$!
      for _uvslurm_sig in HUP INT QUIT TERM USR1 USR2; do
        # shellcheck disable=SC2064 # the signal and the pid are fixed here
        trap "kill -$_uvslurm_sig $_uvslurm_child 2>/dev/null" "$_uvslurm_sig"
      done
      # a trapped signal ends a wait early: wait again while the command runs
      while kill -0 "$_uvslurm_child" 2>/dev/null; do wait "$_uvslurm_child"; done
      wait "$_uvslurm_child"
      _uvslurm_rc=$?
    fi
    _uvslurm_umount
    exit "$_uvslurm_rc"
    ;;
  prepare)
    printf '%s\n' "$_uvslurm_venv"
    exit 0
    ;;
  activate)
    # the job body runs `python` and `uv run` against this venv; uv must not re-sync it
    export VIRTUAL_ENV="$_uvslurm_venv" PATH="$_uvslurm_venv/bin:$PATH" UV_NO_SYNC=1 UV_FROZEN=1
    unset PYTHONHOME
    # a mounted image lasts as long as the job script (a trap on EXIT of your own replaces this)
    [ -n "${_uvslurm_mnt:-}" ] && trap _uvslurm_umount EXIT
    unset -f _uvslurm_log _uvslurm_die _uvslurm_since _uvslurm_owned _uvslurm_private _uvslurm_mkdepot _uvslurm_privtmp _uvslurm_sorted _uvslurm_cpu _uvslurm_facts \
      _uvslurm_os _uvslurm_fingerprint _uvslurm_key _uvslurm_ready _uvslurm_hold _uvslurm_lock _uvslurm_unlock \
      _uvslurm_sync _uvslurm_fresh _uvslurm_uvnet _uvslurm_wheel _uvslurm_build _uvslurm_nl_candidates _uvslurm_userdir _uvslurm_local_for _uvslurm_copy _uvslurm_pack _uvslurm_unpack \
      _uvslurm_mount _uvslurm_unstale _uvslurm_place _uvslurm_localize _uvslurm_node _uvslurm_spread _uvslurm_main
    ;;
  *) _uvslurm_die "unknown UVSLURM_MODE '${UVSLURM_MODE}'" ;;
esac
