# shellcheck shell=bash
# shellcheck disable=SC2154 # set in other sections: _uvslurm_uv (main.sh), the key (key.sh)
# uvslurm prolog, section build: a new venv in the depot (uv venv + uv sync, rebuilt wheels),
# verified against its RECORDs, then published by one rename; its image when there is one.

# _uvslurm_uvb ARGS...: uv, for building a venv: the same venv whatever the submitting shell
# exported (sbatch passes its environment on), since the key does not see the environment. The
# link mode is uv's default on Linux, hardlinks from its cache: real files, which a cache clean
# leaves intact (a venv of symlinks breaks and still looks ready), as fast as linking and with no
# second copy of each file on the depot's quota (copies: 3.3-5.9 s instead of 0.45-0.73 s for an
# 8,300-file venv here); where the cache is on another filesystem uv copies. Node-local copies
# are cp's, independent of the cache. Cleared: the UV_* variables that change what a venv holds
# or how it is made (docs/reference/env-vars.md lists them, and those kept).
_uvslurm_uvb() {
  local -a _uvslurm_uvclear=(UV_LINK_MODE UV_COMPILE_BYTECODE UV_NO_BINARY UV_NO_BINARY_PACKAGE
    UV_NO_BUILD UV_NO_BUILD_PACKAGE UV_NO_BUILD_ISOLATION UV_BUILD_CONSTRAINT UV_NO_SOURCES
    UV_NO_SOURCES_PACKAGE UV_DEV UV_NO_DEV UV_NO_GROUP UV_NO_DEFAULT_GROUPS UV_NO_INSTALL_PROJECT
    UV_NO_INSTALL_WORKSPACE UV_NO_INSTALL_LOCAL UV_NO_EDITABLE UV_NO_INSTALLER_METADATA UV_FROZEN
    UV_LOCKED UV_PROJECT UV_WORKING_DIR UV_NO_PROJECT UV_SYSTEM_PYTHON UV_VENV_SEED UV_NO_CACHE)
  (unset "${_uvslurm_uvclear[@]}"; UV_LINK_MODE=hardlink exec "$_uvslurm_uv" "$@")
}

# _uvslurm_lockproj: the directory uv builds the venv from: the submitted copy of the project's
# pyproject.toml and uv.lock (UVSLURM_LOCK_DIR, its other entries linked to the project's), so
# that a lock changed while the job was queued does not change what it runs; else the project
_uvslurm_lockproj() {
  if [ -n "${UVSLURM_LOCK_DIR:-}" ] && [ -f "$UVSLURM_LOCK_DIR/uv.lock" ]; then
    printf '%s' "$UVSLURM_LOCK_DIR"
  else
    printf '%s' "$UVSLURM_PROJECT"
  fi
}

_uvslurm_sync() {  # _uvslurm_sync VENV [--offline]
  local venv=$1
  shift
  # --python too: uv would replace a venv of another interpreter than the project's request
  set -- "$@" ${UVSLURM_PYTHON:+--python "$UVSLURM_PYTHON"}
  if [ -n "${UVSLURM_SCRIPT:-}" ]; then
    VIRTUAL_ENV=$venv _uvslurm_uvb sync -q --frozen "$@" --script "$UVSLURM_SCRIPT" --active
    return
  fi
  # shellcheck disable=SC2086 # UVSLURM_SYNC_ARGS is a list of validated flags
  UV_PROJECT_ENVIRONMENT=$venv VIRTUAL_ENV='' _uvslurm_uvb sync -q --frozen "$@" \
    --project "$(_uvslurm_lockproj)" ${UVSLURM_SYNC_ARGS:-}
}

