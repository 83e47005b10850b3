# shellcheck shell=bash
# shellcheck disable=SC2154 # set in other sections: _uvslurm_uv (main.sh)
# uvslurm prolog, section fingerprint: everything that decides which binaries a venv may
# contain (modules, CPU, OS, glibc, Python, uv...), as text; machine facts cached per boot.

# _uvslurm_cpu VAR: CPU identity from the first processor block of /proc/cpuinfo: vendor,
# family, model and the feature flags decide what a -march=native build may use.
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

# _uvslurm_os VAR: ID-VERSION_ID of /etc/os-release
_uvslurm_os() {
  local k v id="" ver=""
  while IFS='=' read -r k v; do
    v=${v#\"}; v=${v%\"}
    case $k in ID) id=$v ;; VERSION_ID) ver=$v ;; esac
  done </etc/os-release
  printf -v "$1" '%s' "$id-$ver"
}

# _uvslurm_facts CPU GLIBC OS UV: set the variables named CPU, GLIBC, OS and UV (none of them
# c, g, o or u) to the facts of the machine: CPU, glibc, OS and uv version. They are cached per
# boot in the depot, so the warm path forks nothing for them; the cache is stale when the uv
# binary is newer than it.
_uvslurm_facts() {
  local boot="" f k v c="" g="" o="" u=""
  read -r boot </proc/sys/kernel/random/boot_id 2>/dev/null
  f="$UVSLURM_DEPOT/.facts/${HOSTNAME:-node}-${boot:-0}"
  _uvslurm_mkdepot
  if ! _uvslurm_owned "$UVSLURM_DEPOT"; then f=""; fi
  if [ -n "$f" ] && [ -f "$f" ] && ! [ "$_uvslurm_uv" -nt "$f" ]; then
    while IFS='=' read -r k v; do
      case $k in
        glibc) g=$v ;;
        cpu) c=$v ;;
        os) o=$v ;;
        uv) [ "${v%% *}" = "$_uvslurm_uv" ] && u=${v#* } ;;
      esac
    done 2>/dev/null <"$f" # replaced meanwhile (a rename): read as if absent
  fi
  if [ -z "$g" ] || [ -z "$u" ] || [ -z "$o" ]; then
    _uvslurm_cpu c
    _uvslurm_os o
    g=$(getconf GNU_LIBC_VERSION 2>/dev/null) || g=unknown
    u=$("$_uvslurm_uv" --version 2>/dev/null) || _uvslurm_die "cannot run uv at '$_uvslurm_uv'"
    # best effort: a read-only depot only costs these subprocesses on the next run; nothing is
    # written into a depot that others could write into (they could plant links there)
    if [ -n "$f" ] && _uvslurm_private "$UVSLURM_DEPOT" && mkdir -p "${f%/*}" 2>/dev/null; then
      printf 'glibc=%s\ncpu=%s\nos=%s\nuv=%s %s\n' "$g" "$c" "$o" "$_uvslurm_uv" "$u" \
        >"$f.$$" 2>/dev/null && mv -f "$f.$$" "$f" 2>/dev/null
    fi
  fi
  printf -v "$1" '%s' "$c"
  printf -v "$2" '%s' "$g"
  printf -v "$3" '%s' "$o"
  printf -v "$4" '%s' "$u"
}

# _uvslurm_fingerprint VAR: set VAR to the fingerprint, one component a line. Unrelated
# environment (PWD, job ids, PATH) is not part of it, and neither is Lmod's _ModuleTable*.
_uvslurm_fingerprint() {
  # ${!name} below sees these locals, not the environment: m_* are unlikely names there
  local mods="" loaded="" mpath="" gpu="none" name fp cmd out m_cpu m_glibc m_os m_uv
  # UVSLURM_FP_MODULES=0 (fingerprint.modules = false) leaves the module system out
  if [ "${UVSLURM_FP_MODULES:-1}" != 0 ]; then
    _uvslurm_sorted mods "${_LMFILES_:-}"
    _uvslurm_sorted loaded "${LOADEDMODULES:-}"
    mpath=${MODULEPATH:-}
  fi
  _uvslurm_facts m_cpu m_glibc m_os m_uv
  if [ -r /proc/driver/nvidia/version ]; then read -r gpu </proc/driver/nvidia/version; fi
  fp="modules=$loaded
modulefiles=$mods
modulepath=$mpath
arch=$HOSTTYPE
cpu=$m_cpu
glibc=$m_glibc
os=$m_os
python=${UVSLURM_PYTHON:-}
uv=$m_uv
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
  printf -v "$1" '%s' "$fp"
}
