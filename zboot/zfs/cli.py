"""ZFS through `zfs`/`zpool` commands on a Runner: `-Hp` output parsed into
typed records, stderr turned into typed errors. Works locally and over SSH."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from ..errors import CommandFailed, Conflict, NotFound, ServerError, ZbootError
from ..remote.base import Result, Runner
from ..remote.chains import CHUNK
from . import program

PREFIX = "org.zboot:"
VALUES = "name,property,value"
LIST_FIELDS = (
    "name",
    "type",
    "used",
    "referenced",
    "volsize",
    "origin",
    "creation",
    "compressratio",
    "available",
)

# stderr of zfs(8) -> the error the user should see; patterns checked against
# real OpenZFS 2.3 output in the lab tests.
ERRORS: list[tuple[re.Pattern[str], type[Exception]]] = [
    (re.compile(r"dataset does not exist|could not find any snapshots|no such pool"), NotFound),
    (re.compile(r"dataset already exists|snapshot already exists"), Conflict),
    (
        re.compile(
            r"has dependent clones|filesystem has children|dataset is busy|"
            r"more recent snapshots or bookmarks exist|pool or dataset is busy"
        ),
        Conflict,
    ),
]


@dataclass(frozen=True)
class Dataset:
    name: str
    type: str  # volume, snapshot, filesystem
    used: int
    referenced: int
    volsize: int | None
    origin: str | None
    creation: int
    compressratio: str
    props: Mapping[str, str] = field(default_factory=dict)  # org.zboot:* set locally
    available: int | None = None  # bytes it can still take (None: a snapshot, or not read)

    def prop(self, key: str) -> str | None:
        return self.props.get(PREFIX + key)

    def record(self) -> dict[str, str]:
        """zboot's properties, without their prefix."""
        return {k.removeprefix(PREFIX): v for k, v in self.props.items()}


def _int(value: str) -> int | None:
    return int(value) if value.isdigit() else None


def parse_list(text: str) -> list[tuple[str, ...]]:
    return [tuple(line.split("\t")) for line in text.splitlines() if line]


def parse_datasets(list_text: str, props_text: str) -> dict[str, Dataset]:
    """`zfs list -Hp -o <LIST_FIELDS>` and `zfs get -Hp -s local -o name,property,value`."""
    props: dict[str, dict[str, str]] = {}
    for name, prop, value in (row[:3] for row in parse_list(props_text)):
        if prop.startswith(PREFIX):
            props.setdefault(name, {})[prop] = value
    result = {}
    for row in parse_list(list_text):
        name, kind, used, referenced, volsize, origin, creation, ratio = row[:8]
        result[name] = Dataset(
            name=name,
            type=kind,
            used=_int(used) or 0,
            referenced=_int(referenced) or 0,
            volsize=_int(volsize),
            origin=None if origin == "-" else origin,
            creation=_int(creation) or 0,
            compressratio=ratio,
            props=props.get(name, {}),
            available=_int(row[8]) if len(row) > 8 else None,
        )
    return result


@dataclass(frozen=True)
class Change:
    """One zfs change, to run in a batch (ZfsCli.run_changes)."""

    verb: str  # clone, volume, promote, rename, destroy, set
    # clone: snapshot, target; rename: old, new; volume: size in bytes, the
    # new zvol; else: the dataset
    names: tuple[str, ...]
    props: tuple[tuple[str, str], ...] = ()
    recursive: bool = False

    @staticmethod
    def clone(snapshot: str, target: str, props: Mapping[str, str] | None = None) -> Change:
        return Change("clone", (snapshot, target), tuple((props or {}).items()))

    @staticmethod
    def volume(name: str, size: int, props: Mapping[str, str] | None = None) -> Change:
        """A new, empty, sparse zvol of size bytes."""
        return Change("volume", (str(size), name), tuple((props or {}).items()))

    @staticmethod
    def set(name: str, props: Mapping[str, str]) -> Change:
        return Change("set", (name,), tuple(props.items()))

    @staticmethod
    def rename(old: str, new: str) -> Change:
        return Change("rename", (old, new))

    @staticmethod
    def promote(name: str) -> Change:
        return Change("promote", (name,))

    @staticmethod
    def destroy(name: str, recursive: bool = False) -> Change:
        return Change("destroy", (name,), recursive=recursive)

    @staticmethod
    def rollback(snapshot: str) -> Change:
        """The dataset back to its snapshot, which must be its latest."""
        return Change("rollback", (snapshot,))


