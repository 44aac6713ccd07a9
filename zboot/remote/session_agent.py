"""zboot's session agent: one Python process on the storage server for a
whole zboot run, so each command costs a process, not an SSH channel, a
login shell and a process (and the engine agents' Python, with rtslib
imported once, not once per call). Standard library only: it is shipped as
text on stdin (see remote.agent_client), not installed.

It runs as the login user (as root with sudo), isolated like every zboot
program on the server (remote.python). Stdin and stdout carry frames: a
4-byte big-endian length, then that many bytes of JSON (bytes as base64).
The first frame out is a hello. Each request gets one answer, in order:

- run: argv (no shell), input, timeout -> rc, out, err (rc -1: timed out)
- reads: several argvs run side by side -> one answer each (the run's
  first may be answered by the reads started with the agent: Early)
- py: a zboot engine agent (`python3 -I -c PROGRAM ARGS` with input on
  stdin) run in this process instead of a new one -> rc, out, err
- prefetch: modules imported in the background (rtslib), no answer
- lock: the server's lock taken by this process, with the lock holder's
  own code (remote.lock_holder, shipped in the request): a `busy` frame
  first if another zboot has it, then rc and the lease directory. From
  then on this process is the holder (the lock file names its pid): every
  command it runs registers in the lease, in a process group of its own,
  and every change is refused with the lock's LOST answer once the lease
  ended. End of stdin, `silence` seconds without a frame, SIGTERM (`zboot
  unlock`) or SIGHUP end the lease as the holder ends it (what still runs
  is ended, then the lock goes) and this process with it.
- beat: no answer; zboot sends one every few seconds while it holds the lock.
- write, read, remove: one file (path; data and mode to write) -> rc, out
  (what was read), err, missing; written as SFTP would write it, without
  an SFTP session (a channel and a process on the server) of its own.

A thread reads the frames, so beats and end-of-stdin are heard while a
request runs. Nothing the agent runs may write to the protocol's stdout:
fd 1 points at stderr once the agent has kept its own copy."""

from __future__ import annotations

import os
import sys


