"""sbatch's option vocabulary and validation of option values. Pure.

The vocabulary is the site's own: `parse_help` reads what the installed `sbatch --help` lists
(`slurm.site_options` runs it, once per sbatch, and installs the result with `use_site`).
simple-slurm's list is only the fallback where there is no sbatch (a laptop's `--dry-run`)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from functools import cache
from importlib.util import find_spec
from pathlib import Path
from typing import NamedTuple

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
# options whose value is optional, given only after '=' (sbatch 22.05's `--help`: `--nice[=value]`)
OPTIONAL = frozenset({"exclusive", "export", "nice", "propagate"})
# sbatch options uvslurm drives itself (or that would replace the script it renders)
RESERVED = frozenset({"wait", "parsable", "test-only", "wrap", "batch", "help", "usage", "version"})
# what to say instead of "unknown option" when one of RESERVED is given
RESERVED_HINTS = {
    "wrap": "uvslurm writes the job script itself: use `uvslurm submit -- CMD ARGS...`",
    "test-only": "use --dry-run to see the job script without submitting it",
    "wait": "use `uvslurm submit --wait`",
    "parsable": "use `uvslurm submit --parsable`",
}


class Spec(NamedTuple):
    """One sbatch option: its short letter, whether it takes a value ("value"), none ("flag")
    or one only after '=' ("optional", e.g. `--exclusive[=user]`), and sbatch's own words."""

    short: str | None = None
    arity: str = "value"
    help: str = ""


_site: dict[str, Spec] | None = None


def use_site(specs: Mapping[str, Spec] | None) -> None:
    """Make `specs` (the site's `sbatch --help`, parsed) the vocabulary; None: simple-slurm's."""
    global _site
    _site = dict(specs) if specs else None


_loader: Callable[[], Mapping[str, Spec] | None] | None = None


def use_site_later(loader: Callable[[], Mapping[str, Spec] | None]) -> None:
    """Ask the site's sbatch (`loader` runs it) only when an option is not in the vocabulary
    in use: a valid submission, or a typo of a known option, never runs sbatch before it is
    submitted."""
    global _loader
    _loader = loader


