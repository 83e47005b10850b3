"""The summary table and the generated section of docs/performance.md."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

BEGIN = "<!-- benchmarks:begin -->"
END = "<!-- benchmarks:end -->"
HEADER = ("measure", "uvslurm", "plain uv", "ratio", "target", "met?")


@dataclass
class Row:
    """One line of the summary: a uvslurm number, its plain-uv counterpart (if any) and the
    product target, checked."""

    measure: str
    uvslurm: float | None
    plain: float | None = None
    target: str = "—"
    met: bool | None = None
    unit: str = "ms"  # "ms", or "files" and "calls" (whole numbers)
    why: str = ""  # why uvslurm's value is missing, when it is: shown as "n/a: why"

    @property
    def ratio(self) -> float | None:
        if self.uvslurm is None or not self.plain:
            return None
        return self.uvslurm / self.plain

    def value(self, v: float | None, missing: str) -> str:
        if v is None:
            return missing
        if self.unit != "ms":
            return f"{v:.0f}"
        return f"{v:.3f}" if v < 1 else f"{v:.1f}"

    def cells(self) -> list[str]:
        ratio = self.ratio
        met = {True: "yes", False: "**no**", None: "—"}[self.met]
        # a '|' in the reason (joined log lines) would split the Markdown table's cell
        missing = f"n/a: {self.why}".replace("|", ";") if self.why else "n/a"
        return [self.measure, self.value(self.uvslurm, missing), self.value(self.plain, "—"),
                "—" if ratio is None else f"{ratio:.2f}", self.target, met]  # fmt: skip


def table(header: tuple[str, ...] | list[str], rows: list[list[str]], right: set[int]) -> str:
    lines = ["| " + " | ".join(header) + " |"]
    lines.append("|" + "|".join("---:" if i in right else "---" for i in range(len(header))) + "|")
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def summary(rows: list[Row]) -> str:
    return table(HEADER, [r.cells() for r in rows], {1, 2, 3})


def update_doc(path: Path, section: str, begin: str = BEGIN, end: str = END) -> None:
    """Replace what lies between the markers in `path` (the text around them is kept); a file
    without them gets the section appended."""
    body = f"{begin}\n{section.strip()}\n{end}"
    text = path.read_text() if path.exists() else ""
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + body + rest.split(end, 1)[1]
    else:
        text = f"{text.rstrip()}\n\n{body}\n" if text.strip() else f"{body}\n"
    path.write_text(text)
