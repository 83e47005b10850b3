#!/bin/bash
# A CPU job. Submit from your project directory:
#   uvslurm submit path/to/cpu.sh [ARGS...]
# (here: cd examples/hello && uvslurm submit ../sbatch/cpu.sh)
# Options on the command line override these lines, e.g. uvslurm submit -t 30 cpu.sh
#SBATCH --job-name=cpu-example
#SBATCH --time=00:10:00
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=2
#SBATCH --mem=1G

# uvslurm's prolog runs here: the project's venv is active below.
echo "running on ${SLURMD_NODENAME:-$(hostname)} with $(python --version)"
python -c 'import sys; print("venv:", sys.prefix)'
if [ -f train.py ]; then python train.py "$@"; fi
