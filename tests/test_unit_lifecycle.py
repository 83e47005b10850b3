"""Job manifests, Slurm's answers and the submitted lock copy, without a cluster (issue 12)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from conftest import uvslurm
from uvslurm import __version__, manifest, nodeenv, paths, pipeline, slurm
from uvslurm.errors import UsageError, UvslurmError
from uvslurm.project import Project

SCONTROL = (
    "JobId=41 JobName=my train UserId=u(1) JobState=RUNNING Reason=None ExitCode=0:0 "
    "RunTime=00:01:02 NodeList=n1 StdErr=/l/e.err StdOut=/l/my train-41.out Power=\n"
    "JobId=42 ArrayJobId=42 ArrayTaskId=0 JobName=arr JobState=COMPLETED ExitCode=0:0 "
    "RunTime=00:00:01 NodeList=n2 StdOut=/l/a-0.out\n"
    "JobId=43 ArrayJobId=42 ArrayTaskId=1 JobName=arr JobState=FAILED ExitCode=3:0 "
    "RunTime=00:00:01 NodeList=n1 StdOut=/l/a-1.out\n"
    "JobId=42 ArrayJobId=42 ArrayTaskId=2-5 JobName=arr JobState=PENDING ExitCode=0:0 "
    "RunTime=00:00:00 NodeList=(null)\n"
    "JobId=50 JobName=x JobState=CANCELLED ExitCode=0:15 RunTime=00:00:09 NodeList=n1\n"
)


def test_scontrol_lines_become_jobs_and_tasks_and_names_may_hold_blanks() -> None:
    infos = {i.job_id: i for i in map(slurm.info_from_scontrol, slurm.parse_scontrol(SCONTROL))}
    assert set(infos) == {"41", "42_0", "42_1", "42_2-5", "50"}
    j = infos["41"]
    assert (j.name, j.state, j.exit_code, j.elapsed, j.nodes) == (
        "my train", "RUNNING", None, "00:01:02", "n1")  # fmt: skip
    assert j.stdout == "/l/my train-41.out" and j.stderr == "/l/e.err" and not j.ended
    assert (infos["42_1"].exit_code, infos["42_1"].array_job, infos["42_1"].ended) == (
        3,
        "42",
        True,
    )
    assert infos["42_2-5"].nodes == "" and infos["42_2-5"].exit_code is None
    assert (infos["50"].exit_code, infos["50"].signal) == (0, 15)
    assert slurm.wanted(infos["42_1"], ["42"]) and slurm.wanted(infos["42_1"], ["42_1"])
    assert not slurm.wanted(infos["42_1"], ["42_0", "4"])


def test_sacct_lines() -> None:
    text = ("7|a|COMPLETED|0:0|00:00:03|n1\n8_2|b|CANCELLED by 0|0:15|00:00:01|n2\n"
            "9|c|PENDING|0:0|00:00:00|None assigned\nnot|a|line\n")  # fmt: skip
    got = {i.job_id: i for i in slurm.parse_sacct(text)}
    assert set(got) == {"7", "8_2", "9"}
    assert (got["7"].exit_code, got["7"].source) == (0, "sacct")
    assert (got["8_2"].state, got["8_2"].array_job, got["8_2"].signal) == ("CANCELLED", "8", 15)
    assert (got["9"].exit_code, got["9"].nodes) == (None, "")


def test_query_asks_sacct_only_for_what_scontrol_does_not_know(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[list[str]] = []

    def run(argv: list[str], **kw: object) -> str:
        calls.append(argv)
        if argv[0] == "scontrol":
            return SCONTROL
        return "60|gone|TIMEOUT|0:0|01:00:00|n2\n61|other|COMPLETED|0:0|00:00:01|n1\n"

    monkeypatch.setattr(slurm.proc, "run", run)
    got = slurm.query(["41", "42", "60"])
    assert set(got) == {"41", "42_0", "42_1", "42_2-5", "60"}
    assert got["60"].state == "TIMEOUT" and got["60"].source == "sacct"
    assert calls[1][-1] == "60", "sacct is asked only for the id scontrol lacked"
    calls.clear()
    assert slurm.query([]) == {} and calls == []


def test_query_without_accounting_leaves_unknown_ids_out(monkeypatch: pytest.MonkeyPatch) -> None:
    def run(argv: list[str], **kw: object) -> str:
        if argv[0] == "sacct":
            raise slurm.proc.CommandFailed(argv, 1, "Slurm accounting storage is disabled")
        return SCONTROL

    monkeypatch.setattr(slurm.proc, "run", run)
    assert set(slurm.query(["50", "77"])) == {"50"}


def test_record_parsing() -> None:
    rec = manifest.parse_record(
        "time=1795984429.5\nnode=n1\nready=cold\nready_ms=1079\nlock_moved=1\n"
        "components:\narch=x86_64\ncpu=a=b c\n"
    )
    assert rec["time"] == "2026-11-29T20:33:49+00:00"
    assert (rec["ready_ms"], rec["lock_moved"], rec["node"]) == (1079, True, "n1")
    assert rec["components"] == {"arch": "x86_64", "cpu": "a=b c"}
    assert manifest.parse_record("exit_code=-1\ntime=bad\n") == {"exit_code": -1}
    assert manifest.parse_record("lock_moved=0\n")["lock_moved"] is False


def test_run_states_from_slurm_then_the_records() -> None:
    info = slurm.JobInfo("5", state="RUNNING", elapsed="00:00:02", nodes="n2", stdout="/o")
    run = manifest.run_of({"ready": "warm", "nodes": "n1"}, None, info)
    assert (run["state"], run["exit_code"], run["nodes"], run["log"]) == (
        "RUNNING",
        None,
        "n2",
        "/o",
    )
    ended = slurm.JobInfo("5", state="FAILED", exit_code=None)
    assert manifest.run_of(None, {"exit_code": 4}, ended)["exit_code"] == 4
    assert manifest.run_of(None, {"exit_code": 0}, None)["state"] == "COMPLETED"
    assert manifest.run_of(None, {"exit_code": 2}, None)["state"] == "FAILED"
    assert manifest.run_of({"nodes": "n1"}, None, None)["state"] == "UNKNOWN"
    assert manifest.run_of({"nodes": "n1"}, None, None)["nodes"] == "n1"


def test_merged_array_lists_tasks_in_order_and_the_pending_rest() -> None:
    infos = {i.job_id: i for i in map(slurm.info_from_scontrol, slurm.parse_scontrol(SCONTROL))}
    doc = {"job_id": "42", "array": True, "sbatch": {"job-name": {"value": "arr"}}}
    records = {"42_10": ({"ready": "cold"}, {"exit_code": 0}), "42_1": ({"ready": "warm"}, None)}
    m = manifest.merged(doc, records, infos)
    assert list(m["tasks"]) == ["0", "1", "10", "2-5"]
    assert m["tasks"]["1"]["state"] == "FAILED" and m["tasks"]["1"]["ready"] == "warm"
    assert m["tasks"]["10"]["state"] == "COMPLETED"
    rows = manifest.entries(m)
    assert [r["job_id"] for r in rows] == ["42_0", "42_1", "42_10", "42_2-5"]
    assert {r["name"] for r in rows} == {"arr"}
    single = manifest.merged({"job_id": "41", "array": False}, {}, infos)
    assert single["run"]["state"] == "RUNNING" and "tasks" not in single
    forgotten = manifest.entries(manifest.merged({"job_id": "9", "array": True}, {}, {}))
    assert [(r["job_id"], r["state"]) for r in forgotten] == [("9", "UNKNOWN")]


def test_log_patterns_are_expanded_as_sbatch_does() -> None:
    e = manifest.expand_log
    assert e("/l/%x-%j.out", "7", "", "train", "u") == "/l/train-7.out"
    assert e("/l/a-%A_%a.log", "7", "3", "n", "u") == "/l/a-7_3.log"
    assert e("/l/%j-%4a-%u-%N.log", "7", "3", "n", "bob") == "/l/%j-0003-bob-%N.log"
    assert e("/l/100%%-%5j", "7", "", "n", "u") == "/l/100%-00007"


def test_job_ids() -> None:
    assert manifest.parse_job_id(" 12 ") == ("12", "")
    assert manifest.parse_job_id("12_3") == ("12", "3")
    for bad in ("12_", "a", "12_x", "1;rm", ""):
        with pytest.raises(UsageError):
            manifest.parse_job_id(bad)


def test_git_facts() -> None:
    clean = manifest.git_facts("abc\n", "main\n", "", b"")
    assert clean == {"commit": "abc", "branch": "main", "dirty": False, "diff_sha256": None}
    dirty = manifest.git_facts("abc", "main", " M a.py\n", b"diff")
    assert dirty["dirty"] is True and len(dirty["diff_sha256"]) == 64


def test_git_of_a_work_tree_and_outside_one(tmp_path: Path) -> None:
    assert manifest.git_of(tmp_path) is None
    import subprocess

    g = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*g, "init", "-q"], check=True)
    (tmp_path / "a").write_text("1")
    subprocess.run([*g, "add", "a"], check=True)
    subprocess.run([*g, "commit", "-qm", "x"], check=True)
    facts = manifest.git_of(tmp_path)
    assert facts is not None and facts["dirty"] is False and len(facts["commit"]) == 40
    (tmp_path / "a").write_text("2")
    assert manifest.git_of(tmp_path)["dirty"] is True  # type: ignore[index]


def test_manifest_files_round_trip_and_records(isolated_user: Path) -> None:
    doc = manifest.submission(
        job_id="77", argv=["uvslurm", "submit", "x y"], cwd="/c", project="/p", lock_root="/p",
        options={"time": "5"}, sources={"time": "command line"}, target={"command": ["a"]},
        versions={"uvslurm": "0"}, git=None, lock_sha256="ab" * 32, pyproject_sha256="cd" * 32,
        lock_dir="", depot="/d", sync_args=(), script="/s/77.sh", logs={"output": "/l/%j"},
        array=False, submitted_at=0.0,
    )  # fmt: skip
    path = manifest.write(doc)
    assert path == manifest.jobs_dir() / "77.json" and oct(path.parent.stat().st_mode)[-3:] == "700"
    assert manifest.read("77") == doc
    assert doc["sbatch"] == {"time": {"value": "5", "source": "command line"}}
    assert doc["member"] is None
    member = manifest.submission(**{**_args(doc), "project": "/w/pkgs/a", "lock_root": "/w"})
    assert (member["member"], member["workspace"]) == ("pkgs/a", "/w")
    (path.parent / "77.start").write_text("ready=warm\n")
    (path.parent / "77.end").write_text("exit_code=1\n")
    (path.parent / "770.start").write_text("ready=cold\n")  # another job
    (path.parent / "77.other").write_text("x")
    assert manifest.records("77") == {"77": ({"ready": "warm"}, {"exit_code": 1})}
    (path.parent / "78.json").write_text(json.dumps({**doc, "job_id": "78", "project": "/q"}))
    (path.parent / "79.json").write_text(json.dumps({**doc, "schema": 99}))
    (path.parent / "80.json").write_text("{not json")
    assert [d["job_id"] for d in manifest.all_docs()] == ["78", "77"]
    assert [d["job_id"] for d in manifest.all_docs("/p")] == ["77"]
    assert [d["job_id"] for d in manifest.all_docs(limit=1)] == ["78"]
    assert [d["job_id"] for d in manifest.all_docs("/p", limit=1)] == ["77"]
    assert manifest.all_docs(limit=0) == []
    assert manifest.read("79") is None and manifest.read("80") is None
    with pytest.raises(UvslurmError, match="no manifest of job 5"):
        manifest.load("5")


def test_a_jobs_dir_others_can_write_is_refused(isolated_user: Path) -> None:
    d = manifest.ensure_jobs_dir()
    d.chmod(0o777)
    with pytest.raises(UvslurmError, match="not using"):
        manifest.ensure_jobs_dir()


def test_the_submitted_copy_is_content_addressed_and_links_the_rest(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    (root / "src").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\nname='x'\n")
    (root / "uv.lock").write_text("version = 1\n")
    (root / ".venv").mkdir()
    (root / ".python-version").write_text("3.11\n")
    node = nodeenv.NodeSettings(project=str(root), uv="uv", depot=str(tmp_path / "depot"),
                                node_local="auto", offline="auto", python="", sync_args=(),
                                fingerprint_env=())  # fmt: skip
    (tmp_path / "depot").mkdir()
    project = Project(root, {})
    lock = b"version = 1\n"
    out = pipeline.keep_submitted(node, project, lock)
    copy = Path(out.lock_dir)
    assert copy.name == pipeline.submitted_name(lock, b"[project]\nname='x'\n")
    assert copy.parent.name == node.project_id
    assert (copy / "uv.lock").read_bytes() == lock and not (copy / "uv.lock").is_symlink()
    assert (copy / "src").resolve() == root / "src" and (copy / ".python-version").is_symlink()
    assert not (copy / ".venv").exists()
    # a new top-level entry is linked by the next submission; the copy itself stays
    (root / "README.md").write_text("r")
    (root / "uv.lock").write_text("version = 2\n")  # what the node would see later
    again = pipeline.keep_submitted(node, project, lock)
    assert again.lock_dir == out.lock_dir and (copy / "README.md").is_symlink()
    assert (copy / "uv.lock").read_bytes() == lock
    other = pipeline.keep_submitted(node, project, b"version = 3\n")
    assert other.lock_dir != out.lock_dir
    # a path source out of the project: no copy (it would resolve elsewhere)
    up = b'[[package]]\nname = "lib"\nsource = { editable = "../lib" }\n'
    assert pipeline.keep_submitted(node, project, up).lock_dir == ""
    assert pipeline.leaves_project('source = { path = "../x.whl" }')
    assert pipeline.leaves_project('source = { directory = ".." }')
    assert not pipeline.leaves_project('source = { editable = "." }\nsource = { path = "./a" }')


def test_a_submitted_copy_that_is_not_ours_is_not_used(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "pyproject.toml").write_text("")
    node = nodeenv.NodeSettings(project=str(root), uv="uv", depot=str(tmp_path / "d"),
                                node_local="auto", offline="auto", python="", sync_args=(),
                                fingerprint_env=())  # fmt: skip
    pdir = tmp_path / "d" / node.project_id
    pdir.mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (pdir / pipeline.submitted_name(b"L", b"")).symlink_to(elsewhere)
    assert pipeline.keep_submitted(node, Project(root, {}), b"L").lock_dir == ""
    assert list(elsewhere.iterdir()) == []


def test_lifecycle_commands_refuse_bad_input_in_one_line(tmp_path: Path) -> None:
    for args, code, words in (
        (["logs", "1;x"], 2, "is not a job id"),
        (["show", "123456"], 1, "no manifest of job 123456"),
        (["cancel"], 2, "name the jobs to cancel, or give --all"),
        (["cancel", "1", "--all"], 2, "name the jobs to cancel, or give --all"),
        (["resubmit", "99"], 1, "no manifest of job 99"),
    ):
        r = uvslurm(*args, cwd=tmp_path)
        assert r.returncode == code, (args, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and words in lines[0] and "Traceback" not in r.stderr, r.stderr


def test_jobs_without_any_is_an_empty_list(tmp_path: Path) -> None:
    r = uvslurm("jobs", "--json", cwd=tmp_path, check=True)
    assert json.loads(r.stdout) == {"schema": 1, "project": None, "jobs": []}
    assert "no jobs" in uvslurm("jobs", cwd=tmp_path, check=True).stderr


def test_resubmit_names_what_it_cannot_reproduce() -> None:
    from uvslurm import __version__
    from uvslurm.commands import resubmit

    doc = {"git": {"commit": "a" * 40, "diff_sha256": None},
           "lock": {"sha256": "L", "pyproject_sha256": "P", "submitted_copy": "/c"},
           "versions": {"uvslurm": __version__}}  # fmt: skip
    same = resubmit.differences(doc, {"commit": "a" * 40, "diff_sha256": None}, "L", "P")
    assert same == []
    moved = resubmit.differences(doc, {"commit": "b" * 40, "diff_sha256": "d"}, "M", "Q")
    assert len(moved) == 4
    assert moved[0] == f"the commit moved: {'a' * 12} then, {'b' * 12} now"
    assert "builds from the copy submitted" in moved[2]
    assert resubmit.differences(doc, None, "L", "P") == ["the project is no longer a git work tree"]
    old = {**doc, "versions": {"uvslurm": "0.0.1"}}
    assert resubmit.differences(old, doc["git"], "L", "P") == [
        f"uvslurm is {__version__} now, 0.0.1 then"
    ]


def test_the_prolog_records_start_and_end_only_in_a_job_with_a_record_dir(
    tmp_path: Path,
) -> None:
    """`_uvslurm_record` as the job runs it: files named by job (and task) id, only in a
    directory of this user's, nothing for a hostile id."""
    import subprocess

    from conftest import PROLOG

    rec = tmp_path / "rec"
    rec.mkdir()
    fn = PROLOG.read_text().split("# ==== uvslurm prolog 2/9: run")[1]
    body = fn[fn.index("_uvslurm_record() {") :]
    body = body[: body.index("\n}\n") + 3]

    def record(env: dict[str, str], *args: str) -> None:
        script = ("_uvslurm_venv=/v; _uvslurm_state=cold; _uvslurm_fp=abc; _uvslurm_lockhash=ff\n"
                  + body + '_uvslurm_record "$@"\n')  # fmt: skip
        base = {"PATH": os.environ["PATH"], "UVSLURM_RECORD": str(rec)}
        subprocess.run(["bash", "-c", script, "t", *args], env={**base, **env}, check=True)

    record({"SLURM_JOB_ID": "5", "SLURMD_NODENAME": "n1"}, "start", "12", "arch=x\npython=3.11")
    start = manifest.parse_record((rec / "5.start").read_text())
    assert (start["node"], start["ready"], start["ready_ms"], start["venv"]) == (
        "n1",
        "cold",
        12,
        "/v",
    )
    assert start["components"] == {"arch": "x", "python": "3.11"} and start["lock_moved"] is False
    record({"SLURM_JOB_ID": "5"}, "end", "3")
    assert manifest.parse_record((rec / "5.end").read_text())["exit_code"] == 3
    record({"SLURM_JOB_ID": "5"}, "start", "1", "")  # requeued: its old end reads as none
    assert manifest.parse_record((rec / "5.end").read_text()) == {}
    record({"SLURM_JOB_ID": "9", "SLURM_ARRAY_JOB_ID": "8", "SLURM_ARRAY_TASK_ID": "2"}, "end", "0")
    assert (rec / "8_2.end").is_file()
    record({"SLURM_JOB_ID": "../x"}, "end", "0")
    record({}, "end", "0")
    assert sorted(p.name for p in rec.iterdir()) == ["5.end", "5.start", "8_2.end"]
    assert not list(tmp_path.glob("x*"))


