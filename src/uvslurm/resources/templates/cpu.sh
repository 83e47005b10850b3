#!/bin/bash
# uvslurm template "cpu": one task with a few cores. Submit it from your project directory:
#     uvslurm submit cpu.sh [ARGS...]
# uvslurm prepares the project's venv on the node, then runs the body below with it active.
# Command-line options override these lines, e.g. `uvslurm submit -t 2:00:00 cpu.sh`.
#SBATCH --job-name=cpu-job
#SBATCH --time=00:10:00
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=2
#SBATCH --mem=2G

# Threads for NumPy & co.: as many as Slurm gave this task.
export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}
echo "node ${SLURMD_NODENAME:-?}, ${OMP_NUM_THREADS} cores, $(python --version)"
if [ -f train.py ]; then python train.py "$@"; else python -c 'import sys; print("venv:", sys.prefix)'; fi
