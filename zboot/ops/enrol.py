"""Enrolment: machines that boot from the network with a MAC no host has.

`zboot serve` records each one (record_seen), `zboot discovered` lists them,
`zboot adopt` turns them into hosts in one clone batch; with [serve]
adopt_image set, the service provisions an unknown machine at once
(adopt_unknown).

Each machine is one user property of the filesystem <root>/discovered:
`org.zboot:seen-<12 hex digits of the MAC>` = compact JSON of the MAC, the
facts iPXE reported (FACTS), the client's address and the times it was first
and last seen. The facts come from the network: unknown keys are dropped and
each value is cut to MAX_FACT characters with every character outside
printable ASCII replaced by '?', so a record never holds a tab, a newline or
anything else `zfs get -H` or a table would trip on, and stays under
MAX_VALUE bytes. At most [serve] discover_limit machines are recorded (0:
none); a machine seen again is rewritten only when what it reports changed,
or to move `last` on, at most once every REFRESH seconds.

Callers serialise their calls (the service makes one at a time): two calls
reading the same state could each take the last free place."""

from __future__ import annotations

import calendar
import ipaddress
import json
import time
from collections.abc import Iterable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field

from ..errors import Conflict, InvalidInput, ServerError, ZbootError
from ..names import HostName, MacAddress, image_name, mac, name_pattern, pattern_name
from ..names import snapshot_name as version_name
from ..zfs.cli import PREFIX as ZFS_PREFIX
from ..zfs.cli import failure
from . import provision
from .context import Context
from .hostfile import HostSpec
from .provision import Provisioned
from .state import State, discovered_dataset, leaf, read_state

FACTS = ("uuid", "manufacturer", "product", "serial", "platform", "buildarch")
MAX_FACT = 64  # characters kept of a fact (and of the address)
MAX_VALUE = 2048  # bytes a record's JSON can reach (ZFS allows 8192)
REFRESH = 60.0  # seconds: an unchanged record's `last` moves on at most this often
KEY = "seen-"  # + the MAC's 12 lowercase hex digits
STAMP = "%Y-%m-%dT%H:%M:%SZ"  # as state.now()

RECORDED = "recorded"  # a new record
UPDATED = "updated"  # recorded before; the record is current (written only if due)
KNOWN_HOST = "known-host"  # a host has the MAC: nothing recorded
FULL = "full"  # discover_limit reached (or 0): nothing recorded


@dataclass(frozen=True)
class Seen:
    """A machine as the boot service saw it (first and last: when read back)."""

    mac: MacAddress
    facts: dict[str, str]
    address: str = ""
    first: str = ""
    last: str = ""


def clean(value: object) -> str:
    """An untrusted value as stored: text only, at most MAX_FACT characters,
    each outside printable ASCII replaced by '?'."""
    text = value[:MAX_FACT] if isinstance(value, str) else ""
    return "".join(c if " " <= c <= "~" else "?" for c in text).strip()


def clean_facts(raw: Mapping[str, object]) -> dict[str, str]:
    """The known facts of raw, cleaned, in FACTS order; empty ones dropped."""
    kept = {key: clean(raw.get(key)) for key in FACTS}
    return {key: value for key, value in kept.items() if value}


def clean_address(value: object) -> str:
    """An IP address as written by ipaddress, or "" for anything else."""
    if not isinstance(value, str):
        return ""
    try:
        return clean(str(ipaddress.ip_address(value)))
    except ValueError:
        return ""


def key(address: MacAddress) -> str:
    return KEY + address.replace(":", "")


def value(seen: Seen) -> str:
    """A record's property value: compact, ASCII-only JSON."""
    data = (
        {"mac": seen.mac}
        | clean_facts(seen.facts)
        | {"address": clean_address(seen.address), "first": seen.first, "last": seen.last}
    )
    return json.dumps(data, ensure_ascii=True, separators=(",", ":"))


