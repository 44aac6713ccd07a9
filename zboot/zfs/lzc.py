"""ZFS changes through OpenZFS's libzfs_core binding (Debian's python3-pyzfs),
for zboot running on the storage server itself. Reads stay on `zfs list/get`
(pyzfs's listing calls were never usable); snapshot, clone, promote, rename and
destroy go through the library. The only module that imports libzfs_core."""

from __future__ import annotations

import importlib
import importlib.util
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType
from typing import Any

from ..errors import ZbootError
from ..remote.base import Result, Runner
from .cli import Change, Dataset, PlannedZfs, StepFailed, ZfsCli, full_key
from .lzc_remote import lzc_error

CONCURRENT = 16  # chains of a batch under way at once


def lzc_available() -> bool:
    """Is pyzfs installed here? (Cheap: importing it builds its C bindings,
    which takes seconds on a slow machine, so that waits for the first change.)"""
    return importlib.util.find_spec("libzfs_core") is not None


def _props(props: Mapping[str, str] | None) -> dict[bytes, bytes]:
    return {full_key(k).encode(): v.encode() for k, v in (props or {}).items()}


def _translate(err: Exception, what: str) -> Exception:
    """pyzfs errors -> zboot's, by errno first (a failure of a multi-dataset
    call such as SnapshotFailure carries the errno of what went wrong), then
    by the exception's name (see lzc_remote.lzc_error)."""
    name = type(err).__name__
    return lzc_error(getattr(err, "errno", None), name, f"{what}: {name} {err}")


