"""Bugs the mutation run brought to light, each pinned by the behaviour that is right."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from uvslurm import config, fpdiff, names, nodeenv
from uvslurm.errors import UsageError, UvslurmError


@pytest.mark.parametrize("components", [["a"], 3, "x", None])
def test_a_saved_fingerprint_with_no_table_of_components_is_one_clear_error(
    tmp_path: Path, components: object
) -> None:
    saved = tmp_path / "fp.json"
    saved.write_text(json.dumps({"fingerprint": "x", "components": components}))
    with pytest.raises(UvslurmError, match=r"^cannot read a fingerprint from .*fp\.json: "):
        fpdiff.load_other(str(saved))


@pytest.mark.parametrize("name", ["gpu\n", "gpu\n\n", "a b"])
def test_selection_names_with_a_trailing_newline_are_refused(name: str) -> None:
    with pytest.raises(UsageError, match="--extra: invalid name"):
        nodeenv.sync_args([name], False, [], False)


def test_fingerprint_env_names_with_a_trailing_newline_are_refused() -> None:
    cfg = config.merge([("test", {"fingerprint": {"env": ["A\n"]}})])
    with pytest.raises(UsageError, match="is not a variable name"):
        nodeenv.fingerprint_env(cfg)


@pytest.mark.parametrize("value", [1, 0, 2.0])
def test_offline_must_be_a_boolean_or_auto_not_a_number(value: object) -> None:
    with pytest.raises(UvslurmError, match="offline must be 'auto', true or false"):
        config.merge([("f.toml", {"offline": value})])


def test_downloaded_sources_are_part_of_the_depot_grammar() -> None:
    assert names.is_depot_entry(".sources")
    assert not names.is_depot_entry(".other")
