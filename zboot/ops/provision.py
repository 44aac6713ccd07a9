"""Provisioning one host or a batch: every clone in one remote shell, CHAP
secrets where asked for, every export in one engine call (one rtslib process
and one LIO save for the whole batch), then the boot files. One bad host
fails alone: its clone and secret are removed, the others go on.

Each step is recorded on the disks (state "provisioning", step "clone:..."),
and only the last marks a host "ready". A run cut short (killed, connection
lost) leaves hosts "provisioning": the same command again, or `zboot sync`,
finishes them. A failure undoes only this run's fresh clones (they hold
nothing yet): a half-made host it resumes may already have a script, and so
a machine running from its disk, which is never destroyed or cut off."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, replace

from .. import faults
from ..chap import Chap
from ..config import Config
from ..errors import Conflict, InvalidInput, NotFound, ZbootError
from ..names import HostName, host_name, image_name, iqn, mac, snapshot_name
from ..remote.base import Runner
from ..targets.base import TargetEngine
from ..zfs.cli import Change, ZfsCli
from . import chap as chap_store
from . import hosts as ops
from .bootfiles import boot_target, ensure_boot_dir, write_script
from .context import Context
from .exports import host_export
from .hostfile import HostSpec
from .hosts import PlannedClone
from .images import ensure_layout
from .paths import data_dataset, host_dataset, host_target, target_iqn
from .reset import take_bases
from .space import check_reserve
from .state import (
    KIND,
    HostRecord,
    HostState,
    State,
    leaf,
    now,
    reached,
    read_state,
    version_snapshot,
)
from .state import done as done_mark


@dataclass(frozen=True)
class DataDisk:
    """Each new host's data disk: an empty zvol of size bytes, or a clone of
    a data image's version (source: IMAGE[@VERSION], its newest by default).
    Exported as the LUN after the OS disk; kept by rollback, rebase and
    resets; destroyed with the host."""

    size: int | None = None
    source: str = ""

    def __post_init__(self) -> None:
        if (self.size is None) == (not self.source):
            raise InvalidInput("a data disk is a size (--data-disk) or an image (--data-image)")


@dataclass
class Provisioned:
    """What became of one host of the batch: its record, or the error."""

    host: str
    record: dict[str, str] | None = None
    chap: Chap | None = None
    error: ZbootError | None = None
    boot_file: str | None = None  # the host's iPXE script on the server
    fresh: bool = False  # cloned by this run (not a half-made host resumed)
    data: bool = False  # this run made (or tried to make) its data disk


def _plan(
    config: Config, image: str, spec: HostSpec, state: State, props: dict[str, str]
) -> PlannedClone:
    name = host_name(spec.host)
    wants_chap = bool(spec.chap)
    # CHAP needs a target name: without a base, target_iqn says to run init
    target = target_iqn(config, name) if config.iqn_base or wants_chap else None
    return ops.plan_clone(
        config,
        state,
        image,
        name,
        spec.mac,
        spec.initiator,
        target,
        extra=({"chap": spec.chap} if wants_chap else {}) | props,
    )


def _data_change(config: Config, state: State, data: DataDisk, host: str) -> Change:
    """The change that makes the host's data disk; refused if one is there
    already (left by hand or by something else: never reused, never lost)."""
    dataset = data_dataset(config, host)
    if dataset in state.names:
        raise Conflict(
            f"a data disk {dataset} exists already",
            hint="destroy it with zfs if nothing needs it, or give the host another name",
        )
    props = {KIND: "data", "host": host, "created": now()}
    if data.size is not None:
        return Change.volume(dataset, data.size, props)
    snapshot = version_snapshot(state, data.source)
    image, _, version = leaf(snapshot).partition("@")
    return Change.clone(
        snapshot, dataset, props | {"image": image, "version": version, "origin": snapshot}
    )


def undo(zfs: ZfsCli, config: Config, runner: Runner, made: list[Provisioned]) -> None:
    """Take hosts out of the batch; remove those this run cloned (they hold
    nothing yet) and their secrets. A resumed host keeps its disk, secret
    and state: the same command, `zboot sync` or `zboot destroy` sees to it."""
    fresh = [r for r in made if r.fresh]
    for r in made:
        r.record = None
    if not fresh:
        return
    left = zfs.destroy_many(
        [host_dataset(config, r.host) for r in fresh]
        + [data_dataset(config, r.host) for r in fresh if r.data]
    )
    for error in left.values():
        if error is not None and not isinstance(error, NotFound):
            raise error
    chap_store.remove(runner, config, [r.host for r in fresh if r.chap is not None])


def checked(specs: list[HostSpec]) -> list[tuple[HostSpec, Provisioned]]:
    """Each spec with its result so far: names made canonical, or the error
    (bad names, a host or MAC listed twice). Nothing runs on the server."""
    out = []
    names: set[str] = set()
    macs: set[str] = set()
    for spec in specs:
        done = Provisioned(spec.host)
        try:
            name, address = host_name(spec.host), mac(spec.mac)
            initiator = iqn(spec.initiator) if spec.initiator else None
            if name in names or address in macs:
                raise Conflict(f"host {name!r} or MAC {address} is listed twice in the batch")
            names.add(name)
            macs.add(address)
            spec, done.host = HostSpec(name, address, initiator, spec.chap), name
        except ZbootError as err:
            done.error = err
        out.append((spec, done))
    return out


Plan = tuple[HostSpec, PlannedClone, list[Change]]  # the spec, its clone, every change


def _plan_all(
    config: Config,
    state: State,
    image: str,
    todo: list[tuple[HostSpec, Provisioned]],
    props: dict[str, str],
    data: DataDisk | None,
) -> tuple[dict[str, Plan], list[Provisioned]]:
    """The clones to make, by host (a data disk first, when asked for: the
    host's record, on its disk, then never names a data disk that is not
    there), and the half-made hosts to resume; a host that cannot be planned
    gets its error."""
    plans: dict[str, Plan] = {}
    resumed: list[Provisioned] = []
    for spec, done in todo:
        if done.error is None:
            try:
                if resumable(state, image, spec):
                    done.record = state.hosts[done.host].dataset.record()
                    resumed.append(done)
                    continue
                if data is None:
                    planned = _plan(config, image, spec, state, props)
                    plans[done.host] = (spec, planned, [_os_change(planned)])
                    continue
                first = _data_change(config, state, data, done.host)
                planned = _plan(config, image, spec, state, props | {"data": "on"})
                plans[done.host] = (spec, planned, [first, _os_change(planned)])
                done.data = True
            except ZbootError as err:
                done.error = err
    return plans, resumed


def _os_change(p: PlannedClone) -> Change:
    return Change.clone(p.snapshot, p.dataset, p.record)


def provision(
    zfs: ZfsCli,
    config: Config,
    runner: Runner,
    engine: Callable[[], TargetEngine],
    image: str,
    specs: list[HostSpec],
    props: dict[str, str] | None = None,
    data: DataDisk | None = None,
) -> list[Provisioned]:
    """Clone and export every host of specs; one result per spec, in order.
    props: more properties for every new disk (e.g. ephemeral=on); data:
    every new host's data disk."""
    name, at, version = image.partition("@")
    image_name(name)  # a bad image name fails the batch before anything runs
    if at:
        snapshot_name(version)  # "image@" names no version
    todo = checked(specs)
    results = [done for _, done in todo]
    if all(done.error for done in results):
        return results
    state = read_state(zfs, config)
    plans, resumed = _plan_all(config, state, image, todo, props or {}, data)
    if not plans and not resumed:
        return results
    if plans:  # a host resumed takes no more space than it has
        check_reserve(config, state, f"cloning {', '.join(plans)}")
    ensure_layout(zfs, config, state.names, data=data is not None)
    pending = [r for r in results if r.host in plans and r.error is None]
    try:
        _clone_all(zfs, config, runner, pending, plans)
        faults.point("clone.cloned")
        if not any(r.record is not None for r in results):
            return results
        target_engine = engine()  # an engine that cannot be made leaves no clone behind
        if target_engine.name != "none":
            # before their secrets: a logged-in host whose file is lost gets no new one
            _refuse_in_use(config, target_engine, resumed)
            _load_secrets(zfs, config, runner, resumed)
            faults.point("clone.secrets", engine=True)
            _export(zfs, config, runner, target_engine, [r for r in results if r.record])
            _mark(zfs, config, results, reached("clone", "exported"))
            faults.point("clone.exported")
    except BaseException:
        undo(zfs, config, runner, [r for r in pending if r.record is not None])
        raise
    if target_engine.name != "none":
        _write_boot_files(
            zfs, config, runner, target_engine, [r for r in results if r.record is not None]
        )
        faults.point("clone.boot-files")
    _mark(zfs, config, results, done_mark("clone"))
    return results


