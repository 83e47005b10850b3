"""The contract between uvslurm and its prolog, declared once: the prolog's inputs (for a
setting also its config key, default, check, environment variable and docs), the fingerprint
components it prints, and the filesystems it counts as network ones. Pure. config.py,
`NodeSettings.environ()`, `uvslurm config`/`fingerprint` and fpdiff derive their tables from
here; tests/test_unit_schema.py checks the prolog and docs/reference against it (run as a
script, it prints the docs' tables). Not declared: UVSLURM_MODE (`environ`'s argument) and
UVSLURM_CMD (render.py).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import Any, NamedTuple

# a config value -> the value as stored; ValueError says what is wrong (the caller names where)
Check = Callable[[str, Any], Any]


def _typed(ok: Callable[[Any], bool], what: str) -> Check:
    def check(key: str, value: Any) -> Any:
        if not ok(value):
            raise ValueError(f"'{key}' must be {what}")
        return value

    return check


_string = _typed(lambda v: isinstance(v, str), "a string")
_strings = _typed(lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
                  "a list of strings")  # fmt: skip
# (1 == True in Python: an integer must not pass for a boolean)
_bool = _typed(lambda v: isinstance(v, bool), "true or false")


def _module_patterns(key: str, value: Any) -> Any:
    """Module names or shell patterns (`git`, `tmux/*`, `editor-*`): the prolog word-splits them."""
    for pattern in _strings(key, value):
        if not pattern or any(c.isspace() or c in "'\"\\$`" for c in pattern):
            raise ValueError(f"{key}: {pattern!r} is not a module name or pattern (no blanks, "
                             "quotes, backslashes, $ or `)")  # fmt: skip
    return value


def _one_of(*choices: str, path: bool = False) -> Check:
    """A string among `choices`, or with `path` an absolute path."""
    shown = [f"'{c}'" for c in choices] + (["an absolute path"] if path else [])

    def check(key: str, value: Any) -> Any:
        if _string(key, value) not in choices and not (path and value.startswith("/")):
            raise ValueError(f"{key} must be {', '.join(shown[:-1])} or {shown[-1]}")
        return value

    return check


def _auto_or_bool(key: str, value: Any) -> Any:
    """ "auto", "true" or "false", the one form NodeSettings and the prolog take: a TOML boolean
    becomes its string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value in ("auto", "true", "false"):
        return value
    raise ValueError(f"{key} must be 'auto', true or false")


def env_bool(raw: str) -> str:
    """UVSLURM_OFFLINE: 1/yes/true as "true", 0/no/false as "false" (any case), else as it is."""
    return {"true": "true", "1": "true", "yes": "true", "false": "false", "0": "false",
            "no": "false"}.get(raw.lower(), raw)  # fmt: skip


def env_list(raw: str) -> list[str]:
    """UVSLURM_REBUILD: comma-separated, blanks around names ignored."""
    return [p.strip() for p in raw.split(",") if p.strip()]


class Input(NamedTuple):
    """One variable the prolog reads and the NodeSettings attribute encoded into it; for a
    setting also its config key, check, default, and what the docs say of it."""

    prolog: str
    attr: str
    key: str = ""  # config key, dotted in tables ("" when it is no setting)
    check: Check = _string
    default: Any = None  # None: computed when unset (`shown` says how)
    env: bool = False  # the same variable sets it on the login node
    parse: Callable[[str], Any] = str  # the environment variable's text -> raw config value
    encode: Callable[[Any], str] = str  # the NodeSettings value -> the prolog variable's text
    kind: str = ""  # the docs' type column
    shown: str = ""  # the docs' default column for a computed default
    meaning: str = ""  # the docs' meaning, one line


