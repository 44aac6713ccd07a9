"""Commit: a host's disk becomes its image's next version.

The host's disk is a clone of image@vN. Its changes since vN travel as one
incremental stream on the server, but ZFS receives a stream sent from a
clone's origin only as a new clone (the stream is marked so), never onto
the image itself. So the commit receives it as a staged clone of image@vN,
<root>/commit/<image>@vN+1, describes it (message, author, the image's own
properties), and then swaps it in, in one remote shell: `zfs promote` moves
image@v1..vN under the staged dataset (every host's origin with them), the
old image dataset (now an unused clone of vN) is destroyed, and the staged
one is renamed to the image's name. Only the changed blocks are written.

Cut short before the swap, the image and its versions are exactly as they
were (a staged clone is no version; the same command drops it and starts
again); cut short inside the swap, the same command finishes it; cut short
after it, the same command lets go of the host's snapshot and reports the
version. The host itself does not change: it stays a clone of vN until it
is rebased (`zboot rebase HOST --to IMAGE`).

`--image NEW` makes the disk a new image's first version instead: the same
staged receive, renamed to images/NEW (no promote: the new image stays a
clone of the host's version, sharing its blocks).

What it refuses, before anything changes: a host that is logged in (its
disk is changing; `--from` a restore point taken before is consistent), an
image that gained a version after the host's origin (the stream would not
apply), an image in maintenance or written to since its last version (its
own zvol has changes that are not a version yet)."""

from __future__ import annotations

from dataclasses import dataclass

from .. import faults, names
from ..config import Config
from ..errors import Conflict, NotFound
from ..names import HostName, SnapshotName, image_name
from ..zfs.cli import Change
from .context import Context
from .exports import record_export
from .images import next_version
from .maintenance import HOLDER
from .space import check_reserve
from .state import COMMIT, KIND, State, leaf, now, read_state


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


def _check_host(c: Context, state: State, host: HostName, point: SnapshotName | None) -> None:
    """Refuses a host mid-operation, or logged in (unless a restore point is
    committed)."""
    h = state.host(host)
    if h.unfinished:
        raise Conflict(
            f"host {host!r} is {h.record.state} ({h.record.step})",
            hint="zboot sync finishes it; then commit",
        )
    if point is None and h.record.target and c.engine.name != "none":
        export = record_export(c.runner, c.config, host, h.record)
        if live := c.engine.sessions([export.target]).get(export.target):
            raise Conflict(
                f"host {host!r} is in use: {', '.join(live)} is logged in, so its disk is changing",
                hint=f"shut the machine down, or take a restore point (zboot snapshot "
                f"{host} -n NAME) and commit --from NAME",
            )


def _check(c: Context, state: State, host: HostName, point: SnapshotName | None) -> str:
    """The version the host's changes go on top of; refuses what cannot be
    committed (see the module docstring)."""
    h = state.host(host)
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
    return base


def _check_new(c: Context, state: State, name: str) -> None:
    """A commit into a new image: the name must be free."""
    if name in state.images or f"{c.config.images}/{name}" in state.names:
        raise Conflict(
            f"image {name!r} exists already",
            hint="commit without --image adds a version to the host's own image",
        )


def staged_dataset(config: Config, image: str) -> str:
    """Where a commit receives the image's next version before the swap."""
    return f"{config.root}/commit/{image}"


def _finish_committed(c: Context, state: State, host: HostName, into: str) -> Committed | None:
    """A commit of host that got as far as naming the new version and was
    cut short before it let go of the host's snapshot: finish it (the same
    command again is how a cut-short commit is finished)."""
    h = state.host(host)
    temporary = f"{h.dataset.name}@{COMMIT}"
    image = state.images.get(into)
    if image is None or not image.versions or temporary not in state.names:
        return None
    newest = image.versions[-1]
    if newest.dataset.prop("committed-from") != host or newest.dataset.name == h.record.origin:
        return None
    c.zfs.destroy(temporary)
    return Committed(host, image.name, newest.name, temporary, h.record.origin)


