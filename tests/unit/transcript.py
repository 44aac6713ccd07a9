"""A strict, ordered command transcript for the workflow tests.

`Transcript(steps)` is a Runner that expects exactly `steps`, in order: each
command, each chain batch, each file operation, and (through
`Transcript.engine()`) each call of the target engine. The first call that is
not the next expected step raises AssertionError at once, naming the step,
what was expected, what came and what ran before; `assert_done()` fails while
expected steps remain. So a workflow test pins every command a workflow runs,
reads included, and their order against the engine's calls.

Expected text is exact, except in a `Like`: a string whose placeholders
match what a run makes up (timestamps, secrets), the rest literal:

    <time>    a property timestamp (2026-11-21T05:43:10Z); never bound
    <stamp>   an archive name's timestamp (20261121-054310)
    <secret>  a CHAP secret (16 letters and digits)

Every placeholder but <time> binds: its first match is remembered for the
whole transcript, and later steps must carry the same value (`<secret>` in
the secret file, the engine's CHAP and the boot script is one secret). A
digit suffix makes another binding of the same kind (`<secret2>`). `Like`
is a str, so it fits any str slot (an argv, an Export's or Chap's field).
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import shlex
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import BinaryIO

from zboot.chap import Chap
from zboot.errors import CommandFailed, NotFound, ZbootError
from zboot.remote.base import (
    DEFAULT_TIMEOUT,
    Chain,
    ChainFailure,
    LineFn,
    ProgressFn,
    Result,
    check_result,
    pump,
    read_one_by_one,
)
from zboot.targets.base import Export

PLACEHOLDERS = {
    "time": r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z",
    "stamp": r"[0-9]{8}-[0-9]{6}",
    "secret": r"[A-Za-z0-9]{16}",
}
UNBOUND = {"time"}
TOKEN = re.compile(r"<([a-z]+)([0-9]*)>")


class Like(str):
    """Expected text with placeholders (see the module's docstring)."""

    def __new__(cls, text: str) -> Like:
        for found in TOKEN.finditer(text):
            if found[1] not in PLACEHOLDERS:
                raise ValueError(f"no placeholder <{found[1]}> (in {text!r})")
        return super().__new__(cls, text)

    def match(self, got: str, bound: dict[str, str]) -> bool:
        """Whether got fits; new bindings go into bound (only on a match)."""
        parts, at, seen = [], 0, set()
        for found in TOKEN.finditer(self):
            parts.append(re.escape(self[at : found.start()]))
            at = found.end()
            kind, key = found[1], found[1] + found[2]
            if kind in UNBOUND:
                parts.append(f"(?:{PLACEHOLDERS[kind]})")
            elif key in bound:
                parts.append(re.escape(bound[key]))
            elif key in seen:
                parts.append(f"(?P={key})")
            else:
                parts.append(f"(?P<{key}>{PLACEHOLDERS[kind]})")
                seen.add(key)
        parts.append(re.escape(self[at:]))
        matched = re.fullmatch("".join(parts), got)
        if matched is None:
            return False
        bound.update(matched.groupdict())
        return True


def same(expected: str | None, got: str | None, bound: dict[str, str]) -> bool:
    if isinstance(expected, Like) and got is not None:
        return expected.match(got, bound)
    return expected == got


def _text(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value


# --- the steps ------------------------------------------------------------------


class Step:
    """One expected call. `differences(actual, bound)` lists how an actual call
    (made into a step of the same kind) differs; empty when it matches."""

    def describe(self) -> str:
        raise NotImplementedError

    def differences(self, actual: Step, bound: dict[str, str]) -> list[str]:
        raise NotImplementedError


class Run(Step):
    """A command: its argv (Like elements allowed), what it is fed on stdin,
    and what it answers (stdout, exit code, stderr). A placeholder in stdout
    that is bound by then is filled in: an answer may name what the run made
    up (an archive's timestamp)."""

    def __init__(
        self,
        *argv: str,
        out: str | bytes = b"",
        rc: int = 0,
        err: str | bytes = b"",
        input: bytes | None = None,
    ) -> None:
        self.argv = argv
        self.out, self.rc, self.err = _text(out), rc, _text(err)
        self.input = input

    def describe(self) -> str:
        fed = "" if self.input is None else f"  (stdin: {len(self.input)} bytes)"
        return f"run {shlex.join(self.argv)}{fed}"

    def differences(self, actual: Step, bound: dict[str, str]) -> list[str]:
        assert isinstance(actual, Run)
        out = []
        if len(self.argv) != len(actual.argv):
            out.append(f"{len(self.argv)} arguments expected, {len(actual.argv)} given")
        for i, (want, got) in enumerate(zip(self.argv, actual.argv, strict=False)):
            if not same(want, got, bound):
                out.append(f"argument {i}: expected {want!r}, got {got!r}")
        if self.input != actual.input:
            out.append(f"stdin: expected {_short(self.input)}, got {_short(actual.input)}")
        return out

    def result(self, argv: tuple[str, ...], bound: Mapping[str, str] | None = None) -> Result:
        out = self.out
        if bound and b"<" in out:
            fill = TOKEN.sub(lambda m: (bound or {}).get(m[1] + m[2], m[0]), out.decode())
            out = fill.encode()
        return Result(argv, self.rc, out, self.err)


class Chains(Step):
    """One run_chains call: its chains, each the Runs of the steps that run
    (a chain stops at its first step with a non-zero rc: list none after it)."""

    def __init__(self, *chains: Sequence[Run]) -> None:
        self.chains = [list(c) for c in chains]
        for chain in self.chains:
            if len(_ran(chain)) != len(chain):
                raise ValueError("a chain stops at its first failing step: list none after it")

    def describe(self) -> str:
        lines = [f"run_chains ({len(self.chains)} chains)"]
        for n, chain in enumerate(self.chains):
            lines += [f"    chain {n}: {step.describe()}" for step in chain]
        return "\n".join(lines)

    def differences(self, actual: Step, bound: dict[str, str]) -> list[str]:
        assert isinstance(actual, Chains)
        out = []
        if len(self.chains) != len(actual.chains):
            out.append(f"{len(self.chains)} chains expected, {len(actual.chains)} given")
        for n, (want, got) in enumerate(zip(self.chains, actual.chains, strict=False)):
            ran = _ran(want)
            if len(ran) != len(got):
                out.append(f"chain {n}: {len(ran)} steps expected to run, {len(got)} given")
            for i, (w, g) in enumerate(zip(ran, got, strict=False)):
                out += [f"chain {n} step {i}: {d}" for d in w.differences(g, bound)]
        return out


def _ran(chain: list[Run]) -> list[Run]:
    """The steps of an expected chain up to its first failing one."""
    for i, step in enumerate(chain):
        if step.rc != 0:
            return chain[: i + 1]
    return chain


class Write(Step):
    """write_file(path, data, mode); content (str: decoded text, which may be
    a Like; bytes: exact) is checked when given."""

    def __init__(self, path: str, mode: int = 0o644, content: str | bytes | None = None) -> None:
        self.path, self.mode, self.content = path, mode, content

    def describe(self) -> str:
        return f"write {self.path} (mode {self.mode:04o})"

    def differences(self, actual: Step, bound: dict[str, str]) -> list[str]:
        assert isinstance(actual, Write) and isinstance(actual.content, bytes)
        out = []
        if not same(self.path, actual.path, bound):
            out.append(f"path: expected {self.path!r}, got {actual.path!r}")
        if self.mode != actual.mode:
            out.append(f"mode: expected {self.mode:04o}, got {actual.mode:04o}")
        if isinstance(self.content, bytes) and self.content != actual.content:
            out.append(f"content: expected {self.content!r}, got {actual.content!r}")
        if isinstance(self.content, str):
            text = actual.content.decode("utf-8", errors="replace")
            if not same(self.content, text, bound):
                diff = difflib.unified_diff(
                    self.content.splitlines(), text.splitlines(), "expected", "written", lineterm=""
                )
                out.append("content differs:\n      " + "\n      ".join(diff))
        return out


class Read(Step):
    """read_file(path): answers data, or NotFound when data is None."""

    def __init__(self, path: str, data: str | bytes | None = None) -> None:
        self.path = path
        self.data = None if data is None else _text(data)

    def describe(self) -> str:
        return f"read {self.path}" + (" (missing)" if self.data is None else "")

    def differences(self, actual: Step, bound: dict[str, str]) -> list[str]:
        assert isinstance(actual, Read)
        return [] if same(self.path, actual.path, bound) else [f"path: expected {self.path!r}"]


class Remove(Step):
    def __init__(self, path: str) -> None:
        self.path = path

    def describe(self) -> str:
        return f"remove {self.path}"

    def differences(self, actual: Step, bound: dict[str, str]) -> list[str]:
        assert isinstance(actual, Remove)
        return [] if same(self.path, actual.path, bound) else [f"path: expected {self.path!r}"]


class Hold(Run):
    """hold(argv, until): out's lines go to on_line until the line `until`;
    then the command is held until its Release step."""

    def describe(self) -> str:
        return "hold " + super().describe().removeprefix("run ")


class Release(Run):
    def describe(self) -> str:
        return "release " + super().describe().removeprefix("run ")


class Close(Step):
    def describe(self) -> str:
        return "close"

    def differences(self, actual: Step, bound: dict[str, str]) -> list[str]:
        return []


# --- engine steps -----------------------------------------------------------------


class Apply(Step):
    """engine.apply(create, delete, persist); raises `raises` when given.
    Exports compare with their CHAP (Like fields allowed)."""

    def __init__(
        self,
        create: Sequence[Export] = (),
        delete: Sequence[str] = (),
        persist: bool = True,
        raises: ZbootError | None = None,
    ) -> None:
        self.create, self.delete, self.persist = list(create), list(delete), persist
        self.raises = raises

    def describe(self) -> str:
        made = ", ".join(f"{e.target} ({_chap(e.chap)})" for e in self.create)
        return (
            f"engine apply create=[{made}] delete=[{', '.join(self.delete)}] persist={self.persist}"
        )

    def differences(self, actual: Step, bound: dict[str, str]) -> list[str]:
        assert isinstance(actual, Apply)
        out = []
        if len(self.create) != len(actual.create):
            out.append(f"{len(self.create)} exports to create expected, {len(actual.create)} given")
        for i, (want, got) in enumerate(zip(self.create, actual.create, strict=False)):
            for name in ("host", "target", "device", "initiator"):
                if not same(getattr(want, name), getattr(got, name), bound):
                    out.append(
                        f"create[{i}].{name}: expected {getattr(want, name)!r}, "
                        f"got {getattr(got, name)!r}"
                    )
            if not _same_chap(want.chap, got.chap, bound):
                out.append(f"create[{i}].chap: expected {_chap(want.chap)}, got {_chap(got.chap)}")
        if len(self.delete) != len(actual.delete) or not all(
            same(w, g, bound) for w, g in zip(self.delete, actual.delete, strict=False)
        ):
            out.append(f"delete: expected {self.delete}, got {actual.delete}")
        if self.persist != actual.persist:
            out.append(f"persist: expected {self.persist}, got {actual.persist}")
        return out


def _same_chap(want: Chap | None, got: Chap | None, bound: dict[str, str]) -> bool:
    if want is None or got is None:
        return want is got
    return all(
        same(getattr(want, f.name), getattr(got, f.name), bound) for f in dataclasses.fields(Chap)
    )


def _chap(chap: Chap | None) -> str:
    """How a CHAP shows in a message: the user, never a real secret."""
    if chap is None:
        return "no CHAP"
    secret = chap.secret if isinstance(chap.secret, Like) else "(a secret)"
    mutual = f", mutual {chap.mutual_user}" if chap.mutual_user else ""
    return f"CHAP {chap.user} {secret}{mutual}"


class Sessions(Step):
    """engine.sessions(targets): answers `answer`."""

    def __init__(
        self, targets: Sequence[str], answer: Mapping[str, list[str]] | None = None
    ) -> None:
        self.targets, self.answer = list(targets), dict(answer or {})

    def describe(self) -> str:
        return f"engine sessions [{', '.join(self.targets)}]"

    def differences(self, actual: Step, bound: dict[str, str]) -> list[str]:
        assert isinstance(actual, Sessions)
        ok = len(self.targets) == len(actual.targets) and all(
            same(w, g, bound) for w, g in zip(self.targets, actual.targets, strict=False)
        )
        return [] if ok else [f"targets: expected {self.targets}, got {actual.targets}"]


class Exports(Step):
    """engine.exports(): answers `answer` (by target IQN)."""

    def __init__(self, answer: Mapping[str, Export] | None = None) -> None:
        self.answer = dict(answer or {})

    def describe(self) -> str:
        return "engine exports"

    def differences(self, actual: Step, bound: dict[str, str]) -> list[str]:
        return []


def _indent(text: str) -> str:
    """A step's later lines under its first one."""
    return text.replace("\n", "\n      ")


def _short(data: bytes | None) -> str:
    if data is None:
        return "nothing"
    return repr(data) if len(data) <= 60 else f"{data[:60]!r}... ({len(data)} bytes)"


# --- the runner -------------------------------------------------------------------


class Transcript:
    """A Runner (and, through engine(), a TargetEngine) that expects exactly
    its steps, in order."""

    def __init__(self, steps: Iterable[Step]) -> None:
        self.steps = list(steps)
        self.at = 0
        self.bound: dict[str, str] = {}
        self.commands: list[tuple[str, ...]] = []
        self.failure: AssertionError | None = None

    # the checking

    def take(self, actual: Step) -> Step:
        """The next expected step, if actual is it; else AssertionError."""
        if self.failure is not None:  # a workflow that swallowed it stops here
            raise self.failure
        expected = self.steps[self.at] if self.at < len(self.steps) else None
        if expected is None:
            problems = ["no more steps were expected"]
        elif type(expected) is not type(actual):
            problems = [f"a {type(expected).__name__} was expected"]
        else:
            scratch = dict(self.bound)
            problems = expected.differences(actual, scratch)
            if not problems:
                self.bound = scratch
                self.at += 1
                return expected
        self.failure = AssertionError(self._report(expected, actual, problems))
        raise self.failure

    def _report(self, expected: Step | None, actual: Step, problems: list[str]) -> str:
        lines = [
            f"unexpected call at step {self.at + 1} of {len(self.steps)}:",
            f"  expected: {_indent(expected.describe()) if expected else '(the end)'}",
            f"  got:      {_indent(actual.describe())}",
            *(f"    {p}" for p in problems),
        ]
        if self.at:
            first = max(0, self.at - 5)
            lines.append("  steps done before it:" + (" ..." if first else ""))
            lines += [
                f"    {n + 1}. {_indent(s.describe())}"
                for n, s in enumerate(self.steps)
                if first <= n < self.at
            ]
        return "\n".join(lines)

    def assert_done(self) -> None:
        if self.failure is not None:
            raise self.failure
        if self.at < len(self.steps):
            left = "\n".join(
                f"    {n + 1}. {_indent(s.describe())}"
                for n, s in enumerate(self.steps)
                if n >= self.at
            )
            raise AssertionError(
                f"{len(self.steps) - self.at} expected steps did not happen:\n{left}"
            )

    def engine(self, name: str = "lio", lun: int = 0) -> TranscriptEngine:
        return TranscriptEngine(self, name, lun)

    # the Runner protocol

    def run(
        self,
        argv: Sequence[str],
        *,
        input: bytes | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        check: bool = True,
        **_: object,
    ) -> Result:
        args = tuple(argv)
        step = self.take(Run(*args, input=input))
        self.commands.append(args)
        assert isinstance(step, Run)
        return check_result(step.result(args, self.bound), check)

    def stream(
        self,
        argv: Sequence[str],
        source: BinaryIO,
        chunk: int = 1 << 20,
        on_progress: ProgressFn | None = None,
        timeout: float | None = None,
        **_: object,
    ) -> Result:
        sent = bytearray()
        pump(source, sent.extend, chunk, on_progress)
        return self.run(argv, input=bytes(sent))

    def reads(
        self, argvs: Sequence[Sequence[str]], timeout: float = DEFAULT_TIMEOUT
    ) -> list[Result]:
        """Each read is the next Run step, in the order given."""
        return read_one_by_one(self, argvs, timeout)

    def run_chains(
        self, chains: Sequence[Chain], timeout: float = DEFAULT_TIMEOUT, **_: object
    ) -> list[ChainFailure | None]:
        """Each chain runs up to its first failure, as a real runner would; the
        steps that ran are checked against the next Chains step as a whole."""
        expected = self.steps[self.at] if self.at < len(self.steps) else None
        ran: list[list[Run]] = []
        outcomes: list[ChainFailure | None] = []
        for n, chain in enumerate(chains):
            want = (
                expected.chains[n]
                if isinstance(expected, Chains) and n < len(expected.chains)
                else []
            )
            steps, failure = [], None
            for i, argv in enumerate(chain):
                steps.append(Run(*argv))
                answer = want[i] if i < len(want) else None
                if answer is not None and answer.rc != 0:
                    failure = ChainFailure(i, answer.result(tuple(argv)))
                    break
            ran.append(steps)
            outcomes.append(failure)
        self.take(Chains(*ran))
        self.commands += [step.argv for chain in ran for step in chain]
        return outcomes

    def hold(
        self,
        argv: Sequence[str],
        until: str,
        on_line: LineFn,
        timeout: float = DEFAULT_TIMEOUT,
        **_: object,
    ) -> Held:
        args = tuple(argv)
        step = self.take(Hold(*args))
        self.commands.append(args)
        assert isinstance(step, Hold)
        for line in step.out.decode().splitlines():
            if line == until:
                return Held(self, args)
            on_line(line)
        raise CommandFailed(args, step.rc or 1, step.err.decode())

    def write_file(self, path: str, data: bytes, mode: int = 0o644, **_: object) -> None:
        self.take(Write(path, mode, bytes(data)))

    def read_file(self, path: str, **_: object) -> bytes:
        step = self.take(Read(path))
        assert isinstance(step, Read)
        if step.data is None:
            raise NotFound(f"{path}: no such file on the server")
        return step.data

    def remove_file(self, path: str, **_: object) -> None:
        self.take(Remove(path))

    def close(self, **_: object) -> None:
        self.take(Close())


@dataclasses.dataclass
class Held:
    transcript: Transcript
    argv: tuple[str, ...]

    def send(self, data: bytes) -> None:
        return None  # the lock's heartbeat is no step of a workflow

    def alive(self) -> bool:
        return True

    def release(self) -> None:
        self.transcript.take(Release(*self.argv))


class TranscriptEngine:
    """A TargetEngine whose every call is a step of the transcript."""

    def __init__(self, transcript: Transcript, name: str = "lio", lun: int = 0) -> None:
        self.transcript, self.name, self.lun = transcript, name, lun

    def exports(self) -> dict[str, Export]:
        step = self.transcript.take(Exports())
        assert isinstance(step, Exports)
        return dict(step.answer)

    def apply(
        self, create: Iterable[Export] = (), delete: Iterable[str] = (), persist: bool = True
    ) -> None:
        step = self.transcript.take(Apply(list(create), list(delete), persist))
        assert isinstance(step, Apply)
        if step.raises is not None:
            raise step.raises

    def sessions(self, targets: Iterable[str]) -> dict[str, list[str]]:
        step = self.transcript.take(Sessions(list(targets)))
        assert isinstance(step, Sessions)
        return {k: list(v) for k, v in step.answer.items()}


def maker(engine: TranscriptEngine) -> Callable[[], TranscriptEngine]:
    """A Context's make_engine for engine."""
    return lambda: engine
