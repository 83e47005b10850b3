"""Packages rebuilt per fingerprint (`rebuild = ["mpi4py"]`): find their locked sources at submit
time and make them readable on compute nodes, which build each one once per fingerprint.

uv caches a build by source, not by the loaded modules, and builds in a shared unpacked source
tree where setuptools reuses stale objects; so the prolog builds these wheels itself, from a
pristine copy of the locked source, into <depot>/.wheels/<name>-<version>/<fingerprint>/.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from uvslurm.errors import UvslurmError

# field and record separators of UVSLURM_REBUILD_SOURCES (no path can sensibly contain them)
FS, RS = "\x1f", "\x1e"


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


class Locked(NamedTuple):
    """Where uv.lock says a package comes from."""

    name: str
    version: str
    kind: str  # "registry", "archive" (a local sdist file) or "directory"
    location: str  # URL for registry, absolute path otherwise
    sha256: str = ""


def locate(lock: Mapping[str, Any], names: Iterable[str], project: Path) -> list[Locked]:
    """The locked source of each package to rebuild. Pure."""
    by_name = {normalize(p.get("name", "")): p for p in lock.get("package", [])}
    out: list[Locked] = []
    for raw in names:
        pkg = by_name.get(normalize(raw))
        if pkg is None:
            raise UvslurmError(
                f"rebuild: '{raw}' is not in uv.lock", "add it to the project or fix the name"
            )
        name, version, source = pkg["name"], pkg.get("version", ""), pkg.get("source", {})
        sdist = pkg.get("sdist", {})
        digest = str(sdist.get("hash", "")).removeprefix("sha256:")
        if "registry" in source:
            if "url" not in sdist:
                raise UvslurmError(
                    f"rebuild: {name} {version} has no source distribution on its index",
                    "it cannot be built from source; remove it from rebuild",
                )
            out.append(Locked(name, version, "registry", sdist["url"], digest))
        elif "path" in source:
            path = (project / source["path"]).resolve()
            out.append(Locked(name, version, "archive", str(path), digest))
        elif "directory" in source or "editable" in source:
            path = (project / (source.get("directory") or source["editable"])).resolve()
            out.append(Locked(name, version, "directory", str(path)))
        else:
            kind = next(iter(source), "unknown")
            raise UvslurmError(
                f"rebuild: {name} comes from a {kind} source",
                "uvslurm rebuilds packages from an index, a local sdist or a local directory",
            )
    return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def local_sources(locked: Sequence[Locked], depot: Path) -> list[tuple[str, str, str, str]]:
    """(name, version, kind, path) as the nodes will read them: registry sdists at their place
    in <depot>/.sources/ (see `download`), local ones where they are. Pure."""
    out = []
    for item in locked:
        if item.kind == "registry":
            filename = item.location.rsplit("/", 1)[-1].split("#", 1)[0]
            path = depot / ".sources" / f"{item.sha256[:16] or 'nohash'}-{filename}"
            out.append((item.name, item.version, "archive", str(path)))
        else:
            out.append((item.name, item.version, item.kind, item.location))
    return out


def download(locked: Sequence[Locked], depot: Path) -> None:
    """Put registry sdists into <depot>/.sources/ (hash-checked), on the login node where the
    network is; check that local sources exist."""
    import tempfile
    import urllib.request  # 30 ms: only where something is downloaded

    for item, (_, _, _, path) in zip(locked, local_sources(locked, depot), strict=True):
        dest = Path(path)
        if item.kind != "registry":
            if not dest.exists():
                raise UvslurmError(f"rebuild: the source of {item.name} is missing: {path}")
            continue
        if dest.exists():
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".download-")
        try:
            with os.fdopen(fd, "wb") as f, urllib.request.urlopen(item.location) as r:
                shutil.copyfileobj(r, f)
            if item.sha256 and _sha256(Path(tmp)) != item.sha256:
                raise UvslurmError(
                    f"rebuild: the downloaded sdist of {item.name} does not match uv.lock"
                )
            os.replace(tmp, dest)
        except OSError as e:
            raise UvslurmError(f"rebuild: cannot download the sdist of {item.name}: {e}") from e
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)


def encode(sources: Iterable[tuple[str, str, str, str]]) -> str:
    """The prolog's UVSLURM_REBUILD_SOURCES: records of name, version, kind, path."""
    parts = []
    for fields in sources:
        if any(FS in f or RS in f for f in fields):
            raise UvslurmError(f"rebuild: unusable characters in {fields[3]!r}")
        parts.append(FS.join(fields) + RS)
    return "".join(parts)
