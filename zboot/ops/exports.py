"""Each host's disk as its own iSCSI target: made on clone, taken down before
ZFS touches the disk (rollback, destroy) and put back after. A disk is never
pulled from under a logged-in machine unless the admin says --force."""

from __future__ import annotations

from collections.abc import Mapping

from ..config import Config
from ..errors import Conflict, InvalidInput
from ..names import iqn
from ..remote.base import Runner
from ..targets.base import Export, TargetEngine
from . import chap as chap_store


def target_iqn(config: Config, host: str) -> str:
    if not config.iqn_base:
        raise InvalidInput(
            "the config has no target name base ([target] iqn_base)",
            hint="run zboot init, which picks one and stores it",
        )
    return iqn(f"{config.iqn_base}:{host}")


def host_export(config: Config, host: str, initiator: str) -> Export:
    return Export(
        host=host,
        target=target_iqn(config, host),
        device=f"/dev/zvol/{config.hosts}/{host}",
        initiator=initiator,
    )


def record_export(runner: Runner, config: Config, host: str, record: Mapping[str, str]) -> Export:
    """The export a host's record asks for; its CHAP secrets come from the
    server's secret file."""
    export = host_export(config, host, record.get("initiator", ""))
    if record.get("chap"):
        return Export(
            export.host,
            export.target,
            export.device,
            export.initiator,
            chap=chap_store.load(runner, config, host),
        )
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
        hint="shut the machine down first, or give --force to cut it off",
    )


def plan_sync(
    config: Config, wanted: list[Export], present: dict[str, Export]
) -> tuple[list[Export], list[str]]:
    """What `zboot sync` changes: the exports to (re)create, and the targets to
    delete. Only exports of this root's hosts are touched: another root on the
    same server keeps its own."""
    mine = f"/dev/zvol/{config.hosts}/"
    by_target = {e.target: e for e in wanted}
    create = [e for e in wanted if present.get(e.target) != e]
    delete = [
        iqn for iqn, e in present.items() if e.device.startswith(mine) and iqn not in by_target
    ]
    return create, delete