# in the order the job script assigns them (tests/golden)
INPUTS = (
    Input("UVSLURM_PROJECT", "project"),
    Input("UVSLURM_PROJECT_ID", "project_id"),
    Input("UVSLURM_LOCK_HASH", "lock_hash"),
    Input("UVSLURM_LOCK_DIR", "lock_dir"),
    Input("UVSLURM_RECORD", "record"),
    Input("UVSLURM_SNAPSHOT", "snapshot"),
    Input("UVSLURM_UV", "uv", "uv", env=True, kind="string", shown="`uv` on PATH",
          meaning="the uv executable; its absolute path is recorded in the job script"),
    Input("UVSLURM_DEPOT", "depot", "depot", env=True, kind="path",
          shown="`$SCRATCH/uvslurm`, else the user cache dir",
          meaning="root for venvs; in files `~`, `$VAR` and `${VAR}` are expanded, from "
          "`UVSLURM_DEPOT` taken literally"),
    Input("UVSLURM_NODE_LOCAL", "node_local", "node-local", _one_of("auto", "never", path=True),
          "auto", env=True, kind='`"auto"`, `"never"`, path',
          meaning="where jobs run the venv from: node-local disk, or with `never` the depot"),
    Input("UVSLURM_OFFLINE", "offline", "offline", _auto_or_bool, "auto", env=True,
          parse=env_bool, kind='`"auto"`, `true`, `false`',
          meaning="`auto`: uv runs offline inside Slurm jobs (falling back to the network, with "
          "a warning, if the cache has a gap); `true`: always offline, a gap is an error"),
    Input("UVSLURM_PYTHON", "python"),
    Input("UVSLURM_SYNC_ARGS", "sync_args", encode=" ".join),
    Input("UVSLURM_FP_ENV", "fingerprint_env", "fingerprint.env", _strings, [],
          encode=" ".join, kind="list of names",
          meaning="extra environment variables that belong in the fingerprint"),
    Input("UVSLURM_FP_COMMANDS", "fingerprint_commands", "fingerprint.commands", _strings, [],
          encode=lambda cmds: "".join(c + "\x1e" for c in cmds), kind="list of commands",
          meaning='commands whose output belongs in the fingerprint (e.g. `"mpicc -show"`); '
          "each costs a process per job start"),
    Input("UVSLURM_FP_MODULES", "fingerprint_modules", "fingerprint.modules", _bool, True,
          encode=lambda on: "1" if on else "0", kind="bool",
          meaning="`false` leaves loaded modules out of the fingerprint"),
    Input("UVSLURM_FP_IGNORE", "fingerprint_ignore_modules", "fingerprint.ignore-modules",
          _module_patterns, [], encode=" ".join, kind="list of module names or patterns",
          meaning="loaded modules that can never change a venv (`git`, `tmux`, an editor): left "
          "out of the fingerprint, matched with and without their version (`git`, `git/2.*`); "
          "a site sets its defaults in the site file"),
    Input("UVSLURM_REBUILD", "rebuild", "rebuild", _strings, [], env=True, parse=env_list,
          encode=",".join, kind="list of package names",
          meaning="packages always built from source on the node, once per fingerprint, never "
          "installed under another (comma-separated in `UVSLURM_REBUILD`; see [the how-to]"
          "(../howto/mpi-and-compiled-packages.md))"),
    Input("UVSLURM_REBUILD_SOURCES", "rebuild_sources"),
    Input("UVSLURM_IMAGE", "image", "image", _one_of("none", "auto", "tar.zst", "squashfs"),
          "none", env=True, kind='`"none"`, `"squashfs"`, `"tar.zst"`, `"auto"`',
          meaning="also keep each depot venv as one file, which nodes mount or unpack instead "
          "of reading every file of the venv"),
    Input("UVSLURM_SCRIPT", "script"),
    Input("UVSLURM_PLATFORMS", "platforms", "platforms", _strings, [], encode=" ".join,
          kind="list of platforms",
          meaning="the platforms of compute nodes unlike the login node, as uv's "
          "`--python-platform` names them (e.g. `aarch64-manylinux_2_28`): `submit` fills uv's "
          "cache for each (default: one per other `Arch` that the partition's nodes report)"),
)  # fmt: skip
SETTINGS = {i.key: i for i in INPUTS if i.key}
# tables of Slurm options, any key inside: `sbatch`, and `profiles.NAME` for each profile
SLURM_TABLES = ("sbatch", "profiles")

# what the prolog prints, in its order: component -> (its name in `fingerprint --diff`, what it
# is for `fingerprint --explain`); it adds env.NAME (fingerprint.env) and cmd.COMMAND ones
COMPONENTS = {
    "modules": ("loaded modules", "loaded environment modules (resolved names, sorted)"),
    "modulefiles": ("modulefiles", "the modulefiles they came from (sorted)"),
    "arch": ("CPU architecture", "CPU architecture"),
    "cpu": ("CPU", "microarchitecture (archspec's name) and the feature flags compilers target"),
    "glibc": ("glibc", "C library version"),
    "os": ("OS", "operating system id and version"),
    "python": (
        "Python",
        "the interpreter uv builds the venv with: implementation, version, where it is installed",
    ),
    "uv": ("uv", "uv's minor version (what can change a venv's layout)"),
    "gpu": ("GPU", "NVIDIA driver (or none); with rebuild packages also the GPU models"),
    "sync": ("uv selection flags", "uv selection flags (extras, groups)"),
    "rebuild": ("rebuild packages", "packages built from source per fingerprint"),
}

# filesystem types (`stat -f -c %T`, /proc/mounts) the prolog never takes for node-local disk,
# as the shell patterns of its `_uvslurm_local_for`
NETWORK_FS = ("nfs*", "lustre", "gpfs", "beegfs", "cifs", "smb*", "fuse*", "ceph", "9p", "panfs",
              "wekafs")  # fmt: skip


def is_network(kind: str) -> bool:
    return any(fnmatch.fnmatchcase(kind, p) for p in NETWORK_FS)
