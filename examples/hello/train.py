"""Pretend training: reports the node, the venv and the arguments, then 'trains' for a moment."""

import os
import platform
import sys
import time

from rich.console import Console
from rich.table import Table

table = Table(title="hello from uvslurm")
table.add_column("what")
table.add_column("value")
table.add_row("node", os.environ.get("SLURMD_NODENAME", platform.node()))
table.add_row("job", os.environ.get("SLURM_JOB_ID", "-"))
table.add_row("venv", sys.prefix)
table.add_row("python", platform.python_version())
table.add_row("args", " ".join(sys.argv[1:]) or "-")
Console().print(table)
for epoch in range(3):
    time.sleep(0.2)
    print(f"epoch {epoch}: loss {1 / (epoch + 1):.3f}", flush=True)
