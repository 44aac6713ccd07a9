"""RecordingRunner: the in-memory Runner the unit tests use. Test machinery:
nothing in a normal run imports it (see zboot/testing/__init__.py). It is
lenient on purpose (an argv without an answer succeeds with no output, a
channel program setting properties sets them all);
tests that must pin every command use the strict transcript in
tests/unit/transcript.py."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from ..errors import CommandFailed, NotFound
from ..remote.base import (
    DEFAULT_TIMEOUT,
    Chain,
    ChainFailure,
    Held,
    LineFn,
    ProgressFn,
    Result,
    check_result,
    pump,
    read_one_by_one,
    run_one_by_one,
)
from ..zfs.program import SET_PROPS

Responder = Callable[[tuple[str, ...], bytes | None], Result]


def program_sets(argv: Sequence[str]) -> list[tuple[str, dict[str, str]]]:
    """What a `zfs program` setting properties (zfs.program.SET_PROPS) sets:
    each dataset with its properties, in order."""
    args, sets, i = list(argv[5:]), [], 0
    while i < len(args):
        count = int(args[i + 1])
        pairs = (arg.split("=", 1) for arg in args[i + 2 : i + 2 + count])
        sets.append((args[i], {key: value for key, value in pairs}))
        i += 2 + count
    return sets


def every_set(argv: Sequence[str]) -> bytes:
    """What that program prints when every dataset it names was set."""
    count = len(program_sets(argv))
    return json.dumps({"return": {str(n): 0 for n in range(1, count + 1)}}).encode()


class RecordingRunner:
    """A Runner that runs nothing. Each argv is recorded in `commands` (its stdin in
    `inputs`); the result comes from `responses`: a mapping argv -> Result (a missing
    argv succeeds with no output) or a callable (argv, input) -> Result. Files live in
    `files` (with their modes in `modes`)."""

    def __init__(
        self,
        responses: Mapping[tuple[str, ...], Result] | Responder | None = None,
        files: Mapping[str, bytes] | None = None,
    ) -> None:
        self.responses = responses if responses is not None else {}
        self.commands: list[tuple[str, ...]] = []
        self.inputs: list[bytes | None] = []
        self.read_only: list[bool] = []  # each command's read_only flag
        self.files: dict[str, bytes] = dict(files or {})
        self.modes: dict[str, int] = {}
        self.closed = False

    def _respond(self, argv: tuple[str, ...], data: bytes | None) -> Result:
        if callable(self.responses):
            found: Result | None = self.responses(argv, data)
        else:
            found = self.responses.get(argv)
            found = found and dataclasses.replace(found, argv=argv)
        setting = argv[:2] == ("zfs", "program") and data == SET_PROPS.encode()
        if setting and (found is None or (found.ok and not found.stdout)):
            return Result(argv, 0, every_set(argv), b"")  # no answer: all set
        return found or Result(argv, 0, b"", b"")

    def run(
        self,
        argv: Sequence[str],
        *,
        input: bytes | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        check: bool = True,
        read_only: bool = False,
    ) -> Result:
        args = tuple(argv)
        self.commands.append(args)
        self.inputs.append(input)
        self.read_only.append(read_only)
        return check_result(self._respond(args, input), check)

    def stream(
        self,
        argv: Sequence[str],
        source: BinaryIO,
        chunk: int = 1 << 20,
        on_progress: ProgressFn | None = None,
        timeout: float | None = None,
    ) -> Result:
        sent = bytearray()
        pump(source, sent.extend, chunk, on_progress)
        return self.run(argv, input=bytes(sent))

    def reads(
        self, argvs: Sequence[Sequence[str]], timeout: float = DEFAULT_TIMEOUT
    ) -> list[Result]:
        return read_one_by_one(self, argvs, timeout)

    def run_chains(
        self, chains: Sequence[Chain], timeout: float = DEFAULT_TIMEOUT
    ) -> list[ChainFailure | None]:
        return run_one_by_one(self, chains)

    def hold(
        self, argv: Sequence[str], until: str, on_line: LineFn, timeout: float = DEFAULT_TIMEOUT
    ) -> Held:
        result = self.run(argv, check=False)
        for line in result.text.splitlines():
            if line == until:
                return RecordedHold(self, tuple(argv))
            on_line(line)
        raise CommandFailed(
            result.argv, result.returncode or 1, result.stderr.decode("utf-8", errors="replace")
        )

    def write_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        self.files[path] = bytes(data)
        self.modes[path] = mode

    def read_file(self, path: str) -> bytes:
        try:
            return self.files[path]
        except KeyError:
            raise NotFound(f"{path}: no such file on the server") from None

    def remove_file(self, path: str) -> None:
        self.files.pop(path, None)
        self.modes.pop(path, None)

    def close(self) -> None:
        self.closed = True


@dataclass
class RecordedHold:
    """What RecordingRunner.hold hands out: release() is recorded as a command."""

    runner: RecordingRunner
    argv: tuple[str, ...]

    def send(self, data: bytes) -> None:
        return None

    def alive(self) -> bool:
        return True

    def release(self) -> None:
        self.runner.commands.append(("release", *self.argv[:1]))
