# shellcheck shell=bash
# shellcheck disable=SC2154 # set in other sections: _uvslurm_uv (main.sh)
# uvslurm prolog, section fingerprint: everything that decides which binaries a venv may
# contain (modules, CPU, OS, glibc, Python, uv...), as text; machine facts cached by identity.

# _uvslurm_uarch_data VAR: archspec's microarchitectures, as scripts/microarch_table.py writes
# them (records ended by ';': name vendor eligible depth nfeatures generic-ancestors cpu-part
# parent +added/-removed features; `=code vendor` maps ARM implementers). Read on a cold start.
_uvslurm_uarch_data() {
  # BEGIN archspec (generated: uv run python scripts/microarch_table.py)
  read -r -d '' "$1" <<'EOF'
x86_64 generic 1 0 0 - - -; x86_64_v2 generic 1 1 9 x86_64 - x86_64 +cx16 +lahf_lm +mmx +sse
+sse2 +ssse3 +sse4_1 +sse4_2 +popcnt; x86_64_v3 generic 1 2 18 x86_64_v2,x86_64 - x86_64_v2 +avx
+avx2 +bmi1 +bmi2 +f16c +fma +abm +movbe +xsave; x86_64_v4 generic 1 3 23
x86_64_v3,x86_64_v2,x86_64 - x86_64_v3 +avx512f +avx512bw +avx512cd +avx512dq +avx512vl; nocona
GenuineIntel 1 1 4 x86_64 - x86_64 +mmx +sse +sse2 +sse3; core2 GenuineIntel 1 2 4 x86_64 -
nocona +ssse3 -sse3; nehalem GenuineIntel 1 4 9 x86_64_v2,x86_64 - core2 +sse4_1 +sse4_2 +popcnt
+lahf_lm +cx16; westmere GenuineIntel 1 5 11 x86_64_v2,x86_64 - nehalem +aes +pclmulqdq;
sandybridge GenuineIntel 1 6 12 x86_64_v2,x86_64 - westmere +avx; ivybridge GenuineIntel 1 7 14
x86_64_v2,x86_64 - sandybridge +rdrand +f16c; haswell GenuineIntel 1 9 21
x86_64_v3,x86_64_v2,x86_64 - ivybridge +abm +xsave +movbe +fma +avx2 +bmi1 +bmi2; broadwell
GenuineIntel 1 10 23 x86_64_v3,x86_64_v2,x86_64 - haswell +rdseed +adx; skylake GenuineIntel 1
11 26 x86_64_v3,x86_64_v2,x86_64 - broadwell +clflushopt +xsavec +xsaveopt; mic_knl GenuineIntel
1 11 27 x86_64_v3,x86_64_v2,x86_64 - broadwell +avx512f +avx512pf +avx512er +avx512cd;
skylake_avx512 GenuineIntel 1 13 32 x86_64_v4,x86_64_v3,x86_64_v2,x86_64 - skylake +avx512f
+clwb +avx512vl +avx512bw +avx512dq +avx512cd; cannonlake GenuineIntel 1 13 34
x86_64_v4,x86_64_v3,x86_64_v2,x86_64 - skylake +avx512f +avx512vl +avx512bw +avx512dq +avx512cd
+avx512vbmi +avx512ifma +sha_ni; cascadelake GenuineIntel 1 14 33
x86_64_v4,x86_64_v3,x86_64_v2,x86_64 - skylake_avx512 +avx512_vnni; icelake GenuineIntel 1 16 43
x86_64_v4,x86_64_v3,x86_64_v2,x86_64 - cascadelake +sha_ni +avx512vbmi +avx512ifma +sha_ni
+rdpid +gfni +avx512_vbmi2 +avx512_vpopcntdq +avx512_bitalg +vpclmulqdq +vaes; sapphirerapids
GenuineIntel 1 17 52 x86_64_v4,x86_64_v3,x86_64_v2,x86_64 - icelake +avx512_bf16 +cldemote
+movdir64b +movdiri +serialize +waitpkg +amx_bf16 +amx_tile +amx_int8; alderlake GenuineIntel 1
12 37 x86_64_v3,x86_64_v2,x86_64 - skylake +avx_vnni +sha_ni +clwb +rdpid +gfni +vaes
+vpclmulqdq +movdiri +movdir64b +serialize +waitpkg; arrowlake GenuineIntel 1 13 41
x86_64_v3,x86_64_v2,x86_64 - alderlake +avx_ifma +avx_ne_convert +avx_vnni_int8 +cmpccxadd;
arrowlake_s GenuineIntel 1 14 45 x86_64_v3,x86_64_v2,x86_64 - arrowlake +avx_vnni_int16 +sha512
+sm3 +sm4; k10 AuthenticAMD 1 1 8 x86_64 - x86_64 +mmx +sse +sse2 +sse4a +abm +cx16 +3dnow
+3dnowext; bulldozer AuthenticAMD 1 2 17 x86_64_v2,x86_64 - x86_64_v2 +sse4a +xsave +abm +avx
+xop +fma4 +aes +pclmulqdq; piledriver AuthenticAMD 1 3 21 x86_64_v2,x86_64 - bulldozer +bmi1
+f16c +fma +tbm; steamroller AuthenticAMD 1 4 22 x86_64_v2,x86_64 - piledriver +fsgsbase;
excavator AuthenticAMD 1 6 25 x86_64_v3,x86_64_v2,x86_64 - steamroller +bmi2 +avx2 +movbe; zen
AuthenticAMD 1 3 27 x86_64_v3,x86_64_v2,x86_64 - x86_64_v3 +fsgsbase +rdseed +clzero +aes
+pclmulqdq +sse4a +xsavec +xsaveopt +clflushopt; zen2 AuthenticAMD 1 4 28
x86_64_v3,x86_64_v2,x86_64 - zen +clwb; zen3 AuthenticAMD 1 5 31 x86_64_v3,x86_64_v2,x86_64 -
zen2 +vaes +vpclmulqdq +pku; zen4 AuthenticAMD 1 7 45 x86_64_v4,x86_64_v3,x86_64_v2,x86_64 -
zen3 +gfni +flush_l1d +avx512f +avx512dq +avx512ifma +avx512cd +avx512bw +avx512vl +avx512_bf16
+avx512vbmi +avx512_vbmi2 +avx512_vnni +avx512_bitalg +avx512_vpopcntdq; zen5 AuthenticAMD 1 8
50 x86_64_v4,x86_64_v3,x86_64_v2,x86_64 - zen4 +avx512_vp2intersect +avx_vnni +movdir64b
+movdiri +tsc_adjust; zen6 AuthenticAMD 1 9 51 x86_64_v4,x86_64_v3,x86_64_v2,x86_64 - zen5
+avx512_fp16; aarch64 generic 1 0 0 - - -; armv8.1a generic 0 1 0 aarch64 - aarch64; armv8.2a
generic 0 2 0 armv8.1a,aarch64 - armv8.1a; armv8.3a generic 0 3 0 armv8.2a,armv8.1a,aarch64 -
armv8.2a; armv8.4a generic 0 4 0 armv8.3a,armv8.2a,armv8.1a,aarch64 - armv8.3a; armv8.5a generic
0 5 0 armv8.4a,armv8.3a,armv8.2a,armv8.1a,aarch64 - armv8.4a; armv8.6a generic 0 6 0
armv8.5a,armv8.4a,armv8.3a,armv8.2a,armv8.1a,aarch64 - armv8.5a; armv9.0a generic 0 6 0
armv8.5a,armv8.4a,armv8.3a,armv8.2a,armv8.1a,aarch64 - armv8.5a; armv9.2a generic 0 8 0
armv9.0a,armv8.6a,armv8.5a,armv8.4a,armv8.3a,armv8.2a,armv8.1a,aarch64 - armv9.0a; thunderx2
Cavium 1 2 11 armv8.1a,aarch64 0x0af armv8.1a +fp +asimd +evtstrm +aes +pmull +sha1 +sha2 +crc32
+atomics +cpuid +asimdrdm; a64fx Fujitsu 1 3 14 armv8.2a,armv8.1a,aarch64 0x001 armv8.2a +fp
+asimd +evtstrm +sha1 +sha2 +crc32 +atomics +cpuid +asimdrdm +fphp +asimdhp +fcma +dcpop +sve;
cortex_a72 ARM 1 1 9 aarch64 0xd08 aarch64 +fp +asimd +evtstrm +aes +pmull +sha1 +sha2 +crc32
+cpuid; neoverse_n1 ARM 1 4 16 armv8.2a,aarch64,armv8.1a 0xd0c cortex_a72 +atomics +fphp
+asimdhp +asimdrdm +lrcpc +dcpop +asimddp; neoverse_v1 ARM 1 7 33
armv8.4a,armv8.2a,aarch64,armv8.1a,armv8.3a 0xd40 neoverse_n1 +jscvt +fcma +sha3 +sha512 +sve
+asimdfhm +dit +uscat +ilrcpc +flagm +dcpodp +svei8mm +svebf16 +i8mm +bf16 +dgh +rng;
neoverse_v2 ARM 1 9 34 armv9.0a,armv8.2a,aarch64,armv8.1a,armv8.5a,armv8.4a,armv8.3a 0xd4f
neoverse_n1 +jscvt +fcma +sha3 +sha512 +sve +asimdfhm +uscat +ilrcpc +flagm +sb +dcpodp +sve2
+flagm2 +frint +svei8mm +svebf16 +i8mm +bf16; neoverse_n2 ARM 1 9 34
armv9.0a,armv8.2a,aarch64,armv8.1a,armv8.5a,armv8.4a,armv8.3a 0xd49 neoverse_n1 +jscvt +fcma
+sha3 +sha512 +sve +asimdfhm +uscat +ilrcpc +flagm +sb +dcpodp +sve2 +flagm2 +frint +svei8mm
+svebf16 +i8mm +bf16; ampere1 Ampere 1 9 37
armv8.6a,armv8.2a,aarch64,armv8.1a,armv8.5a,armv8.4a,armv8.3a 0xac3 neoverse_n1 +jscvt +fcma
+sha3 +sha512 +asimdfhm +dit +uscat +ilrcpc +flagm +ssbs +sb +paca +pacg +dcpodp +flagm2 +frint
+i8mm +bf16 +rng +bti +ecv; ampere1a Ampere 1 10 39
armv8.6a,armv8.2a,aarch64,armv8.1a,armv8.5a,armv8.4a,armv8.3a 0xac4 ampere1 +sm3 +sm4;
neoverse_v3ae ARM 1 12 49
armv9.2a,armv9.0a,armv8.2a,aarch64,armv8.1a,armv8.5a,armv8.4a,armv8.3a,armv8.6a 0xd83
neoverse_v2 +afp +bti +dgh +dit +ecv +paca +pacg +sm3 +sm4 +sveaes +svebitperm +svepmull
+svesha3 +svesm4 +wfxt; olympus Nvidia 1 9 61
armv9.2a,armv9.0a,armv8.6a,armv8.5a,armv8.4a,armv8.3a,armv8.2a,armv8.1a,aarch64 0x010 armv9.2a
+fp +asimd +evtstrm +aes +pmull +sha1 +sha2 +crc32 +atomics +fphp +asimdhp +cpuid +asimdrdm
+jscvt +fcma +lrcpc +dcpop +sha3 +sm3 +sm4 +asimddp +sha512 +sve +asimdfhm +dit +uscat +ilrcpc
+flagm +ssbs +sb +paca +pacg +dcpodp +sve2 +sveaes +svepmull +svebitperm +svesha3 +svesm4
+flagm2 +frint +svei8mm +svebf16 +i8mm +bf16 +dgh +rng +bti +ecv +afp +wfxt +fpmr +lut +faminmax
+f8cvt +f8fma +f8dp4 +f8dp2 +f8e4m3 +f8e5m2 +ls64; m1 Apple 1 5 32
armv8.4a,armv8.3a,armv8.2a,armv8.1a,aarch64 0x022 armv8.4a +fp +asimd +evtstrm +aes +pmull +sha1
+sha2 +crc32 +atomics +fphp +asimdhp +cpuid +asimdrdm +jscvt +fcma +lrcpc +dcpop +sha3 +asimddp
+sha512 +asimdfhm +dit +uscat +ilrcpc +flagm +ssbs +sb +paca +pacg +dcpodp +flagm2 +frint; m2
Apple 1 7 36 armv8.5a,armv8.4a,armv8.3a,armv8.2a,armv8.1a,aarch64 0x032 m1 +ecv +bf16 +i8mm
+bti; m3 Apple 1 9 36 armv8.6a,armv8.5a,armv8.4a,armv8.3a,armv8.2a,armv8.1a,aarch64 Unknown m2;
m4 Apple 1 10 38 armv8.6a,armv8.5a,armv8.4a,armv8.3a,armv8.2a,armv8.1a,aarch64 Unknown m3 +sme
+sme2; =0x41 ARM; =0x42 Broadcom; =0x43 Cavium; =0x44 DEC; =0x46 Fujitsu; =0x48 HiSilicon; =0x49
Infineon_Technologies_AG; =0x4d Motorola; =0x4e Nvidia; =0x50 APM; =0x51 Qualcomm; =0x53
Samsung; =0x56 Marvell; =0x61 Apple; =0x66 Faraday; =0x68 HXT; =0x69 Intel; =0xc0 Ampere;
EOF
  # END archspec
  return 0
}

