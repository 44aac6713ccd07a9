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
- reads: several argvs run side by side -> one answer each
- py: a zboot engine agent (`python3 -I -c PROGRAM ARGS` with input on
  stdin) run in this process instead of a new one -> rc, out, err
- prefetch: modules imported in the background (rtslib), no answer
- lease: from now on every change (run and py not marked read) is refused
  with the lock's LOST answer unless the lease directory still exists and
  its holder lives, and this process is registered in it, so the lock
  holder ends it, and what it runs, when the lease ends (remote.lock).

End of stdin ends the agent (it unregisters first). Nothing it runs may
write to the protocol's stdout: fd 1 points at stderr once the agent has
kept its own copy."""

import base64
import builtins
import contextlib
import io
import json
import os
import struct
import subprocess
import sys
import threading
import traceback
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
    )


def finish(proc: subprocess.Popen[bytes], data: bytes | None, timeout: float | None) -> Message:
    try:
        out, err = proc.communicate(data, timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        return answer(-1, out, err)
    return answer(proc.returncode, out, err)


def run(request: Message) -> Message:
    try:
        proc = start(request["argv"], request.get("input") is not None)
    except OSError as exc:
        return answer(127, b"", f"{request['argv'][0]}: {exc.strerror}\n".encode())
    data = decode(request["input"]) if request.get("input") is not None else None
    return finish(proc, data, request.get("timeout"))


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


def prefetch(modules: list[str]) -> None:
    def load() -> None:
        for name in modules:
            with contextlib.suppress(Exception):  # the call that needs it says why
                __import__(name)

    threading.Thread(target=load, daemon=True).start()


class Lease:
    """The lock's lease this agent works under (remote.lock_holder)."""

    def __init__(self) -> None:
        self.directory = ""
        self.entry = ""

    def join(self, directory: str) -> None:
        self.directory = directory
        self.entry = os.path.join(directory, str(os.getpid()))
        if self.holds():
            with open(self.entry, "w"):
                pass

    def holds(self) -> bool:
        if not self.directory:
            return True
        holder = self.directory.rsplit(".", 1)[-1]
        try:
            os.kill(int(holder), 0)
        except (OSError, ValueError):
            return False
        return os.path.isdir(self.directory)

    def leave(self) -> None:
        if self.entry:
            with contextlib.suppress(OSError):
                os.unlink(self.entry)


def refused() -> Message:
    message = f"{LOST_MARK}: this zboot no longer holds the server's lock\n"
    return answer(LOST, b"", message.encode())


def serve(frames: Frames) -> None:
    lease = Lease()
    frames.write({"hello": "zboot-session-agent", "pid": os.getpid()})
    try:
        while (request := frames.read()) is not None:
            op = request["op"]
            if op == "prefetch":
                prefetch(request["modules"])
                continue
            if op == "lease":
                lease.join(request["directory"])
                frames.write({"joined": lease.holds()})
            elif op == "reads":
                frames.write(reads(request))
            elif not request.get("read_only") and not lease.holds():
                frames.write(refused())
            elif op == "run":
                frames.write(run(request))
            elif op == "py":
                frames.write(py(request))
            else:
                frames.write(answer(2, b"", f"unknown request {op!r}\n".encode()))
    finally:
        lease.leave()


def main() -> None:
    protocol = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # nothing run here writes into the protocol
    sys.stdout = sys.stderr
    serve(Frames(sys.stdin.buffer, protocol))


if __name__ == "zboot_session_agent":
    main()
