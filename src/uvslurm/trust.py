"""`uvslurm trust`: the user's own record of projects whose configuration may run programs.

As direnv's `allow`: a project's `[tool.uvslurm]` may name programs to run (`uv`,
`fingerprint.commands`), and so may another user's project that the user chose to work in.
Neither is honoured until the user records it here, by project path and by the exact values
that run code; a change of those values (a `git pull`, a colleague's edit) needs a new
`uvslurm trust`. The record is one small file per project in the user's state directory,
checked to be the user's own before it is believed.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from uvslurm import paths, safety
from uvslurm.errors import UvslurmError

# settings that name a program uvslurm runs (as the user, on login and compute nodes)
CODE_KEYS = ("uv", "fingerprint.commands")


def code_values(table: Mapping[str, Any]) -> dict[str, Any]:
    """The settings of a raw `[tool.uvslurm]` (or config file) table that run code, set and
    not empty."""
    out: dict[str, Any] = {}
    if table.get("uv"):
        out["uv"] = table["uv"]
    fp = table.get("fingerprint")
    if isinstance(fp, Mapping) and fp.get("commands"):
        out["fingerprint.commands"] = fp["commands"]
    return out


def digest(root: Path, values: Mapping[str, Any]) -> str:
    text = json.dumps({"project": str(root), "code": values}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()  # json.dumps escapes to ASCII


def _store() -> Path:
    return paths.state_dir() / "trust"


def _record(root: Path) -> Path:
    name = hashlib.sha256(os.fsencode(str(root))).hexdigest()[:32]
    return _store() / f"{name}.json"


def recorded(root: Path) -> dict[str, Any] | None:
    """What `uvslurm trust` recorded for `root`, if the record is the user's own."""
    record = _record(root)
    if not record.is_file():
        return None
    for p in (record, record.parent):
        if safety.why_not_private(p):
            return None
    try:
        data = json.loads(record.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("project") == str(root) else None


def is_trusted(root: Path, values: Mapping[str, Any] | None = None) -> bool:
    """Is the project at `root` trusted (with exactly these code-running `values`)?"""
    data = recorded(root)
    if data is None:
        return False
    return values is None or data.get("digest") == digest(root, values)


def allow(root: Path, values: Mapping[str, Any]) -> Path:
    """Record `root` and its code-running `values` as trusted."""
    store = _store()
    store.mkdir(parents=True, exist_ok=True, mode=0o700)
    why = safety.why_not_private(store)
    if why:
        raise UvslurmError(f"cannot keep trust records in {store}: {why}", "chmod go-w it")
    record = _record(root)
    tmp = record.with_name(f".{record.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"project": str(root), "digest": digest(root, values), "code": values}, f)
    os.replace(tmp, record)
    return record


def revoke(root: Path) -> bool:
    record = _record(root)
    if not record.exists():
        return False
    record.unlink()
    return True