@dataclass(frozen=True)
class StepFailed:
    """Where a chain of changes stopped: the step's index and its error."""

    step: int
    error: ZbootError


def full_key(key: str) -> str:
    return key if ":" in key else PREFIX + key


def change_argv(change: Change) -> list[str]:
    props = dict(change.props)
    if change.verb == "clone":
        return ["zfs", "clone", *prop_args(props), *change.names]
    if change.verb == "volume":
        size, name = change.names
        return ["zfs", "create", "-s", "-V", size, *prop_args(props), name]
    if change.verb == "set":
        return ["zfs", "set", *(f"{full_key(k)}={v}" for k, v in props.items()), *change.names]
    if change.verb == "destroy":
        return ["zfs", "destroy", *(["-r"] if change.recursive else []), *change.names]
    if change.verb in ("rename", "promote", "rollback"):
        return ["zfs", change.verb, *change.names]
    raise ValueError(f"no zfs change {change.verb!r}")


def filesystem_argv(name: str) -> list[str]:
    return ["zfs", "create", "-p", "-o", "mountpoint=none", name]


def _program_kind(change: Change) -> str | None:
    """What the changes of several chains are made together in a channel
    program: a dataset's property set ("set"), a dataset destroyed with its
    snapshots ("destroy"); None: a command each."""
    if len(change.names) != 1:
        return None
    if change.verb == "set":
        return "set"
    if change.verb == "destroy" and change.recursive and "@" not in change.names[0]:
        return "destroy"
    return None


def _segment_end(chain: Sequence[Change], start: int, batched: bool) -> int:
    """Where the steps that go to a shell together from start end: before the
    chain's next step a program could make (its first step goes whatever it
    is); a lone chain (not batched) goes whole."""
    if not batched:
        return len(chain)
    later = range(start + 1, len(chain))
    return next((i for i in later if _program_kind(chain[i])), len(chain))


def _program_round(chains: Sequence[Sequence[Change]], todo: list[int], at: list[int]) -> list[int]:
    """The chains whose next changes one program makes: the first kind that
    several of them have come to; none if no kind has several."""
    kinds: dict[str, list[int]] = {}
    for n in todo:
        if kind := _program_kind(chains[n][at[n]]):
            kinds.setdefault(kind, []).append(n)
    return next((ns for ns in kinds.values() if len(ns) > 1), [])


def _zboot_error(err: Exception) -> ZbootError:
    return err if isinstance(err, ZbootError) else ServerError(str(err))


def translate(error: CommandFailed) -> Exception:
    for pattern, kind in ERRORS:
        if pattern.search(error.stderr):
            message = error.stderr.strip().splitlines()[-1] if error.stderr.strip() else str(error)
            return kind(message)
    return error


def failure(result: Result) -> Exception:
    """The error a failed zfs command's result stands for (see translate)."""
    error = result.stderr.decode("utf-8", errors="replace")
    return translate(CommandFailed(result.argv, result.returncode, error))


def prop_args(props: Mapping[str, str]) -> list[str]:
    args = []
    for key, value in props.items():
        args += ["-o", f"{full_key(key)}={value}"]
    return args


SEND_RECEIVE = 'zfs send -i "$1" "$2" | zfs receive "$3"'


def datasets_argvs(root: str) -> list[list[str]]:
    """ZfsCli.datasets' two reads (also what the session agent starts
    before anything is asked: remote.session_agent.Early)."""
    fields = ",".join(LIST_FIELDS)
    return [
        ["zfs", "list", "-Hp", "-r", "-t", "all", "-s", "createtxg", "-o", fields, root],
        ["zfs", "get", "-Hp", "-r", "-s", "local", "-t", "all", "-o", VALUES, "all", root],
    ]


