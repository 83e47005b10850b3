"""Command line: a thin argparse layer that dispatches to uvslurm.commands and maps errors to
exit codes (see docs/reference/exit-codes.md). Imports stay lazy: `submit --dry-run` has a
150 ms budget."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from uvslurm import __version__
from uvslurm.errors import (
    EXIT_INTERRUPTED,
    EXIT_UNEXPECTED,
    UsageError,
    UvslurmError,
)

# sbatch options whose names uvslurm uses for something else (pass them with --sbatch-arg):
# `--extra` is uv's (an optional dependency set), as in `uv run --extra`
OWN_NAMES = frozenset({"extra"})
# uvslurm's own options of `submit`: after the TARGET they go to the script, with a warning
SUBMIT_OWN = "uvslurm options"


class Parser(argparse.ArgumentParser):
    """argparse that raises UsageError (one line, closest valid option) instead of exiting."""

    argv: Sequence[str] = ()  # the command line being parsed, for the error's suggestion
    partial = False  # built for one command only (build_parser's `only`)
    lean = False  # without sbatch's options (build_parser's `lean`): parse again with them

    def error(self, message: str) -> NoReturn:
        if self.lean:
            raise _NeedsSbatch
        m = re.search(r"unrecognized arguments: (\S+)", message)
        if m:
            from uvslurm.sbatch_options import consult_site

            if consult_site(m.group(1).split("=", 1)[0]):
                raise _SiteLoaded
            # the suggestion looks through every command's options
            parser = self
            if self.partial:
                parser = build_parser()
                parser.argv = self.argv
            raise unknown_option(parser, self.argv, m.group(1).split("=", 1)[0])
        m = re.search(r"argument (COMMAND|ACTION): invalid choice: '([^']*)'", message)
        if m:
            choices = [
                str(c)
                for a in self._actions
                if isinstance(a, argparse._SubParsersAction)
                for c in a.choices
            ]
            what = "command" if m.group(1) == "COMMAND" else "action"
            from uvslurm.sbatch_options import closest

            match = closest(m.group(2), choices, cutoff=0.6)
            hint = f"did you mean '{match}'?" if match else f"choose one of: {', '.join(choices)}"
            raise UsageError(f"unknown {what} '{m.group(2)}'", hint)
        raise UsageError(message, f"see `{self.prog} --help`")


class _SiteLoaded(Exception):
    """The site's sbatch vocabulary was loaded while parsing: parse again with it."""


class _NeedsSbatch(Exception):
    """A command line the parser without sbatch's options cannot parse: parse it with them."""


def _command_path(
    parser: argparse.ArgumentParser, argv: Sequence[str]
) -> list[argparse.ArgumentParser]:
    """The parsers `argv` went through: uvslurm, then its command, then its action (depot rm)."""
    path = [parser]
    for word in argv:
        sub = next(
            (a for a in path[-1]._actions if isinstance(a, argparse._SubParsersAction)), None
        )
        if sub is None:
            break
        if word in sub.choices:
            path.append(sub.choices[word])
    return path


def unknown_option(parser: argparse.ArgumentParser, argv: Sequence[str], word: str) -> UsageError:
    """The error for an option the command does not have: its own closest option (never
    `word` itself), or where `word` does belong when another command has it."""
    from uvslurm.sbatch_options import RESERVED, RESERVED_HINTS, closest, vocabulary

    path = _command_path(parser, argv)
    here = path[-1]
    name = " ".join(p.prog.split()[-1] for p in path[1:]) or "uvslurm"
    own = _own_option_strings(here)
    known = set(own)
    if here.prog.endswith(" submit"):
        known |= {f"--{n}" for n in vocabulary()}
    bare = word.lstrip("-")
    if here.prog.endswith(" submit") and bare in RESERVED and bare in RESERVED_HINTS:
        return UsageError(
            f"sbatch option '{word}' cannot be used with uvslurm", RESERVED_HINTS[bare]
        )
    if word == "--profile" and not here.prog.endswith(" submit"):
        return UsageError(
            f"`uvslurm {name}` has no option '--profile'",
            "choose a [tool.uvslurm.profiles] entry with --uvslurm-profile NAME"
            if "--uvslurm-profile" in own
            else f"see `uvslurm {name} --help`",
        )
    match = closest(word, known)
    if match:
        return UsageError(
            f"unknown option '{word}' for `uvslurm {name}`", f"did you mean '{match}'?"
        )
    # the nearest command that has it: a sibling first (`depot rm --dry-run` -> `depot gc`,
    # not `submit`)
    family = path[-2].prog
    having = [p for p in _all_parsers(parser) if p is not here and word in _own_option_strings(p)]
    having.sort(key=lambda p: not p.prog.startswith(family + " "))
    if having:
        return UsageError(
            f"`uvslurm {name}` has no option '{word}' (`{having[0].prog}` has)",
            f"see `uvslurm {name} --help`",
        )
    return UsageError(
        f"unknown option '{word}' for `uvslurm {name}`", f"see `uvslurm {name} --help`"
    )


