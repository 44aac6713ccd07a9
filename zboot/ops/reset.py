"""Ephemeral hosts and the reset. A reset gives hosts' disks back the image
version they were cloned from, their changes discarded: rollback's workflow
with discard (a batch is one engine call down and one up, whatever its size),
after a check of its own: a machine other than the host's own logged in to
its target refuses that host, while the host's own initiator is a session
its last boot left (the machine is booting again) and is cut off. Each reset
is recorded on the new disk: `last-reset`, `reset-discarded` (the old disk's
`used`, in bytes) and `resets` (a count).

An ephemeral host (`ephemeral=on`) is reset whenever its machine boots,
unless `keep=on` says to keep its changes until keep is off again; the boot
service decides that (HostRecord.resets_at_boot) and calls reset_hosts."""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass

from ..config import Config
from ..errors import Conflict, InvalidInput, ZbootError
from ..names import HostName
from ..targets.base import Export
from ..zfs.cli import Change
from .context import Context
from .exports import record_export
from .paths import host_dataset, host_device, host_target
from .rollback import DISCARD, rollback
from .state import BASE, HostState, State, now, read_state

FLAGS = ("ephemeral", "keep")
SWITCHES = {"on": "on", "off": ""}  # off: the property emptied, read as absent


@dataclass
class Reset:
    """One host's reset: what it discarded, or why it did not happen."""

    host: HostName
    discarded: int = 0  # bytes: the old disk's `used`
    error: ZbootError | None = None
    source: str = ""  # the image version the disk came back to
    resets: int = 0  # how many times the host has been reset, this one included
    record: dict[str, str] | None = None  # the reset's properties on the new disk


def recorded_props(state: State, host: HostName) -> dict[str, str]:
    """The host's record: from its disk, or from its old disk in the archive
    (a reset cut short between the rename and the new clone)."""
    if host not in state.hosts and host in state.unfinished_rollbacks:
        return state.unfinished_rollbacks[host]
    return state.host(host).dataset.record()


def resuming(props: dict[str, str]) -> bool:
    """A reset cut short: a discarding rollback to the host's origin."""
    return (
        props.get("state") == HostState.ROLLING_BACK
        and props.get(DISCARD) == "on"
        and props.get("rollback-to") == props.get("origin")
    )


def _count(value: str | None) -> int:
    return int(value) if value and value.isdigit() else 0


def _plan(state: State, r: Reset) -> dict[str, str]:
    """Check a host and return the properties its new disk gets."""
    props = recorded_props(state, r.host)
    state_now = props.get("state", "")
    if state_now not in (HostState.READY, "") and not resuming(props):
        raise Conflict(
            f"host {r.host!r} is {state_now} (step {props.get('step', '')})",
            hint="zboot sync finishes it",
        )
    disk = state.hosts.get(r.host)
    if props.get("step") == "rollback:cloned":  # the new disk has its record already
        r.discarded, r.resets = _count(props.get("reset-discarded")), _count(props.get("resets"))
        return {}
    r.discarded, r.resets = (disk.dataset.used if disk else 0), _count(props.get("resets")) + 1
    r.record = {
        "last-reset": now(),
        "reset-discarded": str(r.discarded) if disk else "",  # moved already: unknown
        "resets": str(r.resets),
    }
    return r.record


def _refuse_others(c: Context, state: State, todo: list[Reset]) -> dict[HostName, Export]:
    """One engine call for every target: a host with another machine's
    initiator logged in fails alone (exit 4) and is not touched. Returns the
    exports of the hosts whose own machine is still logged in (a session its
    last boot left)."""
    if not todo or c.engine.name == "none":
        return {}
    records = {r.host: recorded_props(state, r.host) for r in todo}
    targets = {h: host_target(c.config, h, p.get("target", "")) for h, p in records.items()}
    live = c.engine.sessions(list(targets.values()))
    stale: dict[HostName, Export] = {}
    for r in todo:
        logged_in = live.get(targets[r.host], [])
        others = [i for i in logged_in if i != records[r.host].get("initiator")]
        if others:
            r.error = Conflict(
                f"host {r.host!r} is in use by another machine: {', '.join(others)} "
                f"is logged in to {targets[r.host]}",
                hint="a reset cuts off only the host's own machine; shut the other down first",
            )
        elif logged_in and r.host in state.hosts:
            stale[r.host] = record_export(c.runner, c.config, r.host, state.host(r.host).record)
    return stale


def base_of(config: Config, host: str) -> str:
    return f"{host_dataset(config, host)}@{BASE}"


