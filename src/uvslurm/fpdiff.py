"""Say in plain words why two fingerprints differ, and find the venv a new key replaces."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from uvslurm import depot, schema
from uvslurm.errors import UvslurmError


def load_other(ref: str) -> dict[str, str]:
    """Components from a saved `uvslurm fingerprint --json` or from a venv's ready marker."""
    path = Path(ref)
    marker = path / depot.MARKER
    try:
        if marker.is_file():
            return depot.parse_marker(marker.read_text(), path.parent.name).components
        if path.is_file():
            data = json.loads(path.read_text())
            comps_in = data["components"] if isinstance(data, dict) else None
            if not isinstance(comps_in, dict):
                raise ValueError("its 'components' is not a table of names and values")
            return {str(k): str(v) for k, v in comps_in.items()}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UvslurmError(f"cannot read a fingerprint from {ref}: {e}") from e
    raise UvslurmError(
        f"{ref}: not a saved `uvslurm fingerprint --json` file nor a venv of the depot",
        "pass a file or a venv directory (see `uvslurm depot list`)",
    )


def _list_change(old: str, new: str, sep: str) -> str:
    a = [x for x in old.split(sep) if x]
    b = [x for x in new.split(sep) if x]
    gone = [x for x in a if x not in b]
    came = [x for x in b if x not in a]
    if len(gone) == len(came) == 1:
        return f"{gone[0]} → {came[0]}"
    parts = [f"-{x}" for x in gone] + [f"+{x}" for x in came]
    return " ".join(parts) or f"{old or '(none)'} → {new or '(none)'}"


def _cpu_fields(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    key = ""
    for word in text.split():
        if "=" in word:
            key, _, value = word.partition("=")
            fields[key] = value
        elif key:
            fields[key] += " " + word
    return fields


_CPU_FIELDS = ("microarch", "vendor_id", "cpu_family", "model")


def latest_sibling(venv: str) -> tuple[Path, dict[str, str]] | None:
    """The most recently used other venv of the same project in the depot, with its components:
    what a job got before this fingerprint's key (None when there is none)."""
    path = Path(venv)
    found = [v for v in depot.venvs(path.parent.parent)
             if v.path.parent == path.parent and v.path != path and v.kind == "job"]  # fmt: skip
    if not found:
        return None
    best = max(found, key=lambda v: v.last_used)
    return best.path, best.components


def explain(other: Mapping[str, str], here: Mapping[str, str]) -> list[str]:
    """One line per differing component, from `other` to `here`."""
    lines = []
    for key in [*other, *(k for k in here if k not in other)]:
        a, b = other.get(key, ""), here.get(key, "")
        if a == b:
            continue
        label = schema.COMPONENTS[key][0] if key in schema.COMPONENTS else key
        if key in ("modules", "modulefiles"):
            lines.append(f"{label}: {_list_change(a, b, ':')}")
        elif key == "cpu":
            fa, fb = _cpu_fields(a), _cpu_fields(b)
            # microarch since issue 17; the others in fingerprints made before it
            changes = [f"{k} {fa.get(k, '-')} → {fb.get(k, '-')}" for k in _CPU_FIELDS if fa.get(k) != fb.get(k)]  # fmt: skip
            flags = _list_change(fa.get("flags", ""), fb.get("flags", ""), " ")
            if fa.get("flags") != fb.get("flags"):
                changes.append(f"flags {flags}")
            lines.append(f"{label}: {'; '.join(changes) or 'changed'}")
        elif key.startswith("env."):
            lines.append(f"${key[4:]}: {a or '(unset)'} → {b or '(unset)'}")
        else:
            lines.append(f"{label}: {a or '(none)'} → {b or '(none)'}")
    return lines
