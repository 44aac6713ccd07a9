"""zboot's side of the session agent (remote.session_agent): one Python
process on the server for the whole run, on one SSH channel, that runs
each command zboot asks for and answers with its exit code and output.

Over SSH, every command on a channel of its own costs a channel, a login
shell and the command (about 0.3 s on the lab's emulated server, more than
most `zfs` commands), and every engine call a Python start with rtslib
imported again (over a second). Through the agent a command costs its own
process, and the engine agents run inside it.

The agent is started when the connection opens (its start-up overlaps the
lock holder's and the first reads); zboot waits for its hello only when it
first needs it. A server where it cannot start (no /usr/bin/python3) gets
each command on a channel of its own, as before: nothing is lost, since no
request was sent. `ZBOOT_SESSION_AGENT=off` in the environment does the same
(for comparing the two, see contrib/bench)."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import os
import struct
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from ..errors import CommandFailed, NotFound, ServerError
from .base import Result
from .python import in_process, python_argv

SOURCE = Path(__file__).with_name("session_agent.py").read_bytes()
BOOTSTRAP = (
    "import sys; n = int(sys.stdin.buffer.readline()); "
    "exec(compile(sys.stdin.buffer.read(n), 'zboot-session-agent', 'exec'), "
    "{'__name__': 'zboot_session_agent'})"
)
ARGV = python_argv(BOOTSTRAP, site=False)  # site is loaded when it is needed
HEADER = struct.Struct(">I")
TIMED_OUT = -1  # the agent's rc for a command it ended at its deadline
GRACE = 30.0  # seconds beyond a command's own timeout before zboot gives up on the agent
HELLO_WAIT = 60.0  # seconds for the agent to start (Python on a slow server)


def enabled() -> bool:
    return os.environ.get("ZBOOT_SESSION_AGENT", "on").lower() not in ("off", "0", "no")


def preamble(early: Sequence[Sequence[str]] = (), base: str = "") -> bytes:
    """What the bootstrap reads first: the agent's source, its length ahead;
    then the reads it starts at once (session_agent.Early) and the lock's
    base directory (as LockAsk's), NUL-separated, their length ahead. No
    early reads where an argument holds a NUL (no command could take it)."""
    if any("\0" in item for argv in early for item in [base, *argv]):
        early = ()
    fields = [base, str(len(early))]
    for argv in early:
        fields += [str(len(argv)), *argv]
    spec = "\0".join(fields).encode()
    return f"{len(SOURCE)}\n".encode() + SOURCE + f"{len(spec)}\n".encode() + spec


class Pipe(Protocol):
    """The agent's stdin and stdout (an SSH channel)."""

    def sendall(self, data: bytes) -> None: ...

    def recv(self, size: int) -> bytes: ...

    def recv_ready(self) -> bool: ...

    def settimeout(self, timeout: float | None) -> None: ...

    def shutdown_write(self) -> None: ...

    def exit_status_ready(self) -> bool: ...

    def close(self) -> None: ...


@dataclasses.dataclass(frozen=True)
class LockAsk:
    """What the lock holder's steps need (remote.lock_holder.take): its
    program, the directory the lock lives in, who asks, how long to wait,
    and how long a silence ends the lease."""

    program: str
    base: str
    owner: str
    wait: float
    silence: float


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


class AgentLink:
    """Requests to a started agent, one at a time, in order. Any fault in
    the link (the agent ended, the connection dropped, no answer in time)
    is a ServerError, and the link is dead from then on."""

    def __init__(self, pipe: Pipe, where: str) -> None:
        self.pipe = pipe
        self.where = where
        self._lock = threading.Lock()  # one request at a time
        self._writing = threading.Lock()  # a beat may go out while a request waits
        self._greeted = False
        self.holds_lock = False  # it took the server's lock (take_lock)
        self.started = False  # it said hello: from then on it never falls back
        self._dead: ServerError | None = None

    # --- frames ---------------------------------------------------------------
    def _recv_exact(self, size: int) -> bytes:
        chunks: list[bytes] = []
        while size:
            block = self.pipe.recv(size)
            if not block:
                raise EOFError
            chunks.append(block)
            size -= len(block)
        return b"".join(chunks)

    def _read(self, timeout: float) -> dict[str, Any]:
        self.pipe.settimeout(timeout)
        (size,) = HEADER.unpack(self._recv_exact(HEADER.size))
        message: dict[str, Any] = json.loads(self._recv_exact(size))
        return message

    def _send(self, message: dict[str, Any]) -> None:
        body = json.dumps(message).encode()
        with self._writing:
            self.pipe.sendall(HEADER.pack(len(body)) + body)

    def _fail(self, why: str) -> ServerError:
        if self.holds_lock:
            why += ", and this zboot lost the server's lock with it"
        self._dead = ServerError(
            f"{self.where}: zboot's agent on the server {why}",
            hint="run the same command again: it finishes what this run started",
        )
        self.pipe.close()
        return self._dead

    # --- start ----------------------------------------------------------------
    def greet(self) -> bool:
        """Wait for the agent's hello; False (and the link closed) when it did
        not start, so the caller runs commands another way."""
        with self._lock:
            return self._greet()

    def _greet(self) -> bool:
        if self._greeted:
            return self._dead is None
        self._greeted = True
        try:
            hello = self._read(HELLO_WAIT)
            if hello.get("hello") != "zboot-session-agent":
                raise ValueError(hello)
        except (OSError, EOFError, ValueError, struct.error):
            self._dead = ServerError(f"{self.where}: zboot's agent did not start")
            self.pipe.close()
            return False
        self.started = True
        return True

    @property
    def error(self) -> ServerError | None:
        """Why the link is dead (None while it lives)."""
        return self._dead

    def ready(self) -> bool:
        """Has the agent started (without waiting for it)? A read need not wait
        for it: it can take a channel of its own meanwhile."""
        if self._greeted:
            return self._dead is None
        return self.pipe.recv_ready() and self.greet()

    # --- requests -------------------------------------------------------------
    def ask(
        self,
        request: dict[str, Any],
        timeout: float | None,
        on_busy: Callable[[str], None] | None = None,
    ) -> dict[str, Any]:
        """request's answer; on_busy(holder) for a `busy` frame ahead of it."""
        with self._lock:
            if not self._greet() and self._dead is not None:
                raise self._dead
            try:
                self._send(request)
                while True:
                    message = self._read((timeout or 24 * 3600.0) + GRACE)
                    if "busy" not in message:
                        return message
                    if on_busy is not None:
                        on_busy(str(message["busy"]))
            except TimeoutError:
                raise self._fail(f"did not answer in {(timeout or 0) + GRACE:g} s") from None
            except (OSError, EOFError, ValueError, struct.error) as exc:
                raise self._fail(f"stopped answering ({exc or type(exc).__name__})") from None

    def tell(self, request: dict[str, Any]) -> None:
        """A request with no answer (prefetch, beat), sent even while another
        request waits for its answer; a link that broke says so at the next
        request."""
        with contextlib.suppress(OSError, EOFError):
            if self._dead is None:
                self._send(request)

    def run(
        self, argv: Sequence[str], data: bytes | None, timeout: float | None, read_only: bool
    ) -> Result:
        args = tuple(argv)
        shipped = in_process(args)
        request: dict[str, Any]
        if shipped is not None:
            program, rest = shipped
            request = {"op": "py", "program": program, "args": list(rest), "input": _b64(data)}
        else:
            request = {"op": "run", "argv": list(args), "input": _b64(data), "timeout": timeout}
        answer = self.ask(request | {"read_only": read_only}, timeout)
        return self._result(args, answer, timeout)

    def reads(self, argvs: Sequence[Sequence[str]], timeout: float | None) -> list[Result]:
        request = {"op": "reads", "argvs": [list(a) for a in argvs], "timeout": timeout}
        answers = self.ask(request, timeout)["answers"]
        return [self._result(tuple(a), x, timeout) for a, x in zip(argvs, answers, strict=True)]

    def _result(
        self, args: tuple[str, ...], answer: dict[str, Any], timeout: float | None
    ) -> Result:
        if answer["rc"] == TIMED_OUT:
            raise ServerError(
                f"{self.where}: {' '.join(args)} timed out after {timeout or 0:g} s",
                hint="raise the timeout if the command is just slow",
            )
        return Result(
            args, answer["rc"], base64.b64decode(answer["out"]), base64.b64decode(answer["err"])
        )

    def take_lock(self, ask: LockAsk, on_busy: Callable[[str], None]) -> tuple[AgentHeld, str]:
        """The server's lock, taken by the agent itself with the lock holder's
        program (see session_agent): (it, held; the lease directory).
        CommandFailed with the holder's exit code when it was not taken."""
        request = {"op": "lock", **dataclasses.asdict(ask)}
        answer = self.ask(request, ask.wait + 60.0, on_busy)
        if answer["rc"] != 0:
            said = base64.b64decode(answer.get("err") or "").decode("utf-8", errors="replace")
            raise CommandFailed(("zboot lock holder",), int(answer["rc"]), said)
        self.holds_lock = True
        return AgentHeld(self), str(answer["lease"])

    def file(self, op: str, path: str, data: bytes = b"", mode: int = 0o644) -> bytes:
        """write, read or remove one file on the server (see session_agent):
        what was read; NotFound for a missing file (or directory), else
        ServerError when it failed."""
        request = {"op": op, "path": path, "read_only": op == "read"}
        if op == "write":
            request |= {"data": _b64(data), "mode": mode}
        answer = self.ask(request, 120.0)
        if answer["rc"] == 0:
            return base64.b64decode(answer["out"])
        why = base64.b64decode(answer["err"]).decode("utf-8", errors="replace").strip()
        if answer.get("missing"):
            raise NotFound(f"{path}: no such file or directory on {self.where}")
        raise ServerError(f"{self.where}: cannot {op} {path}: {why}")

    def alive(self) -> bool:
        """Is the agent there, as far as is known without asking it?"""
        return self._dead is None and not self.pipe.exit_status_ready()

    def prefetch(self, modules: Sequence[str]) -> None:
        self.tell({"op": "prefetch", "modules": list(modules)})

    def end(self) -> None:
        """Let the agent go: end of its stdin (a lock it holds goes with it)."""
        with self._lock:
            if self._dead is None:
                self._dead = ServerError(f"{self.where}: zboot's agent was ended")
                try:
                    self.pipe.shutdown_write()
                    self.pipe.settimeout(5.0)
                    while self.pipe.recv(4096):
                        pass
                except (OSError, EOFError):
                    pass
            self.pipe.close()


class AgentHeld:
    """The server's lock as the session agent holds it (remote.lock's Held):
    beats go to the agent, and letting go is ending it."""

    def __init__(self, link: AgentLink) -> None:
        self.link = link

    def send(self, data: bytes) -> None:
        if not self.link.alive():
            raise OSError("zboot's agent on the server is gone")
        self.link.tell({"op": "beat"})

    def alive(self) -> bool:
        return self.link.alive()

    def release(self) -> None:
        self.link.end()
