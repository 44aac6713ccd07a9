"""Maintenance ("super client"): one host boots the golden image's own zvol,
exported to that host alone, so the updates it installs go into the image.
Leaving maintenance snapshots the image as a new version; hosts cloned
afterwards get the change, existing hosts keep their own disks.

One host per image at a time: the image records which host has it
(`org.zboot:maintenance`). The image's export is named so it cannot collide
with a host's: target `<iqn base>:image.<image>` (host names have no dots),
storage `zboot-image_<image>` (host names have no underscores)."""

from __future__ import annotations

from ..chap import Chap
from ..config import Config
from ..errors import Conflict
from ..targets.base import Export, TargetEngine
from ..zfs.cli import ZfsCli
from .images import snapshot_image
from .paths import target_iqn
from .state import Host, HostRecord, Image

HOLDER = "maintenance"  # the image's property naming the host in maintenance


def image_export(config: Config, image: Image, initiator: str, chap: Chap | None) -> Export:
    return Export(
        host=f"image_{image.name}",
        target=target_iqn(config, f"image.{image.name}"),
        device=f"/dev/zvol/{image.dataset.name}",
        initiator=initiator,
        chap=chap,
    )


def check_enter(image: Image, host: Host) -> None:
    holder = image.dataset.prop(HOLDER)
    if holder and holder != host.name:
        raise Conflict(
            f"image {image.name!r} is in maintenance by host {holder!r}",
            hint=f"zboot mode {holder} normal ends it",
        )


def enter(
    zfs: ZfsCli,
    config: Config,
    engine: TargetEngine,
    host: Host,
    image: Image,
    record: HostRecord,
    chap: Chap | None,
) -> Export:
    """Mark the image as the host's, then export it to the host alone;
    returns the export. The mark comes first: cut short in between, the
    image is never exported with nobody recorded as holding it, and the
    host's next switch out of maintenance takes the export down."""
    check_enter(image, host)
    export = image_export(config, image, record.initiator, chap)
    zfs.set_props(image.dataset.name, {HOLDER: host.name})
    engine.apply(create=[export])
    return export


def check_leave(
    config: Config,
    engine: TargetEngine,
    host: Host,
    image: Image,
    record: HostRecord,
    force: bool,
) -> None:
    """Exit 4 while a machine is logged in to the image, unless force."""
    export = image_export(config, image, record.initiator, None)
    logged_in = engine.sessions([export.target]).get(export.target)
    if logged_in and not force:
        raise Conflict(
            f"image {image.name!r} is in use: {', '.join(logged_in)} is logged in "
            f"to {export.target}",
            hint=f"shut {host.name} down first, or give --force to cut it off",
        )


def leave(
    zfs: ZfsCli,
    config: Config,
    engine: TargetEngine,
    host: Host,
    image: Image,
    record: HostRecord,
    message: str | None,
) -> str:
    """Take the image's export down and snapshot the image as its next
    version; returns that version. A re-run after a leave cut short makes no
    second version: with nothing written since the last one, that one is it."""
    export = image_export(config, image, record.initiator, None)
    engine.apply(delete=[export.target])
    if image.versions and zfs.written(image.dataset.name) == 0:
        version = image.versions[-1].name
    else:
        version = snapshot_image(
            zfs, config, image.name, None, message or f"maintenance by {host.name}"
        )
    zfs.set_props(image.dataset.name, {HOLDER: ""})
    return version
