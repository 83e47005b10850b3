"""schema.py: the declaration of every setting, prolog input and fingerprint component, its
checks and parsers, and that the prolog's list of inputs, its fingerprint components, its
network filesystems and docs/reference say the same as the declaration.

`python tests/test_unit_schema.py` prints the docs' tables as the declaration has them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from uvslurm import nodeenv, render, schema
from uvslurm.config import ENV_VARS, env_layer, flatten, merge
from uvslurm.errors import UvslurmError
from uvslurm.schema import INPUTS, SETTINGS

DOCS = Path(__file__).resolve().parent.parent / "docs" / "reference"
# in the prolog's list of inputs but not declared: environ()'s argument
NOT_DECLARED = {"UVSLURM_MODE"}


def config_table() -> str:
    """The table of settings in docs/reference/config.md."""
    rows = ["| key | type | default | env | meaning |", "|---|---|---|---|---|"]
    for s in SETTINGS.values():
        default = s.shown or f"`{json.dumps(s.default)}`"
        env = f"`{s.prolog}`" if s.env else "—"
        rows.append(f"| `{s.key}` | {s.kind} | {default} | {env} | {s.meaning} |")
    return "\n".join(rows) + "\n"


def env_table() -> str:
    """The first rows of the table of variables uvslurm reads in docs/reference/env-vars.md."""
    rows = ["| variable | setting | meaning |", "|---|---|---|"]
    rows += [f"| `{s.prolog}` | `{k}` | {s.meaning} |" for k, s in SETTINGS.items() if s.env]
    return "\n".join(rows) + "\n"


# --- the declaration ----------------------------------------------------------------------


def test_every_node_setting_is_an_input_once() -> None:
    attrs = [i.attr for i in INPUTS]
    fields = list(nodeenv.NodeSettings._fields)
    assert sorted(attrs) == sorted([*fields, "project_id"])
    assert len({i.prolog for i in INPUTS}) == len(INPUTS)
    for key, s in SETTINGS.items():
        # the attribute is the key in Python's spelling; only top-level settings have variables
        assert s.attr == key.replace("-", "_").replace(".", "_")
        assert not (s.env and "." in key)


def test_environ_follows_the_declaration() -> None:
    s = nodeenv.NodeSettings(
        project="/p", uv="/uv", depot="/d", node_local="never", offline="false", python="3.12",
        sync_args=("--extra", "x"), fingerprint_env=("A", "B"), fingerprint_commands=("a b", "c"),
        fingerprint_modules=False, rebuild=("x", "y"), rebuild_sources="S", image="tar.zst",
        lock_hash="ab12", lock_dir="/d/x/.submitted-1", record="/s/jobs", snapshot="/d/x/.snapshot-1",
        fingerprint_ignore_modules=("git", "tmux/*"),
        script="/s/job.py", platforms=("aarch64-manylinux_2_28", "x"),
    )  # fmt: skip
    env = s.environ("prepare")
    assert list(env) == [i.prolog for i in INPUTS] + ["UVSLURM_MODE"]
    assert env == {
        "UVSLURM_PROJECT": "/p",
        "UVSLURM_PROJECT_ID": nodeenv.project_id("/p"),
        "UVSLURM_LOCK_HASH": "ab12",
        "UVSLURM_LOCK_DIR": "/d/x/.submitted-1",
        "UVSLURM_RECORD": "/s/jobs",
        "UVSLURM_SNAPSHOT": "/d/x/.snapshot-1",
        "UVSLURM_UV": "/uv",
        "UVSLURM_DEPOT": "/d",
        "UVSLURM_NODE_LOCAL": "never",
        "UVSLURM_OFFLINE": "false",
        "UVSLURM_PYTHON": "3.12",
        "UVSLURM_SYNC_ARGS": "--extra x",
        "UVSLURM_FP_ENV": "A B",
        "UVSLURM_FP_COMMANDS": "a b\x1ec\x1e",
        "UVSLURM_FP_MODULES": "0",
        "UVSLURM_FP_IGNORE": "git tmux/*",
        "UVSLURM_REBUILD": "x,y",
        "UVSLURM_REBUILD_SOURCES": "S",
        "UVSLURM_IMAGE": "tar.zst",
        "UVSLURM_SCRIPT": "/s/job.py",
        "UVSLURM_PLATFORMS": "aarch64-manylinux_2_28 x",
        "UVSLURM_MODE": "prepare",
    }


def test_derived_tables() -> None:
    assert ENV_VARS == {
        "uv": "UVSLURM_UV", "depot": "UVSLURM_DEPOT", "node-local": "UVSLURM_NODE_LOCAL",
        "offline": "UVSLURM_OFFLINE", "rebuild": "UVSLURM_REBUILD", "image": "UVSLURM_IMAGE",
    }  # fmt: skip
    assert {k: s.value for k, s in merge([]).settings.items()} == {
        "node-local": "auto",
        "offline": "auto",
        "fingerprint.env": [],
        "fingerprint.commands": [],
        "fingerprint.modules": True,
        "fingerprint.ignore-modules": [],
        "rebuild": [],
        "image": "none",
        "platforms": [],
    }


# --- checks and parsers ---------------------------------------------------------------------


def _check(key: str, value: object) -> object:
    return SETTINGS[key].check(key, value)


def _why(key: str, value: object) -> str:
    with pytest.raises(ValueError) as e:
        _check(key, value)
    return str(e.value)


@pytest.mark.parametrize("key", ["uv", "depot", "node-local", "image"])
@pytest.mark.parametrize("value", [3, None, ["x"], True])
def test_strings_must_be_strings(key: str, value: object) -> None:
    assert _why(key, value) == f"'{key}' must be a string"


def test_choices() -> None:
    assert _check("node-local", "/x") == "/x"
    assert _check("node-local", "never") == "never"
    assert _why("node-local", "x/") == "node-local must be 'auto', 'never' or an absolute path"
    assert _why("node-local", "") == "node-local must be 'auto', 'never' or an absolute path"
    assert _check("image", "tar.zst") == "tar.zst"
    # only node-local takes a path
    assert _why("image", "/x") == "image must be 'none', 'auto', 'tar.zst' or 'squashfs'"
    assert _check("uv", "") == "" and _check("depot", "rel") == "rel"


@pytest.mark.parametrize("value", [1, 0, None, "True", "yes", "", ["auto"]])
def test_offline_refuses(value: object) -> None:
    assert _why("offline", value) == "offline must be 'auto', true or false"


def test_offline_is_one_string_from_config_to_prolog() -> None:
    assert [_check("offline", v) for v in (True, False, "auto", "true")] == [
        "true", "false", "auto", "true"]  # fmt: skip
    cfg = merge([("f", {"offline": False})])
    assert cfg.get("offline") == "false"
    settings = nodeenv.NodeSettings("", "", "", "", "", "", (), ())._replace(
        offline=cfg.get("offline")
    )
    assert settings.environ("run")["UVSLURM_OFFLINE"] == "false"


@pytest.mark.parametrize("key", ["rebuild", "fingerprint.env", "fingerprint.commands"])
@pytest.mark.parametrize("value", ["a", ("a",), [1], ["a", None], {"a": 1}])
def test_lists_of_strings(key: str, value: object) -> None:
    assert _why(key, value) == f"'{key}' must be a list of strings"
    assert _check(key, ["a", ""]) == ["a", ""]


@pytest.mark.parametrize("value", [1, 0, "true", None])
def test_booleans(value: object) -> None:
    assert _why("fingerprint.modules", value) == "'fingerprint.modules' must be true or false"
    assert _check("fingerprint.modules", False) is False


@pytest.mark.parametrize(
    ("raw", "value"),
    [("1", "true"), ("yes", "true"), ("YES", "true"), ("true", "true"), ("false", "false"),
     ("0", "false"), ("No", "false"), ("auto", "auto"), ("y", "y"), (" 1", " 1")],
)  # fmt: skip
def test_env_offline(raw: str, value: str) -> None:
    assert schema.env_bool(raw) == value
    assert env_layer({"UVSLURM_OFFLINE": raw}) == {"offline": value}


@pytest.mark.parametrize(
    ("raw", "value"),
    [("a, b", ["a", "b"]), ("a,b", ["a", "b"]), (" a ", ["a"]), (",", []), ("a,,b,", ["a", "b"]),
     ("a b", ["a b"])],
)  # fmt: skip
def test_env_rebuild(raw: str, value: list[str]) -> None:
    assert schema.env_list(raw) == value
    assert env_layer({"UVSLURM_REBUILD": raw}) == {"rebuild": value}


def test_env_text_is_checked_where_it_came_from() -> None:
    with pytest.raises(UvslurmError) as e:
        merge([("environment", env_layer({"UVSLURM_OFFLINE": "maybe"}))])
    assert e.value.line() == "environment: offline must be 'auto', true or false"
    with pytest.raises(UvslurmError) as e:
        merge([("environment", env_layer({"UVSLURM_IMAGE": "zip"}))])
    assert e.value.line() == "environment: image must be 'none', 'auto', 'tar.zst' or 'squashfs'"
    # a variable of no setting, and the settings that have none, are not read
    assert env_layer({"UVSLURM_FP_ENV": "A", "UVSLURM_PYTHON": "3", "UVSLURM_MODE": "x"}) == {}


def test_only_declared_names_in_declared_tables() -> None:
    assert flatten({"fingerprint": {"modules": False}}, "s") == {"fingerprint.modules": False}
    for layer, message in [
        ({"fingerprint": {"image": "none"}}, "s: unknown setting 'fingerprint.image'"),
        ({"node": {"local": "auto"}}, "s: unknown setting 'node'"),
    ]:
        with pytest.raises(UvslurmError) as e:
            flatten(layer, "s")
        assert e.value.line() == message
    # Slurm options: anything
    assert flatten({"sbatch": {"anything": 1}}, "s") == {"sbatch.anything": 1}


def test_network_filesystems() -> None:
    assert [k for k in ("nfs", "nfs4", "lustre", "gpfs", "beegfs", "cifs", "smb3", "fuse",
                        "fuse.sshfs", "ceph", "9p", "panfs", "wekafs")
            if not schema.is_network(k)] == []  # fmt: skip
    assert [k for k in ("ext4", "xfs", "tmpfs", "btrfs", "overlay", "anfs", "cephfs", "")
            if schema.is_network(k)] == []  # fmt: skip


# --- the prolog says the same ---------------------------------------------------------------


def test_the_prolog_lists_exactly_the_declared_inputs() -> None:
    listed = re.findall(r"^#   (UVSLURM_[A-Z_]+) ", render.prolog_text(), re.M)
    assert len(listed) == len(set(listed))
    declared = {i.prolog for i in INPUTS}
    assert set(listed) == declared | NOT_DECLARED


def test_the_prolog_reads_only_declared_inputs() -> None:
    used = set(re.findall(r"\bUVSLURM_[A-Z_]+\b", render.prolog_text()))
    assert used == {i.prolog for i in INPUTS} | NOT_DECLARED | {"UVSLURM_CMD"}


def test_the_prolog_prints_the_declared_components() -> None:
    block = re.search(r'\n\s*fp="(.*?)"\n', render.prolog_text(), re.S)
    assert block
    assert [line.split("=", 1)[0] for line in block.group(1).splitlines()] == list(
        schema.COMPONENTS
    )


def test_the_prolog_has_the_declared_network_filesystems() -> None:
    case = re.search(r"case \$t1 in ([^)]*)\)", render.prolog_text())
    assert case
    assert tuple(p.strip() for p in case.group(1).split("|")) == schema.NETWORK_FS


# --- docs/reference says the same -----------------------------------------------------------


def test_config_reference_lists_the_declared_settings() -> None:
    doc = (DOCS / "config.md").read_text()
    assert config_table() in doc, "run `uv run python tests/test_unit_schema.py` for the tables"
    rows = re.findall(r"^\| `([^`]+)` \|", doc, re.M)
    assert sorted(rows) == sorted([*SETTINGS, "sbatch", "profiles.NAME"])


def test_env_reference_lists_the_declared_variables() -> None:
    doc = (DOCS / "env-vars.md").read_text()
    assert env_table() in doc, "run `uv run python tests/test_unit_schema.py` for the tables"
    rows = dict(re.findall(r"^\| `(UVSLURM_\w+)` \| `([^`]+)` \|", doc, re.M))
    assert rows == {v: k for k, v in ENV_VARS.items()}
    # what the job script assigns
    block = doc.split("The rendered script assigns these", 1)[1].split("\n\n", 1)[0]
    named = set(re.findall(r"`(UVSLURM_\w+)`", block))
    assert named == {i.prolog for i in INPUTS} | {"UVSLURM_MODE", "UVSLURM_CMD"}


if __name__ == "__main__":
    print(config_table())
    print(env_table())
