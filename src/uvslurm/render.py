"""Render the job script: options + project + command -> text. Pure (no I/O but the bundled
prolog sections, read once)."""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from uvslurm import __version__, prolog, sbatch_options
from uvslurm.errors import UsageError
from uvslurm.nodeenv import NodeSettings

BASH_SHEBANG = "#!/bin/bash"


def prolog_text() -> str:
    """The prolog as the job script holds it: its sections (resources/prolog/*.sh) joined in
    order, each after a banner line, with the generated `unset -f` of its functions; then the
    functions a warm start does not read, which a batch script's body comes before."""
    return prolog.text()


class UserScript(NamedTuple):
    """A batch script split where sbatch stops reading `#SBATCH` lines."""

    shebang: str
    header: list[str]  # comment and blank lines after the shebang, #SBATCH lines among them
    body: str

    def directives(self) -> list[tuple[int, dict[str, str | bool]]]:
        """(index in header, options) for every #SBATCH line."""
        return [
            (i, sbatch_options.parse_directive_line(line))
            for i, line in enumerate(self.header)
            if line.startswith("#SBATCH")
        ]

    def options(self) -> dict[str, str | bool]:
        merged: dict[str, str | bool] = {}
        for _, opts in self.directives():
            merged.update(opts)
        return merged


def _header_end(lines: list[str]) -> int:
    """Where sbatch stops reading #SBATCH lines: at the first line that is neither blank nor a
    comment (man sbatch: "before any executable commands")."""
    n = 0
    while n < len(lines) and (not lines[n].strip() or lines[n].lstrip().startswith("#")):
        n += 1
    return n


def header_options(text: str, name: str) -> dict[str, str | bool]:
    """The #SBATCH options at the top of any script (a .py file too: sbatch reads them whatever
    the interpreter), after its #! line, as sbatch reads them. A mistake names the file and
    line."""
    lines = text.split("\n")
    start = 1 if lines and lines[0].startswith("#!") else 0
    merged: dict[str, str | bool] = {}
    for i in range(start, start + _header_end(lines[start:])):
        if lines[i].startswith("#SBATCH"):
            try:
                merged.update(sbatch_options.parse_directive_line(lines[i]))
            except UsageError as e:
                raise UsageError(f"{name}, line {i + 1}: {e.message}", e.hint) from e
    return merged


def split_script(text: str, name: str) -> UserScript:
    lines = text.split("\n")
    first = lines[0] if lines else ""
    if not first.startswith("#!"):
        shebang = BASH_SHEBANG
        rest = lines
    else:
        shebang, rest = first, lines[1:]
        interp = shebang[2:].strip().split()
        prog = interp[0].rsplit("/", 1)[-1] if interp else ""
        if prog == "env" and len(interp) > 1:
            prog = interp[1]
        if prog == "sh":
            shebang = BASH_SHEBANG  # the prolog needs bash; sh scripts run unchanged under it
        elif prog != "bash":
            raise UsageError(
                f"{name}: uvslurm runs batch scripts with bash, not '{prog}'",
                "start the script with #!/bin/bash",
            )
    n = _header_end(rest)
    return UserScript(shebang, rest[:n], "\n".join(rest[n:]))


class JobScript(NamedTuple):
    """Everything the rendered script needs; `command` for .py / `--` targets, `user_script`
    for batch scripts. The prolog's inputs come from `settings`, the same values that
    `uvslurm prepare` passes it through the environment."""

    settings: NodeSettings
    options: Mapping[str, str | bool]
    origin: str  # one line for the header comment: what produced this script
    command: Sequence[str] = ()
    user_script: UserScript | None = None
    # the script becomes part of another's (submitit's setup lines), whose own lines follow:
    # the prolog is whole, nothing is read back from the end of the file
    embedded: bool = False


def _comment_safe(text: str) -> str:
    """Comments must stay on one line: control characters are shown escaped."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def _summary(job: JobScript) -> list[str]:
    """What the script does, where and with what, for whoever reads its top: at most ten comment
    lines, each one line whatever the values hold (see _comment_safe)."""
    s = job.settings
    if job.user_script:
        what = "runs the batch script below with the venv active"
    elif s.script:
        run = " ".join(["uv run --script", *(shlex.quote(a) for a in job.command)])
        what = f"runs `{run}` in the script's venv (PEP 723 inline metadata)"
    else:
        run = " ".join(["uv run --no-sync", *(shlex.quote(a) for a in job.command)])
        what = f"runs `{run}` in the project's venv"
    local = {
        "never": "never (the venv is used where it is in the depot)",
        "auto": "auto (SLURM_TMPDIR, TMPDIR or /tmp, unless on the depot's filesystem)",
    }.get(s.node_local, f"in {s.node_local}")
    if s.image != "none":
        local += f"; depot venvs also as {s.image} images"
    uses = [f"uv {s.uv} (else uv on the node's PATH)", f"Python {s.python or 'as uv chooses'}"]
    if s.sync_args:
        uses.append("uv sync " + " ".join(s.sync_args))
    if s.rebuild:
        uses.append("built from source: " + ", ".join(s.rebuild))
    lines = [
        "",
        f"Generated by {job.origin}",
        f"What:  {what}",
        f"Where: the {'script' if s.script else 'uv project'} {s.project}; venvs in the depot"
        f" {s.depot}",
        f"       node-local copy: {local}",
        f"With:  {', '.join(uses)}",
        f"The prolog below is uvslurm {__version__}'s, in {len(prolog.SECTIONS)} sections: it"
        " makes the venv ready on the node and",
        "needs only bash and uv there. Keep this script, read it, resubmit it with sbatch.",
    ]
    return [f"# {_comment_safe(line)}" if line else "#" for line in lines]


def _assign(name: str, value: str) -> str:
    return f"{name}={shlex.quote(value)}"


def render(job: JobScript) -> str:
    out: list[str] = []
    script = job.user_script
    out.append(script.shebang if script else BASH_SHEBANG)
    # user #SBATCH lines overridden from the command line are kept, disabled, for the reader
    header = list(script.header) if script else []
    options = dict(job.options)
    if script:
        for i, opts in script.directives():
            if any(n in job.options for n in opts):
                header[i] = f"##SBATCH{header[i][len('#SBATCH') :]}  (overridden by uvslurm submit)"
                # the line's other options still hold
                options.update({n: v for n, v in opts.items() if n not in job.options})
    out.extend(sbatch_options.render(name, options[name]) for name in sorted(options))
    out.extend(header)
    out.extend(_summary(job))
    out.append("# --- start templated: settings for the uvslurm prolog below (shell-quoted)")
    mode = "activate" if script else "run"
    # every input is assigned, empty ones too: the job inherits the submitter's environment,
    # where a stray UVSLURM_* must not change what this script does
    out.extend(_assign(name, value) for name, value in job.settings.environ(mode).items())
    if not script:
        out.append(f"UVSLURM_CMD=({' '.join(shlex.quote(a) for a in job.command)})")
    out.append("# --- end templated")
    if not script:
        out.append(prolog_text().rstrip("\n"))
        return "\n".join(out) + "\n"
    # the rest of the prolog, which a warm start does not read, must end the script: bash reads
    # a script as it runs it, and the job's body comes first (prolog.py)
    out.append(prolog.warm_text(lazy=not job.embedded).rstrip("\n"))
    out.append("# --- end of the uvslurm prolog; the job script follows, with the venv active")
    out.append(script.body.rstrip("\n"))
    if not job.embedded:
        out.append(prolog.rest_text().rstrip("\n"))
    return "\n".join(out) + "\n"
