"""The pool's reserve: free space that clone, commit and rebase leave alone
(`[zfs] reserve`, 10% of what the root can use unless configured). A pool
that fills up stops every host's writes at once, so the commands that make
new disks or versions refuse (exit 4) before it gets there, and say what
frees space."""

from __future__ import annotations

from ..config import Config, reserve_bytes
from ..errors import Conflict
from ..names import human_size
from .state import State


def check_reserve(config: Config, state: State, doing: str) -> None:
    """Refuse `doing` when the root's free space is below the reserve."""
    if state.space is None:
        return  # no root yet: nothing zboot made can have filled it
    used, available = state.space
    reserve = reserve_bytes(config.reserve, used + available)
    if available < reserve:
        raise Conflict(
            f"pool {config.pool} has {human_size(available)} free for {config.root}, below its "
            f"reserve of {config.reserve} ({human_size(reserve)}): {doing} would eat into it",
            hint="free space: zboot prune --older-than 30d, zboot image prune IMAGE --keep 2, "
            "or destroy hosts no one uses; or lower [zfs] reserve",
        )