def _own_option_strings(parser: argparse.ArgumentParser) -> list[str]:
    return [s for a in parser._actions for s in a.option_strings if s.startswith("--")]


def _all_parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    out = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                out += _all_parsers(sub)
    return out


def _add_sbatch_options(p: argparse.ArgumentParser, lean: bool = False) -> None:
    from uvslurm.sbatch_options import from_site, specs

    where = "this site's `sbatch --help`" if from_site() else "simple-slurm (no sbatch here)"
    g = p.add_argument_group(
        "Slurm options",
        f"every sbatch option, as {where} lists them, validated before submission; "
        "`#SBATCH` lines in TARGET count too (see man sbatch). An option whose value is "
        "optional (--exclusive[=user]) takes it after '=', as sbatch does.",
    )
    for name, spec in [] if lean else sorted(specs().items()):
        if name in OWN_NAMES:
            continue
        flags = [f"--{name}"] + ([f"-{spec.short}"] if spec.short else [])
        dest = "sb_" + name.replace("-", "_")
        desc = (spec.help or "see man sbatch").replace("%", "%%")
        if spec.arity == "optional":
            # `--exclusive` or `--exclusive=user`; never the next word (_bare_optionals)
            g.add_argument(*flags, dest=dest, nargs="?", const=True, metavar="V", help=desc)
        elif spec.arity == "flag":
            g.add_argument(*flags, dest=dest, action="store_true", default=None, help=desc)
        else:
            g.add_argument(*flags, dest=dest, metavar="V", help=desc)
    g.add_argument(
        "--sbatch-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="pass ARG to sbatch as an #SBATCH option (repeatable), e.g. --sbatch-arg=--exclusive=user",
    )


def _add_uv_selection(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "uv selection (as uv's flags: forwarded to uv sync and uv run; part of the venv key)"
    )
    g.add_argument(
        "--extra",
        action="append",
        default=[],
        metavar="NAME",
        help="include the optional dependencies NAME (repeatable)",
    )
    g.add_argument("--all-extras", action="store_true", help="include every optional dependency")
    g.add_argument(
        "--group",
        action="append",
        default=[],
        metavar="NAME",
        help="include the dependency group NAME (repeatable)",
    )
    g.add_argument("--no-dev", action="store_true", help="leave out the dev dependency group")

    g.add_argument(
        "--only-group",
        action="append",
        default=[],
        metavar="NAME",
        help="only the dependency group NAME (repeatable), not the project's dependencies",
    )
    g.add_argument("--all-groups", action="store_true", help="include every dependency group")
    g.add_argument(
        "--no-group",
        action="append",
        default=[],
        metavar="NAME",
        help="leave out the dependency group NAME (repeatable)",
    )
    g.add_argument(
        "--no-default-groups", action="store_true", help="leave out the default groups (dev)"
    )
    g.add_argument(
        "--package",
        action="append",
        default=[],
        metavar="NAME",
        help="the workspace member NAME (default: the member you are in)",
    )
    g.add_argument("--all-packages", action="store_true", help="every workspace member")
    g.add_argument(
        "--python",
        metavar="REQUEST",
        help="the interpreter, a version or a path (default: the project's request)",
    )


