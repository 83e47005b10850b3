"""Configuration: merge layers (defaults < site < user < project < env < CLI) with provenance.

Pure: every function here takes plain mappings and returns values; reading files and the
environment happens in `sources.py`.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from uvslurm.errors import UvslurmError

# scalar keys, and the environment variable that sets each
ENV_VARS = {
    "depot": "UVSLURM_DEPOT",
    "node-local": "UVSLURM_NODE_LOCAL",
    "offline": "UVSLURM_OFFLINE",
    "uv": "UVSLURM_UV",
    "image": "UVSLURM_IMAGE",
    "rebuild": "UVSLURM_REBUILD",
}
SCALARS = ("depot", "node-local", "offline", "uv", "image", "rebuild")
# tables merged key by key: a project's `sbatch.time` does not drop the site's `sbatch.partition`
TABLES = ("sbatch", "fingerprint")
FINGERPRINT_KEYS = ("env", "commands", "modules")
DEFAULTS: dict[str, Any] = {
    "node-local": "auto",
    "offline": "auto",
    "image": "none",
    "rebuild": [],
    "fingerprint.env": [],
    "fingerprint.commands": [],
    "fingerprint.modules": True,
}


@dataclass(frozen=True)
class Setting:
    value: Any
    source: str


@dataclass(frozen=True)
class Config:
    """Effective settings, each with the layer it came from."""

    settings: Mapping[str, Setting]

    def get(self, key: str, default: Any = None) -> Any:
        s = self.settings.get(key)
        return default if s is None else s.value

    def table(self, prefix: str) -> dict[str, Any]:
        """Entries under `prefix.` (e.g. the sbatch defaults), without the prefix."""
        p = prefix + "."
        return {k[len(p) :]: s.value for k, s in self.settings.items() if k.startswith(p)}

    def profile_names(self) -> list[str]:
        return sorted({k.split(".")[1] for k in self.settings if k.startswith("profiles.")})


def _closest(word: str, choices: Iterable[str]) -> str:
    match = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean '{match[0]}'?)" if match else ""


def flatten(layer: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Validate one layer's raw table and flatten it to dotted keys."""
    out: dict[str, Any] = {}
    known = (*SCALARS, *TABLES, "profiles")
    for key, value in layer.items():
        if key not in known:
            raise UvslurmError(f"{source}: unknown setting '{key}'{_closest(key, known)}")
        if key in TABLES or key == "profiles":
            if not isinstance(value, Mapping):
                raise UvslurmError(f"{source}: '{key}' must be a table")
            if key == "profiles":
                for name, opts in value.items():
                    if not isinstance(opts, Mapping):
                        raise UvslurmError(f"{source}: 'profiles.{name}' must be a table")
                    for k, v in opts.items():
                        out[f"profiles.{name}.{k}"] = v
                continue
            if key == "fingerprint":
                for k in value:
                    if k not in FINGERPRINT_KEYS:
                        raise UvslurmError(
                            f"{source}: unknown setting 'fingerprint.{k}'"
                            f"{_closest(k, FINGERPRINT_KEYS)}"
                        )
            for k, v in value.items():
                out[f"{key}.{k}"] = v
        else:
            out[key] = value
    for key, value in out.items():
        _check_type(key, value, source)
    return out


def _check_type(key: str, value: Any, source: str) -> None:
    if key in ("depot", "uv", "image", "node-local") and not isinstance(value, str):
        raise UvslurmError(f"{source}: '{key}' must be a string")
    if key == "node-local" and value not in ("auto", "never") and not value.startswith("/"):
        raise UvslurmError(f"{source}: node-local must be 'auto', 'never' or an absolute path")
    # (1 == True in Python: an integer must not pass for a boolean)
    if key == "offline" and not (
        isinstance(value, bool) or (isinstance(value, str) and value in ("auto", "true", "false"))
    ):
        raise UvslurmError(f"{source}: offline must be 'auto', true or false")
    if key == "image" and value not in ("none", "auto", "tar.zst", "squashfs"):
        raise UvslurmError(f"{source}: image must be 'none', 'auto', 'tar.zst' or 'squashfs'")
    if key in ("rebuild", "fingerprint.env", "fingerprint.commands") and not (
        isinstance(value, list) and all(isinstance(v, str) for v in value)
    ):
        raise UvslurmError(f"{source}: '{key}' must be a list of strings")
    if key == "fingerprint.modules" and not isinstance(value, bool):
        raise UvslurmError(f"{source}: 'fingerprint.modules' must be true or false")


def env_layer(environ: Mapping[str, str]) -> dict[str, Any]:
    """The UVSLURM_* variables as a raw layer."""
    layer: dict[str, Any] = {}
    for key, var in ENV_VARS.items():
        raw = environ.get(var)
        if raw is None or raw == "":
            continue
        if key == "rebuild":
            layer[key] = [p.strip() for p in raw.split(",") if p.strip()]
        elif key == "offline" and raw.lower() in ("true", "false", "1", "0", "yes", "no"):
            layer[key] = raw.lower() in ("true", "1", "yes")
        else:
            layer[key] = raw
    return layer


def merge(layers: Iterable[tuple[str, Mapping[str, Any]]]) -> Config:
    """Merge raw layers, lowest precedence first; the built-in defaults come before them all."""
    settings: dict[str, Setting] = {k: Setting(v, "default") for k, v in DEFAULTS.items()}
    for source, layer in layers:
        for key, value in flatten(layer, source).items():
            if key == "offline" and isinstance(value, str) and value != "auto":
                value = value == "true"
            settings[key] = Setting(value, source)
    return Config(settings)


_VAR = re.compile(r"\$(?:\{(?P<braced>[^}]*)\}|(?P<name>[A-Za-z_][A-Za-z0-9_]*))")


def expand_path(key: str, value: str, source: str, environ: Mapping[str, str]) -> str:
    """A path setting with `~` and `$VAR`/`${VAR}` expanded. An unset or empty variable, or a
    path that is still relative, is an error naming the setting and where it came from: a
    literal `$UNSET` directory inside the project, or a path relative to wherever a job
    starts, is never what was meant."""

    def var(m: re.Match[str]) -> str:
        name = m.group("braced") if m.group("braced") is not None else m.group("name")
        if not environ.get(name):
            raise UvslurmError(
                f"{key} = {value!r} (from {source}): ${name} is not set",
                f"set {name}, or write the path out in {source}",
            )
        return environ[name]

    # a value from the environment or the command line was expanded by the shell already: a
    # '$' left in it is part of the path
    literal = source in ("environment", "command line")
    expanded = value if literal else _VAR.sub(var, value)
    if expanded.startswith("~") and not literal:
        expanded = os.path.expanduser(expanded)
    if not expanded.startswith("/"):
        raise UvslurmError(
            f"{key} = {value!r} (from {source}) is not an absolute path",
            f"write it as an absolute path in {source}",
        )
    return os.path.normpath(expanded)
