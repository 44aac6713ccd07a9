"""`zboot doctor` (what has drifted; changes nothing), `zboot sync` (puts
right what can be put right from the hosts' records: finishes operations cut
short, re-creates exports, scripts and lost secrets, removes orphans) and
`zboot unlock` (ends a stale holder of the server's lock)."""

from __future__ import annotations

from typing import Annotated

import typer

from ..errors import Conflict, Drift
from ..ops import sync as sync_ops
from ..ops.doctor import survey
from ..remote.lock import lock_state
from .output import table
from .session import Outcome, Session, confirm, run


def doctor(ctx: typer.Context) -> None:
    """Report drift between the hosts' records and the server.

    Finds targets without a disk, disks without a target, boot files for
    unknown MACs or the wrong target, hosts stuck mid-operation, stale
    sessions, lost secrets, a pool nearly full. Changes nothing; exits 6
    when it finds anything (1 means zboot itself failed)."""

    def action(s: Session) -> Outcome:
        found = survey(s.context, script_modes=True, side_by_side=True)
        rows = [f.to_json() for f in found.findings]
        data = {
            "engine": found.engine,
            "hosts": len(found.state.hosts),
            "pool": {"name": found.pool, "capacity": found.capacity},
            "findings": rows,
        }
        text = (
            f"{len(found.state.hosts)} hosts, engine {found.engine}, pool {found.pool} "
            f"{found.capacity}% full: "
        )
        unchecked = "".join(f"\nnot checked: {what}" for what in found.not_checked)
        if not rows:
            return Outcome(data, text + "nothing has drifted" + unchecked)
        shown = [r | {"repair": r["repair"] or "(by hand)"} for r in rows]
        problems = f"{len(rows)} problem{'' if len(rows) == 1 else 's'}"
        text += f"{problems}\n" + table(shown, ["kind", "subject", "detail", "repair"]) + unchecked
        return Outcome(
            data, text, [Drift(f"{problems} found", hint="zboot sync repairs those with a repair")]
        )

    run(ctx, "doctor", action, changes=False, engine=True)


def sync(ctx: typer.Context) -> None:
    """Put right what `zboot doctor` finds, from the hosts' records: finish
    operations cut short, export what is missing, remove exports, scripts and
    secret files of hosts that are gone, write missing or stale scripts,
    give a host whose secret file is lost new secrets. Never cuts off a
    logged-in machine."""

    def action(s: Session) -> Outcome:
        synced = sync_ops.sync(s.context)
        data = {
            "engine": synced.engine,
            "created": synced.created,
            "deleted": synced.deleted,
            "skipped_in_use": sorted(synced.skipped_in_use),
            "checked": synced.checked,
            "finished": sorted(set(synced.finished)),
            "boot_files": synced.boot_files,
            "removed": synced.removed,
            "rekeyed": synced.rekeyed,
        }
        text = (
            f"{synced.checked} exports checked ({synced.engine}): "
            f"{len(synced.created)} re-created, {len(synced.deleted)} removed"
            + "".join(f"\n  re-created {t}" for t in synced.created)
            + "".join(f"\n  removed {t}" for t in synced.deleted)
            + "".join(f"\n  left alone (in use) {t}" for t in sorted(synced.skipped_in_use))
            + "".join(f"\n  finished {h}" for h in sorted(set(synced.finished)))
            + "".join(f"\n  wrote {f}" for f in synced.boot_files)
            + "".join(f"\n  removed {f}" for f in synced.removed)
            + "".join(f"\n  new CHAP secrets for {h}" for h in synced.rekeyed)
        )
        return Outcome(data, text, synced.errors)

    run(ctx, "sync", action)


def unlock(
    ctx: typer.Context,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False,
) -> None:
    """Show who holds the server's lock and, once you agree, end that holder:
    its zboot's commands still running on the server are ended, then the lock
    is free. For a zboot you know is gone (a lost laptop lets go by itself
    within a minute)."""

    def action(s: Session) -> Outcome:
        now = lock_state(s.runner)
        data: dict[str, object] = {"held": now.held, "holder": now.holder}
        if not now.held:
            return Outcome(data, "the lock is free")
        if now.pid is None:
            raise Conflict(
                f"the lock is held by {now.holder}, which is not a zboot that unlock can end"
            )
        question = f"end {now.holder} and what it still runs on the server?"
        if s.dry_run or not confirm(question, yes, s.json):
            return Outcome(data, f"left alone: {now.holder}")
        after = lock_state(s.runner, end=now.pid)
        data = {"held": after.held, "holder": now.holder, "ended": after.ended}
        if after.held:
            raise Conflict(f"the lock is still held, by {after.holder}; try again")
        return Outcome(data, f"ended {now.holder}; the lock is free")

    run(ctx, "unlock", action, changes=False)