class Early:
    """The reads zboot names in its preamble (remote.agent_client), started
    before this agent imports anything else, so that they run while it
    starts: its imports take about 0.3 s on an emulated server, as long as
    the reads. They answer the run's first `reads` request if it asks for
    the same argvs and they stand: in a run that took the lock, only if no
    zboot held it from just before they started until this one took it (the
    lock's generation was even and named no holder then, and this agent's
    take stepped from that same generation: remote.lock_holder). Otherwise
    that request runs them again. Only os and sys here: nothing is imported
    yet."""

    def __init__(self, base: str, argvs: list[list[str]]) -> None:
        self.base, self.argvs = base, argvs
        self.claimed = False
        self.generation = free_generation(base) if argvs else None
        self.started: list[tuple[int, int, int]] = []  # pid, stdout's fd, stderr's fd
        try:
            for argv in argvs:
                self.started.append(spawn(argv))
        except (OSError, NotImplementedError, AttributeError, ValueError):
            self.argvs = []  # never claimed: the request runs them as usual
        self.results: list[Message] = []
        self.draining: list[threading.Thread] = []

    @classmethod
    def from_stdin(cls) -> Early:
        """The preamble's second part: its length on a line, then the lock's
        base directory, the number of reads and each argv (its length, then
        its items), all NUL-separated."""
        size = int(sys.stdin.buffer.readline())
        fields = sys.stdin.buffer.read(size).decode().split("\0")
        base, argvs = fields[0], []
        try:
            at = 2
            for _ in range(int(fields[1])):
                length = int(fields[at])
                argvs.append(fields[at + 1 : at + 1 + length])
                at += 1 + length
        except (IndexError, ValueError):
            argvs = []  # none to start: the requests run as usual
        return cls(base, argvs)

    def collect(self) -> None:
        """Their output drained by threads (once threading is imported), so
        none of them waits on a full pipe."""
        for number, (pid, out, err) in enumerate(self.started):
            self.results.append({})
            thread = threading.Thread(target=self._drain, args=(number, pid, out, err))
            thread.daemon = True
            thread.start()
            self.draining.append(thread)

    def _drain(self, number: int, pid: int, out: int, err: int) -> None:
        said: list[bytes] = []
        stderr = threading.Thread(target=lambda: said.append(read_all(err)), daemon=True)
        stderr.start()
        output = read_all(out)
        stderr.join()
        os.close(out)
        os.close(err)
        _, status = os.waitpid(pid, 0)
        rc = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -os.WTERMSIG(status)
        self.results[number].update(answer(rc, output, b"".join(said)))

    def claim(self, request: Message, lease: Lease) -> bool:
        """Do they answer this request? Asked once: the first reads only."""
        if self.claimed:
            return False
        self.claimed = True
        if not self.argvs or request["argvs"] != self.argvs:
            return False
        if not lease.directory:  # no lock taken: reads are as good as any
            return True
        return (
            self.generation is not None
            and lease.base == self.base
            and lease.generation_before == self.generation
        )

    def answers(self, timeout: float | None) -> Message:
        """Their answers, as reads() gives them; a read still running at
        timeout is killed (rc -1, as run() does)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for number, thread in enumerate(self.draining):
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                with contextlib.suppress(OSError):
                    os.killpg(self.started[number][0], signal.SIGKILL)
                thread.join()
                self.results[number]["rc"] = -1
        return {"answers": self.results}


def free_generation(base: str) -> int | None:
    """The lock's generation if the lock is free: even, and no holder named
    in the lock file (read after it, as the holder writes them the other way
    round); None if not, or not readable."""
    directory = os.path.join(base or ("/run" if os.path.isdir("/run") else "/var/run"), "zboot")
    try:
        generation = read_file(os.path.join(directory, "generation")).strip()
        holder = read_file(os.path.join(directory, "lock"))
    except OSError:
        return None
    if holder or not generation.isdigit() or int(generation) % 2:
        return None
    return int(generation)


def read_file(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        return read_all(fd)
    finally:
        os.close(fd)


def read_all(fd: int) -> bytes:
    """Everything from fd, to its end."""
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


def spawn(argv: list[str]) -> tuple[int, int, int]:
    """argv started in a session of its own (as start() below starts a
    command), stdin from /dev/null, stdout and stderr to pipes."""
    out_read, out_write = os.pipe()
    err_read, err_write = os.pipe()
    try:
        pid = os.posix_spawnp(
            argv[0],
            argv,
            dict(os.environ),
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, out_write, 1),
                (os.POSIX_SPAWN_DUP2, err_write, 2),
            ],
            setsid=True,
        )
    except BaseException:
        os.close(out_read)
        os.close(err_read)
        raise
    finally:
        os.close(out_write)
        os.close(err_write)
    return pid, out_read, err_read


# the reads start before the imports below (a third of this agent's start-up)
EARLY = Early.from_stdin() if __name__ == "zboot_session_agent" else None

import base64
import builtins
import contextlib
import io
import json
import queue
import signal
import struct
import subprocess
import threading
import time
import traceback
from collections.abc import Callable
from typing import IO, Any

Message = dict[str, Any]

LOST = 75
LOST_MARK = "zboot-lease-lost"
HEADER = struct.Struct(">I")


def encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def decode(text: str | None) -> bytes:
    return base64.b64decode(text) if text else b""


class Frames:
    def __init__(self, source: IO[bytes], sink: IO[bytes]) -> None:
        self.source, self.sink = source, sink

    def read(self) -> Message | None:
        head = self.source.read(HEADER.size)
        if len(head) < HEADER.size:
            return None
        (size,) = HEADER.unpack(head)
        body = self.source.read(size)
        if len(body) < size:
            return None
        message: Message = json.loads(body)
        return message

    def write(self, message: Message) -> None:
        body = json.dumps(message).encode()
        self.sink.write(HEADER.pack(len(body)) + body)
        self.sink.flush()


def answer(rc: int, out: bytes, err: bytes) -> Message:
    return {"rc": rc, "out": encode(out), "err": encode(err)}


def start(argv: list[str], feeds: bool) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        argv,
        stdin=subprocess.PIPE if feeds else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        close_fds=True,
        start_new_session=True,  # the lease ends it with all it started
    )


def finish(proc: subprocess.Popen[bytes], data: bytes | None, timeout: float | None) -> Message:
    try:
        out, err = proc.communicate(data, timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        return answer(-1, out, err)
    return answer(proc.returncode, out, err)


def run(request: Message, lease: Lease | None = None) -> Message:
    """request's command; lease: refused unless it holds, and registered in
    it while it runs (a change under the lock)."""
    data = decode(request["input"]) if request.get("input") is not None else None
    try:
        with lease.spawning() if lease is not None else contextlib.nullcontext():
            if lease is not None and not lease.holds():
                return refused()
            proc = start(request["argv"], request.get("input") is not None)
            if lease is not None:
                lease.register(proc.pid)
    except OSError as exc:
        return answer(127, b"", f"{request['argv'][0]}: {exc.strerror}\n".encode())
    try:
        return finish(proc, data, request.get("timeout"))
    finally:
        if lease is not None:
            lease.unregister(proc.pid)


def reads(request: Message) -> Message:
    answers: list[Message] = [{} for _ in request["argvs"]]

    def one(i: int, argv: list[str]) -> None:
        answers[i] = run({"argv": argv, "timeout": request.get("timeout")})

    threads = [threading.Thread(target=one, args=pair) for pair in enumerate(request["argvs"])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"answers": answers}


def first_reads(request: Message, lease: Lease) -> Message:
    """reads(), or the early reads' answers where they stand (Early)."""
    if EARLY is not None and EARLY.claim(request, lease):
        return EARLY.answers(request.get("timeout"))
    return reads(request)