def _swap(c: Context, staged: str, image: str, promote: bool, old_image_there: bool) -> None:
    """The staged clone becomes the image, in one remote shell: promoted (the
    image's versions move under it), the old image dataset destroyed (an
    unused clone of the newest old version by then), renamed into place.
    A swap cut short is finished without the steps it got through."""
    chain = [Change.promote(staged)] if promote else []
    if old_image_there:
        chain.append(Change.destroy(image))
    chain.append(Change.rename(staged, image))
    [failed] = c.zfs.run_changes([chain])
    if failed is not None:
        raise failed.error.retold(hint="the same zboot commit finishes it")


def _recover(c: Context, state: State, image: str) -> bool:
    """What a commit of image cut short left: a staged clone not yet swapped
    in is dropped (the image is as before); one promoted is swapped in.
    True when something was done (the state must be read again)."""
    staged = staged_dataset(c.config, image)
    found = state.datasets.get(staged)
    if found is None:
        return False
    dataset = f"{c.config.images}/{image}"
    if found.origin:  # not promoted: the image is untouched, drop it
        c.zfs.destroy(staged, recursive=True)
    else:
        _swap(c, staged, dataset, False, dataset in state.names)
    return True


def commit(
    c: Context,
    host: HostName,
    message: str,
    point: SnapshotName | None = None,
    into: str | None = None,
) -> Committed:
    """The host's disk now (or its restore point `point`) as its image's
    next version, with message on it; into: a new image's first version
    instead (a clone of the host's version on the server: it shares that
    version's blocks and keeps it from being pruned). Steps: the host's
    snapshot (unless a restore point is given), the stream received as a
    staged clone, its description, the swap (for a new image: a rename),
    the host's snapshot dropped (module docstring)."""
    names.message(message)
    new = image_name(into) if into else None
    state = read_state(c.zfs, c.config)
    h = state.host(host)
    if new == h.record.image:
        new = None
    target_name = new or h.record.image
    if _recover(c, state, target_name):
        state = read_state(c.zfs, c.config)
        h = state.host(host)
    if point is None and (done := _finish_committed(c, state, host, target_name)) is not None:
        return done
    if point is not None:
        source = f"{h.dataset.name}@{point}"
        if source not in {p.name for p in h.restore_points}:
            raise NotFound(
                f"host {host!r} has no restore point {point!r}", hint=f"zboot show {host}"
            )
    _check_host(c, state, host, point)
    if new is None:
        base = _check(c, state, host, point)
        image = state.image(h.record.image)
        version, record, dataset = next_version(image), image.dataset.record(), image.dataset.name
    else:
        _check_new(c, state, new)
        base, version = h.record.origin, "v1"
        record, dataset = {KIND: "image", "created": now()}, f"{c.config.images}/{new}"
    check_reserve(c.config, state, f"committing {host}")
    staged = staged_dataset(c.config, target_name)
    temporary = f"{h.dataset.name}@{COMMIT}"
    if point is None:
        if temporary in state.names:  # left by a commit that was cut short
            c.zfs.destroy(temporary)
        c.zfs.snapshot([temporary])
        source = temporary
        faults.point("commit.snapshot")
    if staged.rsplit("/", 1)[0] not in state.names:
        c.zfs.create_filesystems([staged.rsplit("/", 1)[0]])
    c.zfs.send_incremental(base, source, f"{staged}@{version}")
    faults.point("commit.received")
    committed_from = host if point is None else f"{host}@{point}"
    props = {"created": now(), "message": message, "committed-from": committed_from}
    c.zfs.set_props(f"{staged}@{version}", props)
    c.zfs.set_props(staged, record)  # kind=image and the rest of the image's record
    faults.point("commit.described")
    _swap(c, staged, dataset, new is None, new is None)
    if point is None:
        faults.point("commit.swapped")
        c.zfs.destroy(temporary)
    return Committed(host, target_name, version, source, base)
