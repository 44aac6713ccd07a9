"""The session agent (remote.session_agent) run for real, as a local process
started the way zboot starts it on the server, driven by remote.agent_client."""

from __future__ import annotations

import os
import select
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from zboot.errors import ServerError
from zboot.remote.agent_client import BOOTSTRAP, AgentLink, preamble
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

    def close(self) -> None:
        try:
            self.proc.wait(2)  # it ends on end-of-input
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_agent() -> tuple[AgentLink, ProcessPipe]:
    # as on the server (python_argv), with this interpreter for /usr/bin/python3
    argv = python_argv(BOOTSTRAP)
    pipe = ProcessPipe([sys.executable, *argv[4:]])
    pipe.sendall(preamble())
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


def test_changes_are_refused_once_the_lease_ended(agent: AgentLink, tmp_path: Path) -> None:
    holder = subprocess.Popen(["sleep", "60"])
    try:
        lease = tmp_path / f"lease.{holder.pid}"
        lease.mkdir()
        assert agent.join_lease(str(lease))
        registered = [p.name for p in lease.iterdir()]
        assert len(registered) == 1 and registered[0].isdigit()
        assert agent.run(["true"], None, 10, False).returncode == 0
        lease.rename(tmp_path / "ended")  # as the holder does when the lease ends
        refused = agent.run(["touch", str(tmp_path / "made")], None, 10, False)
        assert refused.returncode == 75
        assert b"zboot-lease-lost" in refused.stderr
        assert not (tmp_path / "made").exists()
        assert agent.run(["true"], None, 10, True).returncode == 0  # a read still runs
    finally:
        holder.kill()
        holder.wait()


def test_the_agent_leaves_the_lease_when_it_ends(tmp_path: Path) -> None:
    link, pipe = start_agent()
    lease = tmp_path / f"lease.{os.getpid()}"
    lease.mkdir()
    assert link.join_lease(str(lease))
    assert list(lease.iterdir())
    link.end()
    assert pipe.proc.wait(10) == 0
    assert not list(lease.iterdir())


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