def test_a_project_dir_goes_with_its_submitted_copies_and_snapshots(tmp_path: Path) -> None:
    from uvslurm import depot

    pdir = tmp_path / "demo-0000000000"
    for name in (".submitted-0123456789abcdef", ".snapshot-0123456789abcdef"):
        (pdir / name / "src").mkdir(parents=True)
        (pdir / name / "uv.lock").write_text("x")
        (pdir / name / "link").symlink_to(tmp_path / "elsewhere")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "keep").write_text("k")
    (pdir / ".keys").write_text("")
    (pdir / ".snapshot-0123").mkdir()  # not of uvslurm's grammar: keeps the directory
    assert depot.remove_project_dir(pdir) is False and (pdir / ".keys").exists()
    (pdir / ".snapshot-0123").rmdir()
    assert depot.remove_project_dir(pdir) is True
    assert not pdir.exists() and (tmp_path / "elsewhere" / "keep").is_file()


# --- the commands, in-process, with Slurm answered by a fake ------------------------------------


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project directory to stand in (commands default to its jobs)."""
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "pyproject.toml").write_text("[project]\nname = 'p'\nversion = '0'\n")
    (proj / "uv.lock").write_text("version = 1\n")
    monkeypatch.chdir(proj)
    return proj


def sub(job: str, root: Path, **over: object) -> dict[str, object]:
    """A submission's manifest of `job` in the project at `root`, written."""
    lock = (
        hashlib.sha256((root / "uv.lock").read_bytes()).hexdigest()
        if (root / "uv.lock").exists()
        else "0" * 64
    )
    script = paths.state_dir() / "scripts" / f"{job}.sh"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(f"#!/bin/bash\necho job {job}\n")
    doc = manifest.submission(
        job_id=job, argv=["uvslurm", "submit", "train.py", "a b"], cwd=str(root),
        project=str(root), lock_root=str(root), options={"job-name": "train"},
        sources={"job-name": "default"}, target={"script_args": []}, versions={"uvslurm": __version__},
        git={"commit": "c" * 40, "branch": "main", "dirty": True, "diff_sha256": "d" * 64},
        lock_sha256=lock, pyproject_sha256="", lock_dir="", depot="/d", sync_args=(),
        script=str(script), logs={"output": str(root / "%x-%j.out")}, array=False,
        submitted_at=1.0,
    )  # fmt: skip
    doc.update(over)
    manifest.write(doc)
    return doc


