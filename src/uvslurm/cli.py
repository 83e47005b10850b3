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

# sbatch options whose names uvslurm uses for something else (pass them with --sbatch-arg)
OWN_NAMES = frozenset({"profile", "extra"})


class Parser(argparse.ArgumentParser):
    """argparse that raises UsageError (one line, closest valid option) instead of exiting."""

    def error(self, message: str) -> NoReturn:
        m = re.search(r"unrecognized arguments: (\S+)", message)
        if m:
            import difflib

            from uvslurm.sbatch_options import vocabulary

            word = m.group(1).split("=", 1)[0]
            known = {f"--{n}" for n in vocabulary()} | set(_all_option_strings(self))
            match = difflib.get_close_matches(word, sorted(known), n=1, cutoff=0.6)
            hint = f"did you mean '{match[0]}'?" if match else "see `uvslurm submit --help`"
            raise UsageError(f"unknown option '{word}'", hint)
        raise UsageError(message, f"see `{self.prog} --help`")


def _all_option_strings(parser: argparse.ArgumentParser) -> list[str]:
    out: list[str] = []
    for action in parser._actions:
        out += [s for s in action.option_strings if s.startswith("--")]
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                out += _all_option_strings(sub)
    return out


def _add_sbatch_options(p: argparse.ArgumentParser) -> None:
    from uvslurm.sbatch_options import FLAGS, vocabulary

    g = p.add_argument_group(
        "Slurm options", "the usual sbatch options, validated before submission (see man sbatch)"
    )
    for name, short in sorted(vocabulary().items()):
        if name in OWN_NAMES:
            continue
        flags = [f"--{name}"] + ([f"-{short}"] if short else [])
        dest = "sb_" + name.replace("-", "_")
        if name in FLAGS:
            g.add_argument(
                *flags, dest=dest, action="store_true", default=None, help=argparse.SUPPRESS
            )
        else:
            g.add_argument(*flags, dest=dest, metavar="V", help=argparse.SUPPRESS)
    g.add_argument(
        "--sbatch-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="pass ARG to sbatch as an #SBATCH option (repeatable), e.g. --sbatch-arg=--exclusive=user",
    )


