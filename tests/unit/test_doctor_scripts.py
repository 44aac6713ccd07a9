"""doctor's read of the boot directory (ops.doctor.read_scripts), run for
real on a local directory: the Python reader finds what the shell reader
finds, byte for byte, and the shell still reads where there is no python3."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from zboot.config import Config
from zboot.errors import CommandFailed
from zboot.ops.doctor import SCRIPTS_READER, SCRIPTS_SHELL, read_scripts
from zboot.remote.base import Result
from zboot.remote.local import LocalRunner
from zboot.remote.python import python_argv
from zboot.testing.recording import RecordingRunner

CONFIG = Config()


def ours(host: str, root: str = "tank/zboot") -> bytes:
    return f"#!ipxe\n# zboot: host {host}, mode normal, root {root}; x\nsanboot\n".encode()


@pytest.fixture
def boot_dir(tmp_path: Path) -> Path:
    d = tmp_path / "boot"
    d.mkdir()
    (d / "52-54-00-00-00-01.ipxe").write_bytes(ours("pc01"))
    (d / "52-54-00-00-00-02.ipxe").write_bytes(ours("pc02", "other/zboot"))
    (d / "52-54-00-00-00-03.ipxe").write_bytes(ours("pc03") + b"\xff" * 70000)  # cut at 64 KiB
    (d / ".52-54-00-00-00-04.ipxe").write_bytes(ours("hidden"))
    (d / "notes.txt").write_bytes(ours("txt"))
    (d / "dir.ipxe").mkdir()
    (d / "link.ipxe").symlink_to(d / "52-54-00-00-00-01.ipxe")
    (d / "dangling.ipxe").symlink_to(d / "missing")
    return d


def test_the_python_reader_reads_what_the_shell_reads(boot_dir: Path) -> None:
    runner = LocalRunner()
    python = runner.run(python_argv(SCRIPTS_READER, str(boot_dir)), read_only=True)
    shell = runner.run(["sh", "-c", SCRIPTS_SHELL, "sh", str(boot_dir)], read_only=True)
    assert python.stdout == shell.stdout
    assert python.stdout.count(b"\x1e") == 4  # 01, 02, 03 and the link


def test_only_this_roots_scripts_are_kept(boot_dir: Path) -> None:
    found = read_scripts(LocalRunner(), replace(CONFIG, boot_dir=str(boot_dir)))
    assert sorted(found) == ["52-54-00-00-00-01.ipxe", "52-54-00-00-00-03.ipxe", "link.ipxe"]
    assert len(found["52-54-00-00-00-03.ipxe"]) == 65536  # a character per byte read


def test_a_missing_boot_directory_has_no_scripts(tmp_path: Path) -> None:
    assert read_scripts(LocalRunner(), replace(CONFIG, boot_dir=str(tmp_path / "none"))) == {}


def test_without_python3_the_shell_reads_them(boot_dir: Path) -> None:
    shell = LocalRunner().run(["sh", "-c", SCRIPTS_SHELL, "sh", str(boot_dir)], read_only=True)

    def respond(argv: tuple[str, ...], _: bytes | None) -> Result:
        if argv[0] == "env":
            return Result(argv, 127, b"", b"env: '/usr/bin/python3': No such file\n")
        return replace(shell, argv=argv)

    runner = RecordingRunner(respond)
    found = read_scripts(runner, replace(CONFIG, boot_dir=str(boot_dir)))
    assert [c[0] for c in runner.commands] == ["env", "sh"]
    assert "52-54-00-00-00-01.ipxe" in found


def test_a_reader_that_fails_says_so() -> None:
    def respond(argv: tuple[str, ...], _: bytes | None) -> Result:
        return Result(argv, 1, b"", b"Traceback: MemoryError\n")

    with pytest.raises(CommandFailed, match="MemoryError"):
        read_scripts(RecordingRunner(respond), CONFIG)
