"""config.py in-process: layers, validation messages, the env layer and path expansion."""

from __future__ import annotations

import os

import pytest

from uvslurm.config import DEFAULTS, Config, Setting, env_layer, expand_path, flatten, merge
from uvslurm.errors import UvslurmError


def _error(layer: dict[str, object], source: str = "src") -> str:
    with pytest.raises(UvslurmError) as e:
        flatten(layer, source)
    return e.value.line()


def test_config_get_table_and_profiles() -> None:
    cfg = Config(
        {
            "depot": Setting("/d", "site"),
            "sbatch.time": Setting("10", "user"),
            "sbatch.partition": Setting("cpu", "site"),
            "sbatchx.other": Setting("no", "site"),
            "profiles.gpu.gpus": Setting(1, "p"),
            "profiles.gpu.time": Setting("5", "p"),
            "profiles.big.mem": Setting("1G", "p"),
            "offline": Setting(None, "default"),
        }
    )
    assert cfg.get("depot") == "/d"
    assert cfg.get("missing") is None
    assert cfg.get("missing", "dflt") == "dflt"
    # an unset declared setting: its declared default, unless the caller names another
    assert cfg.get("image") == "none"
    assert cfg.get("image", "auto") == "auto"
    assert cfg.get("rebuild") == []
    assert cfg.get("uv") is None
    # a setting whose value is None is still that value, not the default
    assert cfg.get("offline", "dflt") is None
    assert cfg.table("sbatch") == {"time": "10", "partition": "cpu"}
    assert cfg.table("profiles.gpu") == {"gpus": 1, "time": "5"}
    assert cfg.profile_names() == ["big", "gpu"]


def test_flatten_tables_profiles_and_scalars() -> None:
    out = flatten(
        {
            "depot": "/x",
            "sbatch": {"time": "10", "exclusive": True},
            "fingerprint": {"env": ["A"], "modules": False},
            "profiles": {"gpu": {"gpus": 2}, "cpu": {}},
        },
        "src",
    )
    assert out == {
        "depot": "/x",
        "sbatch.time": "10",
        "sbatch.exclusive": True,
        "fingerprint.env": ["A"],
        "fingerprint.modules": False,
        "profiles.gpu.gpus": 2,
    }


def test_unknown_settings_name_the_source_and_closest_key() -> None:
    assert _error({"dpot": "/x"}) == "src: unknown setting 'dpot' (did you mean 'depot'?)"
    assert _error({"zzzzzz": 1}) == "src: unknown setting 'zzzzzz'"
    assert (
        _error({"fingerprint": {"comands": []}})
        == "src: unknown setting 'fingerprint.comands' (did you mean 'commands'?)"
    )
    assert _error({"fingerprint": {"qqqqqq": 1}}) == "src: unknown setting 'fingerprint.qqqqqq'"


def test_tables_must_be_tables() -> None:
    assert _error({"sbatch": "x"}) == "src: 'sbatch' must be a table"
    assert _error({"fingerprint": ["env"]}) == "src: 'fingerprint' must be a table"
    assert _error({"profiles": 3}) == "src: 'profiles' must be a table"
    assert _error({"profiles": {"big": 1}}) == "src: 'profiles.big' must be a table"


@pytest.mark.parametrize("key", ["depot", "uv", "image", "node-local"])
def test_string_settings(key: str) -> None:
    assert _error({key: 3}) == f"src: '{key}' must be a string"


@pytest.mark.parametrize("value", ["auto", "never", "/tmp/x"])
def test_node_local_accepts(value: str) -> None:
    assert flatten({"node-local": value}, "s") == {"node-local": value}


@pytest.mark.parametrize("value", ["sometimes", "tmp/x", "Auto"])
def test_node_local_refuses(value: str) -> None:
    assert _error({"node-local": value}) == (
        "src: node-local must be 'auto', 'never' or an absolute path"
    )


@pytest.mark.parametrize(
    ("value", "stored"),
    [("auto", "auto"), (True, "true"), (False, "false"), ("true", "true"), ("false", "false")],
)
def test_offline_accepts_and_is_kept_as_a_string(value: object, stored: str) -> None:
    assert flatten({"offline": value}, "s") == {"offline": stored}


@pytest.mark.parametrize("value", ["maybe", "yes", 2, "TRUE"])
def test_offline_refuses(value: object) -> None:
    assert _error({"offline": value}) == "src: offline must be 'auto', true or false"


@pytest.mark.parametrize("value", ["none", "auto", "tar.zst", "squashfs"])
def test_image_accepts(value: str) -> None:
    assert flatten({"image": value}, "s") == {"image": value}


def test_image_refuses() -> None:
    assert _error({"image": "zip"}) == (
        "src: image must be 'none', 'auto', 'tar.zst' or 'squashfs'"
    )


@pytest.mark.parametrize(
    ("layer", "key"),
    [
        ({"rebuild": "mpi4py"}, "rebuild"),
        ({"rebuild": ["ok", 3]}, "rebuild"),
        ({"fingerprint": {"env": "HOME"}}, "fingerprint.env"),
        ({"fingerprint": {"commands": [1]}}, "fingerprint.commands"),
    ],
)
def test_string_lists(layer: dict[str, object], key: str) -> None:
    assert _error(layer) == f"src: '{key}' must be a list of strings"