class LzcZfs(ZfsCli):
    """ZfsCli whose changes go through libzfs_core (local runs only)."""

    backend = "libzfs_core"

    def __init__(self, runner: Runner) -> None:
        super().__init__(runner)
        self._lzc: ModuleType | None = None
        self._commands = threading.RLock()

    @property
    def lzc(self) -> ModuleType:
        if self._lzc is None:
            self._lzc = importlib.import_module("libzfs_core")
        return self._lzc

    def _call(self, what: str, fn: Callable[..., Any], *args: Any) -> None:
        try:
            fn(*args)
        except self.lzc.exceptions.ZFSError as err:
            raise _translate(err, what) from err

    def snapshot(self, names: Sequence[str], props: Mapping[str, str] | None = None) -> None:
        self._call(
            f"snapshot {' '.join(names)}",
            self.lzc.lzc_snapshot,
            [n.encode() for n in names],
            _props(props),
        )

    def clone(self, snapshot: str, target: str, props: Mapping[str, str] | None = None) -> None:
        self._call(
            f"clone {snapshot} {target}",
            self.lzc.lzc_clone,
            target.encode(),
            snapshot.encode(),
            _props(props),
        )

    def promote(self, name: str) -> None:
        self._call(f"promote {name}", self.lzc.lzc_promote, name.encode())

    def rename(self, old: str, new: str) -> None:
        self._call(f"rename {old} {new}", self.lzc.lzc_rename, old.encode(), new.encode())

    def destroy(self, name: str, *, recursive: bool = False) -> None:
        if "@" in name:
            self._call(f"destroy {name}", self.lzc.lzc_destroy_snaps, [name.encode()], False)
            return
        if recursive:
            below = self.datasets(name)
            snaps = [n for n, d in below.items() if d.type == "snapshot"]
            if snaps:
                self._call(
                    f"destroy snapshots of {name}",
                    self.lzc.lzc_destroy_snaps,
                    [s.encode() for s in snaps],
                    False,
                )
            children = sorted(
                (n for n, d in below.items() if d.type != "snapshot" and n != name),
                key=lambda n: n.count("/"),
                reverse=True,
            )
            for child in children:
                self._call(f"destroy {child}", self.lzc.lzc_destroy, child.encode())
        self._call(f"destroy {name}", self.lzc.lzc_destroy, name.encode())

    def destroy_many(self, names: Sequence[str]) -> dict[str, ZbootError | None]:
        """In-process already: one libzfs_core destroy after another."""
        result: dict[str, ZbootError | None] = {}
        for name in names:
            try:
                self.destroy(name, recursive=True)
                result[name] = None
            except ZbootError as err:
                result[name] = err
        return result

    def run_changes(self, chains: Sequence[Sequence[Change]]) -> list[StepFailed | None]:
        """Wave by wave: the n-th change of every chain still going, together.
        The property sets of a wave are one channel program, its recursive
        destroys another (one transaction group each); its clones, renames and
        promotes go through libzfs_core side by side, CONCURRENT at once (ZFS
        makes the changes that wait together in one transaction group). A
        chain stops at its first failure, the others go on. So a batch waits
        about as often as its longest chain has steps, whatever its size."""
        outcomes: list[StepFailed | None] = [None] * len(chains)
        if chains:
            self.lzc  # noqa: B018 (imported once, before any thread)
        for step in range(max((len(c) for c in chains), default=0)):
            wave = {
                n: chain[step]
                for n, chain in enumerate(chains)
                if step < len(chain) and outcomes[n] is None
            }
            for n, err in self._wave(wave).items():
                if err is not None:
                    outcomes[n] = StepFailed(step, err)
            if self.on_progress is not None:
                ended = sum(
                    o is not None or len(c) <= step + 1
                    for o, c in zip(outcomes, chains, strict=True)
                )
                self.on_progress(ended, len(chains))
        return outcomes

    def _wave(self, wave: Mapping[int, Change]) -> dict[int, ZbootError | None]:
        sets = {n: c for n, c in wave.items() if c.verb == "set"}
        gone = {n: c for n, c in wave.items() if c.verb == "destroy" and c.recursive}
        rest = {n: c for n, c in wave.items() if n not in sets and n not in gone}
        result: dict[int, ZbootError | None] = {}
        if sets:
            marked = self.set_many([(c.names[0], dict(c.props)) for c in sets.values()])
            result |= dict(zip(sets, marked, strict=True))
        if gone:
            destroyed = ZfsCli.destroy_many(self, [c.names[0] for c in gone.values()])
            result |= {n: destroyed[c.names[0]] for n, c in gone.items()}
        if rest:
            with ThreadPoolExecutor(min(CONCURRENT, len(rest))) as pool:
                done = pool.map(self._try, rest.values())
                result |= dict(zip(rest, done, strict=True))
        return result

    def _try(self, change: Change) -> ZbootError | None:
        try:
            self.apply(change)
        except ZbootError as err:
            return err
        return None

    def _run(
        self,
        argv: Sequence[str],
        timeout: float = 300.0,
        input: bytes | None = None,
        read_only: bool = False,
    ) -> Result:
        """Commands (zfs set, a recursive destroy's listing) one at a time,
        whichever chain's thread asks: the runner keeps one record."""
        with self._commands:
            return super()._run(argv, timeout, input, read_only)

    def datasets(self, root: str) -> dict[str, Dataset]:
        with self._commands:
            return super().datasets(root)

    def apply(self, change: Change) -> None:
        props, names = dict(change.props), change.names
        if change.verb == "clone":
            self.clone(names[0], names[1], props)
        elif change.verb == "set":
            self.set_props(names[0], props)
        elif change.verb == "rename":
            self.rename(names[0], names[1])
        elif change.verb == "promote":
            self.promote(names[0])
        elif change.verb == "destroy":
            self.destroy(names[0], recursive=change.recursive)
        elif change.verb == "rollback":
            snapshot = names[0]
            dataset = snapshot.split("@")[0].encode()
            self._call(f"rollback {snapshot}", self.lzc.lzc_rollback_to, dataset, snapshot.encode())
        else:
            raise ValueError(f"no zfs change {change.verb!r}")


def zfs_backend(runner: Runner, local: bool, dry_run: bool) -> ZfsCli:
    """libzfs_core when zboot runs on the server and the binding is there (and
    this is no dry run, whose plan must show commands); else zfs(8), and
    over SSH the ZFS agent for a big batch's clones and renames
    (lzc_remote)."""
    if dry_run:
        return PlannedZfs(runner)
    if local and lzc_available():
        return LzcZfs(runner)
    zfs = ZfsCli(runner)
    zfs.lzc_agent = not local  # a big batch's changes through the server's libzfs_core
    return zfs
