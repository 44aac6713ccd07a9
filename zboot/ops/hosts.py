"""Per-host clones: provision, restore points, rollback that keeps what it
replaces, prune, destroy."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from .. import faults
from ..config import Config
from ..errors import Conflict, InvalidInput, NotFound, ZbootError
from ..names import host_name, image_name, iqn, mac, snapshot_name
from ..zfs.cli import Change, ZfsCli
from .images import ensure_layout
from .state import KIND, Host, State, leaf, now, reached, read_state

DEFAULT_INITIATOR_BASE = "iqn.2010-04.org.ipxe"  # iPXE's own default prefix


def default_initiator(host: str) -> str:
    return f"{DEFAULT_INITIATOR_BASE}:{host}"


@dataclass(frozen=True)
class PlannedClone:
    """A host's clone, checked against the state: nothing has run yet."""

    host: str
    snapshot: str
    dataset: str
    record: dict[str, str]


def plan_clone(
    config: Config,
    state: State,
    image_spec: str,
    host: str,
    mac_address: str,
    initiator: str | None = None,
    target: str | None = None,
    extra: dict[str, str] | None = None,
) -> PlannedClone:
    """Check a new host against the state (read once for a batch; hosts made
    since are not in it, so a batch checks its own duplicates)."""
    host = host_name(host)
    mac_address = mac(mac_address)
    initiator = iqn(initiator) if initiator else default_initiator(host)
    name, _, version = image_spec.partition("@")
    name, version_name = image_name(name), snapshot_name(version) if version else None
    image = state.image(name)
    chosen = image.version(version_name)
    dataset = f"{config.hosts}/{host}"
    if host in state.hosts or dataset in state.names:
        raise Conflict(f"host {host!r} exists already", hint=f"zboot show {host}")
    for other in state.hosts.values():
        if other.get("mac") == mac_address:
            raise Conflict(f"MAC {mac_address} belongs to host {other.name!r} already")
    record = (
        {
            KIND: "host",
            "mac": mac_address,
            "image": image.name,
            "version": chosen.name,
            "origin": chosen.dataset.name,
            "created": now(),
            "mode": "normal",
            "initiator": initiator,
        }
        | reached("clone", "cloned", "provisioning")
        | ({"target": target} if target else {})
        | (extra or {})
    )
    return PlannedClone(host, chosen.dataset.name, dataset, record)


