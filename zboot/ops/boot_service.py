"""What `zboot serve` answers when machines ask for their iPXE scripts: the
workflow behind the HTTP front (zboot/serve). A batch of requests costs one
read of the state; the changes they call for (ephemeral hosts reset,
unknown machines recorded or adopted) are made together, under the server's
lock, by the same operations the commands use; then each machine gets its
script, made from the ZFS records (and its CHAP secret from the root-only
secret file), never read from a file others may read."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field

from ..boot.ipxe import render, report_script, waiting_script
from ..config import Config
from ..errors import ZbootError
from ..names import HostName, MacAddress
from . import chap as chap_store
from . import enrol
from .bootfiles import recorded_script
from .context import Context
from .reset import recorded_props, reset_hosts, resuming
from .state import Host, State, read_state

RESET_MODES = ("normal", "install")  # the modes that boot the host's own disk


@dataclass(frozen=True)
class Asked:
    """One machine's request, as the HTTP front checked it."""

    mac: MacAddress
    address: str
    facts: dict[str, str] = field(default_factory=dict)
    verified: bool = True  # it came from that MAC, or the site does not check


@dataclass
class Answer:
    status: int  # 200 with a script; 4xx with none
    script: str = ""
    host: str = ""
    outcome: str = ""  # for the service's log line


@dataclass
class Batch:
    asked: list[Asked]
    answers: list[Answer | None]
    resets: dict[HostName, list[int]] = field(default_factory=dict)  # host -> request indexes
    seen: dict[MacAddress, list[int]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)  # the changes' phases

    @contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        start = time.monotonic()
        try:
            yield
        finally:
            self.seconds[phase] = time.monotonic() - start

    def spent(self) -> str:
        return ", ".join(f"{phase} {s:.1f} s" for phase, s in self.seconds.items())


Changing = Callable[[], AbstractContextManager[Context]]


def base_url(config: Config) -> str:
    return config.boot_url or "/"


def answer_all(reading: Context, changing: Changing, asked: list[Asked]) -> list[Answer]:
    """Every request's answer: plan from one read of the state, make the
    changes in one locked run, then the scripts."""
    state = read_state(reading.zfs, reading.config)
    batch = _plan(reading.config, state, asked)
    if batch.resets or batch.seen:
        with changing() as c:  # the lock is taken by the first change
            state = _change(c, batch)
    return _scripts(reading, state, batch)


def _hosts_by_mac(state: State) -> dict[str, HostName]:
    """Every host by MAC, also one whose disk a reset (or rollback) cut short
    left in the archive: its machine is no stranger."""
    found = {
        props["mac"]: HostName(name)
        for name, props in state.unfinished_rollbacks.items()
        if props.get("mac")
    }
    return found | enrol.host_macs(state)


def _plan(config: Config, state: State, asked: list[Asked]) -> Batch:
    by_mac = _hosts_by_mac(state)
    batch = Batch(asked, [None] * len(asked))
    for i, request in enumerate(asked):
        name = by_mac.get(request.mac)
        if not request.verified:
            batch.answers[i] = Answer(403, outcome="refused: not sent by that MAC")
        elif name is None:
            _plan_unknown(config, batch, i, request)
        elif _resets(state, name):
            batch.resets.setdefault(name, []).append(i)
        elif state.record(name).unfinished:
            record = state.record(name)
            why = f"{name} is {record.state}: `zboot sync` finishes it"
            batch.answers[i] = Answer(200, waiting_script(base_url(config), why), name, why)
    return batch


def _resets(state: State, name: HostName) -> bool:
    """The host's boot resets its disk: it is ephemeral, not told to keep its
    changes, in a mode that boots its own disk (local and maintenance boot
    another); or a reset of it was cut short (this one finishes it)."""
    record = state.record(name)
    if record.unfinished:
        return resuming(recorded_props(state, name))
    return record.resets_at_boot and (record.mode or "normal") in RESET_MODES


def _plan_unknown(config: Config, batch: Batch, i: int, request: Asked) -> None:
    if config.serve.discover_limit == 0:
        batch.answers[i] = Answer(404, outcome="unknown MAC (enrolment is off)")
    elif not request.facts:
        batch.answers[i] = Answer(200, report_script(base_url(config)), outcome="asked to report")
    else:
        batch.seen.setdefault(request.mac, []).append(i)


def _change(c: Context, batch: Batch) -> State:
    """The resets and the enrolment, under the lock; the state after them."""
    if batch.resets:
        with batch.timed("reset"):
            resets = reset_hosts(c, list(batch.resets))
        for reset in resets:
            if reset.error is not None:
                why = f"{reset.host} was not reset: {reset.error.message}"
                for i in batch.resets[reset.host]:
                    batch.answers[i] = Answer(
                        200, waiting_script(base_url(c.config), why), reset.host, why
                    )
    if batch.seen:
        with batch.timed("enrol"):
            _enrol(c, batch)
    with batch.timed("read"):
        return read_state(c.zfs, c.config)


def _enrol(c: Context, batch: Batch) -> None:
    macs = list(batch.seen)
    first = {mac: batch.asked[batch.seen[mac][0]] for mac in macs}
    seen = [enrol.Seen(mac, first[mac].facts, first[mac].address) for mac in macs]
    outcomes = enrol.record_seen(c, seen)
    adopt = c.config.serve.adopt_image
    for one, outcome in zip(seen, outcomes, strict=True):
        if outcome == "known-host":
            continue  # adopted since the plan: its script follows
        if adopt and outcome != "full":
            made = enrol.adopt_unknown(c, one)
            if made is not None and made.error is None:
                continue
        _answer_waiting(c.config, batch, one.mac, outcome)


def _answer_waiting(config: Config, batch: Batch, mac: MacAddress, outcome: str) -> None:
    for i in batch.seen[mac]:
        if outcome == "full":
            batch.answers[i] = Answer(429, outcome="not recorded: [serve] discover_limit reached")
        else:
            why = f"waiting to be adopted: zboot adopt {mac} --image IMAGE"
            batch.answers[i] = Answer(200, waiting_script(base_url(config), why), outcome=outcome)


def _scripts(c: Context, state: State, batch: Batch) -> list[Answer]:
    by_mac = enrol.host_macs(state)
    answers: list[Answer] = []
    for i, request in enumerate(batch.asked):
        answer = batch.answers[i]
        if answer is None:
            name = by_mac.get(request.mac)
            answer = (
                Answer(404, outcome="unknown MAC")
                if name is None
                else _script(
                    c, state, state.hosts[name], batch.spent() if name in batch.resets else ""
                )
            )
        answers.append(answer)
    return answers


def _script(c: Context, state: State, host: Host, reset: str) -> Answer:
    """The host's script; reset: how long its reset took, if it was reset."""
    record = host.record
    try:
        chap = chap_store.load(c.runner, c.config, host.name) if record.chap else None
        made = recorded_script(c.config, c.engine.lun, state, host.name, record, chap)
    except ZbootError as err:
        why = f"{host.name}: {err.message}"
        return Answer(200, waiting_script(base_url(c.config), why), host.name, why)
    if made is None:
        why = "the config names no portal ([target] portal)"
        return Answer(200, waiting_script(base_url(c.config), why), host.name, why)
    mode = made[0]
    outcome = f"{mode}, reset ({reset})" if reset else mode
    return Answer(200, render(*made), host.name, outcome)