def resumable(state: State, image: str, spec: HostSpec) -> bool:
    """Whether spec names a host a cut-short clone left "provisioning", with
    the same MAC and image: this run finishes it. Anything else about an
    existing host is the usual conflict."""
    host = state.hosts.get(spec.host)
    if host is None or host.record.state != HostState.PROVISIONING:
        return False
    name, _, version = image.partition("@")
    if (
        host.get("mac") != spec.mac
        or host.get("image") != name
        or (version and host.get("version") != version)
    ):
        raise Conflict(
            f"host {spec.host!r} is half-made from {host.get('image')}@"
            f"{host.get('version')} with MAC {host.get('mac')}",
            hint=f"the same clone command finishes it; zboot destroy {spec.host} undoes it",
        )
    return True


def _refuse_in_use(config: Config, engine: TargetEngine, resumed: list[Provisioned]) -> None:
    """A resumed host whose target has a machine logged in fails alone: its
    export is not made again under the machine (nothing of it changes)."""
    targets = {
        r.host: host_target(config, r.host, r.record.get("target", ""))
        for r in resumed
        if r.record is not None and r.error is None
    }
    live = engine.sessions(list(targets.values())) if targets else {}
    for r in resumed:
        if initiators := live.get(targets.get(r.host, ""), []):
            r.record = None
            r.error = Conflict(
                f"host {r.host!r} is half-made and in use: {', '.join(initiators)} is "
                f"logged in to {targets[r.host]}, so its export is not made again",
                hint="shut the machine down, then run the same clone command (or zboot sync)",
            )


