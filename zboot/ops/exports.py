"""Each host's disk as its own iSCSI target: made on clone, taken down before
ZFS touches the disk (rollback, destroy) and put back after. A disk is never
pulled from under a logged-in machine unless the admin says --force."""

from __future__ import annotations

from ..config import Config
from ..errors import Conflict, InvalidInput
from ..names import iqn
from ..targets.base import Export, TargetEngine


def target_iqn(config: Config, host: str) -> str:
    if not config.iqn_base:
        raise InvalidInput("the config has no target name base ([target] iqn_base)",
                           hint="run zboot init, which picks one and stores it")
    return iqn(f"{config.iqn_base}:{host}")


def host_export(config: Config, host: str, initiator: str) -> Export:
    return Export(host=host, target=target_iqn(config, host),
                  device=f"/dev/zvol/{config.hosts}/{host}", initiator=initiator)


def refuse_if_in_use(engine: TargetEngine, export: Export, force: bool) -> None:
    """Exit 4 while any initiator is logged in to the host's target."""
    if force:
        return
    logged_in = engine.sessions([export.target]).get(export.target)
    if logged_in:
        raise Conflict(f"host {export.host!r} is in use: {', '.join(logged_in)} is logged in "
                       f"to {export.target}",
                       hint="shut the machine down first, or give --force to cut it off")
