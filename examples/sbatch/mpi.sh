#!/bin/bash
# uvslurm template "mpi": one MPI rank per task over two nodes.
#     module load mpi/mpich        # load your MPI before submitting: it is part of the fingerprint
#     uvslurm submit mpi.sh [ARGS...]
# With `rebuild = ["mpi4py"]` under [tool.uvslurm], mpi4py is built for the loaded MPI.
# srun starts the ranks; use --mpi=pmi2 for MPICH, --mpi=pmix for Open MPI (ask your site).
#SBATCH --job-name=mpi-job
#SBATCH --time=00:10:00
#SBATCH --nodes=2
#SBATCH --ntasks=2
#SBATCH --ntasks-per-node=1

echo "ranks on: ${SLURM_JOB_NODELIST:-?}"
srun python -c 'import os, sys; print("rank", os.environ.get("SLURM_PROCID"), "on", os.environ.get("SLURMD_NODENAME"), "venv", sys.prefix)'
if [ -f train.py ]; then srun python train.py "$@"; fi