def _load_secrets(zfs: ZfsCli, config: Config, runner: Runner, resumed: list[Provisioned]) -> None:
    """The CHAP secrets of resumed hosts: kept if the cut-short run stored
    them, else new ones."""
    wanted: dict[str, Chap] = {}
    for r in resumed:
        if r.record is None or not r.record.get("chap"):
            continue
        try:
            r.chap = chap_store.load(runner, config, r.host)
        except NotFound:
            r.chap = wanted[r.host] = chap_store.new_chap(
                r.record["initiator"],
                r.record.get("target") or target_iqn(config, r.host),
                r.record["chap"] == "mutual",
            )
    chap_store.store(runner, config, wanted)


def _mark(zfs: ZfsCli, config: Config, results: list[Provisioned], props: dict[str, str]) -> None:
    """Record a step on every disk still in the batch (one zfs command)."""
    zfs.mark([host_dataset(config, r.host) for r in results if r.record is not None], props)
    for r in results:
        if r.record is not None:
            r.record |= props


def _clone_all(
    zfs: ZfsCli,
    config: Config,
    runner: Runner,
    pending: list[Provisioned],
    plans: dict[str, Plan],
) -> None:
    """Every clone (and data disk) in one chain batch, then the CHAP secrets
    of those made. Records are set first, so an interruption undoes whatever
    was made."""
    for r in pending:
        r.record, r.fresh = plans[r.host][1].record, True
    outcomes = zfs.run_changes([plans[r.host][2] for r in pending])
    half_made = []
    for r, failed in zip(pending, outcomes, strict=True):
        if failed is not None:
            r.record, r.error = None, failed.error
            if failed.step > 0:  # its data disk was made, its clone was not
                half_made.append(data_dataset(config, r.host))
    for left in zfs.destroy_many(half_made).values():
        if left is not None and not isinstance(left, NotFound):
            raise left
    wanted = {
        r.host: chap_store.new_chap(
            r.record["initiator"], r.record["target"], plans[r.host][0].chap == "mutual"
        )
        for r in pending
        if r.record is not None and plans[r.host][0].chap
    }
    try:
        chap_store.store(runner, config, wanted)
    except ZbootError as err:
        failed_hosts = [r for r in pending if r.host in wanted]
        undo(zfs, config, runner, failed_hosts)
        for r in failed_hosts:
            r.error = err
        return
    for r in pending:
        r.chap = wanted.get(r.host)


