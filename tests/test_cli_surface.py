"""The CLI as a user meets it: options after the target, suggestions, value and config checks,
help, and what the script's header records. Fast: a fake sbatch where one is needed."""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from conftest import files_under, uvslurm
from uvslurm import cli, sbatch_options
from uvslurm.commands import srun


def _fake(fake_sbatch: Path) -> dict[str, str]:
    return {"PATH": f"{fake_sbatch}:{os.environ['PATH']}"}


# --- 10: a uvslurm option after the target ---------------------------------------------------


def test_uvslurm_option_after_the_target_goes_to_it_with_a_warning_first(
    project: Path, fake_sbatch: Path, tmp_path: Path, isolated_user: Path
) -> None:
    r = uvslurm("submit", "train.py", "--dry-run", "x", cwd=project, env=_fake(fake_sbatch))
    assert r.returncode == 0, r.stderr
    first = r.stderr.strip().splitlines()[0]
    assert first == (
        "uvslurm: warning: --dry-run after train.py goes to train.py, not to uvslurm; "
        "to mean uvslurm's, put it before train.py"
    )
    # ... and then the job was submitted, with --dry-run among the script's arguments
    assert (tmp_path / "sbatch-calls").exists()
    copy = isolated_user / "state" / "uvslurm" / "scripts" / "4242.sh"
    assert f"UVSLURM_CMD=({project / 'train.py'} --dry-run x)" in copy.read_text()


def test_script_arguments_that_are_not_uvslurms_pass_without_a_word(project: Path) -> None:
    r = uvslurm("submit", "--dry-run", "train.py", "-t", "5", "--lr=0.1", "--verbose", cwd=project)
    assert r.returncode == 0, r.stderr
    assert "warning" not in r.stderr
    assert "--time" not in r.stdout.split("# ---")[0]


# --- 11: suggestions -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "wanted", "never"),
    [
        (["jobs", "--wait"], "`uvslurm submit` has", "'--wait'?"),
        (["config", "--profile", "x"], "has no option '--profile'", "'--profile'?"),
        (["depot", "rm", "--dry-run"], "(`uvslurm depot gc` has)", "'--dry-run'?"),
        (["submit", "--wrap", "echo hi"], "use `uvslurm submit -- CMD ARGS...`", "--wait"),
        (["submit", "--package", "x", "train.py"], "", "--parsable"),
        (["prepare", "--locked"], "", "'--locked'?"),
        (["prepare", "--frozen"], "", "'--frozen'?"),
        (["submit", "--partitoin", "debug", "train.py"], "did you mean '--partition'?", "'--partitoin'?"),
        (["sumbit", "train.py"], "unknown command 'sumbit'; did you mean 'submit'?", "x"),
        (["depot", "rmm"], "unknown action 'rmm'; did you mean 'rm'?", "x"),
        (["frobnicate"], "choose one of: submit, prepare", "did you mean"),
    ],
)  # fmt: skip
def test_suggestions_never_name_the_rejected_option_or_a_misleading_one(
    project: Path, argv: list[str], wanted: str, never: str
) -> None:
    r = uvslurm(*argv, cwd=project)
    assert "Traceback" not in r.stderr
    if r.returncode == 0:  # another branch may have given the command this option meanwhile
        return
    assert r.returncode == 2, r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert wanted in line
    assert never not in line


def test_env_json_is_the_same_as_shell_json(project: Path) -> None:
    a = uvslurm("env", "--json", cwd=project)
    b = uvslurm("env", "--shell", "json", cwd=project)
    assert a.returncode == 0, a.stderr
    assert a.stdout == b.stdout
    assert json.loads(a.stdout)["UVSLURM_ENV_PROJECT"] == str(project)


# --- 12: values, config errors, --chdir --------------------------------------------------------


BAD = [
    (["--array=10-1"], "--array: invalid value '10-1'; the range 10-1 counts down; write it 1-10"),
    (["-N", "0"], "--nodes: invalid value '0'; a count of 0 asks for nothing; use 1 or more"),
    (["--nodes=4-2"], "--nodes: invalid value '4-2'; the range 4-2 counts down; write it 2-4"),
    (["--gpus=one"], "--gpus: invalid value 'one'; use a count, or TYPE:COUNT, e.g. 2 or a100:2"),
    (["--extra", "gpu"], "--extra gpu: {pyproject} defines no such extra (its optional-dependencies: none)"),
    (["--group", "lint"], "--group lint: {pyproject} defines no such group (its dependency-groups: none)"),
    (["--only-group", "lint"], "--only-group lint: {pyproject} defines no such group (its dependency-groups: none)"),
    (["--no-group", "lint"], "--no-group lint: {pyproject} defines no such group (its dependency-groups: none)"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "message"), BAD)
