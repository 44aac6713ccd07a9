"""ZFS changes through OpenZFS's libzfs_core binding (Debian's python3-pyzfs),
for zboot running on the storage server itself. Reads stay on `zfs list/get`
(pyzfs's listing calls were never usable); snapshot, clone, promote, rename and
destroy go through the library. The only module that imports libzfs_core."""

from __future__ import annotations

import errno
import importlib
import importlib.util
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import Any

from ..errors import Conflict, NotFound, ServerError, ZbootError
from ..remote.base import Runner
from .cli import PREFIX, Change, PlannedZfs, StepFailed, ZfsCli


def lzc_available() -> bool:
    """Is pyzfs installed here? (Cheap: importing it builds its C bindings,
    which takes seconds on a slow machine, so that waits for the first change.)"""
    return importlib.util.find_spec("libzfs_core") is not None


def _props(props: Mapping[str, str] | None) -> dict[bytes, bytes]:
    return {(k if ":" in k else PREFIX + k).encode(): v.encode() for k, v in (props or {}).items()}


def _translate(err: Exception, what: str) -> Exception:
    """pyzfs errors -> zboot's, by errno first (a failure of a multi-dataset
    call such as SnapshotFailure carries the errno of what went wrong), then
    by the exception's name."""
    name = type(err).__name__
    detail = f"{what}: {name} {err}"
    code = getattr(err, "errno", None)
    if code == errno.ENOENT or "NotFound" in name:
        return NotFound(detail)
    if code in (errno.EEXIST, errno.EBUSY) or any(
        word in name for word in ("Exists", "Busy", "Cloned", "Dependent", "NotLatest")
    ):
        return Conflict(detail)
    return ServerError(detail)


class LzcZfs(ZfsCli):
    """ZfsCli whose changes go through libzfs_core (local runs only)."""

    backend = "libzfs_core"

    def __init__(self, runner: Runner) -> None:
        super().__init__(runner)
        self._lzc: ModuleType | None = None

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
        """One libzfs_core call per change: in-process, no command to save."""
        outcomes: list[StepFailed | None] = []
        for chain in chains:
            failed = None
            for number, change in enumerate(chain):
                try:
                    self.apply(change)
                except ZbootError as err:
                    failed = StepFailed(number, err)
                    break
            outcomes.append(failed)
            if self.on_progress is not None:
                self.on_progress(len(outcomes), len(chains))
        return outcomes

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
        else:
            raise ValueError(f"no zfs change {change.verb!r}")


def zfs_backend(runner: Runner, local: bool, dry_run: bool) -> ZfsCli:
    """libzfs_core when zboot runs on the server and the binding is there (and
    this is no dry run, whose plan must show commands); else zfs(8)."""
    if dry_run:
        return PlannedZfs(runner)
    if local and lzc_available():
        return LzcZfs(runner)
    return ZfsCli(runner)
