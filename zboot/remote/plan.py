"""The changes a run makes, listed by the code that makes them, in both modes:
`PlanRunner(inner, execute=False)` is --dry-run (reads run, changes are only
listed), `PlanRunner(inner, execute=True)` is a real run (the same list, and
each change runs). A call that only reads says so where it is made
(`read_only=True`); everything else is a change."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import BinaryIO, cast

from .base import (
    DEFAULT_TIMEOUT,
    Chain,
    ChainFailure,
    Held,
    LineFn,
    Result,
    Runner,
    pump,
    run_one_by_one,
)


def describe(argv: Sequence[str]) -> str:
    """A change as a line; a one-line program passed with -c is not repeated."""
    at = argv.index("-c") + 1 if "-c" in argv else len(argv)
    program = argv[at] if at < len(argv) else ""
    if "\n" not in program and len(program) > 80:
        return " ".join(argv[:at]) + " <zboot agent> (request on stdin)"
    return " ".join(argv)


def describe_stream(argv: Sequence[str], sent: int) -> str:
    return " ".join(argv) + f" < ({sent} bytes)"


def describe_write(path: str, data: bytes, mode: int) -> str:
    return f"write {path} ({len(data)} bytes, mode {mode:o})"


def describe_remove(path: str) -> str:
    return f"remove {path}"


class PlanRunner:
    """Wraps a runner. Read-only calls (run(read_only=True), read_file) always
    run. Every other call (run, stream, the steps of run_chains, write_file,
    remove_file) is described in `changes`, in order, and runs only when
    `execute` is set. `commands` is the inner runner's record of what ran."""

    def __init__(self, inner: Runner, *, execute: bool) -> None:
        self.inner = inner
        self.execute = execute
        self.commands = inner.commands  # the same list: what ran, for -v
        self.changes: list[str] = []

    def run(
        self,
        argv: Sequence[str],
        *,
        input: bytes | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        check: bool = True,
        read_only: bool = False,
    ) -> Result:
        if not read_only:
            self.changes.append(describe(argv))
            if not self.execute:
                return Result(tuple(argv), 0, b"", b"")
        return self.inner.run(argv, input=input, timeout=timeout, check=check, read_only=read_only)

    def stream(
        self,
        argv: Sequence[str],
        source: BinaryIO,
        chunk: int = 1 << 20,
        on_progress: Callable[[int], None] | None = None,
        timeout: float | None = None,
    ) -> Result:
        if not self.execute:
            # Reading the local source changes nothing; it lets the caller check
            # its size and show progress as in a real run.
            sent = pump(source, lambda _: None, chunk, on_progress)
            self.changes.append(describe_stream(argv, sent))
            return Result(tuple(argv), 0, b"", b"")
        counted = Counted(source)
        try:
            return self.inner.stream(argv, cast(BinaryIO, counted), chunk, on_progress, timeout)
        finally:
            self.changes.append(describe_stream(argv, counted.count))

    def reads(
        self, argvs: Sequence[Sequence[str]], timeout: float = DEFAULT_TIMEOUT
    ) -> list[Result]:
        return self.inner.reads(argvs, timeout)

    def run_chains(
        self, chains: Sequence[Chain], timeout: float = DEFAULT_TIMEOUT
    ) -> list[ChainFailure | None]:
        """Every step is a change; in a real run, the steps that ran are listed
        (each chain's steps up to and with its failed one)."""
        if not self.execute:
            return run_one_by_one(self, chains)
        outcomes = self.inner.run_chains(chains, timeout)
        for chain, failure in zip(chains, outcomes, strict=True):
            ran = chain if failure is None else chain[: failure.step + 1]
            self.changes += [describe(argv) for argv in ran]
        return outcomes

    def hold(
        self, argv: Sequence[str], until: str, on_line: LineFn, timeout: float = DEFAULT_TIMEOUT
    ) -> Held:
        """The server's lock is no change: a dry run, which changes nothing,
        holds nothing; a real run holds it, unlisted."""
        if not self.execute:
            return NothingHeld()
        return self.inner.hold(argv, until, on_line, timeout)

    def write_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        self.changes.append(describe_write(path, data, mode))
        if self.execute:
            self.inner.write_file(path, data, mode)

    def read_file(self, path: str) -> bytes:
        return self.inner.read_file(path)

    def remove_file(self, path: str) -> None:
        self.changes.append(describe_remove(path))
        if self.execute:
            self.inner.remove_file(path)

    def close(self) -> None:
        self.inner.close()


class Counted:
    """A reader that counts the bytes read through it."""

    def __init__(self, inner: BinaryIO) -> None:
        self.inner, self.count = inner, 0

    def read(self, size: int = -1) -> bytes:
        data = self.inner.read(size)
        self.count += len(data)
        return data


class NothingHeld:
    def send(self, data: bytes) -> None:
        return None

    def alive(self) -> bool:
        return True

    def release(self) -> None:
        return None