def test_values_are_checked_before_anything_is_written(
    project: Path, fake_sbatch: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    before = files_under(project)
    r = uvslurm("submit", *args, "train.py", cwd=project, env=_fake(fake_sbatch))
    assert r.returncode == 2
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith(
        "uvslurm: error: " + message.format(pyproject=project / "pyproject.toml")
    )
    assert not (tmp_path / "sbatch-calls").exists()
    assert files_under(project) == before


def test_a_defined_extra_and_group_pass(project: Path) -> None:
    with (project / "pyproject.toml").open("a") as f:
        f.write("\n[project.optional-dependencies]\nGPU_x = []\n[dependency-groups]\nlint = []\n")
    r = uvslurm("submit", "--dry-run", "--extra", "gpu-x", "--group", "lint", "train.py", cwd=project)  # fmt: skip
    assert r.returncode == 0, r.stderr


def test_a_config_value_names_its_file_and_key(project: Path, isolated_user: Path) -> None:
    with (project / "pyproject.toml").open("a") as f:
        f.write('\n[tool.uvslurm.sbatch]\nacount = "x"\n')
    r = uvslurm("submit", "--dry-run", "train.py", cwd=project)
    assert r.returncode == 1
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith(
        f"uvslurm: error: {project / 'pyproject.toml'} [tool.uvslurm]: sbatch.acount: "
        "unknown sbatch option 'acount'"
    )
    assert line.endswith("did you mean '--account'?")
    user = isolated_user / "config" / "uvslurm" / "config.toml"
    user.parent.mkdir(parents=True)
    user.write_text('[profiles.big]\ngpus = "one"\n')
    (project / "pyproject.toml").write_text(
        (project / "pyproject.toml").read_text().replace('acount = "x"', "")
    )
    r = uvslurm("submit", "--dry-run", "--uvslurm-profile", "big", "train.py", cwd=project)
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith(
        f"uvslurm: error: {user}: profiles.big.gpus: --gpus: invalid value 'one'"
    )


def test_a_config_that_is_not_utf8_is_one_clear_line(project: Path) -> None:
    with (project / "pyproject.toml").open("ab") as f:
        f.write(b'\n[tool.uvslurm]\ndepot = "/tmp/\xff"\n')
    r = uvslurm("submit", "--dry-run", "train.py", cwd=project)
    assert r.returncode == 1
    (line,) = r.stderr.strip().splitlines()
    assert "is not UTF-8 (byte 0xff)" in line and "save the file as UTF-8" in line
    assert "unexpected" not in line


def test_a_missing_site_config_file_is_an_error(project: Path, tmp_path: Path) -> None:
    env = {"UVSLURM_SITE_CONFIG": str(tmp_path / "nosuch.toml")}
    r = uvslurm("submit", "--dry-run", "train.py", cwd=project, env=env)
    assert r.returncode == 1
    assert r.stderr.strip() == (
        f"uvslurm: error: UVSLURM_SITE_CONFIG={tmp_path / 'nosuch.toml'}: no such file; fix "
        "the path, or unset UVSLURM_SITE_CONFIG (default: /etc/uvslurm/config.toml)"
    )


def test_config_runs_on_an_invalid_config_and_shows_the_problem(
    project: Path, isolated_user: Path
) -> None:
    (isolated_user / "site-config.toml").write_text('[sbatch]\npartition = "site"\n')
    with (project / "pyproject.toml").open("a") as f:
        f.write('\n[tool.uvslurm]\nnode-lcoal = "never"\n')
    r = uvslurm("config", cwd=project, env={"COLUMNS": "200"})
    assert r.returncode == 1
    # what holds is shown: the site file's setting, from the site file
    assert "sbatch.partition" in r.stdout and "site" in r.stdout
    errors = [line for line in r.stderr.splitlines() if line.startswith("uvslurm: error:")]
    assert len(errors) == 1
    assert "unknown setting 'node-lcoal' (did you mean 'node-local'?)" in errors[0]
    assert str(project / "pyproject.toml") in errors[0]
    j = uvslurm("config", "--json", cwd=project)
    assert j.returncode == 1
    assert json.loads(j.stdout)["sbatch.partition"]["value"] == "site"


def test_log_directories_are_checked_where_the_job_starts(project: Path) -> None:
    (project / "run" / "logs").mkdir(parents=True)
    ok = uvslurm("submit", "--dry-run", "-D", "run", "-o", "logs/%j.out", "train.py", cwd=project)
    assert ok.returncode == 0, ok.stderr
    r = uvslurm("submit", "--dry-run", "-o", "logs/%j.out", "train.py", cwd=project)
    assert r.returncode == 1
    assert f"directory {project / 'logs'} does not exist" in r.stderr
    r = uvslurm("submit", "--dry-run", "--chdir=nowhere", "train.py", cwd=project)
    assert r.returncode == 1
    assert f"--chdir: directory {project / 'nowhere'} does not exist" in r.stderr


def test_export_without_all_warns(project: Path) -> None:
    r = uvslurm("submit", "--dry-run", "--export=NONE", "train.py", cwd=project)
    assert r.returncode == 0, r.stderr
    assert "#SBATCH --export=NONE\n" in r.stdout
    assert r.stderr.startswith("uvslurm: warning: --export=NONE: the job starts without")
    r = uvslurm("submit", "--dry-run", "--export=ALL,X=1", "train.py", cwd=project)
    assert "warning" not in r.stderr


def test_an_option_with_an_optional_value_never_takes_the_target(project: Path) -> None:
    r = uvslurm("submit", "--dry-run", "--exclusive", "train.py", "a", cwd=project)
    assert r.returncode == 0, r.stderr
    assert "#SBATCH --exclusive\n" in r.stdout
    assert f"UVSLURM_CMD=({project / 'train.py'} a)" in r.stdout
    r = uvslurm("submit", "--dry-run", "--exclusive=user", "train.py", cwd=project)
    assert "#SBATCH --exclusive=user\n" in r.stdout


# --- 13: help ------------------------------------------------------------------------------------


def _parsers(p: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    return cli._all_parsers(p)


def test_every_option_of_every_command_has_a_description() -> None:
    missing = [
        f"{p.prog} {a.option_strings or a.dest}"
        for p in _parsers(cli.build_parser())
        for a in p._actions
        if not isinstance(a, argparse._SubParsersAction) and not a.help
    ]
    assert missing == []


def test_submit_help_lists_sbatch_options_with_their_descriptions(project: Path) -> None:
    r = uvslurm("submit", "--help", cwd=project, env={"COLUMNS": "200"})
    assert r.returncode == 0
    assert re.search(r"--partition V, -p V +partition requested", r.stdout)
    assert re.search(r"--profile V +enable acct_gather_profile", r.stdout)
    assert re.search(
        r"--uvslurm-profile NAME\s+Slurm options from \[tool.uvslurm.profiles", r.stdout
    )
    assert "this site's `sbatch --help`" in " ".join(r.stdout.split())


def test_depot_rm_takes_the_projects_name(project: Path, isolated_user: Path) -> None:
    r = uvslurm("prepare", cwd=project, env={"UVSLURM_NODE_LOCAL": "never"})
    assert r.returncode == 0, r.stderr
    listed = json.loads(uvslurm("depot", "list", "--json", cwd=project, check=True).stdout)
    assert [v["project_dir"].rsplit("-", 1)[0] for v in listed] == ["proj"]
    r = uvslurm("depot", "rm", "proj", cwd=isolated_user)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1].startswith("removed the venvs of proj-")
    assert json.loads(uvslurm("depot", "list", "--json", cwd=project).stdout) == []


def test_depot_gc_older_than_takes_units(project: Path) -> None:
    assert cli._age_days("2w") == 14
    assert cli._age_days("12h") == 0.5
    assert cli._age_days("30") == 30
    r = uvslurm("depot", "gc", "--older-than", "1w", "--dry-run", cwd=project)
    assert r.returncode == 0, r.stderr
    r = uvslurm("depot", "gc", "--older-than", "1y", cwd=project)
    assert r.returncode == 2
    assert "'1y' is not an age" in r.stderr


# --- 14: the header records the command line ------------------------------------------------------


def test_the_scripts_header_records_the_command_line_as_given(project: Path) -> None:
    argv = ["submit", "--dry-run", "-t", "5", "--comment=a b", "train.py", "x y", "it's", "$HOME"]
    r = uvslurm(*argv, cwd=project)
    assert r.returncode == 0, r.stderr
    (header,) = [line for line in r.stdout.splitlines() if line.startswith("# Generated by")]
    assert header.endswith(": " + shlex.join(["uvslurm", *argv]))


# --- pure parts -----------------------------------------------------------------------------------


HELP = """\
Usage: sbatch [OPTIONS(0)...] [ : [OPTIONS(N)...]] script(0) [args(0)...]

Parallel run options:
  -a, --array=indexes         job array index values
      --cpu-freq=min[-max[:gov]] requested cpu frequency (and governor)
      --export[=names]        specify environment variables to export
      --hold                  submit job in held state
      --parsable              outputs only the jobid and cluster name (if present),
                              separated by semicolon, only on successful submission.
      --profile=value         enable acct_gather_profile for detailed data
                              value is all or none or any combination of
                              energy, lustre, network or task
  -B  --extra-node-info=S[:C[:T]]  combine request of sockets per node,
      --exclusive[=user]      allocate nodes in exclusive mode when
      --exclusive[=mcs]       allocate nodes in exclusive mode when
                              and mcs plugin is enabled
Help options:
  -h, --help                  show this help message
"""


def test_parse_help() -> None:
    S = sbatch_options.Spec
    assert sbatch_options.parse_help(HELP) == {
        "array": S("a", "value", "job array index values"),
        "cpu-freq": S(None, "value", "requested cpu frequency (and governor)"),
        "export": S(None, "optional", "specify environment variables to export"),
        "hold": S(None, "flag", "submit job in held state"),
        "profile": S(None, "value", "enable acct_gather_profile for detailed data value is all "
                     "or none or any combination of energy, lustre, network or task"),
        "extra-node-info": S("B", "value", "combine request of sockets per node,"),
        "exclusive": S(None, "optional", "allocate nodes in exclusive mode when"),
    }  # fmt: skip


def test_the_site_vocabulary_replaces_simple_slurms() -> None:
    try:
        sbatch_options.use_site(
            {"segment": sbatch_options.Spec(None, "value"), "time": sbatch_options.Spec("t")}
        )
        assert sbatch_options.canonical("--segment") == "segment"
        assert sbatch_options.canonical("-t") == "time"
        with pytest.raises(sbatch_options.UsageError) as e:
            sbatch_options.canonical("--partition")
        assert "this site's sbatch does not know it" in e.value.message
    finally:
        sbatch_options.use_site(None)
    assert sbatch_options.canonical("--partition") == "partition"


def test_srun_gets_the_configured_options_but_the_batch_only_ones() -> None:
    args, skipped = srun.srun_options(
        {"time": "5", "exclusive": True, "array": "1-3", "output": "x", "partition": "p"}
    )
    assert args == ["--exclusive", "--partition=p", "--time=5"]
    assert skipped == ["array", "output"]


def test_srun_hands_bash_a_script_bigger_than_one_argument_may_hold_byte_for_byte() -> None:
    """The job script (~130 KB) travels in srun's argv, where one string holds at most 128 KiB:
    in pieces, which bash joins and runs. Multibyte characters, quotes, `$` and newlines at the
    pieces' edges come through as they were; positional parameters are those of `bash -c`."""
    word = "é€" + "𝄞" * 300 + ' "$HOME" \\\\ `x`'  # mostly 4 bytes a character
    line = f"printf '%s\\n' '{word}' \"$#\" \"$0\"\n"
    text = line * (4 * 128 * 1024 // len(line.encode()) + 7)
    argv = srun.bash_argv(text)
    assert len(argv) > 6 and all(len(a.encode()) < 128 * 1024 for a in argv)
    r = subprocess.run(argv, capture_output=True, text=True, check=True)
    assert r.stdout == f"{word}\n0\nuvslurm-srun\n" * text.count("\n")
