"""Rollback that keeps what it replaces: the host's disk is renamed into the
archive (its restore points go with it) and the chosen state is cloned back
under the host's name, so its zvol path, and so its iSCSI backstore, keeps
its name. Everything is checked and the plan written onto each disk before
its export comes down (refused while a machine is logged in, unless
forced); the exports go back up once the hosts have a disk again."""

from __future__ import annotations

import time
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass, field

from .. import faults
from ..config import Config
from ..errors import InvalidInput, NotFound, ZbootError
from ..names import HostName, SnapshotName
from ..targets.base import Export
from ..zfs.cli import Change, ZfsCli
from .context import Context
from .exports import in_use, record_export
from .paths import host_dataset
from .state import KIND, HostState, State, done, leaf, now, reached, read_state


def archive_name(config: Config, host: str) -> str:
    return f"{config.archive}/{host}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"


@dataclass
class Rollback:
    """One host's rollback: the zfs changes in order, and what came of them."""

    host: HostName
    source: str = ""
    archive: str = ""
    discard: bool = False
    changes: list[Change] = field(default_factory=list)
    renamed_at: int = 0  # changes from this index on happen after the old disk moved
    marked_at: int = 0  # changes before this index write the plan (the disk stays put)
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

    def stage(self, n: int) -> tuple[int, int]:
        """The changes of stage n: 0 the plan's mark, 1 up to the rename, 2 the rest."""
        cuts = [0, self.marked_at, self.renamed_at, len(self.changes)]
        return cuts[n], cuts[n + 1]

    def result(self) -> dict[str, str]:
        return {
            "host": self.host,
            "source": self.source,
            "archive": "" if self.discard else self.archive,
        }


def plan_rollback(
    config: Config,
    state: State,
    host: HostName,
    point: SnapshotName | None,
    discard: bool,
    props: Mapping[str, str] | None = None,
    to: str | None = None,
) -> Rollback:
    """Give the host the disk it was provisioned with, or one of its restore
    points, or (to: an image version's snapshot, for rebase) another version.

    ZFS cannot roll back past newer snapshots without destroying them, so the
    current disk is not rolled back in place: it is renamed into the archive
    (with all its restore points) and the host gets a fresh clone of the
    chosen state. Nothing is lost unless `discard` is given.

    The plan is written onto the disk before anything moves, so a rollback
    cut short (after the rename, before the new clone) is finished by the
    next `zboot rollback` of that host. A discarding plan says so on the
    disk, so whatever finishes it (`zboot sync` too) discards. props go onto
    the new disk alone."""
    if host not in state.hosts and (half := state.unfinished_rollbacks.get(host)):
        return finish_plan(config, host, half, discard, renamed_at=0, props=props)
    h = state.host(host)
    if h.record.state == HostState.ROLLING_BACK and h.record.step == "rollback:cloned":
        # cut short after the new disk was made: its export is missing, and
        # perhaps the old disk's mark as an archive or its destruction
        archive = h.get("rollback-archive")
        discard = discard or h.get(DISCARD) == "on"
        left = [archive_mark(archive)] + ([Change.destroy(archive, True)] if discard else [])
        return Rollback(
            host,
            h.get("rollback-to"),
            archive,
            discard,
            left if archive in state.names else [],
            renamed_at=0,
        )
    if point is not None:
        source = next((s.name for s in h.restore_points if s.name.endswith("@" + point)), None)
        if source is None:
            raise NotFound(
                f"host {h.name!r} has no restore point {point!r}", hint=f"zboot show {h.name}"
            )
    elif to is not None:
        source = to
    else:
        source = h.record.origin
        if not source:
            raise InvalidInput(f"host {h.name!r} has no recorded origin to roll back to")
    current = h.dataset.name
    archive = archive_name(config, h.name)
    if point is not None:
        source = source.replace(current + "@", archive + "@")
    plan = {"host": h.name, "rollback-to": source, "rollback-archive": archive}
    if discard or h.get(DISCARD):  # an earlier plan's mark is cleared, not kept
        plan[DISCARD] = "on" if discard else ""
    plan |= reached("rollback", "planned", HostState.ROLLING_BACK)
    finish = finish_plan(config, h.name, h.dataset.record() | plan, discard, 2, props)
    finish.changes[:0] = [Change.set(current, plan), Change.rename(current, archive)]
    finish.marked_at = 1
    return finish


def version_record(config: Config, source: str) -> dict[str, str]:
    """What a disk cloned from source records about its image: the image, the
    version and the origin, when source is an image version (a rollback to
    the origin records what it had; a rebase, the new version). Derived from
    the plan on the disk, so whatever finishes a cut-short plan records it."""
    dataset, _, version = source.partition("@")
    if not version or dataset.rsplit("/", 1)[0] != config.images:
        return {}  # a restore point: the host keeps its image and origin
    return {"image": leaf(dataset), "version": version, "origin": source}


def archive_mark(archive: str) -> Change:
    return Change.set(archive, {KIND: "archive", "state": "archived", "archived": now()})


DISCARD = "rollback-discard"  # "on": the plan destroys what it replaces


