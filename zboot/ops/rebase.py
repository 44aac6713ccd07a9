"""Rebase: hosts move onto another image version and stay who they are.

Each host's disk is replaced by a clone of the chosen version, through the
rollback's own steps (ops.rollback): the plan is written onto the disk, the
export comes down, the disk is renamed into the archive (or destroyed with
--discard), the new clone takes its name, the export goes back up. The zvol
keeps its path, so the host keeps its MAC, initiator, target, CHAP secrets,
mode and ephemeral setting; only its image, version and origin change. A
rebase cut short is finished by `zboot rollback HOST` or `zboot sync`, like
a rollback, or by the same rebase again; the new version is recorded from
the plan on the disk either way."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import Conflict, ZbootError
from ..names import HostName, image_name, snapshot_name
from .context import Context
from .reset import take_bases
from .rollback import Rollback, rollback
from .space import check_reserve
from .state import HostState, State, leaf, now, read_state, version_snapshot


@dataclass
class Rebased:
    """One host of a rebase: its rollback plan (moved, or failed), or
    nothing to do because it is on that version already."""

    host: HostName
    to: str  # the image version's snapshot, image@version
    plan: Rollback | None = None  # None: already on that version

    @property
    def error(self) -> ZbootError | None:
        return self.plan.error if self.plan is not None else None

    @property
    def moved(self) -> bool:
        return self.plan is not None and self.plan.error is None

    def result(self) -> dict[str, object]:
        archive = self.plan.result()["archive"] if self.moved and self.plan else ""
        return {"host": self.host, "source": self.to, "archive": archive, "moved": self.moved}


def _check(state: State, host: HostName, to: str) -> Rebased | None:
    """None when the host can move (or a rebase of it onto `to` was cut short:
    running it again finishes it); else what becomes of it: on `to` already,
    or refused (unknown, another operation on it not finished, maintenance)."""
    half = state.unfinished_rollbacks.get(host) if host not in state.hosts else None
    if half is not None:
        if half.get("rollback-to") == to:
            return None
        raise Conflict(
            f"a rollback or rebase of host {host!r} to {leaf(half.get('rollback-to', ''))} "
            "was cut short",
            hint=f"zboot rollback {host} finishes it (or zboot sync); then rebase",
        )
    h = state.host(host)
    record = h.record
    if record.state == HostState.ROLLING_BACK and h.get("rollback-to") == to:
        return None
    if record.unfinished:
        raise Conflict(
            f"host {host!r} is {record.state} ({record.step})",
            hint="zboot sync finishes it; then rebase",
        )
    if record.mode == "maintenance":
        raise Conflict(
            f"host {host!r} is in maintenance mode: it boots its image's own disk",
            hint=f"zboot mode {host} normal first (that makes the image's next version)",
        )
    if record.origin == to:
        return Rebased(host, to)
    return None


def rebase(
    c: Context, names: list[HostName], spec: str, discard: bool, force: bool
) -> list[Rebased]:
    """Move hosts onto the image version spec (IMAGE[@VERSION]) in one batch:
    every host checked before anything changes; a host already on it is left
    alone; a host that fails (unknown, cut short, in use without force)
    fails alone. Ephemeral hosts get their new disk as their base."""
    name, at, version = spec.partition("@")
    image_name(name)  # a bad spec fails before the server is read
    if at:
        snapshot_name(version)  # "image@" names no version
    state = read_state(c.zfs, c.config)
    to = version_snapshot(state, spec)
    results: dict[HostName, Rebased] = {}
    moving: list[HostName] = []
    for host in names:
        try:
            checked = _check(state, host, to)
        except ZbootError as err:
            checked = Rebased(host, to, Rollback(host, error=err))
        if checked is None:
            moving.append(host)
        else:
            results[host] = checked
    if moving:
        check_reserve(c.config, state, f"rebasing {', '.join(moving)}")
        props: dict[str, dict[str, str]] = {
            h: {"rebased": now(), "rebased-from": leaf(state.record(h).origin)} for h in moving
        }
        plans = rollback(c, moving, None, discard, force, state, props, to=to)
        results |= {p.host: Rebased(p.host, to, p) for p in plans}
        ephemeral = [
            p.host for p in plans if p.error is None and state.record(p.host).ephemeral == "on"
        ]
        take_bases(c, ephemeral)
    return [results[h] for h in names]