def _in_place(config: Config, state: State, r: Reset) -> bool:
    """The host has its disk as cloned (its base) and no reset is half done."""
    return (
        r.host in state.hosts
        and base_of(config, r.host) in state.names
        and not resuming(recorded_props(state, r.host))
    )


def _reset_in_place(
    c: Context, state: State, todo: list[Reset], stale: dict[HostName, Export]
) -> None:
    """Each disk rolled back to its base in place: its restore points (newer)
    destroyed, `zfs rollback`, the reset recorded; all hosts' changes as one
    batch (libzfs_core: a wave each). The zvol stays the same device, so the
    export stays up; only a host whose own machine is still logged in has its
    export taken down and put back, which ends that session."""
    down = [stale[r.host] for r in todo if r.host in stale]
    if down:
        c.engine.apply(delete=[e.target for e in down], persist=False)
    try:
        chains = []
        for r in todo:
            host = state.hosts[r.host]
            newer = [p.name for p in reversed(host.restore_points)]
            chains.append(
                [
                    *(Change.destroy(name) for name in newer),
                    Change.rollback(base_of(c.config, r.host)),
                    Change.set(host.dataset.name, r.record or {}),
                ]
            )
        for r, failed in zip(todo, c.zfs.run_changes(chains), strict=True):
            if failed is not None:
                r.error = failed.error
    finally:
        if down:
            c.engine.apply(create=down)
    # an engine that reads the disk through the page cache (tgt) must not
    # see the blocks from before the rollback
    devices = [host_device(c.config, r.host) for r in todo if r.error is None]
    if devices:
        c.runner.run(["blockdev", "--flushbufs", *devices], check=False)


def reset_hosts(c: Context, names: list[HostName]) -> list[Reset]:
    """Reset hosts: the state read once, every host checked and the targets'
    sessions listed (one engine call) before anything changes. A host whose
    disk has its base (the snapshot taken when it was cloned ephemeral, or at
    its first reset) is rolled back to it in place; any other gets one
    discarding rollback to its origin for all of them, forced (the only
    sessions left are the hosts' own stale ones), and then its base. A host
    fails alone."""
    state = read_state(c.zfs, c.config)
    resets = [Reset(n) for n in names]
    props: dict[str, dict[str, str]] = {}
    for r in resets:
        try:
            props[r.host] = _plan(state, r)
        except ZbootError as err:
            r.error = err
    stale = _refuse_others(c, state, [r for r in resets if r.error is None])
    todo = [r for r in resets if r.error is None]
    in_place = [r for r in todo if _in_place(c.config, state, r)]
    if in_place:
        _reset_in_place(c, state, in_place, stale)
    fresh = [r for r in todo if r not in in_place]
    if not fresh:
        return resets
    plans = rollback(c, [r.host for r in fresh], None, True, True, state, props)
    for r, plan in zip(fresh, plans, strict=True):
        r.error, r.source = plan.error, plan.source
    take_bases(c, [r.host for r in fresh if r.error is None])
    return resets


def take_bases(c: Context, hosts: list[HostName]) -> None:
    """The hosts' disks as they are now (just cloned) become their base, in
    one atomic snapshot; without it the next reset takes the longer way."""
    if hosts:
        with suppress(ZbootError):
            c.zfs.snapshot([base_of(c.config, h) for h in hosts])


@dataclass
class Flagged:
    """One host's ephemeral or keep switch."""

    host: HostName
    flag: str
    value: str
    error: ZbootError | None = None


def check_switch(flag: str, value: str) -> str:
    """The property value for `on`/`off`; anything else refused, before the server."""
    if flag not in FLAGS:
        raise InvalidInput(f"unknown host flag {flag!r}", hint=f"one of {', '.join(FLAGS)}")
    if value not in SWITCHES:
        raise InvalidInput(f"{flag} takes on or off, not {value!r}")
    return SWITCHES[value]


def set_flag(c: Context, names: list[HostName], flag: str, value: str) -> list[Flagged]:
    """`zboot ephemeral|keep HOST... on|off`: one `zfs set` for every host
    that exists; an unknown one fails alone."""
    prop = check_switch(flag, value)
    state = read_state(c.zfs, c.config)
    results = [Flagged(n, flag, value) for n in names]
    for r in results:
        try:
            state.host(r.host)
        except ZbootError as err:
            r.error = err
    c.zfs.mark([host_dataset(c.config, r.host) for r in results if r.error is None], {flag: prop})
    return results