def _add_uv_selection(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("uv selection (forwarded to uv sync; part of the venv key)")
    g.add_argument("--extra", action="append", default=[], metavar="NAME")
    g.add_argument("--all-extras", action="store_true")
    g.add_argument("--group", action="append", default=[], metavar="NAME")
    g.add_argument("--no-dev", action="store_true")


def build_parser() -> Parser:
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
    s.add_argument(
        "--profile", metavar="NAME", help="sbatch options from [tool.uvslurm.profiles.NAME]"
    )
    s.add_argument(
        "--project", metavar="DIR", help="project directory (default: nearest pyproject.toml)"
    )
    s.add_argument("--dry-run", action="store_true", help="print the job script, submit nothing")
    s.add_argument(
        "--wait", action="store_true", help="wait for the job, stream its log, exit with its code"
    )
    s.add_argument("--parsable", action="store_true", help="print only the job id")
    s.add_argument(
        "--json", action="store_true", help="print the job id, logs, manifest, venv as JSON"
    )
    s.add_argument(
        "--no-node-local", action="store_true", help="run from the depot, not node-local disk"
    )
    s.add_argument(
        "--snapshot",
        action="store_true",
        help="run from a copy of the project's git-tracked files as they are now",
    )
    s.add_argument("--locked", action="store_true", help="fail if uv.lock is missing or stale")
    s.add_argument("--frozen", action="store_true", help="use uv.lock as it is, without checking")
    _add_uv_selection(s)
    _add_sbatch_options(s)
    s.add_argument("target", nargs="?", metavar="TARGET", help="a .py file or a batch script")
    s.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS", help="arguments for TARGET")
    s.set_defaults(module="submit")

    pr = sub.add_parser("prepare", parents=[common], help="materialize or revalidate the venv now")
    pr.add_argument("--project", metavar="DIR")
    pr.add_argument("--no-node-local", action="store_true")
    _add_uv_selection(pr)
    pr.set_defaults(module="prepare")

    f = sub.add_parser("fingerprint", parents=[common], help="show this shell's fingerprint")
    f.add_argument("--json", action="store_true", help="machine-readable output")
    f.add_argument("--explain", action="store_true", help="show each component")
    f.add_argument("--project", metavar="DIR")
    f.add_argument(
        "--diff", metavar="OTHER", help="say why OTHER (a saved --json, or a depot venv) differs"
    )
    f.set_defaults(module="fingerprint")

    e = sub.add_parser(
        "env", parents=[common], help="print what points uv at this project's depot venv"
    )
    e.add_argument("--shell", choices=["bash", "zsh", "fish", "json"], default="bash")
    e.add_argument("--project", metavar="DIR")
    e.set_defaults(module="env")

    h = sub.add_parser(
        "shell-hook", parents=[common], help="print a shell hook that keeps `uvslurm env` current"
    )
    h.add_argument("shell", choices=["bash", "zsh", "fish"])
    h.set_defaults(module="shell_hook")

    sr = sub.add_parser(
        "srun",
        parents=[common],
        help="interactive job: prepare the venv on the node, then run CMD (default: your shell)",
        usage="uvslurm srun [SRUN-OPTIONS] [-- CMD [ARGS...]]",
    )
    sr.add_argument("--project", metavar="DIR")
    sr.add_argument("--no-node-local", action="store_true")
    _add_uv_selection(sr)
    # SRUN-OPTIONS (everything uvslurm does not know) and CMD after `--`: see _parse_srun
    sr.set_defaults(module="srun", srun_args=[], command=[])

    d = sub.add_parser("depot", parents=[common], help="see and clean the depot")
    dsub = d.add_subparsers(dest="depot_cmd", metavar="ACTION", parser_class=Parser, required=True)
    dl = dsub.add_parser("list", help="venvs with size, inodes, last use, fingerprint")
    dl.add_argument("--json", action="store_true")
    dsub.add_parser("path", help="print the depot root")
    dg = dsub.add_parser("gc", help="remove venvs unused for DAYS and those whose project is gone")
    dg.add_argument("--older-than", type=float, default=30.0, metavar="DAYS")
    dg.add_argument("--dry-run", action="store_true")
    dr = dsub.add_parser("rm", help="remove the venvs of PROJECT (default: this project)")
    dr.add_argument("rm_project", nargs="?", metavar="PROJECT")
    d.set_defaults(module="depot")

    doc = sub.add_parser("doctor", parents=[common], help="check the site and explain what to fix")
    doc.add_argument("--json", action="store_true")
    doc.add_argument("--project", metavar="DIR")
    doc.set_defaults(module="doctor")

    cfg = sub.add_parser(
        "config", parents=[common], help="every effective setting and where it came from"
    )
    cfg.add_argument("--json", action="store_true")
    cfg.add_argument("--project", metavar="DIR")
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
    t.add_argument("--profile", metavar="NAME", help="fill in the options of this profile")
    t.add_argument("--project", metavar="DIR")
    t.set_defaults(module="template")
    _add_lifecycle(sub, common)
    return parser


def _add_lifecycle(sub: Any, common: argparse.ArgumentParser) -> None:
    """After submit: jobs, logs, cancel, show, resubmit (issue 12)."""
    jb = sub.add_parser("jobs", parents=[common], help="your uvslurm jobs and their state")
    jb.add_argument("--all", action="store_true", help="every project's, not only this one's")
    jb.add_argument("--last", type=int, default=20, metavar="N", help="the N latest (default 20)")
    jb.add_argument("--json", action="store_true")
    jb.add_argument("--project", metavar="DIR")
    jb.set_defaults(module="jobs")

    lg = sub.add_parser("logs", parents=[common], help="print or follow a job's log")
    lg.add_argument("job", metavar="JOB", help="job id, or JOB_TASK for an array task")
    lg.add_argument("-f", "--follow", action="store_true", help="follow it until the job ends")
    lg.add_argument("--err", action="store_true", help="the error log (when it is another file)")
    lg.set_defaults(module="logs")

    cn = sub.add_parser("cancel", parents=[common], help="cancel jobs (scancel)")
    cn.add_argument("jobs", nargs="*", metavar="JOB", help="job ids, or JOB_TASK")
    cn.add_argument("--all", action="store_true", help="every unfinished job of this project")
    cn.add_argument("--json", action="store_true")
    cn.add_argument("--project", metavar="DIR")
    cn.set_defaults(module="cancel")

    sh = sub.add_parser("show", parents=[common], help="what a job ran: its manifest")
    sh.add_argument("job", metavar="JOB", help="job id, or JOB_TASK for an array task")
    sh.add_argument("--script", action="store_true", help="print the exact job script instead")
    sh.add_argument("--json", action="store_true")
    sh.set_defaults(module="show")

    rs = sub.add_parser(
        "resubmit", parents=[common], help="submit a job again: same lock, options, arguments"
    )
    rs.add_argument("job", metavar="JOB", help="the job id")
    rs.add_argument("--json", action="store_true")
    rs.add_argument("--parsable", action="store_true", help="print only the new job id")
    rs.set_defaults(module="resubmit")


def _parse_submit(argv: list[str]) -> tuple[argparse.Namespace, list[str] | None]:
    """`submit [OPTIONS] -- CMD...`: the first `--` ends the options unless a TARGET came before
    it; then it is one of the TARGET's arguments and is kept verbatim (argparse would drop it)."""
    if "--" not in argv:
        return build_parser().parse_args(argv), None
    i = argv.index("--")
    ns = build_parser().parse_args(argv[:i])
    if ns.target:
        ns.args = [*ns.args, *argv[i:]]
        return ns, None
    return ns, argv[i + 1 :]


def _parse_srun(argv: list[str]) -> argparse.Namespace:
    """`srun [OPTIONS] [-- CMD...]`: uvslurm's own flags are parsed, every other option goes to
    srun as given, and CMD after the first `--` is kept verbatim."""
    head, cmd = (
        (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    )
    ns, rest = build_parser().parse_known_args(head)
    ns.srun_args, ns.command = rest, cmd
    return ns


def dispatch(argv: list[str]) -> int:
    if argv[:1] == ["submit"]:
        ns, command = _parse_submit(argv)
        ns.command = command
    elif argv[:1] == ["srun"]:
        ns = _parse_srun(argv)
    else:
        ns = build_parser().parse_args(argv)
    if not ns.cmd:
        build_parser().print_help(sys.stderr)
        return 2
    ns.argv = list(argv)  # verbatim, for the job's manifest
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