def finish_plan(
    config: Config,
    host: HostName,
    archived: dict[str, str],
    discard: bool,
    renamed_at: int,
    props: Mapping[str, str] | None = None,
) -> Rollback:
    """The steps after the rename: mark the archive, clone the chosen state as
    the host's new disk (with props on it), and promote it when it came from
    a restore point; destroy the archive when the plan discards."""
    archive, source = archived["rollback-archive"], archived["rollback-to"]
    current = host_dataset(config, host)
    discard = discard or archived.get(DISCARD) == "on"
    record = {k: v for k, v in archived.items() if k not in ("host", "archived")}
    record |= version_record(config, source) | dict(props or {})
    # The new disk first (not "ready" until its export is back: the caller
    # marks it), then the old one marked as an archive: stopped in between,
    # the host still has a disk, and the next rollback marks the archive.
    changes = [
        Change.clone(
            source,
            current,
            record | {"rolled-back": now()} | reached("rollback", "cloned", HostState.ROLLING_BACK),
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


def plan_all(
    config: Config,
    state: State,
    hosts: list[HostName],
    point: SnapshotName | None,
    discard: bool,
    props: Mapping[str, Mapping[str, str]] | None = None,
    to: str | None = None,
) -> list[Rollback]:
    """Every host's plan (props: by host, for its new disk; to: see
    plan_rollback); a host whose plan cannot be made (unknown, no such
    restore point) fails alone. Nothing changes."""
    plans = []
    for host in hosts:
        try:
            plans.append(
                plan_rollback(config, state, host, point, discard, (props or {}).get(host), to)
            )
        except ZbootError as err:
            plans.append(Rollback(host, error=err))
    return plans


def run_stage(zfs: ZfsCli, plans: list[Rollback], n: int) -> None:
    """Stage n (see Rollback.stage) of every plan still going, one chain per
    host in one chain batch (one remote shell)."""
    todo = [p for p in plans if p.error is None and p.stage(n)[0] < p.stage(n)[1]]
    chains = [p.changes[slice(*p.stage(n))] for p in todo]
    for plan, failed in zip(todo, zfs.run_changes(chains), strict=True):
        if failed is not None:
            plan.error, plan.failed_step = failed.error, plan.stage(n)[0] + failed.step
            if n == 2:
                plan.error.hint = f"zboot rollback {plan.host} finishes it"


def run_moves(zfs: ZfsCli, plans: list[Rollback]) -> None:
    """The renames, then the rest: a step for the faults tests to stop at,
    with every old disk in the archive and no new one yet."""
    run_stage(zfs, plans, 1)
    faults.point("rollback.renamed")
    run_stage(zfs, plans, 2)


def rollback_hosts(
    zfs: ZfsCli,
    config: Config,
    hosts: list[HostName],
    point: SnapshotName | None,
    discard: bool = False,
    state: State | None = None,
) -> list[Rollback]:
    """Roll several hosts back, their zfs changes as one chain each (one remote
    shell for the batch). A host fails alone; one cut short after its rename
    is finished by the next rollback of it."""
    plans = plan_all(config, state or read_state(zfs, config), hosts, point, discard)
    run_stage(zfs, plans, 0)
    run_moves(zfs, plans)
    return plans


def _exports(c: Context, state: State, plans: list[Rollback], force: bool) -> dict[str, Export]:
    """The exports of the hosts whose plan was made, by host; a host whose
    export cannot be looked up, or that is in use (unless force), fails
    alone, with no plan left to run."""
    exports: dict[str, Export] = {}
    for i, plan in enumerate(plans):
        if plan.error is not None:
            continue
        try:
            record = state.record(plan.host)
            if record.target and c.engine.name != "none":
                exports[plan.host] = record_export(c.runner, c.config, plan.host, record)
        except ZbootError as err:
            plans[i] = Rollback(plan.host, error=err)
    if exports and not force:
        live = c.engine.sessions([e.target for e in exports.values()])
        for i, plan in enumerate(plans):
            export = exports.get(plan.host)
            if export is not None and (initiators := live.get(export.target)):
                plans[i] = Rollback(plan.host, error=in_use(exports.pop(plan.host), initiators))
    return exports


def rollback(
    c: Context,
    names: list[HostName],
    point: SnapshotName | None,
    discard: bool,
    force: bool,
    state: State | None = None,
    props: Mapping[str, Mapping[str, str]] | None = None,
    to: str | None = None,
) -> list[Rollback]:
    """Roll hosts back (to: onto another image version instead, see
    ops.rebase): every plan made and every export looked up (refused
    while in use, unless force) before anything changes; each plan written
    onto its disk (one chain batch) before the exports come down (one engine
    call), so a rollback cut short there leaves the hosts "rolling-back",
    never "ready" without an export; the renames and clones in one chain
    batch each; the exports of the hosts that have a disk again put back in
    one engine call. state: as the caller read it; props: by host, for
    its new disk."""
    state = state or read_state(c.zfs, c.config)
    plans = plan_all(c.config, state, names, point, discard, props, to)
    exports = _exports(c, state, plans, force)
    run_stage(c.zfs, plans, 0)
    # a host whose plan could not be written keeps its export
    exports = {p.host: exports[p.host] for p in plans if p.error is None and p.host in exports}
    faults.point("rollback.checked", engine=True)
    if exports:  # saved when they are put back
        c.engine.apply(delete=[e.target for e in exports.values()], persist=False)
    faults.point("rollback.unexported")
    try:
        run_moves(c.zfs, plans)
    except BaseException:
        with suppress(ZbootError):
            c.engine.apply(create=list(exports.values()))
        raise
    faults.point("rollback.cloned", engine=True)
    if exports:  # the exports back where there is a disk again; saved either way
        back = [exports[p.host] for p in plans if p.host in exports and p.disk_exists]
        gone = [e.target for e in exports.values() if e not in back]
        c.engine.apply(create=back, delete=gone)
    faults.point("rollback.exported")
    # ready again: the hosts rolled back, and those whose old disk never moved
    c.zfs.mark(
        [
            host_dataset(c.config, p.host)
            for p in plans
            if p.disk_exists and (p.changes or p.error is None)
        ],
        done("rollback"),
    )
    return plans


def shown_source(plan: Rollback) -> str:
    """A restore point by its name, an image version as image@version."""
    if plan.source.startswith(plan.archive + "@"):
        return plan.source.rsplit("@", 1)[1]
    return leaf(plan.source)
