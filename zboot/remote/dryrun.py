"""--dry-run: reads run for real, changes are only recorded and shown."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import BinaryIO

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

READ_ONLY = {
    ("zfs", "list"),
    ("zfs", "get"),
    ("zfs", "version"),
    ("zpool", "list"),
    ("zpool", "get"),
    ("zpool", "status"),
}


# A command whose last argument is this only reads (zboot's own agents honour it).
READ_ONLY_MARK = "--zboot-read-only"


def is_read_only(argv: Sequence[str]) -> bool:
    return tuple(argv[:2]) in READ_ONLY or (len(argv) > 0 and argv[-1] == READ_ONLY_MARK)


def describe(argv: Sequence[str]) -> str:
    """A planned command as a line; a program passed with -c is not repeated."""
    if len(argv) >= 3 and argv[1] == "-c" and "\n" not in argv[2] and len(argv[2]) > 80:
        return f"{argv[0]} -c <zboot agent> (request on stdin)"
    return " ".join(argv)


class DryRunRunner:
    """Wraps a runner: read-only commands run, anything else is planned."""

    def __init__(self, inner: Runner) -> None:
        self.inner = inner
        self.commands: list[tuple[str, ...]] = []
        self.planned: list[str] = []

    def run(
        self,
        argv: Sequence[str],
        *,
        input: bytes | None = None,
        timeout: float = 300.0,
        check: bool = True,
    ) -> Result:
        if is_read_only(argv):
            result = self.inner.run(argv, input=input, timeout=timeout, check=check)
            self.commands.append(tuple(argv))
            return result
        self.planned.append(describe(argv))
        return Result(tuple(argv), 0, b"", b"")

    def stream(
        self,
        argv: Sequence[str],
        source: BinaryIO,
        chunk: int = 1 << 20,
        on_progress: Callable[[int], None] | None = None,
        timeout: float | None = None,
    ) -> Result:
        # Reading the local source changes nothing; it lets the caller check
        # its size and show progress as in a real run.
        sent = pump(source, lambda _: None, chunk, on_progress)
        self.planned.append(" ".join(argv) + f" < ({sent} bytes)")
        return Result(tuple(argv), 0, b"", b"")

    def run_chains(
        self, chains: Sequence[Chain], timeout: float = DEFAULT_TIMEOUT
    ) -> list[ChainFailure | None]:
        """Each step planned (or, if it only reads, run) like run()."""
        return run_one_by_one(self, chains)

    def hold(
        self, argv: Sequence[str], until: str, on_line: LineFn, timeout: float = DEFAULT_TIMEOUT
    ) -> Held:
        """A dry run changes nothing, so it holds nothing (zboot takes no lock)."""
        return NothingHeld()

    def write_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        self.planned.append(f"write {path} ({len(data)} bytes, mode {mode:o})")

    def read_file(self, path: str) -> bytes:
        return self.inner.read_file(path)

    def remove_file(self, path: str) -> None:
        self.planned.append(f"remove {path}")

    def close(self) -> None:
        self.inner.close()


class NothingHeld:
    def release(self) -> None:
        return None
