"""Retiring hosts: exports, secret and boot files, disks, restore points and
archived states. The disk is marked "destroying" first and the datasets go
last, so the record survives until the end and a destroy cut short is
finished by the same command (or `zboot sync`)."""

from __future__ import annotations

import calendar
import time
from dataclasses import dataclass, field

from .. import faults
from ..errors import Conflict, ZbootError
from ..names import HostName
from ..targets.base import Export
from ..zfs.cli import Dataset, ZfsCli
from . import chap as chap_store
from .bootfiles import remove_script
from .context import Context
from .exports import host_export, in_use
from .paths import host_dataset
from .state import Host, HostState, State, leaf, reached, read_state


@dataclass
class Retired:
    host: HostName
    gone: list[str] = field(default_factory=list)
    error: ZbootError | None = None
    mac: str = ""
    export: Export | None = None  # taken down first, when the host has one
    datasets: list[str] = field(default_factory=list)  # archived states, then the disk


def destroy(c: Context, names: list[HostName], force: bool) -> list[Retired]:
    """Destroy hosts: sessions looked up, then each step for all hosts at once:
    the disks marked "destroying", the exports taken down (one engine call),
    the secret and boot files removed, every disk destroyed in one channel
    program. A host in use (unless force) fails alone. From the mark on, the
    destroy is under way: if it stops (a fault, a disk ZFS cannot destroy),
    the same command finishes it."""
    state = read_state(c.zfs, c.config)
    results = [Retired(n) for n in names]
    for r in results:
        try:
            _check(c, state, r)
        except ZbootError as err:
            r.error = err
    exported = [r for r in results if r.export is not None and r.error is None]
    if exported and not force:
        live = c.engine.sessions([r.export.target for r in exported if r.export])
        for r in exported:
            if r.export is not None and (initiators := live.get(r.export.target)):
                r.error = in_use(r.export, initiators)
    todo = [r for r in results if r.error is None]
    c.zfs.mark(
        [host_dataset(c.config, r.host) for r in todo],
        reached("destroy", "marked", HostState.DESTROYING),
    )
    faults.point("destroy.marked", engine=True)
    if unexport := [r.export.target for r in todo if r.export is not None]:
        c.engine.apply(delete=unexport)
    faults.point("destroy.unexported")
    chap_store.remove(c.runner, c.config, [r.host for r in todo])
    for r in todo:
        if r.mac:
            remove_script(c.runner, c.config, r.mac)
    faults.point("destroy.files")
    _destroy_disks(c.zfs, todo)
    return results


def _check(c: Context, state: State, r: Retired) -> None:
    """What the host has to lose: its export, boot script and datasets."""
    record = state.record(r.host)
    if record.mode == "maintenance":
        raise Conflict(
            f"host {r.host!r} is in maintenance: its machine boots the "
            f"image {record.image!r} itself",
            hint=f"zboot mode {r.host} normal ends it first",
        )
    r.mac = record.mac
    if record.target and c.engine.name != "none":
        r.export = host_export(c.config, r.host, record.initiator)
    r.datasets = host_datasets(state, r.host)


def _destroy_disks(zfs: ZfsCli, todo: list[Retired]) -> None:
    """Every disk in one channel program; what it could not destroy (busy a
    moment after the engine let go, or a clone of another's snapshot) one by
    one, with retries."""
    try:
        left = zfs.destroy_many([name for r in todo for name in r.datasets])
    except ZbootError as err:  # the program itself failed (a suspended pool): nothing went
        for r in todo:
            r.error = err.retold(
                hint=f"once that is dealt with, zboot destroy {r.host} finishes it"
            )
        return
    for r in todo:
        r.gone = [n for n in r.datasets if left.get(n) is None]
        if not (remaining := [n for n in r.datasets if left.get(n) is not None]):
            continue
        try:
            r.gone += destroy_in_order(zfs, remaining)
        except ZbootError as err:
            err.hint = f"once that is dealt with, zboot destroy {r.host} finishes it"
            r.error = err


def destroy_in_order(zfs: ZfsCli, names: list[str], busy_retries: int = 15) -> list[str]:
    """Destroy datasets (recursively) that may be clones of each other's
    snapshots: whatever still has dependents waits for the next round. A zvol
    just released by the target engine is "busy" for a moment (udev, the
    kernel): such rounds are retried a second apart, a bounded number of times."""
    pending, gone, stalls = list(names), [], 0
    while pending:
        waiting, busy = [], False
        for name in pending:
            try:
                zfs.destroy(name, recursive=True)
                gone.append(name)
            except Conflict as err:
                waiting.append(name)
                busy = busy or "busy" in err.message
        if len(waiting) == len(pending):
            if busy and stalls < busy_retries:
                stalls += 1
                time.sleep(1)
                continue
            zfs.destroy(waiting[0], recursive=True)  # raises the real reason
        pending = waiting
    return gone


def archived_at(archive: Dataset) -> int:
    """When a disk went into the archive (its `archived` record, else when
    the disk itself was made), in seconds since the epoch."""
    stamp = archive.prop("archived") or ""
    try:
        return calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError:
        return archive.creation


def prune(c: Context, hosts: list[HostName] | None, older_than: int | None = None) -> list[str]:
    """Destroy archived states: those of hosts (None: every host's), only
    those archived more than older_than seconds ago when given."""
    state = read_state(c.zfs, c.config)
    chosen = [state.host(h) for h in hosts] if hosts is not None else state.hosts.values()
    cutoff = time.time() - older_than if older_than is not None else None
    names = [
        a.name for h in chosen for a in h.archives if cutoff is None or archived_at(a) < cutoff
    ]
    return [leaf(name) for name in destroy_in_order(c.zfs, names)]


def host_datasets(state: State, host: HostName) -> list[str]:
    """The host's archived states, then its disk, then its data disk: the
    order that usually works (an archive made by a rollback to a restore
    point is a clone of one of the disk's snapshots); destroy_in_order sorts
    out the rest."""
    h: Host = state.host(host)
    data = [state.data[host].name] if host in state.data else []
    return [a.name for a in h.archives] + [h.dataset.name] + data
