"""Provisioning one host or a batch: a clone each, CHAP secrets where asked
for, then every export in one engine call (one rtslib process and one LIO
save for the whole batch). One bad host fails alone: its clone and secret are
removed, the others go on."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, replace

from ..config import Config
from ..errors import Conflict, ZbootError
from ..names import host_name, image_name, iqn, mac, snapshot_name
from ..remote.base import Runner
from ..targets.base import Chap, TargetEngine
from ..zfs.cli import ZfsCli
from . import chap as chap_store
from . import hosts as ops
from .bootfiles import boot_target, write_script
from .exports import host_export, target_iqn
from .hostfile import HostSpec
from .state import State, read_state


@dataclass
class Provisioned:
    """What became of one host of the batch: its record, or the error."""

    host: str
    record: dict[str, str] | None = None
    chap: Chap | None = None
    error: ZbootError | None = None
    boot_file: str | None = None  # the host's iPXE script on the server


def _clone(zfs: ZfsCli, config: Config, runner: Runner, image: str, spec: HostSpec,
           state: State) -> tuple[dict[str, str], Chap | None]:
    name = host_name(spec.host)
    wants_chap = bool(spec.chap)
    # CHAP needs a target name: without a base, target_iqn says to run init
    target = target_iqn(config, name) if config.iqn_base or wants_chap else None
    record = ops.clone_host(zfs, config, image, name, spec.mac, spec.initiator, target,
                            extra={"chap": spec.chap} if wants_chap else None,
                            state=state)
    secrets = None
    if wants_chap:
        try:
            secrets = chap_store.new_chap(record["initiator"], str(target),
                                          spec.chap == "mutual")
            chap_store.store(runner, config, name, secrets)
        except BaseException:
            undo(zfs, config, runner, name, wants_chap)
            raise
    return record, secrets


def undo(zfs: ZfsCli, config: Config, runner: Runner, host: str, had_chap: bool) -> None:
    """Remove a fresh clone (it holds nothing yet) and its secret."""
    zfs.destroy(f"{config.hosts}/{host}", recursive=True)
    if had_chap:
        chap_store.remove(runner, config, host)


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


def provision(zfs: ZfsCli, config: Config, runner: Runner, engine: Callable[[], TargetEngine],
              image: str, specs: list[HostSpec]) -> list[Provisioned]:
    """Clone and export every host of specs; one result per spec, in order."""
    name, _, version = image.partition("@")
    image_name(name)  # a bad image name fails the batch before anything runs
    if version:
        snapshot_name(version)
    todo = checked(specs)
    results = [done for _, done in todo]
    if all(done.error for done in results):
        return results
    state = read_state(zfs, config)
    for spec, done in todo:
        if done.error is not None:
            continue
        try:
            done.record, done.chap = _clone(zfs, config, runner, image, spec, state)
        except ZbootError as err:
            done.error = err
        except BaseException:
            _undo_all(zfs, config, runner, results)
            raise
    made = [r for r in results if r.record is not None]
    if not made:
        return results
    try:
        target_engine = engine()  # an engine that cannot be made leaves no clone behind
        if target_engine.name == "none":
            return results
        _export(zfs, config, runner, target_engine, made)
    except BaseException:
        _undo_all(zfs, config, runner, results)
        raise
    for r in made:
        if r.record is not None:
            _write_boot_file(zfs, config, runner, target_engine, r)
    return results


def _export(zfs: ZfsCli, config: Config, runner: Runner, engine: TargetEngine,
            made: list[Provisioned]) -> None:
    """Every export in one engine call; if the engine refuses the batch, each
    host alone, so the one it refuses fails alone (its clone is undone)."""
    exports = {r.host: replace(host_export(config, r.host, r.record["initiator"]),
                               chap=r.chap) for r in made if r.record is not None}
    try:
        engine.apply(create=list(exports.values()))
    except ZbootError:
        for r in made:
            try:
                engine.apply(create=[exports[r.host]])
            except ZbootError as err:
                r.error, r.record = err, None
                undo(zfs, config, runner, r.host, r.chap is not None)


def _write_boot_file(zfs: ZfsCli, config: Config, runner: Runner, engine: TargetEngine,
                     r: Provisioned) -> None:
    """The host's iPXE script in normal mode; if it cannot be written the
    host is not left exported and provisioned without one."""
    if r.record is None:
        return
    target = boot_target(config, engine.lun, r.host, r.record, r.chap)
    if target is None:
        return
    try:
        r.boot_file = write_script(runner, config, r.record["mac"], "normal", target)
    except ZbootError as err:
        with suppress(ZbootError):
            engine.apply(delete=[target.target])
        undo(zfs, config, runner, r.host, r.chap is not None)
        r.error, r.record = err, None


def _undo_all(zfs: ZfsCli, config: Config, runner: Runner, results: list[Provisioned]) -> None:
    """Interrupted: leave no host of this batch half made."""
    for r in results:
        if r.record is not None:
            undo(zfs, config, runner, r.host, r.chap is not None)
            r.record = None
