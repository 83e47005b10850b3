#!/bin/bash
# uvslurm template "array": the same script over many inputs, one array task per index.
#     uvslurm submit array.sh [ARGS...]
# All tasks share one venv: the first task on a cold depot builds it, the others wait for it.
# `%4` runs at most 4 tasks at once; change the range with `uvslurm submit -a 0-99%10 array.sh`.
#SBATCH --job-name=array-job
#SBATCH --time=00:10:00
#SBATCH --array=0-3%4
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=1
#SBATCH --mem=1G

task=${SLURM_ARRAY_TASK_ID:-0}
echo "task ${task} of array job ${SLURM_ARRAY_JOB_ID:-?} on ${SLURMD_NODENAME:-?}"
if [ -f train.py ]; then python train.py --task "$task" "$@"; else python -c "import sys; print('task $task venv:', sys.prefix)"; fi
