"""uvslurm's benchmark suite: `benchmarks/run` (or `python -m benchmarks`); see suite.py and
docs/performance.md."""
