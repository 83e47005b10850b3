from __future__ import annotations

from pathlib import Path

import pytest

from uvslurm import sources
from uvslurm.config import env_layer, merge
from uvslurm.errors import UvslurmError


def test_later_layers_win_and_record_where_values_came_from() -> None:
    cfg = merge(
        [
            ("site", {"depot": "/site", "sbatch": {"partition": "cpu", "time": "1:00:00"}}),
            ("user", {"depot": "/user"}),
            ("project", {"sbatch": {"time": "2:00:00"}, "node-local": "never"}),
            ("environment", env_layer({"UVSLURM_DEPOT": "/env"})),
            ("command line", {"node-local": "auto"}),
        ]
    )
    assert cfg.settings["depot"].value == "/env"
    assert cfg.settings["depot"].source == "environment"
    # tables merge key by key
    assert cfg.table("sbatch") == {"partition": "cpu", "time": "2:00:00"}
    assert cfg.settings["sbatch.partition"].source == "site"
    assert cfg.settings["node-local"].source == "command line"
    assert cfg.settings["offline"].source == "default"


def test_unknown_key_names_the_file_and_closest_key() -> None:
    with pytest.raises(UvslurmError) as e:
        merge([("/etc/uvslurm/config.toml", {"dpot": "/x"})])
    assert "/etc/uvslurm/config.toml" in e.value.line() and "'depot'" in e.value.line()


@pytest.mark.parametrize(
    "layer",
    [{"node-local": "sometimes"}, {"offline": "maybe"}, {"rebuild": "mpi4py"}, {"sbatch": 3},
     {"fingerprint": {"modules": "yes"}}, {"profiles": {"big": 1}}],
)  # fmt: skip
def test_bad_values_are_refused(layer: dict[str, object]) -> None:
    with pytest.raises(UvslurmError):
        merge([("project", layer)])


def test_env_layer_parses_lists_and_booleans() -> None:
    layer = env_layer({"UVSLURM_REBUILD": "mpi4py, h5py", "UVSLURM_OFFLINE": "true"})
    assert layer == {"rebuild": ["mpi4py", "h5py"], "offline": "true"}


def test_profiles_are_flattened_per_name() -> None:
    cfg = merge([("p", {"profiles": {"gpu": {"gpus": 1, "time": "4:00:00"}}})])
    assert cfg.profile_names() == ["gpu"]
    assert cfg.table("profiles.gpu") == {"gpus": 1, "time": "4:00:00"}


def test_files_are_layered_site_user_project_env_cli(
    isolated_user: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = isolated_user / "site-config.toml"
    site.write_text('depot = "/site"\n[sbatch]\npartition = "cpu"\n')
    user = isolated_user / "config" / "uvslurm" / "config.toml"
    user.parent.mkdir(parents=True)
    user.write_text('depot = "/user"\noffline = true\n')
    cfg = sources.load({"offline": "auto"}, {}, environ={"UVSLURM_SITE_CONFIG": str(site)})
    assert cfg.get("depot") == "/user"
    assert cfg.get("offline") == "auto"
    assert cfg.get("sbatch.partition") == "cpu"
    assert cfg.settings["sbatch.partition"].source == str(site)


def test_broken_toml_is_one_clear_error(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text("[sbatch\n")
    with pytest.raises(UvslurmError, match="invalid TOML"):
        sources.read_toml(f)


def test_config_command_shows_every_setting_and_where_it_came_from(
    isolated_user: Path, project: Path
) -> None:
    import json

    from conftest import uvslurm

    (isolated_user / "site-config.toml").write_text('[sbatch]\npartition = "cpu"\ntime = "10"\n')
    user = isolated_user / "config" / "uvslurm" / "config.toml"
    user.parent.mkdir(parents=True)
    user.write_text('node-local = "never"\n[sbatch]\ntime = "1:00:00"\n')
    with (project / "pyproject.toml").open("a") as f:
        f.write('\n[tool.uvslurm]\nimage = "tar.zst"\n[tool.uvslurm.profiles.gpu]\ngpus = 1\n')
    r = uvslurm("config", "--json", cwd=project, env={"UVSLURM_OFFLINE": "true"})
    assert r.returncode == 0, r.stderr
    got = {k: (v["value"], v["source"]) for k, v in json.loads(r.stdout).items()}
    assert got["sbatch.partition"] == ("cpu", str(isolated_user / "site-config.toml"))
    assert got["sbatch.time"] == ("1:00:00", str(user))
    assert got["node-local"] == ("never", str(user))
    pyproject = f"{project / 'pyproject.toml'} [tool.uvslurm]"
    assert got["image"] == ("tar.zst", pyproject)
    assert got["profiles.gpu.gpus"] == (1, pyproject)
    assert got["offline"] == ("true", "environment (UVSLURM_OFFLINE)")
    assert got["depot"] == (str(isolated_user / "scratch" / "uvslurm"), "default ($SCRATCH)")
    assert got["fingerprint.modules"] == (True, "default")
    # the table for people names the same sources, and the files that were considered
    human = uvslurm("config", cwd=project, env={"UVSLURM_OFFLINE": "true", "COLUMNS": "300"})
    assert "environment (UVSLURM_OFFLINE)" in human.stdout
    assert f"user: {user}" in human.stdout and "(none)" not in human.stdout.split("user:")[1]
