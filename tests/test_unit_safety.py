"""safety.py and errors.py in-process: who could change a path, and how errors read.

"Another user" is simulated by passing a uid that owns nothing here (no chown needed)."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest

from uvslurm import errors, safety

ME = os.geteuid()
ME_NAME = pwd.getpwuid(ME).pw_name


def _free_uid() -> int:
    uid = 54321
    while True:
        try:
            pwd.getpwuid(uid)
        except KeyError:
            return uid
        uid += 1


OTHER = _free_uid()


def test_owner_name_known_and_unknown() -> None:
    assert safety.owner_name(ME) == ME_NAME
    assert safety.owner_name(OTHER) == f"uid {OTHER}"


def test_private_file_and_directory(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_text("x")
    f.chmod(0o644)
    tmp_path.chmod(0o755)
    assert safety.why_not_private(f) is None
    assert safety.why_not_private(tmp_path) is None
    assert safety.why_not_private(f, uid=ME) is None


@pytest.mark.parametrize("mode", [0o664, 0o646, 0o777, 0o620, 0o602])
def test_writable_by_others_is_not_private(tmp_path: Path, mode: int) -> None:
    f = tmp_path / "f"
    f.write_text("x")
    f.chmod(mode)
    assert safety.why_not_private(f) == f"{f} is writable by others (mode {mode:o})"


def test_someone_elses_path_is_not_private(tmp_path: Path) -> None:
    assert safety.why_not_private(tmp_path, uid=OTHER) == (
        f"{tmp_path} belongs to {ME_NAME}, not to you"
    )


def test_symlink_is_never_private(tmp_path: Path) -> None:
    link = tmp_path / "l"
    link.symlink_to(tmp_path)
    assert safety.why_not_private(link) == f"{link} is a symlink"


def test_missing_path(tmp_path: Path) -> None:
    p = tmp_path / "nope"
    assert safety.why_not_private(p) == f"{p}: No such file or directory"
    assert safety.why_not_safe_parent(p) == f"{p}: No such file or directory"
    assert safety.why_not_trusted_file(p) == f"{p}: No such file or directory"


def test_safe_parent(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    assert safety.why_not_safe_parent(tmp_path) is None
    # root's directories are fine parents for anyone
    assert safety.why_not_safe_parent(Path("/"), uid=OTHER) is None


def test_parent_writable_by_others_needs_the_sticky_bit(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    d.chmod(0o777)
    assert safety.why_not_safe_parent(d) == f"{d} is writable by others (mode 777)"
    d.chmod(0o1777)
    assert safety.why_not_safe_parent(d) is None
    d.chmod(0o775)
    assert safety.why_not_safe_parent(d) == f"{d} is writable by others (mode 775)"
    d.chmod(0o1755)
    assert safety.why_not_safe_parent(d) is None


def test_parent_of_another_user(tmp_path: Path) -> None:
    if ME == 0:
        d = tmp_path / "d"
        d.mkdir()
        os.chown(d, OTHER, -1)
        assert safety.why_not_safe_parent(d) == f"{d} belongs to uid {OTHER}"
    else:
        assert safety.why_not_safe_parent(tmp_path, uid=OTHER) == f"{tmp_path} belongs to {ME_NAME}"


def _safe_tree(tmp_path: Path) -> Path:
    """tmp_path with every directory up to / owned by this user or root and closed or sticky."""
    for p in [tmp_path, *tmp_path.parents]:
        assert safety.why_not_safe_parent(p) is None, p
    return tmp_path


def test_trusted_file(tmp_path: Path) -> None:
    root = _safe_tree(tmp_path)
    f = root / "c.toml"
    f.write_text("")
    f.chmod(0o644)
    assert safety.why_not_trusted_file(f) is None
    f.chmod(0o664)
    assert safety.why_not_trusted_file(f) == f"{f} is writable by others (mode 664)"


def test_trusted_file_follows_links_and_checks_the_target(tmp_path: Path) -> None:
    root = _safe_tree(tmp_path)
    f = root / "c.toml"
    f.write_text("")
    f.chmod(0o666)
    link = root / "link.toml"
    link.symlink_to(f)
    # named by the link, judged by the file
    assert safety.why_not_trusted_file(link) == f"{link} is writable by others (mode 666)"


def test_trusted_file_checks_every_parent(tmp_path: Path) -> None:
    _safe_tree(tmp_path)
    d = tmp_path / "open"
    d.mkdir()
    f = d / "c.toml"
    f.write_text("")
    f.chmod(0o644)
    d.chmod(0o777)
    assert safety.why_not_trusted_file(f) == f"{d} is writable by others (mode 777)"
    assert safety.why_not_trusted_file(f, parents=False) is None


def test_trusted_file_owner(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text("")
    f.chmod(0o644)
    if ME == 0:
        # root's file: fine for a site file (root_ok), not for another user's own config
        assert safety.why_not_trusted_file(f, uid=OTHER, parents=False) == (
            f"{f} belongs to root, not to you"
        )
        assert safety.why_not_trusted_file(f, uid=OTHER, root_ok=True, parents=False) is None
        os.chown(f, OTHER, -1)
        assert safety.why_not_trusted_file(f, parents=False) == (
            f"{f} belongs to uid {OTHER}, not to you"
        )
        assert safety.why_not_trusted_file(f, root_ok=True, parents=False) == (
            f"{f} belongs to uid {OTHER}, not to you"
        )
    else:
        assert safety.why_not_trusted_file(f, uid=OTHER, parents=False) == (
            f"{f} belongs to {ME_NAME}, not to you"
        )


def test_trusted_file_parents_are_checked_for_the_given_uid(tmp_path: Path) -> None:
    if ME != 0:
        pytest.skip("needs root to give a file away")
    d = tmp_path / "d"
    d.mkdir()
    f = d / "c.toml"
    f.write_text("")
    os.chown(f, OTHER, -1)
    # the file is OTHER's; its directory is root's: fine for OTHER
    assert safety.why_not_trusted_file(f, uid=OTHER) is None
    os.chown(d, OTHER + 1, -1)
    assert safety.why_not_trusted_file(f, uid=OTHER) == f"{d} belongs to uid {OTHER + 1}"


def test_private_uses_the_given_uid(tmp_path: Path) -> None:
    if ME != 0:
        pytest.skip("needs root to give a file away")
    f = tmp_path / "f"
    f.write_text("")
    os.chown(f, OTHER, -1)
    assert safety.why_not_private(f, uid=OTHER) is None
    assert safety.why_not_private(f) == f"{f} belongs to uid {OTHER}, not to you"


def test_error_lines_and_exit_codes() -> None:
    e = errors.UvslurmError("it broke", "fix it")
    assert e.line() == "it broke; fix it"
    assert str(e) == "it broke; fix it", "the library's callers read what the CLI prints"
    assert (e.message, e.hint) == ("it broke", "fix it")
    plain = errors.UvslurmError("only this")
    assert plain.line() == "only this"
    assert plain.hint == ""
    assert errors.UvslurmError.exit_code == 1
    assert errors.NoProject("x").exit_code == 1
    assert errors.TrustError("x").exit_code == 1
    assert errors.UsageError("x").exit_code == 2
    assert errors.PrepareError("x").exit_code == 75
    assert issubclass(errors.NoProject, errors.UvslurmError)
    assert (errors.EXIT_OK, errors.EXIT_UNEXPECTED, errors.EXIT_INTERRUPTED) == (0, 3, 130)


def test_the_default_uid_is_the_effective_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if ME != 0:
        pytest.skip("needs root to give a directory away")
    d = tmp_path / "d"
    d.mkdir()
    os.chown(d, OTHER, -1)
    # as OTHER, OTHER's directory is a safe parent; as root it is not, whoever runs the check
    assert safety.why_not_safe_parent(d, uid=OTHER) is None
    assert safety.why_not_safe_parent(d) == f"{d} belongs to uid {OTHER}"
    monkeypatch.setattr(os, "geteuid", lambda: OTHER)
    assert safety.why_not_safe_parent(d) is None
    assert safety.why_not_safe_parent(d, uid=0) == f"{d} belongs to uid {OTHER}"


def test_trusted_file_parents_owned_by_the_given_uid(tmp_path: Path) -> None:
    if ME != 0:
        pytest.skip("needs root to give files away")
    d = tmp_path / "d"
    d.mkdir()
    f = d / "c.toml"
    f.write_text("")
    os.chown(f, OTHER, -1)
    os.chown(d, OTHER, -1)
    assert safety.why_not_trusted_file(f, uid=OTHER) is None
    assert safety.why_not_trusted_file(f) == f"{f} belongs to uid {OTHER}, not to you"