class ZfsCli:
    """Reads and changes datasets with zfs(8) on the runner's machine."""

    backend = "zfs-cli"

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        # told (chains done, chains in all) as a batch of changes goes on
        self.on_progress: Callable[[int, int], None] | None = None
        self.program_sets = True  # False once the server's programs cannot set properties
        # a big batch's clones, renames and promotes through the ZFS agent
        # (zfs.lzc_remote): zfs_backend turns it on for a real run over SSH;
        # off again once the server turned out to have no libzfs_core
        self.lzc_agent = False

    def _run(
        self,
        argv: Sequence[str],
        timeout: float = 300.0,
        input: bytes | None = None,
        read_only: bool = False,
    ) -> Result:
        try:
            return self.runner.run(argv, timeout=timeout, input=input, read_only=read_only)
        except CommandFailed as err:
            raise translate(err) from err

    def version(self) -> dict[str, str]:
        lines = self._run(["zfs", "version"], read_only=True).text.split()
        found = {}
        for line in lines:
            if line.startswith("zfs-kmod-"):
                found["kmod"] = line.removeprefix("zfs-kmod-")
            elif line.startswith("zfs-"):
                found["userland"] = line.removeprefix("zfs-")
        if "userland" not in found:
            raise ServerError(f"cannot read the ZFS version from {lines!r}")
        return found

    def datasets(self, root: str) -> dict[str, Dataset]:
        """Every dataset and snapshot under root, with zboot's local
        properties: two zfs commands, run side by side (Runner.reads)."""
        listed, got = self.runner.reads(datasets_argvs(root))
        for result in (listed, got):
            if result.ok:
                continue
            if b"does not exist" in result.stderr:
                return {}
            raise failure(result)
        return parse_datasets(listed.text, got.text)

    def exists(self, name: str) -> bool:
        return not self.missing([name])

    def missing(self, names: Sequence[str]) -> list[str]:
        """Those of names that do not exist, in their order (one `zfs list`)."""
        listed = self.runner.run(
            ["zfs", "list", "-H", "-o", "name", *names], check=False, read_only=True
        )
        if listed.ok:  # zfs list exits 0 only when it found every name
            return []
        found = set(listed.text.splitlines())
        return [name for name in names if name not in found]

    def create_filesystem(self, name: str) -> None:
        self._run(filesystem_argv(name))

    def create_filesystems(self, names: Sequence[str]) -> None:
        """Filesystems in order, stopping at the first that fails; over SSH
        several share one remote shell."""
        if len(names) == 1:
            self.create_filesystem(names[0])
        elif names:
            [failed] = self.runner.run_chains([[filesystem_argv(name) for name in names]])
            if failed is not None:
                raise failure(failed.result)

    def create_volume(
        self,
        name: str,
        size: int,
        *,
        sparse: bool = True,
        volblocksize: int | None = None,
        compression: str | None = None,
        props: Mapping[str, str] | None = None,
    ) -> None:
        argv = ["zfs", "create"] + (["-s"] if sparse else []) + ["-V", str(size)]
        if volblocksize:
            argv += ["-o", f"volblocksize={volblocksize}"]
        if compression:
            argv += ["-o", f"compression={compression}"]
        self._run([*argv, *prop_args(props or {}), name])

    def snapshot(self, names: Sequence[str], props: Mapping[str, str] | None = None) -> None:
        """One `zfs snapshot` for all names: atomic, and one command for a batch."""
        self._run(["zfs", "snapshot", *prop_args(props or {}), *names])

    def clone(self, snapshot: str, target: str, props: Mapping[str, str] | None = None) -> None:
        self._run(change_argv(Change.clone(snapshot, target, props)))

    def promote(self, name: str) -> None:
        self._run(change_argv(Change.promote(name)))

    def rename(self, old: str, new: str) -> None:
        self._run(change_argv(Change.rename(old, new)))

    def destroy(self, name: str, *, recursive: bool = False) -> None:
        self._run(change_argv(Change.destroy(name, recursive)))

    def set_props(self, name: str, props: Mapping[str, str]) -> None:
        self._run(change_argv(Change.set(name, props)))

    def send_incremental(self, base: str, snapshot: str, target: str) -> None:
        """snapshot's changes since base (an earlier snapshot, or its clone's
        origin) received as the snapshot target, in one pipe on the server.
        Its exit status is receive's: a send that fails cuts the stream
        short, and receive takes a stream whole or not at all."""
        self._run(["sh", "-c", SEND_RECEIVE, "sh", base, snapshot, target], timeout=24 * 3600)

    def written(self, name: str) -> int:
        """Bytes written to a dataset since its latest snapshot."""
        written = self._run(["zfs", "get", "-Hp", "-o", "value", "written", name], read_only=True)
        return int(written.text.strip())

    def mark(self, names: Sequence[str], props: Mapping[str, str]) -> None:
        """The same properties on many datasets (a batch's step marks): one
        channel program (set_many), not a `zfs set` that waits for a
        transaction group per dataset. Raises the first dataset's error,
        once the others are set."""
        if len(names) == 1:
            self.set_props(names[0], props)
        elif names:
            errors = self.set_many([(name, props) for name in names])
            if first := next((e for e in errors if e is not None), None):
                raise first

    def set_many(self, props: Sequence[tuple[str, Mapping[str, str]]]) -> list[ZbootError | None]:
        """Each (dataset, its properties) set, all in one channel program (one
        transaction group; more for a batch too big for one command line);
        each gets None or why its properties are not set. On a ZFS whose
        programs cannot set properties, a `zfs set` each, in one chain batch."""
        full = [(name, {full_key(k): v for k, v in values.items()}) for name, values in props]
        outcomes: list[ZbootError | None] = [None] * len(full)
        left = list(range(len(full)))
        if self.program_sets:
            left = []
            for pool, part in program.set_batches(full):
                names = [full[i][0] for i in part]
                done = self._set_program(pool, [full[i] for i in part], names)
                if done is None:  # no zfs.sync.set_prop: nothing set
                    self.program_sets = False
                    left += part
                    continue
                for i, error in zip(part, done, strict=True):
                    outcomes[i] = error
        if left:
            chains = [[change_argv(Change.set(*full[i]))] for i in left]
            for i, failed in zip(left, self.runner.run_chains(chains), strict=True):
                outcomes[i] = None if failed is None else _zboot_error(failure(failed.result))
        return outcomes

    def _set_program(
        self, pool: str, props: Sequence[program.Props], names: Sequence[str]
    ) -> list[ZbootError | None] | None:
        """One program of set_many: each dataset's outcome (a program that
        fails as a whole fails each), or None when ZFS lacks set_prop."""
        ran = self.runner.run(
            program.set_props_argv(pool, props), input=program.SET_PROPS.encode(), check=False
        )
        if not ran.ok:
            return [_zboot_error(failure(ran))] * len(names)
        return program.parse_set(ran.text, names)

    def destroy_many(self, names: Sequence[str]) -> dict[str, ZbootError | None]:
        """Destroy datasets (each with its snapshots), in the order given, in one
        channel program; each gets None or why it is still there."""
        if not names:
            return {}
        pool = names[0].split("/")[0]
        result = self._run(program.destroy_argv(pool, names), input=program.DESTROY.encode())
        return program.parse_destroyed(result.text, names)

    def run_changes(self, chains: Sequence[Sequence[Change]]) -> list[StepFailed | None]:
        """Each chain's changes in order up to its first failure, every chain
        whatever the others did; over SSH many chains share one remote shell.
        None for a chain that went through.

        In rounds: when several chains have come to a property set, those
        sets are one channel program (set_many: one transaction group,
        where a `zfs set` each would wait for one each), and so are their
        recursive destroys (destroy_many); else each chain's steps up to its
        next such step go, chains CHUNK to a shell. A lone chain runs whole
        in one shell, as does a batch with neither."""
        outcomes: list[StepFailed | None] = [None] * len(chains)
        at = [0] * len(chains)  # each chain's next step
        while todo := [n for n, c in enumerate(chains) if outcomes[n] is None and at[n] < len(c)]:
            if len(chains) > 1 and (together := _program_round(chains, todo, at)):
                for n, error in zip(together, self._program(chains, together, at), strict=True):
                    if error is not None:
                        outcomes[n] = StepFailed(at[n], error)
                    at[n] += 1
                self._progress(chains, outcomes, at)
                continue
            if self._agent_round(chains, todo, at, outcomes):
                self._progress(chains, outcomes, at)
                continue
            for first in range(0, len(todo), CHUNK):
                part = todo[first : first + CHUNK]
                upto = {n: _segment_end(chains[n], at[n], len(chains) > 1) for n in part}
                argvs = [[change_argv(c) for c in chains[n][at[n] : upto[n]]] for n in part]
                for n, failed in zip(part, self.runner.run_chains(argvs), strict=True):
                    if failed is not None:
                        error = _zboot_error(failure(failed.result))
                        outcomes[n] = StepFailed(at[n] + failed.step, error)
                    at[n] = upto[n]
                self._progress(chains, outcomes, at)
        return outcomes

    def _agent_round(
        self,
        chains: Sequence[Sequence[Change]],
        todo: list[int],
        at: list[int],
        outcomes: list[StepFailed | None],
    ) -> bool:
        """The round's segments through the ZFS agent (zfs.lzc_remote) when it
        pays off and the server can: True when it ran them."""
        if not self.lzc_agent:
            return False
        from . import lzc_remote  # imported here: it imports this module

        upto = {n: _segment_end(chains[n], at[n], True) for n in todo}
        segments = [chains[n][at[n] : upto[n]] for n in todo]
        if not lzc_remote.fits(segments):
            return False
        done = lzc_remote.run_round(self.runner, segments)
        if done is None:  # no libzfs_core on the server: the shell, from now on
            self.lzc_agent = False
            return False
        for n, failed in zip(todo, done, strict=True):
            if failed is not None:
                outcomes[n] = StepFailed(at[n] + failed.step, failed.error)
            at[n] = upto[n]
        return True

    def _program(
        self, chains: Sequence[Sequence[Change]], together: list[int], at: list[int]
    ) -> list[ZbootError | None]:
        """The next change of each chain in together, all of one program kind."""
        changes = [chains[n][at[n]] for n in together]
        if changes[0].verb == "set":
            return self.set_many([(c.names[0], dict(c.props)) for c in changes])
        gone = self.destroy_many([c.names[0] for c in changes])
        return [gone[c.names[0]] for c in changes]

    def _progress(
        self, chains: Sequence[Sequence[Change]], outcomes: list[StepFailed | None], at: list[int]
    ) -> None:
        if self.on_progress is not None:
            ended = sum(
                o is not None or n >= len(c) for o, n, c in zip(outcomes, at, chains, strict=True)
            )
            self.on_progress(ended, len(chains))


class PlannedZfs(ZfsCli):
    """--dry-run: the runner plans every change instead of running it, so a
    channel program has no answer to read; the plan assumes it goes through.
    Its plan lists zfs commands, never the ZFS agent."""

    def destroy_many(self, names: Sequence[str]) -> dict[str, ZbootError | None]:
        if names:
            self._run(
                program.destroy_argv(names[0].split("/")[0], names), input=program.DESTROY.encode()
            )
        return dict.fromkeys(names)

    def _set_program(
        self, pool: str, props: Sequence[program.Props], names: Sequence[str]
    ) -> list[ZbootError | None] | None:
        self._run(program.set_props_argv(pool, props), input=program.SET_PROPS.encode())
        return [None] * len(names)
