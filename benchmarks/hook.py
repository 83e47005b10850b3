"""Prompt cost of `uvslurm shell-hook` in bash, zsh and fish, measured by hook.sh."""

from __future__ import annotations

from pathlib import Path

from benchmarks.common import Bench, output

HOOK_SH = Path(__file__).resolve().parent / "hook.sh"
SHELLS = ("bash", "zsh", "fish")


def measure(b: Bench, prompts: int, changes: int) -> dict[str, tuple[float, float]]:
    """{shell: (ms per unchanged prompt, ms per prompt after a directory change)}, for the
    shells that are installed; in the benchmark project, with the benchmark's depot."""
    env = {**b.env, "N": str(prompts), "M": str(changes)}
    res = {}
    for line in output(["bash", str(HOOK_SH), str(b.proj)], env=env).splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 3 and cells[0] in SHELLS:
            res[cells[0]] = (int(cells[1]) / 1000, float(cells[2]))
    return res
