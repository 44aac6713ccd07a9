"""Data disks moved onto another version of a data image (`zboot data
rebase`): the fleet's game library updated without touching any OS disk;
or put back to how they were made (`zboot data reset`: a fresh clone of
their own version, or a fresh empty disk).

For every host at once: the exports come down (one engine call); each data
disk is marked as an archive with the plan on it (the version it moves to,
where it goes) and renamed into the archive, and a clone of the version
takes its name (one chain per host); the exports go back up (one engine
call); with --discard the old data disks are destroyed. The host's record,
OS disk, target, CHAP secret and script do not change.

A data rebase cut short is finished by the same command: a host whose data
disk is marked, or already in the archive with the plan on it, gets the
rest of its chain; `zboot sync` puts the exports back up."""

from __future__ import annotations

import time
from contextlib import suppress
from dataclasses import dataclass

from ..errors import Conflict, ZbootError
from ..names import HostName, image_name, snapshot_name
from ..targets.base import Export
from ..zfs.cli import Change, Dataset
from .context import Context
from .exports import in_use, record_export
from .paths import data_dataset
from .space import check_reserve
from .state import KIND, State, leaf, now, read_state, version_snapshot

PLAN_TO = "data-rebase-to"  # on a data disk being moved: the version it moves to
PLAN_ARCHIVE = "data-archive"  # and the name it is archived under
EMPTY = "empty:"  # PLAN_TO of a data disk reset to empty: "empty:<bytes>"


@dataclass
class DataRebased:
    """One host of a data rebase: moved, on that version already, or failed."""

    host: HostName
    to: str  # the data image version's snapshot
    archive: str = ""  # where the old data disk went ("" when discarded or not moved)
    moved: bool = False
    error: ZbootError | None = None
    export: Export | None = None
    old: Dataset | None = None  # the data disk (or its half-moved archive) found

    def result(self) -> dict[str, object]:
        source = "" if self.to.startswith(EMPTY) else self.to  # "": an empty disk
        return {"host": self.host, "source": source, "archive": self.archive, "moved": self.moved}


def _half_moved(state: State, host: HostName) -> Dataset | None:
    """The host's data disk as a data rebase cut short left it: marked as an
    archive (still at its place, or renamed), with the plan on it. Only
    asked when the host has no data disk in place, so it is the latest one
    archived (earlier data rebases that went through left theirs too)."""
    moved = [a for a in state.host(host).archives if a.prop("disk") == "data" and a.prop(PLAN_TO)]
    return max(moved, key=lambda a: a.prop("archived") or "", default=None)


def _check(state: State, r: DataRebased, reset: bool = False) -> None:
    """What the host has to move, or why it cannot (r.error), or that it is
    on that version already (r.old stays None). reset: the disk goes back to
    how it was made, whatever it is now (r.to: its own version, or empty)."""
    h = state.host(r.host)
    if h.record.unfinished:
        raise Conflict(
            f"host {r.host!r} is {h.record.state} ({h.record.step})",
            hint="zboot sync finishes it; then data rebase",
        )
    current = state.data.get(r.host)
    half = _half_moved(state, r.host) if current is None else None
    if half is not None and reset:
        r.to = half.prop(PLAN_TO) or ""
    elif current is not None and reset:
        r.to = current.prop("origin") or f"{EMPTY}{current.volsize or 0}"
    if half is not None:
        if half.prop(PLAN_TO) != r.to:
            raise Conflict(
                f"a data rebase of host {r.host!r} to {leaf(half.prop(PLAN_TO) or '')} "
                "was cut short",
                hint=f"zboot data rebase {r.host} --to that version finishes it",
            )
        r.old = half
        return
    if current is None:
        raise Conflict(
            f"host {r.host!r} has no data disk",
            hint="a data disk is made with the host: zboot clone ... --data-image IMAGE",
        )
    if reset or current.prop("origin") != r.to:
        r.old = current