# _uvslurm_cpu VAR [CPUINFO]: the CPU as compilers see it: the microarchitecture archspec names
# (Spack's choice, its algorithm: the deepest target of this vendor, or generic, whose features
# the CPU has, descending from the best generic level) and, of the first processor block's
# flags, only those some target of archspec uses. Flags the kernel adds or a hypervisor hides
# (rep_good, nopl, cpuid, tsc_known_freq...) say nothing about what a build may use.
_uvslurm_cpu() {
  local k v vendor="" impl="" part="" flags="" rec name ven el depth nf gen cp par f
  local best="" bd=-1 bn=-1 gbest="" gd=-1 gn=-1 ok data fam=${HOSTTYPE:-}
  local -A has=() feats=() known=() vendors=()
  local -a cand=() fs=()
  while IFS=: read -r k v; do
    [ -z "$k" ] && [ -n "$flags$vendor$impl" ] && break
    k=${k%"${k##*[![:space:]]}"}
    v=${v# }
    case $k in
      vendor_id) vendor=$v ;;
      flags | Features) flags=$v ;;
      "CPU implementer") impl=$v ;;
      "CPU part") part=$v ;;
    esac
  done <"${2:-/proc/cpuinfo}"
  for f in $flags; do has[$f]=1; done
  _uvslurm_uarch_data data
  data=${data//$'\n'/ }
  while IFS= read -r -d ';' rec; do
    read -r name ven el depth nf gen cp par rec <<<"$rec"
    case $name in
      "") continue ;;
      =*) vendors[${name#=}]=$ven && continue ;;
    esac
    # a root starts its family; another family's targets descend from another root
    if [ "$par" = - ]; then
      [ "$name" = "$fam" ] || continue
      feats[$name]=" "
    elif [ -n "${feats[$par]:-}" ]; then
      feats[$name]=${feats[$par]}
    else
      continue
    fi
    for f in $rec; do
      if [ "${f:0:1}" = + ]; then
        feats[$name]+="${f:1} "
      else
        feats[$name]=${feats[$name]/ ${f:1} / }
      fi
    done
    [ "$el" = 1 ] || continue
    cand+=("$name $ven $depth $nf $gen $cp")
  done <<<"$data;"
  [ "$fam" = aarch64 ] && vendor=${vendors[$impl]:-${impl:-generic}}
  for name in "${!feats[@]}"; do
    for f in ${feats[$name]}; do known[$f]=1; done
  done
  # the targets this CPU can be, and the best generic one among them
  local -a fit=()
  for rec in "${cand[@]}"; do
    read -r name ven depth nf gen cp <<<"$rec"
    [ "$ven" = "$vendor" ] || [ "$ven" = generic ] || continue
    ok=1
    for f in ${feats[$name]}; do [ -n "${has[$f]:-}" ] || { ok="" && break; }; done
    [ -n "$ok" ] || continue
    fit+=("$rec")
    if [ "$ven" = generic ] && { ((depth > gd)) || { ((depth == gd)) && ((nf > gn)); }; }; then
      gbest=$name gd=$depth gn=$nf
    fi
  done
  # a CPU part that some target names narrows the choice to those (aarch64)
  ok=""
  for rec in "${fit[@]}"; do read -r _ _ _ _ _ cp <<<"$rec"; [ "$cp" = "$part" ] && ok=1; done
  for rec in "${fit[@]}"; do
    read -r name ven depth nf gen cp <<<"$rec"
    [ -z "$ok" ] || [ "$cp" = "$part" ] || continue
    [[ ,$gen, == *,"$gbest",* ]] || continue
    if ((depth > bd)) || { ((depth == bd)) && ((nf > bn)); }; then best=$name bd=$depth bn=$nf; fi
  done
  best=${best:-${gbest:-$fam}}
  for f in $flags; do [ -n "${known[$f]:-}" ] && fs+=("$f"); done
  printf -v "$1" 'microarch=%s flags=%s' "${best:-unknown}" "${fs[*]}"
}

# _uvslurm_gpus VAR [DIR]: the NVIDIA GPU models of this node, sorted, from the driver's
# /proc files (no process): a package built for one GPU generation is not reused on another
_uvslurm_gpus() {
  local d k v found=""
  local -a models=()
  for d in "${2:-/proc/driver/nvidia/gpus}"/*/information; do
    [ -r "$d" ] || continue
    while IFS=: read -r k v; do
      [ "$k" = Model ] && models+=("${v#"${v%%[![:space:]]*}"}")
    done <"$d"
  done
  local IFS=:
  _uvslurm_sorted found "${models[*]}"
  printf -v "$1" '%s' "${found//:/, }"
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

# _uvslurm_facts CPU GLIBC OS UV: set the variables named CPU, GLIBC, OS and UV (none of them
# c, g, os or u) to the machine's CPU, glibc version, OS (read each time) and uv version. They
# cost processes, so they are cached in the depot under the identity of what they are read
# from, taken without a process: the boot (the CPU), the OS and glibc's loader (its inode: a
# container's, or a new glibc; its time: one changed in place) and the uv binary (the same).
_uvslurm_facts() {
  local f k v c="" g="" u="" ld os t=""
  _uvslurm_ldso ld
  _uvslurm_os os
  _uvslurm_factsname f "$ld"
  _uvslurm_mkdepot
  if ! _uvslurm_owned "$UVSLURM_DEPOT"; then f=""; fi
  while :; do
    _uvslurm_pyseen=()
    if [ -n "$f" ] && [ -f "$f" ] && ! [ "$_uvslurm_uv" -nt "$f" ] && ! [ "$ld" -nt "$f" ]; then
      while IFS='=' read -r k v; do
        case $k in
          glibc) g=$v ;;
          cpu) c=$v ;;
          uv) [ "${v%% *}" = "$_uvslurm_uv" ] && u=${v#* } ;;
          python) _uvslurm_pyseen+=("$v") ;; # _uvslurm_python's
        esac
      done 2>/dev/null <"$f" # replaced meanwhile (a rename): read as if absent
    fi
    [ -z "$g" ] || [ -z "$u" ] || [ -z "$c" ] || break
    # the tasks of an array start together on a node whose facts nobody asked yet: one asks,
    # holding a flock on the file (until the fingerprint has the interpreter too; the
    # answers replace it by a rename), the others wait and read them (16 tasks asking at once
    # took 4.3 s each on this 2-core VM, one alone 0.9 s). An empty file reads as no answers.
    [ -z "${_uvslurm_factsfd:-}" ] && [ -n "$f" ] && _uvslurm_private "$UVSLURM_DEPOT" &&
      mkdir -p "${f%/*}" 2>/dev/null && { exec {_uvslurm_factsfd}>>"$f"; } 2>/dev/null || break
    flock -w 60 "$_uvslurm_factsfd" 2>/dev/null || break
  done
  if [ -z "$g" ] || [ -z "$u" ] || [ -z "$c" ]; then
    t=1
    _uvslurm_cpu c
    g=$(getconf GNU_LIBC_VERSION 2>/dev/null) || g=unknown
    u=$("$_uvslurm_uv" --version 2>/dev/null) || _uvslurm_die "cannot run uv at '$_uvslurm_uv'"
  fi
  printf -v _uvslurm_facts_text 'glibc=%s\ncpu=%s\nuv=%s %s\n' "$g" "$c" "$_uvslurm_uv" "$u"
  _uvslurm_facts_file=$f
  # asked now: kept (the interpreters found are asked again too), by _uvslurm_python once it has
  # the interpreter: a file with the facts but not it would let a task that comes in meanwhile
  # past the flock, to ask uv for the interpreter too (15 of 16 tasks did, ~0.2 s of CPU each)
  if [ -n "$t" ]; then _uvslurm_pyseen=() && _uvslurm_factsnew=1; fi
  printf -v "$1" '%s' "$c"
  printf -v "$2" '%s' "$g"
  printf -v "$3" '%s' "$os"
  printf -v "$4" '%s' "$u"
}

# _uvslurm_facts_write: (re)write the facts file: the facts, then the interpreters found
# (_uvslurm_python), newest first. Best effort: a read-only depot only costs the processes again
# on the next run; nothing is written into a depot that others could write into (they could
# plant links there).
_uvslurm_facts_write() {
  local f=$_uvslurm_facts_file line text=$_uvslurm_facts_text
  for line in "${_uvslurm_pyseen[@]}"; do text+="python=$line"$'\n'; done
  [ -n "$f" ] && _uvslurm_private "$UVSLURM_DEPOT" && mkdir -p "${f%/*}" 2>/dev/null &&
    printf '%s' "$text" >"$f.$$" 2>/dev/null && mv -f "$f.$$" "$f" 2>/dev/null
  return 0
}

# _uvslurm_uvlayout VAR VERSION: the part of uv's version (`uv 0.13.9 (...)`) that can change
# what a venv looks like: before 1.0 uv changes behaviour in minor releases only (0.13 -> 0.14),
# patch releases fix bugs (docs/design.md, "uv's version")
_uvslurm_uvlayout() {
  local v=${2#uv } a b
  v=${v%% *}
  a=${v%%.*} b=${v#*.}
  b=${b%%.*}
  if [ "$a" = 0 ]; then v=$a.$b; else v=$a; fi
  printf -v "$1" '%s' "$v"
}

# _uvslurm_python VAR: the interpreter `uv venv` will build this project's venv with, as uv
# finds it (the same request, PATH, UV_PYTHON and the like, which modules change):
# "<implementation>-<version><abiflags> <where>", where is "uv-managed" for uv's own builds, else
# the installation's prefix (a module's, the system's). Finding it takes uv and the interpreter
# (~50-200 ms), so the answer is kept per input in the facts file, and believed while the
# interpreter is the same file and no directory of PATH (up to its own), nor uv's Python
# directory, nor the project's files changed since.
_uvslurm_python() {
  local cache=$_uvslurm_facts_file in line k v exe ino res="" d
  local pydir=${UV_PYTHON_INSTALL_DIR:-${XDG_DATA_HOME:-${HOME:-/}/.local/share}/uv/python}
  local -a others=()
  # where uv looks from: the project, or a PEP 723 script's directory
  local here=${UVSLURM_PROJECT:-/}
  [ -z "${UVSLURM_SCRIPT:-}" ] || here=${UVSLURM_SCRIPT%/*}
  in="${UVSLURM_PROJECT:-}|${UVSLURM_PYTHON:-}|${PATH:-}|${UV_PYTHON:-}|${UV_PYTHON_PREFERENCE:-}"
  in+="|${UV_MANAGED_PYTHON:-}|${UV_NO_MANAGED_PYTHON:-}|$pydir|${CONDA_PREFIX:-}"
  in=${in//[$'\n\x1e']/_}
  # the lines the facts file keeps: input \x1e answer \x1e interpreter \x1e its inode
  for line in "${_uvslurm_pyseen[@]}"; do
    k=${line%%$'\x1e'*} v=${line#*$'\x1e'}
    exe=${v#*$'\x1e'} v=${v%%$'\x1e'*}
    ino=${exe#*$'\x1e'} exe=${exe%%$'\x1e'*}
    if [ "$k" != "$in" ]; then
      [ ${#others[@]} -ge 7 ] || others+=("$line")
      continue
    fi
    [ -n "$res" ] && continue
    _uvslurm_pyfresh "$exe" "$ino" "$cache" || continue
    res=$v _uvslurm_pyexe=$exe _uvslurm_pyino=$ino
  done
  if [ -z "$res" ]; then
    # shellcheck disable=SC2016 # the interpreter's code
    exe=$(cd "$here" 2>/dev/null && VIRTUAL_ENV='' _uvslurm_uvb python find \
      --system --no-cache --offline --no-python-downloads ${UVSLURM_PYTHON:+"$UVSLURM_PYTHON"} \
      2>/dev/null) && res=$("$exe" -I -c 'import sys, os
p = os.path.realpath(sys.base_prefix)
d = os.path.realpath(sys.argv[1])
w = "uv-managed" if p.startswith(d + os.sep) else p
print("%s-%d.%d.%d%s %s" % (sys.implementation.name, *sys.version_info[:3],
      getattr(sys, "abiflags", ""), w))' "$pydir" 2>/dev/null) || {
      exe=""
      res="none found for '${UVSLURM_PYTHON:-any}' (uv may download one)"
    }
    res=${res//[$'\n\x1e']/ }
    ino=""
    [ -z "$exe" ] || _uvslurm_ino ino "$exe"
    _uvslurm_pyexe=$exe _uvslurm_pyino=$ino
    _uvslurm_pyseen=("$in"$'\x1e'"$res"$'\x1e'"$exe"$'\x1e'"$ino" "${others[@]}")
    _uvslurm_factsnew=1
  fi
  if [ -n "$_uvslurm_factsnew" ]; then _uvslurm_facts_write && _uvslurm_factsnew=""; fi
  # the build's `uv venv` is given the interpreter found, by its path: the same venv, without
  # uv's search through PATH again (~0.3 s of CPU where pyenv's shims are on it). uv's own
  # Pythons by the request: uv venv links their minor version's directory.
  _uvslurm_pybuild=""
  [[ -z $_uvslurm_pyexe || $res == *" uv-managed" ]] || _uvslurm_pybuild=$_uvslurm_pyexe
  printf -v "$1" '%s' "$res"
}

# _uvslurm_modules LOADED FILES: the loaded modules and their modulefiles, each sorted, without
# those fingerprint.ignore-modules names (UVSLURM_FP_IGNORE, glob patterns matched against the
# name with and without its version). Lmod lists both in load order, so they pair by position.
_uvslurm_modules() {
  local i m p keep lm="" lf=""
  local -a names=() paths=() km=() kf=() pats=()
  if [ -z "${UVSLURM_FP_IGNORE:-}" ] || [ -z "${LOADEDMODULES:-}" ]; then
    _uvslurm_sorted lm "${LOADEDMODULES:-}"
    _uvslurm_sorted lf "${_LMFILES_:-}"
    printf -v "$1" '%s' "$lm"
    printf -v "$2" '%s' "$lf"
    return 0
  fi
  read -r -a pats <<<"${UVSLURM_FP_IGNORE:-}"
  IFS=: read -r -a names <<<"${LOADEDMODULES:-}"
  IFS=: read -r -a paths <<<"${_LMFILES_:-}"
  for i in "${!names[@]}"; do
    m=${names[i]}
    keep=1
    for p in "${pats[@]}"; do
      # shellcheck disable=SC2053 # a pattern
      if [[ $m == $p ]] || [[ ${m%/*} == $p ]]; then keep="" && break; fi
    done
    if [ -n "$keep" ]; then
      km+=("$m")
      [ ${#names[@]} -ne ${#paths[@]} ] || kf+=("${paths[i]}")
    fi
  done
  [ ${#names[@]} -eq ${#paths[@]} ] || kf=("${paths[@]}")
  local IFS=:
  _uvslurm_sorted lm "${km[*]}"
  _uvslurm_sorted lf "${kf[*]}"
  printf -v "$1" '%s' "$lm"
  printf -v "$2" '%s' "$lf"
}

# _uvslurm_fingerprint VAR: set VAR to the fingerprint, one component a line. Unrelated
# environment (PWD, job ids, PATH) is not part of it, and neither is Lmod's _ModuleTable*.
_uvslurm_fingerprint() {
  # ${!name} below sees these locals, not the environment: m_* are unlikely names there
  local mods="" loaded="" gpu="none" name fp cmd out m_cpu m_glibc m_os m_uv m_py m_gpus
  # UVSLURM_FP_MODULES=0 (fingerprint.modules = false) leaves the module system out. MODULEPATH
  # is not part of it: the modulefiles loaded say what it led to, a directory added to it that
  # nothing was loaded from changes nothing.
  if [ "${UVSLURM_FP_MODULES:-1}" != 0 ]; then
    _uvslurm_modules loaded mods
    _uvslurm_keyedmods=${LOADEDMODULES:-}
  fi
  _uvslurm_facts m_cpu m_glibc m_os m_uv
  _uvslurm_uvlayout m_uv "$m_uv"
  _uvslurm_python m_py
  if [ -n "${_uvslurm_factsfd:-}" ]; then exec {_uvslurm_factsfd}>&- && _uvslurm_factsfd=""; fi
  if [ -r /proc/driver/nvidia/version ]; then
    read -r gpu </proc/driver/nvidia/version
    # what a rebuilt package was compiled for: the GPU models (and so their compute capability)
    if [ -n "${UVSLURM_REBUILD:-}" ]; then
      _uvslurm_gpus m_gpus
      gpu+="; GPUs: ${m_gpus:-none}"
    fi
  fi
  fp="modules=$loaded
modulefiles=$mods
arch=$HOSTTYPE
cpu=$m_cpu
glibc=$m_glibc
os=$m_os
python=$m_py
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

# _uvslurm_watch_modules: in activate mode the job script's own lines run after the venv was
# keyed on the modules loaded then. `module` and `ml` get a wrapper that says once, in the log,
# when they change the loaded modules: the venv was not chosen for the new ones. (One subshell
# per function, to copy it; activate mode only.)
_uvslurm_watch_modules() {
  local f def
  [ "${UVSLURM_FP_MODULES:-1}" != 0 ] || return 0
  __uvslurm_keyed=${_uvslurm_keyedmods-${LOADEDMODULES:-}}
  for f in module ml; do
    declare -F "$f" >/dev/null && ! declare -F "__uvslurm_orig_$f" >/dev/null || continue
    def=$(declare -f "$f") || continue
    eval "__uvslurm_orig_$f${def#"$f"}"
    eval "$f() { local __uvslurm_rc=0; __uvslurm_orig_$f \"\$@\" || __uvslurm_rc=\$?
      __uvslurm_modcheck $f; return \$__uvslurm_rc; }"
  done
}

# __uvslurm_modcheck FUNCTION: the warning of _uvslurm_watch_modules (kept after the prolog: not
# named _uvslurm_*, so not in its `unset -f`; it uses no other function of the prolog)
__uvslurm_modcheck() {
  [ -z "${__uvslurm_warned:-}" ] && [ "${LOADEDMODULES:-}" != "${__uvslurm_keyed:-}" ] || return 0
  __uvslurm_warned=1
  printf 'uvslurm: warning: `%s` changed the loaded modules after the venv was chosen (%s -> %s);' \
    "$1" "${__uvslurm_keyed:-none}" "${LOADEDMODULES:-none}" >&2
  printf ' the venv was keyed on the modules loaded before: load them before submitting\n' >&2
}