class FakeSlurm:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.states: dict[str, list[slurm.JobInfo]] = {}
        self.cancelled: list[list[str]] = []
        self.submitted: list[tuple[str, list[str], str | None]] = []
        monkeypatch.setattr(slurm, "query", self.query)
        monkeypatch.setattr(slurm, "cancel", self.cancelled.append)
        monkeypatch.setattr(slurm, "find_sbatch", lambda: "/fake/sbatch")
        monkeypatch.setattr(slurm, "submit", self.submit)

    def set(self, job: str, *infos: slurm.JobInfo) -> None:
        """What Slurm answers for `job` at each query in turn (the last one from then on)."""
        self.states[job] = list(infos)

    def query(self, ids: list[str]) -> dict[str, slurm.JobInfo]:
        out = {}
        for job, seq in self.states.items():
            info = seq.pop(0) if len(seq) > 1 else seq[0]
            if slurm.wanted(info, ids) or job in ids:
                out[info.job_id] = info
        return out

    def submit(self, sbatch: str, script: Path, args: list[str], cwd: str | None = None) -> str:
        self.submitted.append((script.read_text(), list(args), cwd))
        return "900"


def cli(*args: str) -> int:
    from uvslurm import cli as cli_

    return cli_.main(list(args))


def test_jobs_lists_this_projects_jobs_with_slurm_states(
    here: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeSlurm(monkeypatch)
    sub("11", here)
    sub("12", here)
    sub("13", here, project="/other")
    fake.set(
        "11", slurm.JobInfo("11", state="COMPLETED", exit_code=0, elapsed="00:00:05", nodes="n1")
    )
    fake.set("12", slurm.JobInfo("12", state="RUNNING", elapsed="00:00:01", nodes="n2"))
    (manifest.jobs_dir() / "11.start").write_text("ready=cold\nnodes=n1\n")
    assert cli("jobs", "--json") == 0
    got = json.loads(capsys.readouterr().out)
    assert got["project"] == str(here)
    rows = {r["job_id"]: r for r in got["jobs"]}
    assert list(rows) == ["12", "11"], "this project's only, the latest first"
    assert (rows["11"]["state"], rows["11"]["exit_code"], rows["11"]["ready"]) == (
        "COMPLETED",
        0,
        "cold",
    )
    assert (rows["12"]["state"], rows["12"]["exit_code"], rows["12"]["nodes"]) == (
        "RUNNING",
        None,
        "n2",
    )
    assert rows["12"]["name"] == "train"
    assert cli("jobs", "--json", "--all", "--last", "2") == 0
    assert [r["job_id"] for r in json.loads(capsys.readouterr().out)["jobs"]] == ["13", "12"]
    assert cli("jobs") == 0
    table = capsys.readouterr().out
    assert "uvslurm jobs of" in table and "every project" not in table
    assert "COMPLETED" in table and "RUNNING" in table and "13" not in table.split("\n", 1)[1]
    monkeypatch.chdir(here.parent)  # no project here: every job
    assert cli("jobs", "--json") == 0
    assert json.loads(capsys.readouterr().out)["project"] is None


def test_cancel_ids_tasks_and_this_projects_unfinished_jobs(
    here: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeSlurm(monkeypatch)
    assert cli("cancel", "5", "6_2") == 0
    assert fake.cancelled == [["5", "6_2"]] and "cancelled 5 6_2" in capsys.readouterr().err
    sub("21", here)
    sub("22", here)
    sub("23", here)
    sub("24", here, project="/other")
    fake.set("21", slurm.JobInfo("21", state="PENDING"))
    fake.set("22", slurm.JobInfo("22", state="COMPLETED", exit_code=0))
    fake.set("23", slurm.JobInfo("23", state="RUNNING"))
    fake.set("24", slurm.JobInfo("24", state="RUNNING"))
    assert cli("cancel", "--all", "--json") == 0
    assert json.loads(capsys.readouterr().out) == {"cancelled": ["21", "23"]}
    fake.set("21", slurm.JobInfo("21", state="CANCELLED"))
    fake.set("23", slurm.JobInfo("23", state="CANCELLED"))
    assert cli("cancel", "--all") == 0
    assert "no unfinished jobs of this project" in capsys.readouterr().err
    assert cli("cancel", "x1") == 2


def test_show_names_what_ran(
    here: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeSlurm(monkeypatch)
    doc = sub("31", here)
    fake.set("31", slurm.JobInfo("31", state="FAILED", exit_code=4, nodes="n1"))
    (manifest.jobs_dir() / "31.start").write_text(
        "time=1.0\nready=warm\nready_ms=7\nvenv=/v\nfingerprint=abcdefabcdef\nlock_moved=1\n"
        "components:\npython=3.11\ncpu=" + "x" * 40 + "\n"
    )
    (manifest.jobs_dir() / "31.end").write_text("time=2.0\nexit_code=4\n")
    assert cli("show", "31") == 0
    text = capsys.readouterr().out
    for word in ("c" * 40, "dirty, diff sha256 " + "d" * 16, str(doc["lock"]["sha256"]),  # type: ignore[index]
                 "abcdefabcdef", "FAILED, exit code 4", "python=3.11", "x" * 23 + "…",
                 "--job-name=train (default)", "/v (warm in 7 ms)", "uv.lock had changed",
                 "train.py 'a b'", "1970-01-01T00:00:01+00:00 to 1970-01-01T00:00:02+00:00"):  # fmt: skip
        assert word in text, (word, text)
    assert "x" * 24 not in text
    assert cli("show", "31", "--json") == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["run"]["components"]["cpu"] == "x" * 40 and shown["run"]["exit_code"] == 4
    assert cli("show", "31", "--script") == 0
    assert capsys.readouterr().out == "#!/bin/bash\necho job 31\n"
    Path(str(doc["script"])).unlink()
    assert cli("show", "31", "--script") == 1
    assert "its script copy is gone" in capsys.readouterr().err
    sub("32", here, git=None, resubmitted_from="31")
    fake.set("32", slurm.JobInfo("32", state="PENDING"))
    assert cli("show", "32") == 0
    text = capsys.readouterr().out
    assert "not a git work tree" in text and "resubmits" in text and "PENDING" in text
    assert cli("show", "32_1") == 2
    assert "job 32 is not an array job" in capsys.readouterr().err


def test_show_of_an_array_and_its_task(
    here: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeSlurm(monkeypatch)
    sub("40", here, array=True)
    fake.set("40", slurm.JobInfo("40_0", state="COMPLETED", exit_code=0, array_job="40"))
    (manifest.jobs_dir() / "40_1.end").write_text("exit_code=2\n")
    assert cli("show", "40") == 0
    text = capsys.readouterr().out
    assert "task 0 state" in text and "task 1 state  FAILED, exit code 2" in text
    assert cli("show", "40_1") == 0
    text = capsys.readouterr().out
    assert text.startswith("job 40_1") and "FAILED, exit code 2" in text and "task 0" not in text


def test_logs_prints_waits_and_follows_to_the_end(
    here: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from uvslurm.commands import logs

    fake = FakeSlurm(monkeypatch)
    sub("50", here)
    log = here / "train-50.out"
    steps: list[str] = ["made", "more", "last"]

    def sleep(_: float) -> None:  # time passes: the job writes its log
        step = steps.pop(0) if steps else ""
        with log.open("a") as f:
            f.write(f"{step}\n" if step else "")

    monkeypatch.setattr(logs.time, "sleep", sleep)
    # one answer for reading the manifest, then one per look while waiting and following
    fake.set("50", slurm.JobInfo("50", state="PENDING"), slurm.JobInfo("50", state="PENDING"),
             slurm.JobInfo("50", state="RUNNING"),
             slurm.JobInfo("50", state="RUNNING"), slurm.JobInfo("50", state="COMPLETED"))  # fmt: skip
    assert cli("logs", "50", "-f") == 0
    out, err = capsys.readouterr()
    assert out == "made\nmore\nlast\n" and f"waiting for job 50 (PENDING) to write {log}" in err
    # without -f: what is there now, at once
    log.write_text("all\n")
    assert cli("logs", "50") == 0
    assert capsys.readouterr().out == "all\n"
    # Slurm's path wins while it knows the job; --err its error log
    other = here / "elsewhere.out"
    other.write_text("slurm's\n")
    fake.set("50", slurm.JobInfo("50", state="RUNNING", stdout=str(other), stderr=str(log)))
    assert cli("logs", "50") == 0 and capsys.readouterr().out == "slurm's\n"
    assert cli("logs", "50", "--err") == 0 and capsys.readouterr().out == "all\n"
    # ended without a log
    sub("51", here)
    fake.set("51", slurm.JobInfo("51", state="CANCELLED"))
    assert cli("logs", "51") == 1
    assert "job 51 ended (CANCELLED) and left no log" in capsys.readouterr().err
    # a pattern with the node's name, which only Slurm knows
    sub("52", here, logs={"output": "/l/%N.out"})
    fake.set("52", slurm.JobInfo("52", state="PENDING"))
    assert cli("logs", "52") == 1
    assert "cannot tell where the log of job 52 is" in capsys.readouterr().err


def test_logs_of_array_tasks(
    here: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from uvslurm.commands import logs

    fake = FakeSlurm(monkeypatch)
    sub("60", here, array=True, logs={"output": str(here / "a-%A_%a.out")})
    fake.set("60", slurm.JobInfo("60_0", state="RUNNING", array_job="60"))
    fake.set("61", slurm.JobInfo("60_1-3", state="PENDING", array_job="60"))
    (here / "a-60_0.out").write_text("zero\n")
    assert cli("logs", "60_0") == 0 and capsys.readouterr().out == "zero\n"
    assert cli("logs", "60") == 2
    assert "name one: 60_0, 60_1-3" in capsys.readouterr().err
    # task 2 is pending in the array's range: it waits for its file
    monkeypatch.setattr(logs.time, "sleep", lambda _: (here / "a-60_2.out").write_text("two\n"))
    assert cli("logs", "60_2") == 0
    out, err = capsys.readouterr()
    assert out == "two\n" and "waiting for job 60_2 (PENDING)" in err
    fake.states.clear()  # Slurm forgot it all: a task that never wrote is ended
    assert cli("logs", "60_3") == 1
    assert "job 60_3 ended (ENDED)" in capsys.readouterr().err


def test_resubmit_runs_the_kept_script_from_the_same_directory(
    here: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeSlurm(monkeypatch)
    monkeypatch.setattr(manifest, "git_of", lambda root: {"commit": "e" * 40, "diff_sha256": None})
    copy = here.parent / ".submitted-x"
    copy.mkdir()
    doc = sub("70", here, target={"script_args": ["x y"]}, lock={
        "sha256": hashlib.sha256(b"version = 1\n").hexdigest(),
        "pyproject_sha256": hashlib.sha256((here / "pyproject.toml").read_bytes()).hexdigest(),
        "submitted_copy": str(copy)})  # fmt: skip
    assert cli("resubmit", "70", "--json") == 0
    got = json.loads(capsys.readouterr().out)
    assert got["job_id"] == "900" and got["resubmitted_from"] == "70"
    assert got["not_reproduced"] == [f"the commit moved: {'c' * 12} then, {'e' * 12} now",
                                     "the uncommitted changes differ from those at submission"]  # fmt: skip
    assert fake.submitted == [("#!/bin/bash\necho job 70\n", ["x y"], str(here))]
    again = manifest.read("900")
    assert again is not None and again["lock"] == doc["lock"] and again["argv"] == doc["argv"]
    assert again["script"] == str(paths.state_dir() / "scripts" / "900.sh")
    assert Path(again["script"]).read_text() == "#!/bin/bash\necho job 70\n"
    assert again["git"]["commit"] == "e" * 40 and again["resubmitted_from"] == "70"
    assert not list((paths.state_dir() / "scripts").glob("pending-*"))
    assert cli("resubmit", "70") == 0
    out, err = capsys.readouterr()
    assert (
        out == "900\n"
        and "resubmitted job 70 as 900" in err
        and "not reproduced: the commit" in err
    )
    assert cli("resubmit", "70", "--parsable") == 0
    out, err = capsys.readouterr()
    assert out == "900\n" and "resubmitted" not in err
    copy.rmdir()
    assert cli("resubmit", "70") == 1
    assert f"its submitted lock {copy} is gone" in capsys.readouterr().err
    Path(str(doc["script"])).unlink()
    assert cli("resubmit", "70") == 1
    assert "its script copy" in capsys.readouterr().err


def test_resubmit_of_a_job_whose_directory_is_gone_or_sbatch_refuses(
    here: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeSlurm(monkeypatch)
    sub("80", here, cwd=str(here / "gone"))
    assert cli("resubmit", "80") == 1
    assert "cannot be reproduced" in capsys.readouterr().err and fake.submitted == []

    def refuse(*a: object, **k: object) -> str:
        raise UvslurmError("sbatch refused the job: no")

    monkeypatch.setattr(slurm, "submit", refuse)
    sub("81", here)
    assert cli("resubmit", "81") == 1
    assert not list((paths.state_dir() / "scripts").glob("pending-*")), "nothing half-written"


def _args(doc: dict[str, object]) -> dict[str, object]:
    """manifest.submission's arguments that made `doc`."""
    return dict(
        job_id=doc["job_id"], argv=doc["argv"], cwd=doc["cwd"], project=doc["project"],
        lock_root=doc["workspace"], options={"time": "5"}, sources={}, target={}, versions={},
        git=None, lock_sha256="", pyproject_sha256="", lock_dir="", depot="", sync_args=(),
        script="", logs={}, array=False, submitted_at=0.0,
    )  # fmt: skip