# _uvslurm_fresh VENV [uv sync flags...]: a new relocatable venv at VENV (it can be renamed into
# place and copied to node-local disk), synced. It starts from nothing each time: after a sync
# that failed or was killed half-way, a second sync into the same venv can report success with
# files missing (uv does not check what is installed), measured here after a killed offline
# sync and its retry with the network.
_uvslurm_fresh() {
  rm -rf "$1"
  local dir py=${_uvslurm_pybuild:-${UVSLURM_PYTHON:-}}
  dir=$(_uvslurm_lockproj)
  [ -z "${UVSLURM_SCRIPT:-}" ] || dir=${UVSLURM_SCRIPT%/*}
  (cd "$dir" && VIRTUAL_ENV='' _uvslurm_uvb venv -q --relocatable ${py:+--python "$py"} "$1") ||
    return 1
  _uvslurm_sync "$@"
}

# _uvslurm_verify VENV: run by the new venv's python before it is published: every file that its
# packages' RECORDs list is there at the size the RECORD gives (bytecode aside; a symlink counts
# by its target, so a dangling one is missing), the check `uv sync --check` does not make. ~60 ms
# for an 8,300-file venv here, as without the sizes. Prints the files that the marker keeps for
# _uvslurm_intact, on one check= line, separated by \x1f: per package its RECORD (never read
# after the install: the first file a purge of unused files takes) and one other file that is
# not empty, picked by a hash of its name.
_uvslurm_verify() {
  local code='
import csv, glob, os, sys, zlib
missing, wrong, sample = [], [], []
records = ("lib", "python*", "site-packages", "*.dist-info", "RECORD")
for rec in sorted(glob.glob(os.path.join(sys.prefix, *records))):
    site = os.path.dirname(os.path.dirname(rec))
    own, picks = os.path.relpath(rec, site), []
    with open(rec, newline="", encoding="utf-8") as f:
        for row in csv.reader(f):
            if not row or row[0].endswith(".pyc"):
                continue
            try:
                size = os.stat(os.path.join(site, row[0])).st_size
            except OSError:
                missing.append(row[0])
                continue
            if len(row) > 2 and row[2] and row[2] != str(size):
                wrong.append("%s (%s bytes in its RECORD, %d here)" % (row[0], row[2], size))
            elif size and row[0] != own:
                picks.append((zlib.crc32(row[0].encode()), row[0]))
    sample += [rec] + [os.path.join(site, p) for _, p in sorted(picks)[:1]]
if missing or wrong:
    bad, what = (missing, "are missing") if missing else (wrong, "have the wrong size")
    more = " (and %d have the wrong size)" % len(wrong) if missing and wrong else ""
    sys.exit("uvslurm: %d files of the new venv %s, e.g. %s%s" % (len(bad), what, bad[0], more))
rels = [os.path.relpath(p, sys.prefix) for p in sample]
rels = [r for r in rels if not r.startswith("..") and r.isprintable()]
if rels:
    print("check=" + "\x1f".join(rels))
'
  "$1/bin/python" -c "$code"
}

# _uvslurm_offline: does uv try offline first? With offline = true, and (auto) inside jobs
_uvslurm_offline() {
  case ${UVSLURM_OFFLINE:-auto} in
    true) return 0 ;;
    auto) [ -n "${SLURM_JOB_ID:-}" ] ;;
    *) return 1 ;;
  esac
}

# _uvslurm_uvnet WHAT CMD...: run a uv command, offline inside jobs (UVSLURM_OFFLINE=auto) with
# one retry on the network when the shared cache has a gap; offline=true makes a gap fatal.
_uvslurm_uvnet() {
  local what=$1
  shift
  if _uvslurm_offline; then
    "$@" --offline && return 0
    [ "${UVSLURM_OFFLINE:-auto}" = true ] && return 1
    _uvslurm_log "warning: offline $what failed (a gap in the uv cache, filled for the login" \
      "node's platform${UVSLURM_PLATFORMS:+ and $UVSLURM_PLATFORMS}?); retrying with network access"
  fi
  "$@"
}

# _uvslurm_wheel VAR NAME VERSION KIND SRC PYTHON: set VAR to the wheel of a `rebuild` package
# for this fingerprint, in <depot>/.wheels/NAME-VERSION/<fingerprint>/. Built at most once per
# fingerprint and depot (under a lock), from a pristine copy of SRC: uv's cache would reuse one
# build for every module set, and setuptools would reuse stale objects in a shared source tree.
_uvslurm_wheel() {
  local ret=$1
  shift
  local d="$UVSLURM_DEPOT/.wheels/$1-$2" fp=$_uvslurm_fp t tmp srcdir
  local -a found
  mkdir -p "$d" || return 1
  _uvslurm_claim "$d" "$fp" "$d/$fp"
  found=("$d/$fp"/*.whl)
  if [ -f "${found[0]}" ]; then
    _uvslurm_unclaim
    : >"$d/$fp/.uvslurm-used" 2>/dev/null
    printf -v "$ret" '%s' "${found[0]}"
    _uvslurm_log "reused the $1 $2 wheel built for fingerprint $fp"
    return 0
  fi
  t=${EPOCHREALTIME/[.,]/}
  tmp="$d/.$fp.build-$_uvslurm_me"
  _uvslurm_sweep "$d" "$fp"
  mkdir -p "$tmp/src" &&
    case $3 in
      archive) tar -xf "$4" -C "$tmp/src" ;;
      *) cp -a "$4/." "$tmp/src/" && rm -rf "$tmp/src/build" "$tmp/src"/*.egg-info ;;
    esac || { rm -rf "$tmp"; _uvslurm_unclaim; return 1; }
  found=("$tmp/src"/*)
  srcdir=$tmp/src
  if [ ${#found[@]} -eq 1 ] && [ -d "${found[0]}" ]; then srcdir=${found[0]}; fi
  _uvslurm_log "building $1 $2 from source for fingerprint $fp"
  # published by one rename, which fails where another node published first (then: theirs)
  if ! _uvslurm_uvnet "build of $1" _uvslurm_uvb build -q --wheel --python "$5" \
    --out-dir "$tmp/dist" "$srcdir" ||
    { ! mv -T "$tmp/dist" "$d/$fp" 2>/dev/null && found=("$d/$fp"/*.whl) &&
      ! [ -f "${found[0]}" ]; }; then
    rm -rf "$tmp"
    _uvslurm_unclaim
    return 1
  fi
  rm -rf "$tmp"
  _uvslurm_unclaim
  found=("$d/$fp"/*.whl)
  printf -v "$ret" '%s' "${found[0]}"
  _uvslurm_since t "$t"
  _uvslurm_log "built the $1 $2 wheel for fingerprint $fp in $t ms"
}

# _uvslurm_failed: a build of this key failed less than a minute ago (on any node): stop now
# with its error, rather than have every waiting job fail the same way after it in turn; the
# first job after that minute tries again
_uvslurm_failed() {
  local when="" who="" why="" age
  { read -r when && read -r who && read -r why; } 2>/dev/null \
    <"$_uvslurm_pdir/.$_uvslurm_keyname.failed" || return 0
  [[ $when =~ ^[0-9]+$ ]] || return 0
  age=$((EPOCHSECONDS - when))
  ((age < 60 && age > -60)) || return 0
  _uvslurm_die "building $_uvslurm_pdir/$_uvslurm_keyname failed $((age < 0 ? 0 : age)) s ago" \
    "($who): ${why//(see above)/(see its log)}; the next job tries again after $((60 - age)) s"
}

# _uvslurm_buildfail STATUS TMP MESSAGE...: the build failed with STATUS: TMP goes, the failure
# is remembered next to the key for a minute (_uvslurm_failed), unless a signal ended it (a kill,
# the OOM killer: the next job may well succeed), and the job stops with MESSAGE
_uvslurm_buildfail() {
  local job=${SLURM_JOB_ID:+job $SLURM_JOB_ID}
  rm -rf "$2"
  if [ "$1" -lt 128 ]; then
    printf '%s\n%s\n%s\n' "$EPOCHSECONDS" "${job:-pid $$} on ${_uvslurm_me%-*-*}" "${*:3}" \
      >"$_uvslurm_pdir/.$_uvslurm_keyname.failed" 2>/dev/null
  fi
  _uvslurm_die "${*:3}"
}

# _uvslurm_publish TMP VENV: rename the finished build TMP to VENV, which only ever fails (and
# never replaces anything) where a directory that is not empty is there. A broken venv there (a
# scratch purge took some of its files) is set aside first, and put back at once if it proves to
# be ready after all (another node's, published meanwhile): a ready venv is never renamed away
# for longer than that. Returns 0 when TMP was published, 2 when another process published a
# ready VENV first (TMP goes), 1 when VENV is not ready.
_uvslurm_publish() {
  local aside="${2%/*}/.${2##*/}.trash-$_uvslurm_me"
  if { [ -e "$2" ] || [ -L "$2" ]; } && ! _uvslurm_ready "$2" && mv -T "$2" "$aside" 2>/dev/null
  then
    _uvslurm_gone=$aside # said already, of $2
    if _uvslurm_ready "$aside"; then mv -T "$aside" "$2" 2>/dev/null; fi
    rm -rf "$aside"
  fi
  if mv -T "$1" "$2" 2>/dev/null; then return 0; fi
  rm -rf "$1"
  _uvslurm_ready "$2" || return 1
  _uvslurm_log "note: another process published $2 first; using it"
  return 2
}

