#!/bin/bash
# Prompt cost of `uvslurm shell-hook` in bash, zsh and fish: microseconds per prompt when nothing
# changed, and milliseconds for the prompt after a `cd` into the project (from /, whose own
# prompt is not counted): what a user waits for after `cd`. The project's first prompt, before
# the timing, runs `uvslurm env`, which leaves the record the hook answers from without Python.
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
  in=0
  for ((i = 0; i < $m; i++)); do
    cd /; eval \"\$PROMPT_COMMAND\"
    t2=\${EPOCHREALTIME/./}; cd '$proj'; eval \"\$PROMPT_COMMAND\"; t3=\${EPOCHREALTIME/./}
    in=\$((in + t3 - t2))
  done
  us=\$((in / $m))
  printf '%d %d.%d' \$(( (t1 - t0) / $n )) \$((us / 1000)) \$((us % 1000 / 100))")
read -r u c <<<"$bash_out"
printf '| bash | %s | %s |\n' "$u" "$c"
if command -v zsh >/dev/null; then
  zsh_out=$(cd "$proj" && zsh -f -c "
    $(hook zsh)
    zmodload zsh/datetime
    _uvslurm_hook
    t0=\$EPOCHREALTIME; for ((i = 0; i < $n; i++)); do _uvslurm_hook; done; t1=\$EPOCHREALTIME
    in=0
    for ((i = 0; i < $m; i++)); do
      cd /; _uvslurm_hook
      t2=\$EPOCHREALTIME; cd '$proj'; _uvslurm_hook; t3=\$EPOCHREALTIME
      (( in += t3 - t2 ))
    done
    printf '%d %.1f' \$(( (t1 - t0) * 1e6 / $n )) \$(( in * 1e3 / $m ))")
  read -r u c <<<"$zsh_out"
  printf '| zsh | %s | %s |\n' "$u" "$c"
fi
if command -v fish >/dev/null; then
  fish_out=$(cd "$proj" && fish --no-config -c "
    $(hook fish)
    emit fish_prompt
    set t0 (date +%s%N); for i in (seq $n); emit fish_prompt; end; set t1 (date +%s%N)
    set in 0
    for i in (seq $m)
      cd /; emit fish_prompt
      set t2 (date +%s%N); cd '$proj'; emit fish_prompt; set t3 (date +%s%N)
      set in (math \"\$in + \$t3 - \$t2\")
    end
    echo (math --scale=0 \"(\$t1 - \$t0) / $n / 1000\") (math --scale=1 \"\$in / $m / 1000000\")")
  read -r u c <<<"$fish_out"
  printf '| fish | %s | %s |\n' "$u" "$c"
fi
