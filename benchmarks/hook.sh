#!/bin/bash
# Prompt cost of `uvslurm shell-hook` in bash, zsh and fish: microseconds per prompt when nothing
# changed, and when the directory changes at every prompt (then `uvslurm env` runs).
#   uv run bash benchmarks/hook.sh [PROJECT_DIR]     (default: examples/hello)
# N unchanged prompts (default 500) and M round trips out of and back into the project (default
# 10) per shell; a shell that is not installed is left out. `benchmarks/run` runs this too.
set -euo pipefail
proj=$(cd "${1:-$(dirname "$0")/../examples/hello}" && pwd)
hook() { uvslurm shell-hook "$1"; }
n=${N:-500}
m=${M:-10}
printf '| shell | unchanged (us/prompt) | directory changed (ms/prompt) |\n|---|---:|---:|\n'
bash_out=$(cd "$proj" && bash --norc --noprofile -c "
  $(hook bash)
  eval \"\$PROMPT_COMMAND\"
  t0=\${EPOCHREALTIME/./}; for ((i = 0; i < $n; i++)); do eval \"\$PROMPT_COMMAND\"; done; t1=\${EPOCHREALTIME/./}
  t2=\${EPOCHREALTIME/./}; for ((i = 0; i < $m; i++)); do cd /; eval \"\$PROMPT_COMMAND\"; cd '$proj'; eval \"\$PROMPT_COMMAND\"; done; t3=\${EPOCHREALTIME/./}
  echo \$(( (t1 - t0) / $n )) \$(( (t3 - t2) / (2 * $m) / 1000 ))")
read -r u c <<<"$bash_out"
printf '| bash | %s | %s |\n' "$u" "$c"
if command -v zsh >/dev/null; then
  zsh_out=$(cd "$proj" && zsh -f -c "
    $(hook zsh)
    zmodload zsh/datetime
    _uvslurm_hook
    t0=\$EPOCHREALTIME; for ((i = 0; i < $n; i++)); do _uvslurm_hook; done; t1=\$EPOCHREALTIME
    t2=\$EPOCHREALTIME; for ((i = 0; i < $m; i++)); do cd /; _uvslurm_hook; cd '$proj'; _uvslurm_hook; done; t3=\$EPOCHREALTIME
    printf '%d %d' \$(( (t1 - t0) * 1e6 / $n )) \$(( (t3 - t2) * 1e3 / (2 * $m) ))")
  read -r u c <<<"$zsh_out"
  printf '| zsh | %s | %s |\n' "$u" "$c"
fi
if command -v fish >/dev/null; then
  fish_out=$(cd "$proj" && fish --no-config -c "
    $(hook fish)
    emit fish_prompt
    set t0 (date +%s%N); for i in (seq $n); emit fish_prompt; end; set t1 (date +%s%N)
    set t2 (date +%s%N); for i in (seq $m); cd /; emit fish_prompt; cd '$proj'; emit fish_prompt; end; set t3 (date +%s%N)
    echo (math --scale=0 \"(\$t1 - \$t0) / $n / 1000\") (math --scale=0 \"(\$t3 - \$t2) / (2 * $m) / 1000000\")")
  read -r u c <<<"$fish_out"
  printf '| fish | %s | %s |\n' "$u" "$c"
fi