def _chain(c: Context, r: DataRebased, old: Dataset, stamp: str) -> list[Change]:
    """The host's data disk into the archive, a clone of the version in its
    place; whatever part a cut-short run did is not done again."""
    place = data_dataset(c.config, r.host)
    archive = old.prop(PLAN_ARCHIVE) or f"{c.config.archive}/{r.host}-data-{stamp}"
    r.archive = archive
    steps = []
    if old.name == place:
        mark = {
            KIND: "archive",
            "host": r.host,
            "disk": "data",
            "archived": now(),
            PLAN_TO: r.to,
            PLAN_ARCHIVE: archive,
        }
        steps += [Change.set(place, mark), Change.rename(place, archive)]
    record = {KIND: "data", "host": r.host, "created": now()}
    if r.to.startswith(EMPTY):
        return [*steps, Change.volume(place, int(r.to.removeprefix(EMPTY)), record)]
    image, _, version = leaf(r.to).partition("@")
    record |= {"image": image, "version": version, "origin": r.to}
    return [*steps, Change.clone(r.to, place, record)]


def _movable(
    c: Context, state: State, results: list[DataRebased], force: bool, reset: bool = False
) -> list[DataRebased]:
    """The hosts whose data disks move: checked, with their exports; one
    logged in is refused unless force."""
    for r in results:
        try:
            _check(state, r, reset)
            record = state.host(r.host).record
            if r.old is not None and record.target and c.engine.name != "none":
                r.export = record_export(c.runner, c.config, r.host, record)
        except ZbootError as err:
            r.error = err
    moving = [r for r in results if r.error is None and r.old is not None]
    exported = [r for r in moving if r.export is not None]
    if exported and not force:
        live = c.engine.sessions([r.export.target for r in exported if r.export])
        for r in exported:
            if r.export is not None and (initiators := live.get(r.export.target)):
                r.error = in_use(r.export, initiators)
    return [r for r in moving if r.error is None]


def _move(c: Context, moving: list[DataRebased], spec: str | None) -> list[Export]:
    """Every host's chain; the exports to put back up: those of the hosts
    moved, and of those whose data disk is still in place (its mark failed)."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    chains = [_chain(c, r, r.old, stamp) for r in moving if r.old is not None]
    back_up = []
    for r, failed in zip(moving, c.zfs.run_changes(chains), strict=True):
        if failed is not None:
            again = f"data rebase {r.host} --to {spec}" if spec else f"data reset {r.host}"
            r.error = failed.error.retold(hint=f"zboot {again} finishes it")
        in_place = r.old is not None and r.old.name == data_dataset(c.config, r.host)
        if r.export is not None and (failed is None or (failed.step == 0 and in_place)):
            back_up.append(r.export)
        r.moved = failed is None
    return back_up


def data_rebase(
    c: Context, names: list[HostName], spec: str | None, discard: bool, force: bool
) -> list[DataRebased]:
    """Move the data disks of hosts onto the data image version spec
    (IMAGE[@VERSION]); spec None: reset each to how it was made (a fresh
    clone of its own version, or a fresh empty disk of its size). One result
    per host, in order. A host fails alone."""
    if spec is not None:
        name, at, version = spec.partition("@")
        image_name(name)
        if at:
            snapshot_name(version)
    state = read_state(c.zfs, c.config)
    to = version_snapshot(state, spec) if spec is not None else ""
    results = [DataRebased(h, to) for h in names]
    moving = _movable(c, state, results, force, reset=spec is None)
    if not moving:
        return results
    check_reserve(c.config, state, f"rebasing data disks of {', '.join(r.host for r in moving)}")
    if down := [r.export.target for r in moving if r.export is not None]:
        c.engine.apply(delete=down, persist=False)  # the next apply saves
    back_up = _move(c, moving, spec)
    c.engine.apply(create=back_up)
    if discard and (gone := [r.archive for r in moving if r.moved]):
        with suppress(ZbootError):  # kept in the archive if it cannot go now
            left = c.zfs.destroy_many(gone)
            for r in moving:
                if r.moved and left.get(r.archive) is None:
                    r.archive = ""
    return results
