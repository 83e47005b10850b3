#!/bin/bash
# uvslurm template "gpu": one task with one GPU. Submit it from your project directory:
#     uvslurm submit gpu.sh [ARGS...]
# The NVIDIA driver version is part of the venv's fingerprint: GPU and CPU nodes get their own venvs.
# Ask your site which partition has GPUs (e.g. `uvslurm submit -p gpu gpu.sh`).
#SBATCH --job-name=gpu-job
#SBATCH --time=01:00:00
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=4
#SBATCH --gpus=1
#SBATCH --mem=8G

export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null || echo "no GPU visible"
if [ -f train.py ]; then python train.py "$@"; else python -c 'import sys; print("venv:", sys.prefix)'; fi
