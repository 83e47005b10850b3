"""Submit examples/hello/train.py from Python, follow its state, and read its log.

    python examples/api/submit_and_wait.py [PARTITION]

Run it with an interpreter that has uvslurm installed, on a login node."""

import sys
from pathlib import Path

import uvslurm

hello = Path(__file__).resolve().parent.parent / "hello"
sbatch = {"time": "5:00"}
if len(sys.argv) > 1:
    sbatch["partition"] = sys.argv[1]

try:
    job = uvslurm.submit(hello / "train.py", args=["--lr", "0.1"], sbatch=sbatch)
except uvslurm.UvslurmError as e:  # ConfigError, ProjectError, SubmitError, ...
    sys.exit(f"not submitted: {e}")
print(f"job {job.id}: {job.state()}, log {job.log_path}")
code = job.wait()
print(f"job {job.id} ended {job.state()} with exit code {code}")
print(job.log_path.read_text() if job.log_path else "(no log)")

# an array: one handle per task
array = uvslurm.submit(
    command=["python", "-c", "import os; print('task', os.environ['SLURM_ARRAY_TASK_ID'])"],
    project=hello,
    sbatch={**sbatch, "array": "0-3"},
)
print("array tasks:", [(t.id, t.wait()) for t in array.tasks()])
sys.exit(code)
