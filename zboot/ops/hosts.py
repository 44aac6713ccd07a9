"""Per-host clones: provision, restore points, rollback that keeps what it
replaces, prune, destroy."""

from __future__ import annotations

import time

from ..config import Config
from ..errors import Conflict, InvalidInput, NotFound
from ..names import host_name, image_name, iqn, mac, snapshot_name
from ..zfs.cli import ZfsCli
from .images import ensure_layout
from .state import KIND, Host, State, leaf, now, read_state

DEFAULT_INITIATOR_BASE = "iqn.2010-04.org.ipxe"  # iPXE's own default prefix


def default_initiator(host: str) -> str:
    return f"{DEFAULT_INITIATOR_BASE}:{host}"


def clone_host(zfs: ZfsCli, config: Config, image_spec: str, host: str, mac_address: str,
               initiator: str | None = None, target: str | None = None,
               extra: dict[str, str] | None = None,
               state: State | None = None) -> dict[str, str]:
    """Provision host from image[@version] (latest version when omitted). A
    batch passes the state it read once; hosts it made since are not in it."""
    host = host_name(host)
    mac_address = mac(mac_address)
    initiator = iqn(initiator) if initiator else default_initiator(host)
    name, _, version = image_spec.partition("@")
    name, version_name = image_name(name), snapshot_name(version) if version else None
    state = state or read_state(zfs, config)
    image = state.image(name)
    chosen = image.version(version_name)
    if host in state.hosts or zfs.exists(f"{config.hosts}/{host}"):
        raise Conflict(f"host {host!r} exists already", hint=f"zboot show {host}")
    for other in state.hosts.values():
        if other.get("mac") == mac_address:
            raise Conflict(f"MAC {mac_address} belongs to host {other.name!r} already")
    ensure_layout(zfs, config)
    record = {
        KIND: "host", "mac": mac_address, "image": image.name, "version": chosen.name,
        "origin": chosen.dataset.name, "created": now(), "mode": "normal",
        "initiator": initiator, "state": "ready",
    } | ({"target": target} if target else {}) | (extra or {})
    zfs.clone(chosen.dataset.name, f"{config.hosts}/{host}", record)
    return record


def snapshot_host(zfs: ZfsCli, config: Config, host: str, name: str | None) -> str:
    host = host_name(host)
    point = snapshot_name(name) if name else time.strftime("rp-%Y%m%d-%H%M%S", time.gmtime())
    h = read_state(zfs, config).host(host)
    if any(s.name.endswith("@" + point) for s in h.restore_points):
        raise Conflict(f"host {h.name!r} already has a restore point {point!r}")
    zfs.snapshot([f"{h.dataset.name}@{point}"], {"created": now()})
    return point


def archive_name(config: Config, host: str) -> str:
    return f"{config.archive}/{host}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"


def rollback_host(zfs: ZfsCli, config: Config, host: str, point: str | None,
                  discard: bool = False) -> dict[str, str]:
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
    state = read_state(zfs, config)
    if host not in state.hosts and (half := state.unfinished_rollbacks.get(host)):
        return finish_rollback(zfs, config, host, half, discard)
    h = state.host(host)
    if point is not None:
        source = next((s.name for s in h.restore_points if s.name.endswith("@" + point)), None)
        if source is None:
            raise NotFound(f"host {h.name!r} has no restore point {point!r}",
                           hint=f"zboot show {h.name}")
    else:
        source = h.get("origin")
        if not source:
            raise InvalidInput(f"host {h.name!r} has no recorded origin to roll back to")
    current = h.dataset.name
    archive = archive_name(config, h.name)
    if point is not None:
        source = source.replace(current + "@", archive + "@")
    plan = {"host": h.name, "state": "rolling-back", "rollback-to": source,
            "rollback-archive": archive}
    zfs.set_props(current, plan)
    zfs.rename(current, archive)
    props = h.dataset.record()
    return finish_rollback(zfs, config, h.name, props | plan, discard)


def finish_rollback(zfs: ZfsCli, config: Config, host: str, archived: dict[str, str],
                    discard: bool) -> dict[str, str]:
    """The steps after the rename: mark the archive, clone the chosen state as
    the host's new disk, and promote it when it came from a restore point."""
    archive, source = archived["rollback-archive"], archived["rollback-to"]
    current = f"{config.hosts}/{host}"
    zfs.set_props(archive, {KIND: "archive", "state": "archived", "archived": now()})
    record = {k: v for k, v in archived.items()
              if k not in ("host", "rollback-to", "rollback-archive", "archived")}
    zfs.clone(source, current, record | {"state": "ready", "rolled-back": now()})
    if source.startswith(archive + "@"):
        # The restore points up to the chosen one move back to the host; the
        # archive keeps only what came after.
        zfs.promote(current)
    if discard:
        zfs.destroy(archive, recursive=True)
        return {"host": host, "source": source, "archive": ""}
    return {"host": host, "source": source, "archive": archive}


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


def destroy_host(zfs: ZfsCli, config: Config, host: str,
                 state: State | None = None) -> list[str]:
    """Remove the host's disk, its restore points and its archived states."""
    host = host_name(host)
    h: Host = (state or read_state(zfs, config)).host(host)
    # An archive made by a rollback to a restore point is a clone of a
    # snapshot of the host's disk, so the order is worked out as it goes.
    return destroy_in_order(zfs, [a.name for a in h.archives] + [h.dataset.name])
