"""Generate the table of archspec's microarchitectures that the prolog embeds (the block between
`# BEGIN archspec` and `# END archspec` in src/uvslurm/resources/prolog/fingerprint.sh).

Compute nodes have no uvslurm and maybe no Python, so the prolog names the node's
microarchitecture itself, in bash, from this data and archspec's algorithm (docs/design.md,
"The CPU"). Run `uv run python scripts/microarch_table.py` after upgrading archspec;
tests/test_fingerprint.py fails while the block differs from what archspec's data gives.
"""

from __future__ import annotations

import json
import re
import sys
import textwrap
from pathlib import Path

FINGERPRINT_SH = (
    Path(__file__).resolve().parent.parent / "src/uvslurm/resources/prolog/fingerprint.sh"
)
FAMILIES = ("x86_64", "aarch64")
_BLOCK = re.compile(r"(?ms)^(  # BEGIN archspec[^\n]*\n).*?^(  # END archspec\n)")


def _data() -> dict:
    import archspec  # a development dependency only

    path = Path(archspec.__file__).parent / "json" / "cpu" / "microarchitectures.json"
    return json.loads(path.read_text())


def records(data: dict) -> list[str]:
    """One record per target of FAMILIES, parents first (as in archspec's file):
    `name vendor eligible depth nfeatures generic-ancestors cpu-part parent diff...`, where diff
    is `+feature` / `-feature` against the first parent's features; `=code vendor` records map
    ARM implementer codes to vendors."""
    m = data["microarchitectures"]
    ancestors: dict[str, list[str]] = {}
    family: dict[str, str] = {}
    out = []
    for name, v in m.items():
        anc: list[str] = list(v["from"])
        for p in v["from"]:
            anc += [a for a in ancestors[p] if a not in anc]
        ancestors[name] = anc
        family[name] = name if not v["from"] else family[v["from"][0]]
        fam = family[name]
        if fam not in FAMILIES:
            continue
        # archspec's compatibility checks (cpu/detect.py): which targets a host can be
        eligible = fam == "x86_64" or v["vendor"] != "generic" or name == fam
        feats = v["features"]
        parent = v["from"][0] if v["from"] else "-"
        base = set(m[parent]["features"]) if v["from"] else set()
        diff = [f"+{f}" for f in feats if f not in base]
        diff += [f"-{f}" for f in sorted(base - set(feats))]
        generic = [a for a in anc if m[a]["vendor"] == "generic"] or ["-"]
        fields = [name, v["vendor"], "1" if eligible else "0", str(len(anc)),
                  str(len(set(feats))), ",".join(generic), v.get("cpupart") or "-", parent, *diff]  # fmt: skip
        out.append(" ".join(fields) + ";")
    for code, vendor in data["conversions"]["arm_vendors"].items():
        out.append(f"={code} {vendor.replace(' ', '_')};")
    return out


def block(data: dict) -> str:
    """The lines between the markers: the records, wrapped to the prolog's 100 columns."""
    text = " ".join(records(data))
    lines = textwrap.wrap(text, 96, break_on_hyphens=False)
    return "  read -r -d '' \"$1\" <<'EOF'\n" + "\n".join(lines) + "\nEOF\n"


def main() -> int:
    src = FINGERPRINT_SH.read_text()
    new, n = _BLOCK.subn(lambda mo: mo.group(1) + block(_data()) + mo.group(2), src)
    if n != 1:
        print(f"{FINGERPRINT_SH}: no BEGIN/END archspec block", file=sys.stderr)
        return 1
    FINGERPRINT_SH.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