def parse(prop: str, text: str) -> Seen | None:
    """A record read back (None: the key names no MAC); the MAC comes from
    the key, everything else is cleaned again, so a hand-edited value shows
    as what it can be, not as garbage."""
    try:
        address = mac(prop.removeprefix(KEY))
    except InvalidInput:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        data = {}
    data = data if isinstance(data, dict) else {}
    return Seen(
        address,
        clean_facts(data),
        clean_address(data.get("address")),
        clean(data.get("first")),
        clean(data.get("last")),
    )


def host_macs(state: State) -> dict[str, HostName]:
    return {h.record.mac: h.name for h in state.hosts.values() if h.record.mac}


def records(state: State) -> dict[MacAddress, Seen]:
    """The machines recorded and still without a host, by MAC (a record whose
    MAC got a host since, by `zboot clone`, is left out and not counted)."""
    owned = host_macs(state)
    found = (parse(k, v) for k, v in state.discovered.items() if k.startswith(KEY))
    return {s.mac: s for s in found if s is not None and s.mac not in owned}


def stamp(at: float) -> str:
    return time.strftime(STAMP, time.gmtime(at))


def due(last: str, at: float) -> bool:
    """Whether a record last seen at `last` gets its `last` moved on."""
    try:
        then = calendar.timegm(time.strptime(last, STAMP))
    except ValueError:
        return True
    return not 0 <= at - then < REFRESH


def record_seen(
    c: Context, seen: list[Seen], *, state: State | None = None, at: float | None = None
) -> list[str]:
    """Record machines the boot service saw: for each, RECORDED, UPDATED,
    KNOWN_HOST or FULL. Every write of the batch is one `zfs set`; the
    dataset is made the first time. state: the service's own, if it read
    one; at: the time of the requests (default now)."""
    state = read_state(c.zfs, c.config) if state is None else state
    at = time.time() if at is None else at
    limit = c.config.serve.discover_limit
    owned, known = host_macs(state), records(state)
    writes: dict[str, str] = {}
    outcomes = []
    for one in seen:
        address = mac(one.mac)
        old = known.get(address)
        if address in owned:
            outcomes.append(KNOWN_HOST)
            continue
        if limit == 0 or (old is None and len(known) >= limit):
            outcomes.append(FULL)
            continue
        last = stamp(at)
        facts, where = clean_facts(one.facts), clean_address(one.address)
        new = Seen(address, facts, where, old.first if old else last, last)
        if old is None or (old.facts, old.address) != (new.facts, new.address) or due(old.last, at):
            known[address] = new
            writes[key(address)] = value(new)
        outcomes.append(UPDATED if old else RECORDED)
    _write(c, state, writes)
    return outcomes


def _write(c: Context, state: State, writes: dict[str, str]) -> None:
    dataset = discovered_dataset(c.config)
    if not writes:
        return
    # the root too if need be: `zfs create -p` would make it with a mountpoint
    missing = [name for name in (c.config.root, dataset) if name not in state.names]
    with suppress(Conflict):  # made since the state was read
        c.zfs.create_filesystems(missing)
    c.zfs.set_props(dataset, writes)


def discovered(c: Context) -> list[Seen]:
    """`zboot discovered`: the recorded machines, first seen first."""
    return sorted(records(read_state(c.zfs, c.config)).values(), key=lambda s: (s.first, s.mac))


# --- adoption -----------------------------------------------------------------


@dataclass
class Adoption:
    """What `zboot adopt` did: each MAC with its host's outcome, the MACs
    adopted with no record (typed by hand), and an error removing records."""

    rows: list[tuple[MacAddress, Provisioned]]
    undiscovered: list[MacAddress] = field(default_factory=list)
    forget_error: ZbootError | None = None

    @property
    def results(self) -> list[Provisioned]:
        return [r for _, r in self.rows]


def image_spec(image: str) -> tuple[str, str | None]:
    """image[@version], each name checked (InvalidInput before the server)."""
    name, at, version = image.partition("@")
    return image_name(name), version_name(version) if at else None


def check_image(state: State, image: str) -> None:
    """image[@version] names an image version that exists (else NotFound)."""
    name, version = image_spec(image)
    state.image(name).version(version)