def exit_code(exc: SystemExit) -> tuple[int, str]:
    """What python3 would exit with for SystemExit exc (and what it prints)."""
    if exc.code is None:
        return 0, ""
    if isinstance(exc.code, int):
        return exc.code, ""
    return 1, f"{exc.code}\n"


def py(request: Message) -> Message:
    """Run an engine agent as `python3 -I -c PROGRAM ARGS` would, in this
    process: its stdin, stdout, stderr and argv are its own for the call."""
    stdin = io.TextIOWrapper(io.BytesIO(decode(request.get("input"))), encoding="utf-8")
    out, err = io.BytesIO(), io.BytesIO()
    stdout = io.TextIOWrapper(out, encoding="utf-8", write_through=True)
    stderr = io.TextIOWrapper(err, encoding="utf-8", write_through=True)
    saved = sys.stdin, sys.stdout, sys.stderr, sys.argv
    sys.stdin, sys.stdout, sys.stderr = stdin, stdout, stderr
    sys.argv = ["-c", *request.get("args", [])]
    rc = 0
    try:
        with_site()
        program = compile(request["program"], "<string>", "exec")
        exec(program, {"__name__": "__main__", "__builtins__": builtins})  # noqa: S102
    except SystemExit as exc:
        rc, said = exit_code(exc)
        stderr.write(said)
    except BaseException:  # as python3 would: the traceback, exit 1
        rc = 1
        stderr.write(traceback.format_exc())
    finally:
        stdout.flush()
        stderr.flush()
        sys.stdin, sys.stdout, sys.stderr, sys.argv = saved
        os.chdir("/")
    return answer(rc, out.getvalue(), err.getvalue())


def write_atomically(path: str, data: bytes, mode: int) -> None:
    """A temporary file beside path (made new, never through a link), its
    mode set before any data goes in, synced, then renamed over path:
    readers see the old file or the new one, never half of it."""
    directory, name = os.path.split(path)
    tmp = os.path.join(directory or ".", f".{name}.tmp-{os.urandom(6).hex()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.rename(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def file(request: Message) -> Message:
    """write, read or remove one file, as SFTP would but with no session of
    its own (remote.base's Runner says what each does); `missing`: the file
    or its directory does not exist."""
    op, path = request["op"], request["path"]
    try:
        if op == "read":
            with open(path, "rb") as handle:
                return answer(0, handle.read(), b"")
        if op == "remove":
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        else:
            write_atomically(path, decode(request["data"]), int(request["mode"]))
    except OSError as exc:
        said = f"{exc.strerror or exc}\n".encode()
        return answer(1, b"", said) | {"missing": isinstance(exc, FileNotFoundError)}
    return answer(0, b"", b"")


SITE: list[bool] = []  # site.main() ran
SITE_LOCK = threading.Lock()


def with_site() -> None:
    """The site module's directories on sys.path, as `python3 -I` has them:
    this agent starts without them (-IS, a faster start); the engine agents
    it runs (py, prefetch) need them (rtslib, libzfs_core)."""
    with SITE_LOCK:
        if sys.flags.no_site and not SITE:
            import site

            site.main()
            SITE.append(True)


def prefetch(modules: list[str]) -> None:
    def load() -> None:
        with_site()
        for name in modules:
            with contextlib.suppress(Exception):  # the call that needs it says why
                __import__(name)

    threading.Thread(target=load, daemon=True).start()


class Lease:
    """The server's lock, held by this process (remote.lock_holder's take
    and let_go), and the lease its commands register in."""

    def __init__(self) -> None:
        self.directory = ""
        self.fd = -1
        self.base = ""
        self.generation_before = -1  # the lock's, before this process took it
        self.holder: dict[str, Any] = {}
        self._spawn = threading.Lock()  # no command starts while the lease ends
        self._ending = threading.Lock()

    def take(self, request: Message, busy: Callable[[str], None]) -> Message:
        holder: dict[str, Any] = {"__name__": "zboot_lock_holder", "__builtins__": builtins}
        exec(compile(request["program"], "zboot-lock-holder", "exec"), holder)  # noqa: S102
        said = io.StringIO()
        saved, sys.stderr = sys.stderr, said
        try:
            self.fd, self.directory, self.generation_before = holder["take"](
                request["base"], request["owner"], request["wait"], busy
            )
            self.base = request["base"]
        except SystemExit as exc:
            rc, why = exit_code(exc)
            return answer(rc, b"", (said.getvalue() + why).encode())
        except OSError as exc:
            return answer(1, b"", f"{said.getvalue()}{exc}\n".encode())
        finally:
            sys.stderr = saved
        self.holder = holder
        return {"rc": 0, "lease": self.directory}

    def holds(self) -> bool:
        return not self.directory or os.path.isdir(self.directory)

    def spawning(self) -> threading.Lock:
        return self._spawn

    def register(self, pid: int) -> None:
        if self.directory:
            with open(os.path.join(self.directory, str(pid)), "w"):
                pass

    def unregister(self, pid: int) -> None:
        if self.directory:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(self.directory, str(pid)))

    def end(self) -> None:
        """End the lease (and what still runs under it), free the lock, and
        this process: once, from whichever thread gets here first."""
        if not self._ending.acquire(blocking=False):
            return  # another thread is ending it, and this process
        with self._spawn:
            if self.directory:
                self.holder["let_go"](self.fd, self.directory)
        os._exit(0)


