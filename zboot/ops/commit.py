"""Commit: a host's disk becomes its image's next version.

The host's disk is a clone of image@vN. Its changes since vN go into the
image as one incremental stream on the server, `zfs send -i image@vN
host@snap | zfs receive image@vN+1`: ZFS receives a stream whole or not at
all, so a commit that fails or is killed half way leaves the image and its
versions exactly as they were. The host itself does not change: it stays a
clone of vN until it is rebased (`zboot rebase HOST --to IMAGE`).

What it refuses, before anything changes: a host that is logged in (its
disk is changing; `--from` a restore point taken before is consistent), an
image that gained a version after the host's origin (the stream would not
apply), an image in maintenance or written to since its last version (its
own zvol has changes that are not a version yet)."""

from __future__ import annotations

from dataclasses import dataclass

from .. import faults, names
from ..errors import Conflict, NotFound
from ..names import HostName, SnapshotName
from ..zfs.cli import Change
from .context import Context
from .exports import record_export
from .images import next_version
from .maintenance import HOLDER
from .space import check_reserve
from .state import COMMIT, State, leaf, now, read_state


@dataclass(frozen=True)
class Committed:
    host: HostName
    image: str
    version: str  # the new version's name
    source: str  # what was sent: the host's snapshot
    base: str  # the version it was sent on top of

    def result(self) -> dict[str, str]:
        return {
            "host": self.host,
            "image": self.image,
            "version": self.version,
            "from": leaf(self.source),
            "base": leaf(self.base),
        }


def _check(c: Context, state: State, host: HostName, point: SnapshotName | None) -> str:
    """The version the host's changes go on top of; refuses what cannot be
    committed (see the module docstring)."""
    h = state.host(host)
    if h.unfinished:
        raise Conflict(
            f"host {host!r} is {h.record.state} ({h.record.step})",
            hint="zboot sync finishes it; then commit",
        )
    image = state.image(h.record.image)
    base = h.record.origin
    newest = image.versions[-1].dataset.name if image.versions else ""
    if base != newest:
        raise Conflict(
            f"image {image.name!r} has a newer version ({leaf(newest)}) than "
            f"host {host!r} was cloned from ({leaf(base)}): its changes apply to "
            f"{leaf(base)} only",
            hint=f"zboot rebase {host} --to {image.name} and make the change there",
        )
    if holder := image.dataset.prop(HOLDER):
        raise Conflict(
            f"image {image.name!r} is in maintenance on host {holder!r}",
            hint=f"zboot mode {holder} normal first",
        )
    if c.zfs.written(image.dataset.name):
        raise Conflict(
            f"image {image.name!r} was written to since {leaf(newest)}: "
            "those changes are not a version yet",
            hint=f"zboot image snapshot {image.name} keeps them as a version; then rebase",
        )
    if point is None and h.record.target and c.engine.name != "none":
        export = record_export(c.runner, c.config, host, h.record)
        if live := c.engine.sessions([export.target]).get(export.target):
            raise Conflict(
                f"host {host!r} is in use: {', '.join(live)} is logged in, so its disk is changing",
                hint=f"shut the machine down, or take a restore point (zboot snapshot "
                f"{host} -n NAME) and commit --from NAME",
            )
    return base


def _finish_committed(c: Context, state: State, host: HostName) -> Committed | None:
    """A commit of host that got as far as naming the new version and was
    cut short before it let go of the host's snapshot: finish it (the same
    command again is how a cut-short commit is finished)."""
    h = state.host(host)
    temporary = f"{h.dataset.name}@{COMMIT}"
    image = state.images.get(h.record.image)
    if image is None or not image.versions or temporary not in state.names:
        return None
    newest = image.versions[-1]
    if newest.dataset.prop("committed-from") != host or newest.dataset.name == h.record.origin:
        return None
    c.zfs.destroy(temporary)
    return Committed(host, image.name, newest.name, temporary, h.record.origin)


def _undo_received(c: Context, state: State, image: str) -> None:
    """A commit cut short between its receive and the new version's name
    left the stream received as image@zboot-commit: take the image back to
    its newest version, exactly as before that commit."""
    staged = f"{state.image(image).dataset.name}@{COMMIT}"
    if staged not in state.names:
        return
    versions = state.image(image).versions
    # the staged snapshot first: a rollback goes to the newest snapshot only
    chain = [Change.destroy(staged)]
    if versions:
        chain.append(Change.rollback(versions[-1].dataset.name))
    [failed] = c.zfs.run_changes([chain])
    if failed is not None:
        raise failed.error


def commit(
    c: Context,
    host: HostName,
    message: str,
    point: SnapshotName | None = None,
) -> Committed:
    """The host's disk now (or its restore point `point`) as its image's
    next version, with message on it.

    Steps: the host's snapshot (unless a restore point is given); the
    stream received as image@zboot-commit (the image's versions unchanged);
    its properties set; renamed to the next version (one atomic rename: the
    version appears whole, with its message); the host's snapshot dropped.
    Cut short anywhere, the same command finishes or redoes it; until then
    the image's versions are exactly as before."""
    names.message(message)
    state = read_state(c.zfs, c.config)
    h = state.host(host)
    if point is None and (finished := _finish_committed(c, state, host)) is not None:
        return finished
    if point is not None:
        source = f"{h.dataset.name}@{point}"
        if source not in {p.name for p in h.restore_points}:
            raise NotFound(
                f"host {host!r} has no restore point {point!r}", hint=f"zboot show {host}"
            )
    _undo_received(c, state, h.record.image)
    base = _check(c, state, host, point)
    check_reserve(c.config, state, f"committing {host}")
    image = state.image(h.record.image)
    version = next_version(image)
    staged = f"{image.dataset.name}@{COMMIT}"
    target = f"{image.dataset.name}@{version}"
    temporary = f"{h.dataset.name}@{COMMIT}"
    if point is None:
        if temporary in state.names:  # left by a commit that was cut short
            c.zfs.destroy(temporary)
        c.zfs.snapshot([temporary])
        source = temporary
        faults.point("commit.snapshot")
    c.zfs.send_incremental(base, source, staged)
    faults.point("commit.received")
    committed_from = host if point is None else f"{host}@{point}"
    props = {"created": now(), "message": message, "committed-from": committed_from}
    c.zfs.set_props(staged, props)
    faults.point("commit.described")
    c.zfs.rename(staged, target)
    if point is None:
        faults.point("commit.named")
        c.zfs.destroy(temporary)
    return Committed(host, image.name, version, source, base)
