# shellcheck shell=bash
# shellcheck disable=SC2154 # set in other sections: _uvslurm_uv (main.sh), the key (key.sh)
# uvslurm prolog, section spread: in a job of several nodes, one step places the venv on every
# node's disk before the command starts (every node runs from one path).

# _uvslurm_node DEPOT_VENV WANTED: one task of the step that _uvslurm_spread starts on every node
# of the job: place DEPOT_VENV on this node's disk, unless WANTED (the first node's copy) is
# ready here, and print "node state ms path"
_uvslurm_node() {
  local t
  _uvslurm_t0=${EPOCHREALTIME/[.,]/}
  _uvslurm_state=warm
  _uvslurm_nomount=1 # a mount would end with this step
  # the first node's path, if this node has it in a private directory of this user already
  if [ "${2##*/}" = "$_uvslurm_lkey" ] && _uvslurm_owned "${2%/*}" && _uvslurm_ready "$2"; then
    _uvslurm_venv=$2
  else
    _uvslurm_localize "$1"
  fi
  _uvslurm_since t "$_uvslurm_t0"
  printf '%s %s %s %s\n' "${SLURMD_NODENAME:-${HOSTNAME:-?}}" "$_uvslurm_state" "$t" \
    "$_uvslurm_venv"
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
  # every function, not the stubs of those that a warm start does not read (lib.sh)
  _uvslurm_load
  mapfile -t fns < <(compgen -A function _uvslurm_)
  # the functions travel inline: the job script exists only on the first node
  out=$(srun --overlap --quiet --nodes="$SLURM_JOB_NUM_NODES" \
    --ntasks="$SLURM_JOB_NUM_NODES" --ntasks-per-node=1 --cpus-per-task=1 --kill-on-bad-exit=0 \
    bash -c "$(declare -p UVSLURM_PROJECT UVSLURM_DEPOT UVSLURM_NODE_LOCAL _uvslurm_uv \
      _uvslurm_pdir _uvslurm_keyname _uvslurm_lkey 2>/dev/null; declare -f "${fns[@]}")
      _uvslurm_node \"\$1\" \"\$2\"" uvslurm-node "$1" "$_uvslurm_venv") ||
    bad="the step that prepares each node failed"
  while read -r node state ms path; do
    [ -n "$node" ] || continue
    n=$((n + 1))
    summary+=" $node: $state $ms ms;"
    [ "$path" = "$_uvslurm_venv" ] ||
      bad="${bad:-node-local paths differ between nodes ($node: $path)}"
  done <<<"$out"
  [ "$n" -eq "$SLURM_JOB_NUM_NODES" ] ||
    bad=${bad:-"only $n of $SLURM_JOB_NUM_NODES nodes answered"}
  _uvslurm_since t "$t"
  if [ -n "$bad" ]; then
    _uvslurm_log "note: $bad; every node runs from the depot"
    _uvslurm_venv=$1
    [ "$_uvslurm_state" = placed ] && _uvslurm_state=warm
    return 0
  fi
  _uvslurm_log "prepared $n nodes in $t ms:${summary%;}"
}
