"""uvslurm: run uv-managed Python projects on Slurm clusters."""

__version__ = "0.1.0"
