"""What every runner offers: run an argv, stream into one, read and write files
atomically. Commands travel as argument lists; only the SSH runner turns them
into a shell string. (The in-memory fake for unit tests is
zboot.testing.recording.RecordingRunner.)"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from ..errors import CommandFailed, NotFound

DEFAULT_TIMEOUT = 300.0
ProgressFn = Callable[[int], None]


@dataclass(frozen=True)
class Result:
    """What a finished command left behind."""

    argv: tuple[str, ...]
    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def text(self) -> str:
        """stdout as text (UTF-8, undecodable bytes replaced)."""
        return self.stdout.decode("utf-8", errors="replace")

    @property
    def ok(self) -> bool:
        return self.returncode == 0


Chain = Sequence[Sequence[str]]  # steps (argv lists) run in order, up to the first failure


@dataclass(frozen=True)
class ChainFailure:
    """The step of a chain that failed (the later ones did not run)."""

    step: int
    result: Result  # its argv and exit code; stderr holds everything it printed


class Held(Protocol):
    """A command kept running on the server (see Runner.hold)."""

    def send(self, data: bytes) -> None:
        """Write data to its stdin; OSError if it is gone."""
        ...

    def alive(self) -> bool:
        """Is it still running (its channel open)?"""
        ...

    def release(self) -> None:
        """Close its stdin and let it end."""
        ...


LineFn = Callable[[str], None]


def pump(
    source: BinaryIO, write: Callable[[bytes], object], chunk: int, on_progress: ProgressFn | None
) -> int:
    """Copy source to write() chunk by chunk, reporting the bytes sent so far."""
    sent = 0
    while block := source.read(chunk):
        write(block)
        sent += len(block)
        if on_progress is not None:
            on_progress(sent)
    return sent


def check_result(result: Result, check: bool) -> Result:
    """Raise CommandFailed for a non-zero exit when check is set, else return result."""
    if check and result.returncode != 0:
        raise CommandFailed(
            result.argv, result.returncode, result.stderr.decode("utf-8", errors="replace")
        )
    return result


class Runner(Protocol):
    """Runs commands and handles files on the storage server (locally or over SSH)."""

    commands: list[tuple[str, ...]]

    def run(
        self,
        argv: Sequence[str],
        *,
        input: bytes | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        check: bool = True,
        read_only: bool = False,
    ) -> Result:
        """Run argv (no shell), feeding input on stdin; CommandFailed on non-zero exit
        when check is set, ServerError on timeout or a broken connection.
        read_only: the command only reads (it changes nothing on the server), so a
        dry run runs it too; the caller says so, knowing what it runs (see
        remote.plan). A read whose answer depends on a change made earlier in
        the same run (waiting for a zvol just cloned) is no read here."""
        ...

    def stream(
        self,
        argv: Sequence[str],
        source: BinaryIO,
        chunk: int = 1 << 20,
        on_progress: ProgressFn | None = None,
        timeout: float | None = None,
    ) -> Result:
        """Run argv with source copied to its stdin chunk by chunk (e.g. an image
        import); on_progress gets the bytes sent so far. Raises like run(check=True)."""
        ...

    def reads(
        self, argvs: Sequence[Sequence[str]], timeout: float = DEFAULT_TIMEOUT
    ) -> list[Result]:
        """Run read-only commands that do not depend on each other, at once
        where the runner can (over SSH: a channel each on the one connection,
        so the reads cost the slowest of them, not their sum). Recorded in the
        order given; the results in that order, not checked."""
        ...

    def run_chains(
        self, chains: Sequence[Chain], timeout: float = DEFAULT_TIMEOUT
    ) -> list[ChainFailure | None]:
        """Run each chain's steps in order up to its first failure, every chain
        whatever the others did; None for a chain that went through. Over SSH,
        many chains share one remote shell (see remote.chains)."""
        ...

    def hold(
        self, argv: Sequence[str], until: str, on_line: LineFn, timeout: float = DEFAULT_TIMEOUT
    ) -> Held:
        """Start argv and read its output lines, each to on_line, until one is
        `until`; then leave it running (its stdin open) until release().
        CommandFailed if it exits before, ServerError after timeout seconds."""
        ...

    def write_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        """Replace path with data atomically (temp file in the same directory, then
        rename): readers see the old file or the new one, never half of it."""
        ...

    def read_file(self, path: str) -> bytes:
        """The contents of path; NotFound if it does not exist."""
        ...

    def remove_file(self, path: str) -> None:
        """Remove path; no error if it is already gone."""
        ...

    def close(self) -> None:
        """Release connections; the runner may reconnect on next use."""
        ...


def read_one_by_one(
    runner: Runner, argvs: Sequence[Sequence[str]], timeout: float = DEFAULT_TIMEOUT
) -> list[Result]:
    """Runner.reads, one runner.run after the other (fakes, local runs)."""
    return [runner.run(argv, timeout=timeout, check=False, read_only=True) for argv in argvs]


def run_one_by_one(runner: Runner, chains: Sequence[Chain]) -> list[ChainFailure | None]:
    """The same outcomes, one runner.run per step (fakes, dry runs)."""
    outcomes: list[ChainFailure | None] = []
    for chain in chains:
        failure = None
        for number, argv in enumerate(chain):
            result = runner.run(argv, check=False)
            if not result.ok:
                failure = ChainFailure(number, result)
                break
        outcomes.append(failure)
    return outcomes


# --- file operations as commands (when sudo is needed) -----------------------

WRITE_SCRIPT = """set -eu
t=$(mktemp "$(dirname -- "$1")/.$(basename -- "$1").tmp-XXXXXXXX")
trap 'rm -f -- "$t"' EXIT
chmod -- "$2" "$t"
cat > "$t"
mv -f -- "$t" "$1"
trap - EXIT
"""


MISSING_STATUS = 66
READ_SCRIPT = f'test -e "$1" || exit {MISSING_STATUS}; exec cat -- "$1"'


def write_file_by_command(runner: Runner, path: str, data: bytes, mode: int) -> None:
    """write_file through commands, for a runner whose file access must go through
    sudo: mktemp in the target directory, chmod, fill from stdin, rename."""
    runner.run(["sh", "-c", WRITE_SCRIPT, "sh", path, f"{mode:o}"], input=data)


def read_file_by_command(runner: Runner, path: str) -> bytes:
    """read_file through `cat`; NotFound when the file does not exist."""
    result = runner.run(["sh", "-c", READ_SCRIPT, "sh", path], check=False)
    if result.returncode == MISSING_STATUS:
        raise NotFound(f"{path}: no such file on the server")
    return check_result(result, True).stdout


def remove_file_by_command(runner: Runner, path: str) -> None:
    runner.run(["rm", "-f", "--", path])


WAIT_SCRIPT = (
    'for _ in $(seq "$2"); do [ -e "$1" ] && exit 0; sleep 0.1; done; '
    'echo "$1 did not appear" >&2; exit 1'
)


def wait_for_path(runner: Runner, path: str, seconds: int) -> None:
    """Wait until path exists on the server (udev makes /dev/zvol links a moment
    after the zvol); fail after seconds."""
    runner.run(["sh", "-c", WAIT_SCRIPT, "sh", path, str(seconds * 10)], timeout=seconds + 30)
