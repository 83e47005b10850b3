"""submitit with uvslurm: every function below runs on a compute node in this project's venv,
made ready there by uvslurm's prolog (keyed by the node's modules and platform).

    cd examples/submitit
    uv run --with 'uvslurm[submitit]' python driver.py [PARTITION]

(from a checkout of uvslurm: `uv run --with-editable ../.. python driver.py`)"""

import sys

import submitit

from uvslurm.submitit import Executor


def where() -> tuple[str, str]:
    import sys

    import numpy

    return sys.prefix, numpy.__file__


def norm(n: int) -> float:
    import numpy

    return float(numpy.linalg.norm(numpy.arange(n)))


def boom() -> None:
    raise ValueError("boom")


class Countdown(submitit.helpers.Checkpointable):
    """Counts down one step per second; on timeout submitit pickles it (with its progress) and
    requeues the job, which resumes here after uvslurm's prolog found the venv again."""

    def __init__(self) -> None:
        self.left = 45

    def __call__(self) -> str:
        import time

        while self.left:
            time.sleep(1)
            self.left -= 1
        return "done"


executor = Executor(folder="submitit-logs/%j", project=".")
executor.update_parameters(
    timeout_min=5, slurm_partition=sys.argv[1] if len(sys.argv) > 1 else None
)

prefix, numpy_file = executor.submit(where).result()
print(f"ran in {prefix} (numpy from {numpy_file})")

jobs = executor.map_array(norm, range(8))  # one array job, one venv build at most
print("map_array:", [round(j.result(), 2) for j in jobs])

with executor.batch():  # also one array job
    more = [executor.submit(norm, n) for n in (10, 100)]
print("batch:", [round(j.result(), 2) for j in more])

try:
    executor.submit(boom).result()
except Exception as e:  # submitit's FailedJobError, with the function's traceback in it
    print("re-raised:", [line for line in str(e).splitlines() if "ValueError" in line][-1])

# 45 s of work, a 1-minute limit, the signal 30 s before it: checkpointed, requeued, finished
executor.update_parameters(timeout_min=1, slurm_signal_delay_s=30)
print("checkpointed:", executor.submit(Countdown()).result())