def clone_host(
    zfs: ZfsCli,
    config: Config,
    image_spec: str,
    host: str,
    mac_address: str,
    initiator: str | None = None,
    target: str | None = None,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """Provision host from image[@version] (latest version when omitted)."""
    host_name(host), mac(mac_address)  # bad input stops here, before the server
    state = read_state(zfs, config)
    plan = plan_clone(config, state, image_spec, host, mac_address, initiator, target, extra)
    ensure_layout(zfs, config, state.names)
    zfs.clone(plan.snapshot, plan.dataset, plan.record)
    return plan.record


def snapshot_hosts(
    zfs: ZfsCli, config: Config, hosts: list[str], name: str | None
) -> tuple[str, dict[str, ZbootError]]:
    """One restore point of several hosts' disks, in one atomic `zfs snapshot`.
    A host that is unknown or has the point already fails alone. Returns the
    point's name and the hosts that failed."""
    point = snapshot_name(name) if name else time.strftime("rp-%Y%m%d-%H%M%S", time.gmtime())
    state = read_state(zfs, config)
    failed: dict[str, ZbootError] = {}
    snaps = []
    for host in hosts:
        try:
            h = state.host(host_name(host))
            if f"{h.dataset.name}@{point}" in state.names:
                raise Conflict(f"host {h.name!r} already has a restore point {point!r}")
            snaps.append(f"{h.dataset.name}@{point}")
        except ZbootError as err:
            failed[host] = err
    if snaps:
        zfs.snapshot(snaps, {"created": now()})
    return point, failed


def snapshot_host(zfs: ZfsCli, config: Config, host: str, name: str | None) -> str:
    point, failed = snapshot_hosts(zfs, config, [host], name)
    if failed:
        raise failed[host]
    return point


def archive_name(config: Config, host: str) -> str:
    return f"{config.archive}/{host}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"


@dataclass
class Rollback:
    """One host's rollback: the zfs changes in order, and what came of them."""

    host: str
    source: str = ""
    archive: str = ""
    discard: bool = False
    changes: list[Change] = field(default_factory=list)
    renamed_at: int = 0  # changes from this index on happen after the old disk moved
    error: ZbootError | None = None
    failed_step: int = -1  # the change that failed, when one did

    @property
    def disk_exists(self) -> bool:
        """Whether hosts/<host> is there: the rollback went through, or it
        failed before the old disk moved (or while checking its input), or
        after the new disk was cloned."""
        if self.error is None or self.failed_step < self.renamed_at:
            return True
        clone_at = next((i for i, c in enumerate(self.changes) if c.verb == "clone"), None)
        return clone_at is None or self.failed_step > clone_at

    def result(self) -> dict[str, str]:
        return {
            "host": self.host,
            "source": self.source,
            "archive": "" if self.discard else self.archive,
        }


def plan_rollback(
    config: Config, state: State, host: str, point: str | None, discard: bool
) -> Rollback:
    """Give the host the disk it was provisioned with, or one of its restore points.

    ZFS cannot roll back past newer snapshots without destroying them, so the
    current disk is not rolled back in place: it is renamed into the archive
    (with all its restore points) and the host gets a fresh clone of the
    chosen state. Nothing is lost unless `discard` is given.

    The plan is written onto the disk before anything moves, so a rollback
    cut short (after the rename, before the new clone) is finished by the
    next `zboot rollback` of that host."""
    host = host_name(host)
    point = snapshot_name(point) if point is not None else None
    if host not in state.hosts and (half := state.unfinished_rollbacks.get(host)):
        return finish_plan(config, host, half, discard, renamed_at=0)
    h = state.host(host)
    if h.get("state") == "rolling-back" and h.get("step") == "rollback:cloned":
        # cut short after the new disk was made: its export is missing, and
        # perhaps the old disk's mark as an archive
        archive = h.get("rollback-archive")
        return Rollback(
            host,
            h.get("rollback-to"),
            archive,
            discard,
            [archive_mark(archive)] if archive in state.names else [],
            renamed_at=0,
        )
    if point is not None:
        source = next((s.name for s in h.restore_points if s.name.endswith("@" + point)), None)
        if source is None:
            raise NotFound(
                f"host {h.name!r} has no restore point {point!r}", hint=f"zboot show {h.name}"
            )
    else:
        source = h.get("origin")
        if not source:
            raise InvalidInput(f"host {h.name!r} has no recorded origin to roll back to")
    current = h.dataset.name
    archive = archive_name(config, h.name)
    if point is not None:
        source = source.replace(current + "@", archive + "@")
    plan = {"host": h.name, "rollback-to": source, "rollback-archive": archive} | reached(
        "rollback", "planned", "rolling-back"
    )
    finish = finish_plan(config, h.name, h.dataset.record() | plan, discard, renamed_at=2)
    finish.changes[:0] = [Change.set(current, plan), Change.rename(current, archive)]
    return finish


def archive_mark(archive: str) -> Change:
    return Change.set(archive, {KIND: "archive", "state": "archived", "archived": now()})


def finish_plan(
    config: Config, host: str, archived: dict[str, str], discard: bool, renamed_at: int
) -> Rollback:
    """The steps after the rename: mark the archive, clone the chosen state as
    the host's new disk, and promote it when it came from a restore point."""
    archive, source = archived["rollback-archive"], archived["rollback-to"]
    current = f"{config.hosts}/{host}"
    record = {k: v for k, v in archived.items() if k not in ("host", "archived")}
    # The new disk first (not "ready" until its export is back: the caller
    # marks it), then the old one marked as an archive: stopped in between,
    # the host still has a disk, and the next rollback marks the archive.
    changes = [
        Change.clone(
            source,
            current,
            record | {"rolled-back": now()} | reached("rollback", "cloned", "rolling-back"),
        ),
        archive_mark(archive),
    ]
    if source.startswith(archive + "@"):
        # The restore points up to the chosen one move back to the host; the
        # archive keeps only what came after.
        changes.append(Change.promote(current))
    if discard:
        changes.append(Change.destroy(archive, recursive=True))
    return Rollback(host, source, archive, discard, changes, renamed_at)


def rollback_hosts(
    zfs: ZfsCli,
    config: Config,
    hosts: list[str],
    point: str | None,
    discard: bool = False,
    state: State | None = None,
) -> list[Rollback]:
    """Roll several hosts back, their zfs changes as one chain each (one remote
    shell for the batch). A host fails alone; one cut short after its rename
    is finished by the next rollback of it."""
    state = state or read_state(zfs, config)
    plans = []
    for host in hosts:
        try:
            plans.append(plan_rollback(config, state, host, point, discard))
        except ZbootError as err:
            plans.append(Rollback(host, error=err))
    # in two batches: up to the renames, then the rest (a step for the faults
    # tests to stop at, with every old disk in the archive and no new one yet)
    todo = [p for p in plans if p.error is None and p.changes[: p.renamed_at]]
    for plan, failed in zip(
        todo, zfs.run_changes([p.changes[: p.renamed_at] for p in todo]), strict=True
    ):
        if failed is not None:
            plan.error, plan.failed_step = failed.error, failed.step
    faults.point("rollback.renamed")
    todo = [p for p in plans if p.error is None and p.changes[p.renamed_at :]]
    for plan, failed in zip(
        todo, zfs.run_changes([p.changes[p.renamed_at :] for p in todo]), strict=True
    ):
        if failed is not None:
            plan.error, plan.failed_step = failed.error, plan.renamed_at + failed.step
            plan.error.hint = f"zboot rollback {plan.host} finishes it"
    return plans


def rollback_host(
    zfs: ZfsCli, config: Config, host: str, point: str | None, discard: bool = False
) -> dict[str, str]:
    [one] = rollback_hosts(zfs, config, [host], point, discard)
    if one.error is not None:
        raise one.error
    return one.result()


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


def prune_host(zfs: ZfsCli, config: Config, host: str) -> list[str]:
    """Destroy the host's archived states."""
    host = host_name(host)
    h = read_state(zfs, config).host(host)
    return [leaf(name) for name in destroy_in_order(zfs, [a.name for a in h.archives])]


def host_datasets(state: State, host: str) -> list[str]:
    """The host's archived states, then its disk: the order that usually works
    (an archive made by a rollback to a restore point is a clone of one of the
    disk's snapshots); destroy_in_order sorts out the rest."""
    h: Host = state.host(host_name(host))
    return [a.name for a in h.archives] + [h.dataset.name]