# _uvslurm_build FINGERPRINT: build the key's venv in the depot (caller holds the key's claim),
# its marker holding FINGERPRINT (the text). Sets _uvslurm_state.
_uvslurm_build() {
  local text=$1 pd=$_uvslurm_pdir key=$_uvslurm_keyname t size name version kind src whl off="" rc
  # shellcheck disable=SC2034 # nl: where _uvslurm_nl_base would place it, not needed here
  local sample nl
  local tmp="$pd/.$key.build-$_uvslurm_me"
  local -a skip=() rebuild=() wheels=()
  t=${EPOCHREALTIME/[.,]/}
  _uvslurm_failed
  # what dead builders left (a build of another node in progress stays)
  _uvslurm_sweep "$pd" "$key"
  if [ -e "$pd/$key" ]; then _uvslurm_state=repaired; else _uvslurm_state=cold; fi
  # an image is unpacked by many processes: compile the bytecode once, here
  if [ "${UVSLURM_IMAGE:-none}" != none ]; then skip+=(--compile-bytecode); fi
  if [ -n "${UVSLURM_REBUILD_SOURCES:-}" ]; then
    while IFS=$'\x1f' read -r -d $'\x1e' name version kind src; do
      rebuild+=("$name" "$version" "$kind" "$src")
      skip+=(--no-install-package "$name")
    done <<<"$UVSLURM_REBUILD_SOURCES"
  fi
  _uvslurm_uvnet "uv sync" _uvslurm_fresh "$tmp" "${skip[@]}" ||
    _uvslurm_buildfail $? "$tmp" "uv venv or uv sync failed for $UVSLURM_PROJECT (see above)"
  while [ ${#rebuild[@]} -gt 0 ]; do
    _uvslurm_wheel whl "${rebuild[@]:0:4}" "$tmp/bin/python" ||
      _uvslurm_buildfail $? "$tmp" "building ${rebuild[0]} ${rebuild[1]} from source failed" \
        "(see above)"
    wheels+=("$whl")
    rebuild=("${rebuild[@]:4}")
  done
  if [ ${#wheels[@]} -gt 0 ]; then
    VIRTUAL_ENV='' _uvslurm_uvb pip install -q --python "$tmp/bin/python" --no-deps \
      --offline "${wheels[@]}" ||
      _uvslurm_buildfail $? "$tmp" "installing the rebuilt wheels failed"
  fi
  sample=$(_uvslurm_verify "$tmp") ||
    _uvslurm_buildfail $? "$tmp" "the new venv is incomplete or its python does not start" \
      "(see above)"
  [ -z "$sample" ] || sample+=$'\n'
  size=$(du -sk "$tmp" 2>/dev/null) && size=${size%%[[:space:]]*}
  printf 'key=%s\nproject=%s\nsize_kb=%s\nbuilt_on=%s\n%s%s\n' "$key" "$UVSLURM_PROJECT" \
    "${size:-0}" "${SLURMD_NODENAME:-${HOSTNAME:-}}" "$sample" "$text" >"$tmp/.uvslurm-ready" ||
    { rm -rf "$tmp"; _uvslurm_die "cannot write to the depot $pd"; }
  _uvslurm_since t "$t"
  _uvslurm_offline && off=" --offline"
  _uvslurm_publish "$tmp" "$pd/$key"
  rc=$?
  [ "$rc" = 1 ] && _uvslurm_die "cannot publish $pd/$key"
  _uvslurm_log "built $pd/$key with uv sync --frozen$off in $t ms"
  [ "$rc" = 2 ] && return 0 # another process published first: the images are its own
  rm -f "$pd/.$key.failed" "$pd/$key.tar.zst" "$pd/$key.squashfs"
  if [ "${UVSLURM_IMAGE:-none}" != none ]; then _uvslurm_pack "$pd/$key"; fi
  # (a job that runs from a node-local copy asks there, in a cache of its own: _uvslurm_exec)
  _uvslurm_nl_base nl nl "$pd/$key" || _uvslurm_probe "$pd/$key"
}

# _uvslurm_probe VENV: the run step's `uv run --no-sync` asks the interpreter of a venv path it
# has not seen yet (~100 ms of CPU here) and keeps the answer in uv's cache. For a depot venv
# that jobs run from, it is asked once here, while the jobs waiting for this build still wait
# (16 array tasks all asking at once cost ~0.8 s on 2 cores); this job's command then finds the
# answer too, so it costs it nothing.
_uvslurm_probe() {
  # the run step's own `uv run` (_uvslurm_runargs reads the command from UVSLURM_CMD), of `true`
  # shellcheck disable=SC2034
  local -a run UVSLURM_CMD=(true)
  [ -z "${UVSLURM_SCRIPT:-}" ] || return 0 # a script runs in uv's environment for it
  _uvslurm_runargs run
  ( [ -z "${_uvslurm_tlsoff:-}" ] || unset SSL_CERT_DIR SSL_CERT_FILE
    UV_PROJECT_ENVIRONMENT=$1 VIRTUAL_ENV='' exec "${run[@]}" ) >/dev/null 2>&1 </dev/null
  return 0
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
    mksquashfs "$venv" "$img.tmp-$$" -comp zstd -Xcompression-level 1 -noappend -quiet \
      -no-progress >/dev/null
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
