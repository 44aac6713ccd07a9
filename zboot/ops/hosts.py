"""Hosts: a new clone checked against the state, restore points, the list
and one host's record. (Provisioning, rollback, destroy and mode switches
have their own modules.)"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..config import Config
from ..errors import Conflict, ZbootError
from ..names import HostName, SnapshotName, host_name, image_name, iqn, mac, snapshot_name
from ..zfs.cli import Dataset, ZfsCli
from .context import Context
from .paths import host_dataset
from .state import KIND, Host, HostState, State, now, reached, read_state

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
    dataset = host_dataset(config, host)
    if host in state.hosts or dataset in state.names:
        raise Conflict(f"host {host!r} exists already", hint=f"zboot show {host}")
    for other in state.hosts.values():
        if other.record.mac == mac_address:
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
        | reached("clone", "cloned", HostState.PROVISIONING)
        | ({"target": target} if target else {})
        | (extra or {})
    )
    return PlannedClone(host, chosen.dataset.name, dataset, record)


def snapshot_hosts(
    zfs: ZfsCli, config: Config, hosts: list[HostName], name: SnapshotName | None
) -> tuple[str, dict[str, ZbootError]]:
    """One restore point of several hosts' disks, in one atomic `zfs snapshot`.
    A host that is unknown or has the point already fails alone. Returns the
    point's name and the hosts that failed."""
    point = name or time.strftime("rp-%Y%m%d-%H%M%S", time.gmtime())
    state = read_state(zfs, config)
    failed: dict[str, ZbootError] = {}
    snaps = []
    for host in hosts:
        try:
            h = state.host(host)
            if f"{h.dataset.name}@{point}" in state.names:
                raise Conflict(f"host {h.name!r} already has a restore point {point!r}")
            snaps.append(f"{h.dataset.name}@{point}")
        except ZbootError as err:
            failed[host] = err
    if snaps:
        zfs.snapshot(snaps, {"created": now()})
    return point, failed


@dataclass(frozen=True)
class Listing:
    """Every host, and who is logged in to which target now."""

    hosts: list[Host]
    in_use: dict[str, list[str]]


def list_hosts(c: Context) -> Listing:
    hosts = sorted(read_state(c.zfs, c.config).hosts.values(), key=lambda h: h.name)
    targets = [h.record.target for h in hosts if h.record.target]
    return Listing(hosts, c.engine.sessions(targets) if targets else {})


@dataclass(frozen=True)
class HostView:
    host: Host
    data: Dataset | None  # its data disk, when it has one


def show_host(c: Context, host: HostName) -> HostView:
    state = read_state(c.zfs, c.config)
    return HostView(state.host(host), state.data.get(host))
