"""The config file is written atomically, 0600 when new, and never through a
link or into a place another user controls (zboot.own_file)."""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

import pytest

from zboot import own_file
from zboot.errors import InvalidInput


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_file_is_private_and_its_directories_are_made(tmp_path: Path) -> None:
    path = tmp_path / "xdg" / "zboot" / "config.toml"
    old = os.umask(0)  # even with a permissive umask
    try:
        assert own_file.write(path, "a = 1\n") == path
    finally:
        os.umask(old)
    assert path.read_text() == "a = 1\n" and mode(path) == 0o600
    assert mode(path.parent) == 0o700
    assert own_file.read(path) == "a = 1\n"
    assert own_file.read(tmp_path / "none.toml") is None


def test_an_existing_file_keeps_its_mode_and_is_replaced_whole(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("old\n")
    path.chmod(0o640)
    inode = path.stat().st_ino
    own_file.write(path, "new\n")
    assert path.read_text() == "new\n" and mode(path) == 0o640
    assert path.stat().st_ino != inode  # renamed over, not written in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml"]  # no temp left


def test_the_users_own_link_is_followed_and_kept(tmp_path: Path) -> None:
    real = tmp_path / "dotfiles" / "zboot.toml"
    real.parent.mkdir()
    real.write_text("old\n")
    link = tmp_path / "config.toml"
    link.symlink_to(Path("dotfiles") / "zboot.toml")  # relative, as dotfile managers make them
    assert own_file.read(link) == "old\n"
    assert own_file.write(link, "new\n") == real
    assert link.is_symlink() and real.read_text() == "new\n"


def test_a_link_loop_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("a")
    with pytest.raises(InvalidInput, match="symbolic links"):
        own_file.write(tmp_path / "a", "x")


def test_a_directory_every_user_may_write_to_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(InvalidInput, match="writable by every user") as err:
        own_file.write(shared / "config.toml", "x")
    assert err.value.exit_code == 2 and not (shared / "config.toml").exists()
    assert list(shared.iterdir()) == []
    shared.chmod(0o1777)  # sticky, like /tmp: others cannot replace this user's file
    own_file.write(shared / "config.toml", "x")
    assert (shared / "config.toml").read_text() == "x"


def test_a_file_of_another_user_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Seen from another uid, this user's files are someone else's."""
    path = tmp_path / "config.toml"
    path.write_text("theirs\n")
    link = tmp_path / "link.toml"
    link.symlink_to(path)
    monkeypatch.setattr(os, "geteuid", lambda: os.getuid() + 1)
    for target in (path, link):
        with pytest.raises(InvalidInput, match="owned by another user"):
            own_file.write(target, "mine\n")
        with pytest.raises(InvalidInput, match="owned by another user"):
            own_file.read(target)
    assert path.read_text() == "theirs\n"


def test_something_other_than_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "config.toml").mkdir()
    with pytest.raises(InvalidInput, match="not a regular file"):
        own_file.write(tmp_path / "config.toml", "x")


def test_a_temp_name_taken_by_a_planted_link_is_never_followed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """O_EXCL|O_NOFOLLOW: a link waiting under the temp file's name makes the
    write fail; what it points to is untouched."""
    victim = tmp_path / "victim"
    victim.write_text("keep\n")
    (tmp_path / ".config.toml.000000000000.tmp").symlink_to(victim)
    monkeypatch.setattr(secrets, "token_hex", lambda n: "0" * (2 * n))
    with pytest.raises(InvalidInput, match="cannot write config file"):
        own_file.write(tmp_path / "config.toml", "x")
    assert victim.read_text() == "keep\n" and not (tmp_path / "config.toml").exists()