def _export(
    zfs: ZfsCli, config: Config, runner: Runner, engine: TargetEngine, made: list[Provisioned]
) -> None:
    """Every export in one engine call; if the engine refuses the batch, each
    host alone, so the one it refuses fails alone (its clone is undone)."""
    exports = {
        r.host: replace(
            host_export(config, r.host, r.record["initiator"], r.record.get("data") == "on"),
            chap=r.chap,
        )
        for r in made
        if r.record is not None
    }
    if not exports:
        return
    try:
        engine.apply(create=list(exports.values()))
    except ZbootError:
        for r in made:
            try:
                engine.apply(create=[exports[r.host]])
            except ZbootError as err:
                undo(zfs, config, runner, [r])
                r.error = err


def _write_boot_files(
    zfs: ZfsCli, config: Config, runner: Runner, engine: TargetEngine, made: list[Provisioned]
) -> None:
    """Each host's iPXE script in normal mode; a host whose script cannot be
    written is not left exported and provisioned without one."""
    targets = {
        r.host: boot_target(config, engine.lun, r.host, HostRecord.of(r.record), r.chap)
        for r in made
        if r.record is not None
    }
    if not any(targets.values()):
        return
    try:
        ensure_boot_dir(runner, config)
    except ZbootError as err:
        for r in made:
            _drop(zfs, config, runner, engine, r, err)
        return
    for r in made:
        target = targets[r.host]
        if target is None or r.record is None:
            continue
        try:
            r.boot_file = write_script(runner, config, r.record["mac"], "normal", target)
        except ZbootError as err:
            _drop(zfs, config, runner, engine, r, err)


def _drop(
    zfs: ZfsCli,
    config: Config,
    runner: Runner,
    engine: TargetEngine,
    r: Provisioned,
    err: ZbootError,
) -> None:
    """Take a made host back: its export, clone and secret; record why."""
    if r.record is not None:
        with suppress(ZbootError):
            engine.apply(delete=[r.record.get("target") or target_iqn(config, r.host)])
        undo(zfs, config, runner, [r])
    r.error = err


def clone(
    c: Context,
    image: str,
    specs: list[HostSpec],
    ephemeral: bool = False,
    data: DataDisk | None = None,
) -> list[Provisioned]:
    """`zboot clone`: provision() with the run's context; an ephemeral host
    has ephemeral=on from its first property write (the clone's own)."""
    props = {"ephemeral": "on"} if ephemeral else None
    made = provision(c.zfs, c.config, c.runner, lambda: c.engine, image, specs, props, data)
    if ephemeral:  # the disks as cloned: what their resets roll back to
        take_bases(c, [HostName(r.host) for r in made if r.error is None])
    return made