def _add_lock_flags(p: argparse._ActionsContainer) -> None:
    p.add_argument("--locked", action="store_true", help="fail if uv.lock is missing or stale")
    p.add_argument("--frozen", action="store_true", help="use uv.lock as it is, without checking")


# uvslurm's profiles ([tool.uvslurm.profiles]); `--profile` is sbatch's and srun's own
PROFILE_FLAG = ("--uvslurm-profile",)
PROFILE_HELP = "Slurm options from [tool.uvslurm.profiles.NAME] (--profile keeps its Slurm meaning)"
PROJECT_HELP = "the project directory (default: the nearest pyproject.toml)"
NO_NODE_LOCAL_HELP = "use the venv where it is in the depot, without a node-local copy"
_UNITS = {"": 1.0, "d": 1.0, "w": 7.0, "h": 1 / 24, "m": 1 / 1440}


def _age_days(text: str) -> float:
    """`30`, `1.5`, `12h`, `30d`, `2w` (m: minutes) -> days."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([dwhm]?)\s*", text.lower())
    if not m:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not an age: use days (30) or a number with h, d or w (12h, 2w)"
        )
    return float(m.group(1)) * _UNITS[m.group(2)]


def build_parser(only: str = "", lean: bool = False) -> Parser:
    """The parser of every command; with `only` ("submit"), of that one alone: the other 19
    cost `submit --dry-run` ~20 % of its start (argparse and gettext per option and parser);
    an error's suggestion builds them all (Parser.error). `lean` (with only="submit"): without
    an option per sbatch option (~120 argparse actions, ~4 ms), for command lines that give
    none; one that does fails to parse with it and is parsed again (_parse_submit)."""
    common = Parser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show tracebacks")
    parser = Parser(
        prog="uvslurm",
        description="Run uv projects on Slurm: venvs prepared on the node, keyed by modules and platform.",
        parents=[common],
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"uvslurm {__version__}")
    # each command runs uvslurm.commands.<module>.run(ctx, ns)
    sub = parser.add_subparsers(dest="cmd", metavar="COMMAND", parser_class=Parser)

    s = sub.add_parser(
        "submit",
        parents=[common],
        allow_abbrev=False,
        help="submit a .py file, a batch script or a command as a Slurm job",
        usage="uvslurm submit [OPTIONS] TARGET [ARGS...]  |  uvslurm submit [OPTIONS] -- CMD [ARGS...]",
    )
    own = s.add_argument_group(SUBMIT_OWN, "before TARGET: what follows TARGET is its own")
    own.add_argument(*PROFILE_FLAG, dest="profile", metavar="NAME", help=PROFILE_HELP)
    own.add_argument("--project", metavar="DIR", help=PROJECT_HELP)
    own.add_argument("--dry-run", action="store_true", help="print the job script, submit nothing")
    own.add_argument(
        "--wait", action="store_true", help="wait for the job, stream its log, exit with its code"
    )
    own.add_argument("--parsable", action="store_true", help="print only the job id")
    own.add_argument(
        "--json", action="store_true", help="print the job id, logs, manifest, venv as JSON"
    )
    own.add_argument("--no-node-local", action="store_true", help=NO_NODE_LOCAL_HELP)
    own.add_argument(
        "--snapshot",
        action="store_true",
        help="run from a copy of the project's git-tracked files as they are now",
    )
    _add_lock_flags(own)
    _add_uv_selection(s)
    _add_sbatch_options(s, lean=lean and only == "submit")
    s.add_argument("target", nargs="?", metavar="TARGET", help="a .py file or a batch script")
    s.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS", help="arguments for TARGET")
    s.set_defaults(module="submit")
    if only == "submit":
        parser.partial = True
        parser.lean = s.lean = lean
        return parser

    pr = sub.add_parser("prepare", parents=[common], help="materialize or revalidate the venv now")
    pr.add_argument("--project", metavar="DIR", help=PROJECT_HELP)
    pr.add_argument("--no-node-local", action="store_true", help=NO_NODE_LOCAL_HELP)
    _add_lock_flags(pr)
    _add_uv_selection(pr)
    pr.set_defaults(module="prepare")

    f = sub.add_parser("fingerprint", parents=[common], help="show this shell's fingerprint")
    f.add_argument("--json", action="store_true", help="machine-readable output")
    f.add_argument("--explain", action="store_true", help="show each component")
    f.add_argument("--project", metavar="DIR", help=PROJECT_HELP)
    f.add_argument(
        "--diff", metavar="OTHER", help="say why OTHER (a saved --json, or a depot venv) differs"
    )
    f.set_defaults(module="fingerprint")

    e = sub.add_parser(
        "env", parents=[common], help="print what points uv at this project's depot venv"
    )
    e.add_argument(
        "--shell",
        choices=["bash", "zsh", "fish", "json"],
        default="bash",
        help="the syntax to print (default: bash)",
    )
    e.add_argument(
        "--json",
        dest="shell",
        action="store_const",
        const="json",
        help="machine-readable output (the same as --shell json)",
    )
    e.add_argument("--project", metavar="DIR", help=PROJECT_HELP)
    e.set_defaults(module="env")

    h = sub.add_parser(
        "shell-hook", parents=[common], help="print a shell hook that keeps `uvslurm env` current"
    )
    h.add_argument("shell", choices=["bash", "zsh", "fish"], help="the shell to hook into")
    h.set_defaults(module="shell_hook")

    sr = sub.add_parser(
        "srun",
        parents=[common],
        allow_abbrev=False,
        help="interactive job: prepare the venv on the node, then run CMD (default: your shell)",
        usage="uvslurm srun [SRUN-OPTIONS] [-- CMD [ARGS...]]",
        description="Every option not listed here goes to srun as given (see `srun --help`), "
        "after the [tool.uvslurm.sbatch] and profile options of the config, so that yours win.",
    )
    sr.add_argument(*PROFILE_FLAG, dest="profile", metavar="NAME", help=PROFILE_HELP)
    sr.add_argument("--project", metavar="DIR", help=PROJECT_HELP)
    sr.add_argument("--no-node-local", action="store_true", help=NO_NODE_LOCAL_HELP)
    _add_lock_flags(sr)
    _add_uv_selection(sr)
    # SRUN-OPTIONS (everything uvslurm does not know) and CMD after `--`: see _parse_srun
    sr.set_defaults(module="srun", srun_args=[], command=[])

    d = sub.add_parser("depot", parents=[common], help="see and clean the depot")
    dsub = d.add_subparsers(dest="depot_cmd", metavar="ACTION", parser_class=Parser, required=True)
    dl = dsub.add_parser("list", help="venvs with size, inodes, last use, fingerprint")
    dl.add_argument("--json", action="store_true", help="machine-readable output")
    dsub.add_parser("path", help="print the depot root")
    dg = dsub.add_parser("gc", help="remove venvs unused for DAYS and those whose project is gone")
    dg.add_argument(
        "--older-than",
        type=_age_days,
        default=30.0,
        metavar="AGE",
        help="unused for longer than AGE: days (30, 1.5), or with a unit: 12h, 30d, 2w (default: 30)",
    )
    dg.add_argument("--dry-run", action="store_true", help="say what would go, remove nothing")
    dr = dsub.add_parser("rm", help="remove the venvs of PROJECT (default: this project)")
    dr.add_argument(
        "rm_project",
        nargs="?",
        metavar="PROJECT",
        help="a project's name as `depot list` shows it (demo, or demo-<hash>), or its path",
    )
    d.set_defaults(module="depot")

    doc = sub.add_parser("doctor", parents=[common], help="check the site and explain what to fix")
    doc.add_argument("--json", action="store_true", help="machine-readable output")
    doc.add_argument("--project", metavar="DIR", help=PROJECT_HELP)
    doc.set_defaults(module="doctor")

    cfg = sub.add_parser(
        "config", parents=[common], help="every effective setting and where it came from"
    )
    cfg.add_argument("--json", action="store_true", help="machine-readable output")
    cfg.add_argument("--project", metavar="DIR", help=PROJECT_HELP)
    cfg.set_defaults(module="config_cmd")

    tr = sub.add_parser(
        "trust",
        parents=[common],
        help="allow this project's settings that run programs (uv, fingerprint.commands)",
    )
    tr.add_argument("directory", nargs="?", metavar="DIR", help="project directory (default: here)")
    tr.add_argument("--revoke", action="store_true", help="forget the project instead")
    tr.set_defaults(module="trust_cmd")

    t = sub.add_parser(
        "template", parents=[common], help="write an #SBATCH header template (cpu, gpu, array, mpi)"
    )
    t.add_argument(
        "name", nargs="?", metavar="NAME", help="cpu, gpu, array or mpi (none: list them)"
    )
    t.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    t.add_argument(
        *PROFILE_FLAG, dest="profile", metavar="NAME", help="fill in the options of this profile"
    )
    t.add_argument("--project", metavar="DIR", help=PROJECT_HELP)
    t.set_defaults(module="template")
    _add_lifecycle(sub, common)
    return parser


def _add_lifecycle(sub: Any, common: argparse.ArgumentParser) -> None:
    """After submit: jobs, logs, cancel, show, resubmit (issue 12)."""
    jb = sub.add_parser("jobs", parents=[common], help="your uvslurm jobs and their state")
    jb.add_argument("--all", action="store_true", help="every project's, not only this one's")
    jb.add_argument("--last", type=int, default=20, metavar="N", help="the N latest (default 20)")
    jb.add_argument("--json", action="store_true", help="print JSON (docs/reference/manifest.md)")
    jb.add_argument("--project", metavar="DIR", help=PROJECT_HELP)
    jb.set_defaults(module="jobs")

    lg = sub.add_parser("logs", parents=[common], help="print or follow a job's log")
    lg.add_argument("job", metavar="JOB", help="job id, or JOB_TASK for an array task")
    lg.add_argument("-f", "--follow", action="store_true", help="follow it until the job ends")
    lg.add_argument("--err", action="store_true", help="the error log (when it is another file)")
    lg.set_defaults(module="logs")

    cn = sub.add_parser("cancel", parents=[common], help="cancel jobs (scancel)")
    cn.add_argument("jobs", nargs="*", metavar="JOB", help="job ids, or JOB_TASK")
    cn.add_argument("--all", action="store_true", help="every unfinished job of this project")
    cn.add_argument("--json", action="store_true", help="print JSON (docs/reference/manifest.md)")
    cn.add_argument("--project", metavar="DIR", help=PROJECT_HELP)
    cn.set_defaults(module="cancel")

    sh = sub.add_parser("show", parents=[common], help="what a job ran: its manifest")
    sh.add_argument("job", metavar="JOB", help="job id, or JOB_TASK for an array task")
    sh.add_argument("--script", action="store_true", help="print the exact job script instead")
    sh.add_argument("--json", action="store_true", help="print JSON (docs/reference/manifest.md)")
    sh.set_defaults(module="show")

    rs = sub.add_parser(
        "resubmit", parents=[common], help="submit a job again: same lock, options, arguments"
    )
    rs.add_argument("job", metavar="JOB", help="the job id")
    rs.add_argument("--json", action="store_true", help="print JSON (docs/reference/manifest.md)")
    rs.add_argument("--parsable", action="store_true", help="print only the new job id")
    rs.set_defaults(module="resubmit")


def _parser(argv: Sequence[str], lean: bool = False) -> Parser:
    """The parser for `argv`; submit, srun and template know the site's sbatch options (with
    `lean`, submit's parser does not: see build_parser)."""
    if argv[:1] in (["submit"], ["srun"], ["template"]):
        from uvslurm import slurm

        slurm.use_site_options()
        if "-h" in argv or "--help" in argv:  # the help lists the site's options
            from uvslurm.sbatch_options import consult_site

            consult_site(force=True)
    submit = argv[:1] == ["submit"]
    parser = build_parser(only="submit" if submit else "", lean=lean and submit)
    parser.argv = argv
    return parser


