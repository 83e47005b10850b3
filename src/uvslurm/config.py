"""Configuration: merge layers (defaults < site < user < project < env < CLI) with provenance.

Pure: every function here takes plain mappings and returns values; reading files and the
environment happens in `sources.py`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from uvslurm.errors import ConfigError
from uvslurm.schema import SETTINGS, SLURM_TABLES

# derived from the declaration in schema.py
ENV_VARS = {k: s.prolog for k, s in SETTINGS.items() if s.env}
DEFAULTS: dict[str, Any] = {k: s.default for k, s in SETTINGS.items() if s.default is not None}
# top-level names: settings, tables of settings (fingerprint), tables of Slurm options
_KNOWN = (*dict.fromkeys(k.split(".")[0] for k in SETTINGS), *SLURM_TABLES)


class Setting(NamedTuple):
    value: Any
    source: str


class Config(NamedTuple):
    """Effective settings, each with the layer it came from."""

    settings: Mapping[str, Setting]

    def get(self, key: str, default: Any = None) -> Any:
        """The value of `key`; when it is unset, `default`, else its declared default."""
        s = self.settings.get(key)
        if s is not None:
            return s.value
        return DEFAULTS.get(key) if default is None else default

    def table(self, prefix: str) -> dict[str, Any]:
        """Entries under `prefix.` (e.g. the sbatch defaults), without the prefix."""
        p = prefix + "."
        return {k[len(p) :]: s.value for k, s in self.settings.items() if k.startswith(p)}

    def profile_names(self) -> list[str]:
        return sorted({k.split(".")[1] for k in self.settings if k.startswith("profiles.")})


def _closest(word: str, choices: Iterable[str]) -> str:
    import difflib  # only for a mistake: `submit --dry-run` has a 100 ms budget

    match = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean '{match[0]}'?)" if match else ""


def flatten(layer: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Validate one layer's raw table and flatten it to dotted keys."""
    out: dict[str, Any] = {}
    for key, value in layer.items():
        if key not in _KNOWN:
            raise ConfigError(f"{source}: unknown setting '{key}'{_closest(key, _KNOWN)}")
        if key in SETTINGS:
            out[key] = value
            continue
        if not isinstance(value, Mapping):
            raise ConfigError(f"{source}: '{key}' must be a table")
        for k, v in value.items():
            if key == "profiles":
                if not isinstance(v, Mapping):
                    raise ConfigError(f"{source}: 'profiles.{k}' must be a table")
                out.update({f"profiles.{k}.{o}": x for o, x in v.items()})
            elif key not in SLURM_TABLES and f"{key}.{k}" not in SETTINGS:
                names = [n[len(key) + 1 :] for n in SETTINGS if n.startswith(key + ".")]
                raise ConfigError(f"{source}: unknown setting '{key}.{k}'{_closest(k, names)}")
            else:
                out[f"{key}.{k}"] = v
    for key, value in out.items():
        if key in SETTINGS:
            try:
                out[key] = SETTINGS[key].check(key, value)
            except ValueError as e:
                raise ConfigError(f"{source}: {e}") from None
    return out


def env_layer(environ: Mapping[str, str]) -> dict[str, Any]:
    """The UVSLURM_* variables as a raw layer (the settings they set are not in tables)."""
    return {k: SETTINGS[k].parse(environ[v]) for k, v in ENV_VARS.items() if environ.get(v)}


def merge(layers: Iterable[tuple[str, Mapping[str, Any]]]) -> Config:
    """Merge raw layers, lowest precedence first; the built-in defaults come before them all."""
    settings: dict[str, Setting] = {k: Setting(v, "default") for k, v in DEFAULTS.items()}
    for source, layer in layers:
        for key, value in flatten(layer, source).items():
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
            raise ConfigError(
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
        raise ConfigError(
            f"{key} = {value!r} (from {source}) is not an absolute path",
            f"write it as an absolute path in {source}",
        )
    return os.path.normpath(expanded)
