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

from .. import names
from ..errors import Conflict, NotFound
from ..names import HostName, SnapshotName
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


def commit(
    c: Context,
    host: HostName,
    message: str,
    point: SnapshotName | None = None,
) -> Committed:
    """The host's disk now (or its restore point `point`) as its image's
    next version, with message on it."""
    names.message(message)
    state = read_state(c.zfs, c.config)
    h = state.host(host)
    if point is not None:
        source = f"{h.dataset.name}@{point}"
        if source not in {p.name for p in h.restore_points}:
            raise NotFound(
                f"host {host!r} has no restore point {point!r}", hint=f"zboot show {host}"
            )
    base = _check(c, state, host, point)
    check_reserve(c.config, state, f"committing {host}")
    image = state.image(h.record.image)
    version = next_version(image)
    target = f"{image.dataset.name}@{version}"
    temporary = f"{h.dataset.name}@{COMMIT}"
    if point is None:
        if temporary in state.names:  # left by a commit that was cut short
            c.zfs.destroy(temporary)
        c.zfs.snapshot([temporary])
        source = temporary
    c.zfs.send_incremental(base, source, target)
    committed_from = host if point is None else f"{host}@{point}"
    props = {"created": now(), "message": message, "committed-from": committed_from}
    c.zfs.set_props(target, props)
    if point is None:
        c.zfs.destroy(temporary)
    return Committed(host, image.name, version, source, base)