def _bare_optionals(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """`--exclusive train.py`: sbatch gives an option whose value is optional (`[=user]`) a
    value only after '=', while argparse would take the next word. Such an option given bare,
    among the options before TARGET, is passed as `--exclusive=` (no value)."""
    sub = _command_path(parser, argv[:1])[-1]
    actions = {s: a for a in sub._actions for s in a.option_strings}
    out = list(argv)
    i = 1
    while i < len(out):
        tok = out[i]
        if tok == "--" or not tok.startswith("-") or tok == "-":
            break
        a = actions.get(tok.split("=", 1)[0])
        if a is not None and a.nargs == "?" and "=" not in tok:
            out[i] = tok + "="
        elif (
            a is not None
            and a.nargs is None
            and "=" not in tok
            and not (len(tok) > 2 and tok[1] != "-")
        ):
            i += 1  # its value
        i += 1
    return out


def _parse_submit(argv: list[str]) -> tuple[Parser, argparse.Namespace, list[str] | None]:
    """`submit [OPTIONS] -- CMD...`: the first `--` ends the options unless a TARGET came before
    it; then it is one of the TARGET's arguments and is kept verbatim (argparse would drop it).
    Parsed first without sbatch's options (most command lines give none; the help lists them)."""
    if "-h" not in argv and "--help" not in argv:
        try:
            return _parse_submit_with(_parser(argv, lean=True), argv)
        except _NeedsSbatch:
            pass
    return _parse_submit_with(_parser(argv), argv)


def _parse_submit_with(
    parser: Parser, argv: list[str]
) -> tuple[Parser, argparse.Namespace, list[str] | None]:
    argv = _bare_optionals(parser, argv)
    if "--" not in argv:
        return parser, parser.parse_args(argv), None
    i = argv.index("--")
    ns = parser.parse_args(argv[:i])
    if ns.target:
        ns.args = [*ns.args, *argv[i:]]
        return parser, ns, None
    return parser, ns, argv[i + 1 :]


def _parse_srun(argv: list[str]) -> argparse.Namespace:
    """`srun [OPTIONS] [-- CMD...]`: uvslurm's own flags are parsed, every other option goes to
    srun as given, and CMD after the first `--` is kept verbatim."""
    head, cmd = (
        (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    )
    ns, rest = _parser(argv).parse_known_args(head)
    ns.srun_args, ns.command = rest, cmd
    return ns


def misplaced_options(parser: argparse.ArgumentParser, args: Sequence[str]) -> list[str]:
    """uvslurm's own `submit` options among the arguments after TARGET (which go to TARGET)."""
    sub = _command_path(parser, ["submit"])[-1]
    own = {
        s
        for g in sub._action_groups
        if g.title == SUBMIT_OWN
        for a in g._group_actions
        for s in a.option_strings
    }
    return [a for a in args if a.split("=", 1)[0] in own]


def dispatch(argv: list[str]) -> int:
    try:
        return _dispatch(argv)
    except _SiteLoaded:
        return _dispatch(argv)


def _dispatch(argv: list[str]) -> int:
    if argv[:1] == ["submit"]:
        parser, ns, command = _parse_submit(argv)
        ns.command = command
        misplaced = misplaced_options(parser, ns.args) if ns.target else []
        if misplaced:
            from uvslurm.output import warn

            warn(
                f"{' '.join(misplaced)} after {ns.target} goes to {ns.target}, not to uvslurm; "
                f"to mean uvslurm's, put it before {ns.target}"
            )
    elif argv[:1] == ["srun"]:
        ns = _parse_srun(argv)
    else:
        ns = _parser(argv).parse_args(argv)
    if not ns.cmd:
        build_parser().print_help(sys.stderr)
        return 2
    ns.argv = ["uvslurm", *argv]
    from importlib import import_module

    from uvslurm.context import Context

    ctx = Context.from_args(ns, Path.cwd())
    run: Callable[[Context, argparse.Namespace], int] = import_module(
        f"uvslurm.commands.{ns.module}"
    ).run
    return run(ctx, ns)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args[: args.index("--")] if "--" in args else "--debug" in args
    try:
        return dispatch(args)
    except UvslurmError as e:
        if debug:
            raise
        from uvslurm.output import error

        error(e.line())
        return e.exit_code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as e:
        if debug:
            raise
        from uvslurm.output import error

        error(f"unexpected error: {type(e).__name__}: {e} (run with --debug for the traceback)")
        return EXIT_UNEXPECTED