def _one_slip(a: str, b: str) -> bool:
    """`a` is `b` with one letter changed, added, dropped, or two neighbours swapped."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) == 1 or (
            len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]]
            and a[diff[1]] == b[diff[0]]
        )  # fmt: skip
    short, long = sorted((a, b), key=len)
    return any(long[:i] + long[i + 1 :] == short for i in range(len(long)))


def consult_site(word: str = "", *, force: bool = False) -> bool:
    """Whether the site's vocabulary was loaded just now, for `word`, an option the vocabulary
    in use does not know (or for --help: `force`). A slip of one known option is a typo, refused
    without asking sbatch."""
    global _loader
    loader = _loader
    if _site is not None or loader is None:
        return False
    bare = word.lstrip("-")
    if not force and any(_one_slip(bare, n) for n in specs()):
        return False
    _loader = None
    use_site(loader())
    return _site is not None


def specs() -> dict[str, Spec]:
    return _site if _site is not None else simple_slurm_specs()


def from_site() -> bool:
    return _site is not None


# `  -a, --array=indexes   job array index values`, `      --hold   ...`,
# `  -B  --extra-node-info=S[:C[:T]]  ...` (sic: no comma), `      --nice[=value]  ...`
_HELP_LINE = (
    r"^ {1,8}(?:-(?P<short>[A-Za-z]),? +)?--(?P<long>[A-Za-z][A-Za-z0-9-]*)"
    r"(?P<eq>\[=|=| +<)?(?P<rest>.*)$"
)


def parse_help(text: str) -> dict[str, Spec]:
    """`sbatch --help` -> {long name: Spec}. Continuation lines (deeper indented, no option of
    their own) extend the description of the option above them."""
    out: dict[str, Spec] = {}
    last = ""
    for line in text.splitlines():
        m = re.match(_HELP_LINE, line)
        if m:
            long, eq = m.group("long"), m.group("eq") or ""
            arity = "optional" if eq == "[=" else "value" if eq else "flag"
            # the description starts after the value's placeholder and two spaces
            words = re.split(r" {2,}", m.group("rest").strip(), maxsplit=1)
            if len(words) == 1 and eq:  # `--cpu-freq=min[-max[:gov]] requested cpu ...`
                words = words[0].split(" ", 1)
            desc = words[1] if len(words) > 1 else ("" if eq else words[0])
            if long in out:  # `--exclusive[=user]` and `--exclusive[=mcs]`: one option
                last = ""
                continue
            last = long
            if long not in RESERVED:
                out[long] = Spec(m.group("short"), arity, desc.strip())
        elif last and line.startswith(" " * 20) and line.strip() and last in out:
            s = out[last]
            out[last] = Spec(s.short, s.arity, f"{s.help} {line.strip()}".strip())
        else:
            last = ""
    return out


@cache
def simple_slurm_specs() -> dict[str, Spec]:
    """Long option name (with dashes) -> Spec, from simple-slurm's argument list.

    Read as a data file: importing simple_slurm costs ~40 ms of start-up and we only need names.
    """
    spec = find_spec("simple_slurm")
    locations = list(spec.submodule_search_locations or []) if spec else []
    if not locations:
        raise UsageError("simple-slurm is not installed", "reinstall uvslurm")
    text = (Path(locations[0]) / "arguments.txt").read_text()
    vocab: dict[str, Spec] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        long, _, short = line.strip().partition(",")
        name = long.replace("_", "-")
        if name not in RESERVED:
            arity = "optional" if name in OPTIONAL else "flag" if name in FLAGS else "value"
            vocab[name] = Spec(short or None, arity)
    return vocab


def vocabulary() -> dict[str, str | None]:
    """Long option name (with dashes) -> short letter, of the vocabulary in use."""
    return {name: spec.short for name, spec in specs().items()}


def is_flag(name: str) -> bool:
    """Whether `--name` alone is complete (a flag, or an option whose value is optional)."""
    spec = specs().get(name)
    return spec is not None and spec.arity != "value"


def short_map() -> dict[str, str]:
    return {s: name for name, s in vocabulary().items() if s}


def closest(word: str, names: Iterable[str], cutoff: float = 0.75) -> str:
    """The name in `names` closest to `word`, never `word` itself, or "". The cutoff is high:
    a wrong suggestion (`--wrap` -> `--wait`) misleads more than none."""
    others = sorted(set(names) - {word})
    # an abbreviation (`--ac`): the shortest name it begins
    longer = sorted((n for n in others if n.startswith(word) and len(word) > 3), key=len)
    if longer:
        return longer[0]
    import difflib  # only for a mistake: `submit --dry-run` has a 100 ms budget

    match = difflib.get_close_matches(word, others, n=1, cutoff=cutoff)
    return match[0] if match else ""


def closest_option(word: str) -> str:
    return closest(word, [f"--{n}" for n in vocabulary()])


# patterns as text, compiled where first used (re keeps them): compiling them all cost every
# dry run ~1 ms, which validates a few options or none
_TIME = (
    r"^(?:\d+|\d+:\d{1,2}|\d+:\d{1,2}:\d{1,2}|\d+-\d+|\d+-\d+:\d{1,2}|\d+-\d+:\d{1,2}:\d{1,2}"
    r"|UNLIMITED|INFINITE|unlimited|infinite)$"
)
_RANGE = r"\d+(?:-\d+(?::\d+)?)?"
_ARRAY = rf"^{_RANGE}(?:,{_RANGE})*(?:%\d+)?$"
_MEM = r"^\d+(?:\.\d+)?[KMGTkmgt]?[Bb]?$"
_NODES = r"^\d+(?:-\d+)?$"
_INT = r"^\d+$"
_GPUS = r"^(?:[A-Za-z0-9_.-]+:)?\d+$"
# acct_gather profiling (sbatch --profile): all, none, or a list of the kinds
_PROFILE = r"(?i)^(?:all|none|(?:energy|lustre|network|task)(?:,(?:energy|lustre|network|task))*)$"
PROFILE_HINT = (
    "sbatch's --profile (acct_gather profiling) takes all, none, or energy,lustre,network,task;"
    " a uvslurm profile is chosen with --uvslurm-profile NAME"
)

_CHECKS: dict[str, tuple[str, str]] = {
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
    "gpus": (_GPUS, "use a count, or TYPE:COUNT, e.g. 2 or a100:2"),
    "gpus-per-node": (_GPUS, "use a count, or TYPE:COUNT, e.g. 2 or a100:2"),
    "gpus-per-task": (_GPUS, "use a count, or TYPE:COUNT, e.g. 1 or a100:1"),
    "profile": (_PROFILE, PROFILE_HINT),
}


def _semantic(name: str, value: str) -> str:
    """What the patterns cannot say: a range that counts down, a count of zero. "" if fine."""
    if name == "array":
        for part in value.split("%")[0].split(","):
            lo, _, hi = part.split(":")[0].partition("-")
            if hi and int(hi) < int(lo):
                return f"the range {part} counts down; write it {hi}-{lo}"
    # (--gpus=0 is meaningful: it overrides a script's GPU request)
    if name in ("nodes", "ntasks", "cpus-per-task", "ntasks-per-node"):
        counts = re.findall(r"\d+", value)
        if counts and int(counts[0]) == 0:
            return "a count of 0 asks for nothing; use 1 or more"
        if name == "nodes" and len(counts) == 2 and int(counts[1]) < int(counts[0]):
            return f"the range {value} counts down; write it {counts[1]}-{counts[0]}"
    return ""


def canonical(name: str) -> str:
    """'--time', 'time', 't', '-t' or 'time_min' -> the long dashed name; UsageError if unknown."""
    bare = name.lstrip("-").replace("_", "-")
    if len(bare) == 1 and name != bare:
        long = short_map().get(bare)
        if long:
            return long
    elif bare in vocabulary():
        return bare
    if bare not in RESERVED and consult_site(bare):
        return canonical(name)
    if bare in RESERVED:
        raise UsageError(
            f"sbatch option '{name}' cannot be used with uvslurm",
            RESERVED_HINTS.get(bare, "uvslurm passes it to sbatch itself where it applies"),
        )
    hint = closest_option("--" + bare)
    # a slip of a known option is refused without asking the site's sbatch (consult_site)
    where = (
        " (this site's sbatch does not know it)" if from_site()
        else "" if _loader is not None
        else " (simple-slurm's list does not know it)"
    )  # fmt: skip
    raise UsageError(
        f"unknown sbatch option '{name}'{where}",
        f"did you mean '{hint}'?" if hint else "see `sbatch --help`",
    )


# control characters (newline, tab, escape, NUL), line and paragraph separators, lone surrogates
# (undecodable file names): none can stand in an #SBATCH line as one value
_UNSAFE = frozenset({"Cc", "Zl", "Zp", "Cs"})


def validate(name: str, value: str | bool) -> str | bool:
    """Check one option's value; returns it normalised (str, or True for a flag)."""
    if is_flag(name):
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
    if check and not re.match(check[0], value):
        raise UsageError(f"--{name}: invalid value '{value}'", check[1])
    why = _semantic(name, value) if check else ""
    if why:
        raise UsageError(f"--{name}: invalid value '{value}'", why)
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
            if is_flag(long):
                out[long] = validate(long, value) if eq else True
                continue
            if not eq:
                value = next(it, "")
        else:
            long = canonical(tok[:2])
            if is_flag(long):
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
