"""sbatch option vocabulary (from simple-slurm) and validation of option values. Pure."""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Iterable, Mapping
from functools import cache
from importlib.util import find_spec
from pathlib import Path

from uvslurm.errors import UsageError

# Options that take no value. simple-slurm's help file is misaligned after `parsable`, so the
# arity of these is kept here rather than derived from it.
FLAGS = frozenset(
    {
        "contiguous", "exclusive", "hold", "ignore-pbs", "no-requeue", "overcommit",
        "oversubscribe", "quiet", "reboot", "requeue", "spread-job", "use-min-nodes",
        "verbose", "wait-all-nodes", "no-kill", "get-user-env",
    }
)  # fmt: skip
# sbatch options uvslurm drives itself (or that would replace the script it renders)
RESERVED = frozenset({"wait", "parsable", "test-only", "wrap", "batch", "help", "usage"})


@cache
def vocabulary() -> dict[str, str | None]:
    """Long option name (with dashes) -> short letter, from simple-slurm's argument list.

    Read as a data file: importing simple_slurm costs ~40 ms of start-up and we only need names.
    """
    spec = find_spec("simple_slurm")
    locations = list(spec.submodule_search_locations or []) if spec else []
    if not locations:
        raise UsageError("simple-slurm is not installed", "reinstall uvslurm")
    text = (Path(locations[0]) / "arguments.txt").read_text()
    vocab: dict[str, str | None] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        long, _, short = line.strip().partition(",")
        name = long.replace("_", "-")
        if name not in RESERVED:
            vocab[name] = short or None
    return vocab


def short_map() -> dict[str, str]:
    return {s: name for name, s in vocabulary().items() if s}


def closest_option(word: str) -> str:
    names = [f"--{n}" for n in vocabulary()]
    match = difflib.get_close_matches(word, names, n=1, cutoff=0.6)
    return match[0] if match else ""


_TIME = re.compile(
    r"^(?:\d+|\d+:\d{1,2}|\d+:\d{1,2}:\d{1,2}|\d+-\d+|\d+-\d+:\d{1,2}|\d+-\d+:\d{1,2}:\d{1,2}"
    r"|UNLIMITED|INFINITE|unlimited|infinite)$"
)
_RANGE = r"\d+(?:-\d+(?::\d+)?)?"
_ARRAY = re.compile(rf"^{_RANGE}(?:,{_RANGE})*(?:%\d+)?$")
_MEM = re.compile(r"^\d+(?:\.\d+)?[KMGTkmgt]?[Bb]?$")
_NODES = re.compile(r"^\d+(?:-\d+)?$")
_INT = re.compile(r"^\d+$")

_CHECKS: dict[str, tuple[re.Pattern[str], str]] = {
    "time": (_TIME, "use minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS"),
    "time-min": (_TIME, "use minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS"),
    "array": (_ARRAY, "use e.g. 0-15, 1,3,5, 0-99:10 or 0-15%4"),
    "mem": (_MEM, "use a number with an optional K, M, G or T suffix, e.g. 16G"),
    "mem-per-cpu": (_MEM, "use a number with an optional K, M, G or T suffix, e.g. 4G"),
    "mem-per-gpu": (_MEM, "use a number with an optional K, M, G or T suffix, e.g. 4G"),
    "nodes": (_NODES, "use a count or a range, e.g. 2 or 2-4"),
    "ntasks": (_INT, "use a whole number"),
    "cpus-per-task": (_INT, "use a whole number"),
    "ntasks-per-node": (_INT, "use a whole number"),
}


def canonical(name: str) -> str:
    """'--time', 'time', 't', '-t' or 'time_min' -> the long dashed name; UsageError if unknown."""
    bare = name.lstrip("-").replace("_", "-")
    if len(bare) == 1 and name != bare:
        long = short_map().get(bare)
        if long:
            return long
    elif bare in vocabulary():
        return bare
    hint = closest_option("--" + bare)
    raise UsageError(
        f"unknown sbatch option '{name}'",
        f"did you mean '{hint}'?" if hint else "see `man sbatch`, or pass it with --sbatch-arg",
    )


# control characters (newline, tab, escape, NUL), line and paragraph separators, lone surrogates
# (undecodable file names): none can stand in an #SBATCH line as one value
_UNSAFE = frozenset({"Cc", "Zl", "Zp", "Cs"})