def test_string_lists_accept_lists_of_strings() -> None:
    out = flatten({"rebuild": ["a", "b"], "fingerprint": {"env": [], "commands": ["x"]}}, "s")
    assert out == {"rebuild": ["a", "b"], "fingerprint.env": [], "fingerprint.commands": ["x"]}


def test_fingerprint_modules_must_be_a_boolean() -> None:
    assert _error({"fingerprint": {"modules": "yes"}}) == (
        "src: 'fingerprint.modules' must be true or false"
    )
    assert flatten({"fingerprint": {"modules": True}}, "s") == {"fingerprint.modules": True}


def test_env_layer_reads_every_variable() -> None:
    environ = {
        "UVSLURM_DEPOT": "/d",
        "UVSLURM_NODE_LOCAL": "never",
        "UVSLURM_OFFLINE": "auto",
        "UVSLURM_UV": "/bin/uv",
        "UVSLURM_IMAGE": "squashfs",
        "UVSLURM_REBUILD": " mpi4py ,, h5py,",
        "OTHER": "x",
    }
    assert env_layer(environ) == {
        "depot": "/d",
        "node-local": "never",
        "offline": "auto",
        "uv": "/bin/uv",
        "image": "squashfs",
        "rebuild": ["mpi4py", "h5py"],
    }


def test_env_layer_skips_empty_values() -> None:
    assert env_layer({"UVSLURM_DEPOT": "", "UVSLURM_REBUILD": ""}) == {}


@pytest.mark.parametrize(
    ("raw", "value"),
    [("true", "true"), ("TRUE", "true"), ("1", "true"), ("Yes", "true"), ("false", "false"),
     ("0", "false"), ("no", "false"), ("NO", "false"), ("maybe", "maybe"), ("auto", "auto")],
)  # fmt: skip
def test_env_layer_offline_booleans(raw: str, value: object) -> None:
    assert env_layer({"UVSLURM_OFFLINE": raw}) == {"offline": value}


def test_merge_starts_from_the_defaults() -> None:
    cfg = merge([])
    assert {k: s.value for k, s in cfg.settings.items()} == DEFAULTS
    assert {s.source for s in cfg.settings.values()} == {"default"}


def test_merge_later_layers_win_and_offline_booleans_become_strings() -> None:
    cfg = merge(
        [
            ("a", {"offline": "true", "depot": "/a"}),
            ("b", {"depot": "/b"}),
        ]
    )
    assert cfg.settings["offline"] == Setting("true", "a")
    assert cfg.settings["depot"] == Setting("/b", "b")
    assert merge([("a", {"offline": "false"})]).settings["offline"] == Setting("false", "a")
    assert merge([("a", {"offline": "auto"})]).settings["offline"] == Setting("auto", "a")
    assert merge([("a", {"offline": True})]).settings["offline"] == Setting("true", "a")
    assert merge([("a", {"offline": False})]).settings["offline"] == Setting("false", "a")


def test_expand_path_expands_variables_and_home(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"S": "/scratch/me", "U": "me"}
    assert expand_path("depot", "$S/uv", "f", env) == "/scratch/me/uv"
    assert expand_path("depot", "${S}/x/${U}", "f", env) == "/scratch/me/x/me"
    assert expand_path("depot", "/a//b/../c/", "f", env) == "/a/c"
    monkeypatch.setenv("HOME", "/home/someone")
    assert expand_path("depot", "~/d", "f", env) == "/home/someone/d"


def test_expand_path_leaves_shell_expanded_values_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/someone")
    for source in ("environment", "command line"):
        assert expand_path("depot", "/x/$S", source, {}) == "/x/$S"
        with pytest.raises(UvslurmError) as e:
            expand_path("depot", "~/d", source, {})
        assert e.value.message == f"depot = '~/d' (from {source}) is not an absolute path"


@pytest.mark.parametrize("value", ["$NOPE/x", "${NOPE}/x", "$EMPTY/x"])
def test_expand_path_unset_variable(value: str) -> None:
    with pytest.raises(UvslurmError) as e:
        expand_path("depot", value, "cfg.toml", {"EMPTY": ""})
    name = "EMPTY" if "EMPTY" in value else "NOPE"
    assert e.value.message == f"depot = {value!r} (from cfg.toml): ${name} is not set"
    assert e.value.hint == f"set {name}, or write the path out in cfg.toml"


def test_expand_path_relative_is_refused() -> None:
    with pytest.raises(UvslurmError) as e:
        expand_path("depot", "$R/x", "cfg.toml", {"R": "rel"})
    assert e.value.message == "depot = '$R/x' (from cfg.toml) is not an absolute path"
    assert e.value.hint == "write it as an absolute path in cfg.toml"


def test_expand_path_home_only_at_the_start() -> None:
    with pytest.raises(UvslurmError):
        expand_path("depot", "x/~", "f", {})
    assert expand_path("depot", "/x/~", "f", {}) == os.path.normpath("/x/~")


def test_flatten_goes_on_after_the_profiles() -> None:
    out = flatten({"profiles": {"gpu": {"gpus": 1}}, "depot": "/x", "sbatch": {"time": "5"}}, "s")
    assert out == {"profiles.gpu.gpus": 1, "depot": "/x", "sbatch.time": "5"}
