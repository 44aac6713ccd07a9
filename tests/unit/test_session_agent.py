"""The session agent (remote.session_agent) run for real, as a local process
started the way zboot starts it on the server, driven by remote.agent_client."""

from __future__ import annotations

import contextlib
import os
import select
import stat
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from test_lock import take

from zboot.errors import Conflict, NotFound, ServerError
from zboot.remote import lock
from zboot.remote.agent_client import ARGV, AgentLink, preamble
from zboot.remote.base import Held
from zboot.remote.local import LocalRunner
from zboot.remote.python import in_process, python_argv


class ProcessPipe:
    """An AgentLink pipe over a local process's stdin and stdout."""

    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.timeout: float | None = None

    def sendall(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def recv(self, size: int) -> bytes:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], self.timeout)
        if not ready:
            raise TimeoutError
        return os.read(self.proc.stdout.fileno(), size)

    def recv_ready(self) -> bool:
        assert self.proc.stdout is not None
        return bool(select.select([self.proc.stdout], [], [], 0)[0])

    def settimeout(self, timeout: float | None) -> None:
        self.timeout = timeout

    def shutdown_write(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()

    def exit_status_ready(self) -> bool:
        return self.proc.poll() is not None

    def close(self) -> None:
        try:
            self.proc.wait(2)  # it ends on end-of-input
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_agent(
    early: Sequence[Sequence[str]] = (), base: str = ""
) -> tuple[AgentLink, ProcessPipe]:
    # as on the server (agent_client.ARGV), with this interpreter for /usr/bin/python3
    pipe = ProcessPipe([sys.executable, *ARGV[4:]])
    pipe.sendall(preamble(early, base))
    return AgentLink(pipe, "test"), pipe


@pytest.fixture
def agent() -> Iterator[AgentLink]:
    link, pipe = start_agent()
    assert link.greet()
    yield link
    link.end()
    pipe.close()


def test_runs_a_command_with_input_and_reports_its_exit(agent: AgentLink) -> None:
    result = agent.run(["sh", "-c", "cat; echo oops >&2; exit 3"], b"fed\n", 10, False)
    assert (result.returncode, result.stdout, result.stderr) == (3, b"fed\n", b"oops\n")
    assert result.argv == ("sh", "-c", "cat; echo oops >&2; exit 3")


def test_a_missing_program_is_exit_127(agent: AgentLink) -> None:
    result = agent.run(["/nonexistent/zboot-test"], None, 10, False)
    assert result.returncode == 127
    assert b"zboot-test" in result.stderr


def test_a_command_past_its_timeout_is_ended(agent: AgentLink) -> None:
    with pytest.raises(ServerError, match=r"timed out after 0\.5 s"):
        agent.run(["sleep", "30"], None, 0.5, False)
    assert agent.run(["true"], None, 10, False).returncode == 0  # the agent goes on


def test_reads_run_side_by_side(agent: AgentLink, tmp_path: Path) -> None:
    """Two reads that can only finish together (a FIFO)."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    written, read = agent.reads([["sh", "-c", f"echo meet > {fifo}"], ["cat", str(fifo)]], 10)
    assert (written.returncode, read.stdout) == (0, b"meet\n")


PROGRAM = """
import sys, os
data = sys.stdin.buffer.read()
os.write(1, b"straight to fd 1\\n")  # must not reach the protocol
print("args", sys.argv[1:], data.decode())
print("to stderr", file=sys.stderr)
os.chdir("/tmp")
raise SystemExit(int(sys.argv[1]))
"""


@pytest.mark.parametrize("code", [0, 4])
def test_a_shipped_program_runs_inside_the_agent(agent: AgentLink, code: int) -> None:
    argv = python_argv(PROGRAM, str(code), "b")
    assert in_process(argv) is not None
    first = agent.run(argv, b"input", 10, False)
    assert first.returncode == code
    assert first.stdout == f"args ['{code}', 'b'] input\n".encode()
    assert first.stderr.endswith(b"to stderr\n")
    pid = agent.run(python_argv("import os; print(os.getpid(), os.getcwd())"), None, 10, False)
    again = agent.run(python_argv("import os; print(os.getpid(), os.getcwd())"), None, 10, False)
    assert pid.stdout == again.stdout  # the same process: no new Python per call
    assert pid.stdout.split()[1] == b"/"  # the program's chdir did not stay


def test_a_shipped_program_that_raises_exits_1_with_its_traceback(agent: AgentLink) -> None:
    result = agent.run(python_argv("raise ValueError('bad request')"), None, 10, False)
    assert result.returncode == 1
    assert b"ValueError: bad request" in result.stderr
    result = agent.run(python_argv("raise SystemExit('said why')"), None, 10, False)
    assert (result.returncode, result.stderr) == (1, b"said why\n")


def test_programs_without_site_get_a_process_of_their_own() -> None:
    assert in_process(python_argv("pass", site=False)) is None
    assert in_process(["sh", "-c", "import os; os.chdir('/'); x"]) is None


def take_lock(
    link: AgentLink, base: Path, wait: float = 5, silence: float = 40
) -> tuple[lock.Lease, list[str]]:
    """The lock taken by the agent as zboot takes it (lock.acquire)."""
    said: list[str] = []

    class Runner:  # what lock.acquire asks of SshRunner
        def lock_in_agent(self, *args: Any) -> tuple[Held, str]:
            return link.take_lock(*args)

    runner: Any = Runner()
    held = lock.acquire(runner, "clone", wait, "test", said.append, str(base), silence)
    assert held is not None and held.in_agent
    return held, said


def free(base: Path) -> bool:
    return not lock.lock_state(LocalRunner(), str(base)).held


def test_the_agent_holds_the_lock_itself_and_runs_changes_in_its_lease(tmp_path: Path) -> None:
    link, pipe = start_agent()
    held, _ = take_lock(link, tmp_path)
    state = lock.lock_state(LocalRunner(), str(tmp_path))
    assert state.held and state.pid == pipe.proc.pid  # no holder process of its own
    assert state.holder is not None and state.holder.startswith("zboot clone by")
    assert held.directory == str(tmp_path / "zboot" / f"lease.{pipe.proc.pid}")
    # registered just after it started: it waits for that, then looks
    shell = 'until [ -e "$0/$$" ]; do sleep 0.05; done; ls "$0"; ps -o sid= -p $$'
    seen = link.run(["sh", "-c", shell, held.directory], None, 10, False)
    registered, session = seen.stdout.decode().split()
    assert registered.isdigit() and session == registered  # a process group of its own
    assert not list(Path(held.directory).iterdir())  # gone once it ended
    with pytest.raises(Conflict, match="zboot clone by"):
        take(tmp_path, 1)  # test_lock's holder: the same lock
    link.end()
    assert pipe.proc.wait(10) == 0
    assert free(tmp_path) and not Path(held.directory).exists()


def test_a_second_agent_waits_says_for_whom_and_gives_up(tmp_path: Path) -> None:
    first = take(tmp_path, 5, command="rollback")
    link, pipe = start_agent()
    try:
        with pytest.raises(Conflict, match="zboot rollback by"):
            take_lock(link, tmp_path, wait=1)
    finally:
        first.release()
        link.end()
        pipe.close()


@pytest.mark.parametrize("vanishes", ["end of input", "silence", "zboot unlock"])
def test_a_vanished_zboot_ends_its_running_change_then_the_lock(
    tmp_path: Path, vanishes: str
) -> None:
    link, pipe = start_agent()
    held, _ = take_lock(link, tmp_path, silence=40 if vanishes != "silence" else 1.5)
    if vanishes != "silence":
        held._stop.set()  # no beats: the test says when zboot vanished
    marker = tmp_path / "landed"

    def change() -> None:
        # what it started itself is ended too: the shell's whole process group
        shell = f"(sleep 2.5; touch {marker}) & wait"
        with contextlib.suppress(ServerError):  # its answer never comes
            link.run(["sh", "-c", shell], None, 30, False)

    threading.Thread(target=change, daemon=True).start()
    time.sleep(0.5)
    if vanishes == "end of input":
        pipe.shutdown_write()
    elif vanishes == "silence":
        held._stop.set()  # its beats stop, as a laptop that lost its network
    else:
        ended = lock.lock_state(LocalRunner(), str(tmp_path), end=pipe.proc.pid)
        assert ended.ended == pipe.proc.pid and not ended.held
    assert pipe.proc.wait(20) == 0
    assert free(tmp_path)
    time.sleep(3)
    assert not marker.exists()  # its command was ended, with what that started
    with pytest.raises(ServerError, match="lost the server's lock"):
        link.run(["true"], None, 10, False)


def test_a_lock_directory_others_can_write_to_is_refused_by_the_agent(tmp_path: Path) -> None:
    (tmp_path / "zboot").mkdir()
    (tmp_path / "zboot").chmod(0o777)
    link, pipe = start_agent()
    with pytest.raises(ServerError, match="not a directory only uid"):
        take_lock(link, tmp_path)
    assert link.run(["true"], None, 10, False).returncode == 0  # the agent goes on
    link.end()
    pipe.close()


def test_an_agent_that_never_started_is_no_agent() -> None:
    pipe = ProcessPipe(["sh", "-c", "cat >/dev/null; exit 127"])
    link = AgentLink(pipe, "test")
    pipe.shutdown_write()
    assert not link.greet()
    with pytest.raises(ServerError, match="did not start"):
        link.run(["true"], None, 10, False)
    pipe.close()


def test_an_agent_that_dies_fails_the_request_and_every_later_one(agent: AgentLink) -> None:
    agent.run(["true"], None, 10, False)
    with pytest.raises(ServerError, match="stopped answering"):
        agent.run(python_argv("import os; os._exit(9)"), None, 10, False)
    with pytest.raises(ServerError, match="stopped answering"):
        agent.run(["true"], None, 10, False)


def test_an_agent_that_died_after_its_hello_stays_an_error(agent: AgentLink) -> None:
    """A runner must not fall back to other channels for a change once the
    agent ran the run's commands: the link stays dead, with its reason."""
    assert agent.started
    with pytest.raises(ServerError):
        agent.run(python_argv("import os; os._exit(9)"), None, 10, False)
    assert not agent.greet()
    assert agent.error is not None


def test_the_agent_refuses_as_the_lock_wrapper_does() -> None:
    """The agent is shipped as text and cannot import remote.lock: its refusal
    is the wrapper's, held equal here (LockedRunner reads LOST and its mark)."""
    from zboot.remote import lock, session_agent

    assert (session_agent.LOST, session_agent.LOST_MARK) == (lock.LOST, lock.LOST_MARK)


def test_files_are_written_read_and_removed_without_an_sftp_session(
    agent: AgentLink, tmp_path: Path
) -> None:
    path = tmp_path / "pc1.ipxe"
    path.symlink_to(tmp_path / "elsewhere")  # replaced, never followed
    agent.file("write", str(path), b"#!ipxe\n", 0o640)
    assert not path.is_symlink() and not (tmp_path / "elsewhere").exists()
    assert path.read_bytes() == b"#!ipxe\n" and stat.S_IMODE(path.stat().st_mode) == 0o640
    assert agent.file("read", str(path)) == b"#!ipxe\n"
    assert [p.name for p in tmp_path.iterdir()] == ["pc1.ipxe"]  # no temporary file left
    agent.file("remove", str(path))
    agent.file("remove", str(path))  # already gone: no error
    with pytest.raises(NotFound):
        agent.file("read", str(path))
    with pytest.raises(NotFound):
        agent.file("write", str(tmp_path / "no-such-dir" / "x"), b"x")
    (tmp_path / "closed").mkdir(mode=0o500)
    if os.geteuid() != 0:  # root writes anywhere
        with pytest.raises(ServerError, match="cannot write"):
            agent.file("write", str(tmp_path / "closed" / "x"), b"x")


def test_a_file_is_not_written_once_the_lease_ended(tmp_path: Path) -> None:
    link, pipe = start_agent()
    held, _ = take_lock(link, tmp_path)
    Path(held.directory).rename(tmp_path / "ended")  # as the lease's end does first
    with pytest.raises(ServerError, match="no longer holds the server's lock"):
        link.file("write", str(tmp_path / "pc1.ipxe"), b"x")
    assert not (tmp_path / "pc1.ipxe").exists()
    assert link.file("read", str(tmp_path / "zboot" / "lock")).startswith(b"zboot clone by")
    link.end()
    pipe.close()


def test_a_frame_it_cannot_read_ends_the_agent_and_frees_its_lock(tmp_path: Path) -> None:
    link, pipe = start_agent()
    take_lock(link, tmp_path)
    pipe.sendall(struct.pack(">I", 3) + b"{{{")  # not JSON: as if its input had ended
    assert pipe.proc.wait(20) == 0
    assert free(tmp_path)