def validate(name: str, value: str | bool) -> str | bool:
    """Check one option's value; returns it normalised (str, or True for a flag)."""
    if name in FLAGS:
        if value is True or value == "" or value is None:
            return True
        if isinstance(value, str):
            return value
        raise UsageError(f"--{name} takes no value here")
    if isinstance(value, bool):
        raise UsageError(f"--{name} needs a value")
    value = str(value)
    if value == "" or any(unicodedata.category(c) in _UNSAFE for c in value):
        raise UsageError(
            f"--{name}: invalid value {value!r}",
            "no empty value, newline or other control character",
        )
    check = _CHECKS.get(name)
    if check and not check[0].match(value):
        raise UsageError(f"--{name}: invalid value '{value}'", check[1])
    return value


def normalize(options: Mapping[str, object]) -> dict[str, str | bool]:
    """Config tables (`time = "1:00:00"`, `exclusive = true`, `cpus_per_task = 4`) -> options."""
    out: dict[str, str | bool] = {}
    for key, raw in options.items():
        name = canonical(key)
        if raw is False:
            continue
        value: str | bool = raw if raw is True else str(raw)
        out[name] = validate(name, value)
    return out


def parse_directive_args(tokens: Iterable[str]) -> dict[str, str | bool]:
    """Tokens of `#SBATCH` lines or `--sbatch-arg` values -> options (names canonical)."""
    out: dict[str, str | bool] = {}
    it = iter(tokens)
    for tok in it:
        if not tok.startswith("-"):
            raise UsageError(f"unexpected sbatch argument '{tok}'")
        if tok.startswith("--"):
            name, eq, value = tok[2:].partition("=")
            long = canonical("--" + name)
            if long in FLAGS:
                out[long] = value if eq else True
                continue
            if not eq:
                value = next(it, "")
        else:
            long = canonical(tok[:2])
            if long in FLAGS:
                out[long] = True
                continue
            value = tok[2:] or next(it, "")
        out[long] = validate(long, value)
    return out


def parse_directive_line(line: str) -> dict[str, str | bool]:
    """One `#SBATCH ...` line (sbatch's own parser stops at a '#' comment after the options)."""
    body = line.split("#SBATCH", 1)[1]
    return parse_directive_args(directive_tokens(body, line))


def directive_tokens(body: str, line: str = "") -> list[str]:
    """The arguments of one #SBATCH line as sbatch itself splits them (sbatch/opt.c,
    _get_argument): whitespace separates, '"' or '\'' quote up to the same character, '\\'
    escapes the next character (inside quotes too), an unquoted '#' ends the line."""
    tokens: list[str] = []
    current: list[str] | None = None
    quote, escaped = "", False
    for c in body:
        if escaped:
            escaped = False
        elif c == "\\":
            escaped = True
            current = current if current is not None else []
            continue
        elif quote:
            if c == quote:
                quote = ""
                continue
        elif c in "\"'":
            quote = c
            current = current if current is not None else []
            continue
        elif c == "#":
            break
        elif c in " \t\n\v\f\r":  # C's isspace() on the line's bytes, not Unicode's
            if current is not None:
                tokens.append("".join(current))
                current = None
            continue
        current = current if current is not None else []
        current.append(c)
    if quote:
        raise UsageError(f"cannot parse '{(line or body).strip()}': unmatched {quote}")
    if current is not None:
        tokens.append("".join(current))
    return tokens


# characters Slurm's #SBATCH tokenizer treats specially outside quotes: whitespace ends the
# argument, an unquoted '#' starts a comment, '"' and '\'' open quotes, '\\' escapes
_SPECIAL = frozenset(" \t\"'#\\")


def quote_directive(text: str) -> str:
    """`text` as sbatch's #SBATCH tokenizer (sbatch/opt.c, _get_argument) reads it back verbatim:
    inside double quotes, with '\\' and '"' escaped by a backslash (the tokenizer honours the
    escape inside quotes too). Plain values stay as they are, for the reader."""
    if not any(c in _SPECIAL for c in text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render(name: str, value: str | bool) -> str:
    """One `#SBATCH` line (values were validated: no newline or control character)."""
    if value is True:
        return f"#SBATCH --{name}"
    return f"#SBATCH --{name}={quote_directive(str(value))}"
