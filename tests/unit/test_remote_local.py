"""LocalRunner: argv goes to exec untouched, failures and timeouts become zboot
errors, files are replaced atomically."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import time
from pathlib import Path

import pytest

from zboot.errors import CommandFailed, NotFound, ServerError
from zboot.remote import LocalRunner, Result
from zboot.remote.base import (
    read_file_by_command,
    remove_file_by_command,
    write_file_by_command,
)
from zboot.testing.recording import RecordingRunner

HOSTILE = [
    "$(echo hacked)",
    "`echo hacked`",
    "a; echo hacked",
    "two words",
    "'single'",
    '"double"',
    "new\nline",
    "*",
    "~",
    "$HOME",
    "-n",
    "",
    "back\\slash",
    "tab\there",
    "&& rm -rf /",
    "| cat",
    "> /tmp/x",
    "ünïcødé",
]


def test_hostile_arguments_reach_the_command_unchanged() -> None:
    runner = LocalRunner()
    result = runner.run(["printf", "%s\\0", *HOSTILE])
    assert result.stdout.split(b"\0")[:-1] == [a.encode() for a in HOSTILE]
    assert result.returncode == 0 and result.stderr == b""


def test_text_decodes_with_replacement() -> None:
    result = LocalRunner().run(["printf", "ok\\377"])
    assert result.text == "ok\ufffd"


def test_non_zero_exit_raises_command_failed_with_stderr() -> None:
    argv = ["sh", "-c", "echo 'it broke' >&2; exit 3"]
    with pytest.raises(CommandFailed) as caught:
        LocalRunner().run(argv)
    assert caught.value.returncode == 3
    assert caught.value.argv == tuple(argv)
    assert "it broke" in caught.value.message and "exited 3" in caught.value.message


def test_check_false_returns_the_result() -> None:
    result = LocalRunner().run(["sh", "-c", "echo out; echo err >&2; exit 4"], check=False)
    assert result == Result(("sh", "-c", "echo out; echo err >&2; exit 4"), 4, b"out\n", b"err\n")


def test_missing_program_is_exit_127() -> None:
    result = LocalRunner().run(["zboot-no-such-program"], check=False)
    assert result.returncode == 127 and b"not found" in result.stderr


def test_input_goes_to_stdin_and_large_output_does_not_deadlock() -> None:
    data = os.urandom(3 << 20)
    result = LocalRunner().run(
        ["sh", "-c", "cat; cat >&2 < /dev/null; head -c 4194304 /dev/zero >&2"], input=data
    )
    assert result.stdout == data and len(result.stderr) == 4 << 20


def test_timeout_kills_the_command_and_raises_server_error() -> None:
    start = time.monotonic()
    with pytest.raises(ServerError) as caught:
        LocalRunner().run(["sh", "-c", "sleep 30 & sleep 30"], timeout=0.5)
    assert time.monotonic() - start < 10
    assert "timed out" in caught.value.message and "sleep 30" in caught.value.message


def test_stream_copies_source_and_reports_progress() -> None:
    data = os.urandom(2_500_000)
    seen: list[int] = []
    result = LocalRunner().stream(
        ["sha256sum"], io.BytesIO(data), chunk=1 << 20, on_progress=seen.append, timeout=30
    )
    assert result.text.split()[0] == hashlib.sha256(data).hexdigest()
    assert seen == [1 << 20, 2 << 20, 2_500_000]


def test_stream_raises_when_the_command_fails() -> None:
    with pytest.raises(CommandFailed):
        LocalRunner().stream(["sh", "-c", "exit 1"], io.BytesIO(b"x" * (4 << 20)))


def test_write_file_is_atomic_and_applies_the_mode(tmp_path: Path) -> None:
    runner = LocalRunner()
    target = tmp_path / "boot.ipxe"
    target.write_bytes(b"old")
    runner.write_file(str(target), b"#!ipxe\n", mode=0o600)
    assert target.read_bytes() == b"#!ipxe\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert os.listdir(tmp_path) == ["boot.ipxe"]  # no temp file left behind
    runner.write_file(str(target), b"new", mode=0o644)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert runner.read_file(str(target)) == b"new"


def test_failed_write_leaves_the_old_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "dir-not-file"
    target.mkdir()
    with pytest.raises(ServerError):
        LocalRunner().write_file(str(target), b"data")
    assert os.listdir(tmp_path) == ["dir-not-file"]


def test_read_missing_file_is_not_found_and_remove_is_idempotent(tmp_path: Path) -> None:
    runner = LocalRunner()
    path = str(tmp_path / "gone")
    with pytest.raises(NotFound):
        runner.read_file(path)
    runner.remove_file(path)
    runner.write_file(path, b"x")
    runner.remove_file(path)
    assert not os.path.exists(path)


def test_file_operations_by_command_for_sudo(tmp_path: Path) -> None:
    """The sudo path (mktemp, chmod, cat, mv) run here without sudo."""
    runner = LocalRunner()
    path = str(tmp_path / "it's a $(file)")
    write_file_by_command(runner, path, b"secret\n", 0o600)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert read_file_by_command(runner, path) == b"secret\n"
    assert os.listdir(tmp_path) == ["it's a $(file)"]
    remove_file_by_command(runner, path)
    remove_file_by_command(runner, path)
    with pytest.raises(NotFound):
        read_file_by_command(runner, path)
    assert all(b"secret" not in " ".join(argv).encode() for argv in runner.commands)


def test_commands_are_recorded_in_order() -> None:
    runner = LocalRunner()
    runner.run(["true"])
    runner.run(["false"], check=False)
    assert runner.commands == [("true",), ("false",)]


def test_recording_runner_runs_nothing_and_answers_from_its_table() -> None:
    failing = Result((), 1, b"", b"dataset does not exist")
    runner = RecordingRunner({("zfs", "list", "tank"): failing})
    assert runner.run(["zfs", "version"]).returncode == 0
    with pytest.raises(CommandFailed) as caught:
        runner.run(["zfs", "list", "tank"], input=b"in")
    assert caught.value.argv == ("zfs", "list", "tank")
    runner.write_file("/srv/a", b"data", mode=0o600)
    assert runner.read_file("/srv/a") == b"data" and runner.modes["/srv/a"] == 0o600
    runner.remove_file("/srv/a")
    runner.remove_file("/srv/a")
    with pytest.raises(NotFound):
        runner.read_file("/srv/a")
    assert runner.commands == [("zfs", "version"), ("zfs", "list", "tank")]
    assert runner.inputs == [None, b"in"]


def test_recording_runner_accepts_a_callable() -> None:
    runner = RecordingRunner(lambda argv, data: Result(argv, 0, data or b"", b""))
    assert runner.stream(["cat"], io.BytesIO(b"abc"), chunk=2).stdout == b"abc"