def refused() -> Message:
    message = f"{LOST_MARK}: this zboot no longer holds the server's lock\n"
    return answer(LOST, b"", message.encode())


class Inbox:
    """The frames zboot sends, read by a thread of their own: beats and
    end-of-stdin are heard while a request runs; requests queue in order."""

    def __init__(self, frames: Frames, on_end: Callable[[], None]) -> None:
        self.frames = frames
        self.requests: queue.Queue[Message | None] = queue.Queue()
        self.heard = time.monotonic()
        self.on_end = on_end
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:  # a frame it cannot read ends the input as its end would
            while (message := self.frames.read()) is not None:
                self.heard = time.monotonic()
                if message.get("op") != "beat":
                    self.requests.put(message)
        finally:
            self.on_end()
            self.requests.put(None)


def watch(inbox: Inbox, silence: float, lease: Lease) -> None:
    """End the lease once zboot has been silent for silence seconds."""

    def check() -> None:
        while time.monotonic() - inbox.heard < silence:
            time.sleep(min(1.0, silence / 4))
        lease.end()

    threading.Thread(target=check, daemon=True).start()


def serve(frames: Frames) -> None:
    lease = Lease()
    # end-of-stdin ends a held lease at once (what runs is ended with it);
    # otherwise the request being run finishes first
    inbox = Inbox(frames, lambda: lease.end() if lease.directory else None)
    frames.write({"hello": "zboot-session-agent", "pid": os.getpid()})
    while (request := inbox.requests.get()) is not None:
        op = request["op"]
        if op == "prefetch":
            prefetch(request["modules"])
        elif op == "lock":
            taken = lease.take(request, lambda holder: frames.write({"busy": holder}))
            if taken["rc"] == 0:
                for number in (signal.SIGTERM, signal.SIGHUP):  # zboot unlock
                    signal.signal(number, lambda *_: threading.Thread(target=lease.end).start())
                watch(inbox, float(request["silence"]), lease)
            frames.write(taken)
        elif op == "reads":
            frames.write(first_reads(request, lease))
        elif op == "run":
            frames.write(run(request, None if request.get("read_only") else lease))
        elif not request.get("read_only") and not lease.holds():
            frames.write(refused())
        elif op == "py":
            frames.write(py(request))
        elif op in ("write", "read", "remove"):
            frames.write(file(request))
        else:
            frames.write(answer(2, b"", f"unknown request {op!r}\n".encode()))
    if lease.directory:
        lease.end()


def main() -> None:
    protocol = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # nothing run here writes into the protocol
    sys.stdout = sys.stderr
    if EARLY is not None:
        EARLY.collect()
    serve(Frames(sys.stdin.buffer, protocol))


if __name__ == "zboot_session_agent":
    main()
