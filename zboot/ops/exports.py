"""Each host's disk as its own iSCSI target: made on clone, taken down before
ZFS touches the disk (rollback, destroy) and put back after. A disk is never
pulled from under a logged-in machine unless the admin says --force."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..config import Config
from ..errors import Conflict
from ..names import HostName
from ..remote.base import Runner
from ..targets.base import Export, TargetEngine
from . import chap as chap_store
from .context import Context
from .paths import data_device, host_device, target_iqn
from .state import HostRecord, read_state


def host_export(config: Config, host: str, initiator: str, data: bool = False) -> Export:
    """data: the host has a data disk, exported as the LUN after its OS disk."""
    return Export(
        host=host,
        target=target_iqn(config, host),
        device=host_device(config, host),
        initiator=initiator,
        data_device=data_device(config, host) if data else "",
    )


def record_export(runner: Runner, config: Config, host: str, record: HostRecord) -> Export:
    """The export a host's record asks for; its CHAP secrets come from the
    server's secret file."""
    export = host_export(config, host, record.initiator, record.data == "on")
    if record.chap:
        return replace(export, chap=chap_store.load(runner, config, host))
    return export


def refuse_if_in_use(engine: TargetEngine, export: Export, force: bool) -> None:
    """Exit 4 while any initiator is logged in to the host's target."""
    if force:
        return
    logged_in = engine.sessions([export.target]).get(export.target)
    if logged_in:
        raise in_use(export, logged_in)


def in_use(export: Export, initiators: list[str]) -> Conflict:
    return Conflict(
        f"host {export.host!r} is in use: {', '.join(initiators)} is logged in to {export.target}",
        hint="shut the machine down first (one just switched off stays logged in until "
        "the target gives up on it: about a minute on LIO), or give --force to cut it off",
    )


@dataclass(frozen=True)
class ExportView:
    """A host's export as the engine has it now: what attaching it by hand needs."""

    export: Export
    engine: str
    lun: int
    present: bool
    in_use: list[str]


def show_export(c: Context, host: HostName) -> ExportView:
    h = read_state(c.zfs, c.config).host(host)
    export = record_export(c.runner, c.config, h.name, h.record)
    engine = c.engine
    return ExportView(
        export,
        engine.name,
        engine.lun,
        export.target in engine.exports(),
        engine.sessions([export.target]).get(export.target, []),
    )