def taken_names(state: State, hosts: str) -> set[str]:
    """Host names in use: hosts, half-rolled-back hosts, any dataset under hosts."""
    under = {leaf(n) for n in state.names if n.startswith(hosts + "/") and "@" not in n}
    return set(state.hosts) | set(state.unfinished_rollbacks) | under


def free_names(pattern: str, taken: Iterable[str], count: int) -> list[HostName]:
    """The pattern's first count names not taken, numbering from 1."""
    used, n = set(taken), 1
    names: list[HostName] = []
    while len(names) < count:
        name = pattern_name(pattern, n)
        if name not in used:
            names.append(name)
        n += 1
    return names


def pattern_number(pattern: str, host: str) -> int | None:
    """The number in host if the pattern could have made it, else None."""
    head, _, rest = pattern.partition("{")
    head, tail = head.lower(), rest.partition("}")[2].lower()
    middle = host[len(head) : len(host) - len(tail)]
    if host.startswith(head) and host.endswith(tail) and middle.isascii() and middle.isdigit():
        return int(middle)
    return None


def adopt(c: Context, macs: list[str], image: str, pattern: str | None = None) -> Adoption:
    """`zboot adopt`: the machines provisioned from image in one batch, named
    by pattern (default [serve] adopt_names), then their records removed.
    Bad MACs, a bad pattern or an image version that does not exist fail the
    whole command before anything changes."""
    wanted = list(dict.fromkeys(mac(m) for m in macs))
    if not wanted:
        raise InvalidInput("give at least one MAC address", hint="zboot discovered lists them")
    pattern = name_pattern(c.config.serve.adopt_names if pattern is None else pattern)
    image_spec(image)
    state = read_state(c.zfs, c.config)
    check_image(state, image)
    return _adopt(c, state, wanted, image, pattern)


def _adopt(
    c: Context, state: State, wanted: list[MacAddress], image: str, pattern: str
) -> Adoption:
    owned, known = host_macs(state), records(state)
    fresh = [m for m in wanted if m not in owned]
    free = free_names(pattern, taken_names(state, c.config.hosts), len(fresh))
    names = dict(zip(fresh, free, strict=True))
    made = iter(provision.clone(c, image, [HostSpec(names[m], m) for m in fresh]))
    rows = [
        (
            m,
            next(made)
            if m in names
            else Provisioned(owned[m], error=Conflict(f"MAC {m} belongs to host {owned[m]!r}")),
        )
        for m in wanted
    ]
    done = Adoption(rows, [m for m in fresh if m not in known])
    gone = [m for m, r in rows if r.error is None and r.record is not None and m in known]
    try:
        forget(c, gone)
    except ZbootError as err:
        done.forget_error = err
    return done


def forget(c: Context, macs: list[MacAddress]) -> None:
    """Remove machines' records: `zfs inherit` takes one property, so one
    command each, all in one chain (one remote shell over SSH)."""
    dataset = discovered_dataset(c.config)
    chain = [["zfs", "inherit", ZFS_PREFIX + key(m), dataset] for m in macs]
    if chain:
        [failed] = c.runner.run_chains([chain])
        if failed is not None:
            err = failure(failed.result)
            raise err if isinstance(err, ZbootError) else ServerError(str(err))


def adopt_unknown(c: Context, seen: Seen, *, state: State | None = None) -> Provisioned | None:
    """The service's automatic adoption: the machine provisioned from [serve]
    adopt_image with the next free adopt_names name. None when adoption is
    off (no adopt_image, or discover_limit 0), the MAC has a host, or as
    many hosts as discover_limit carry pattern names already."""
    serve = c.config.serve
    if not serve.adopt_image or serve.discover_limit == 0:
        return None
    state = read_state(c.zfs, c.config) if state is None else state
    address = mac(seen.mac)
    named = [h for h in state.hosts if pattern_number(serve.adopt_names, h) is not None]
    if address in host_macs(state) or len(named) >= serve.discover_limit:
        return None
    check_image(state, serve.adopt_image)
    [(_, one)] = _adopt(c, state, [address], serve.adopt_image, serve.adopt_names).rows
    return one
