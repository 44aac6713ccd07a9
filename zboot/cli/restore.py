"""Commands that take a host's state away: rollback (keeping what it
replaces unless --discard), prune (the kept states), destroy (the host).
Each parses its arguments, makes one call into zboot.ops, and renders."""

from __future__ import annotations

from typing import Annotated

import typer

from ..errors import InvalidInput
from ..names import age_seconds, host_name, snapshot_name
from ..ops import destroy as destroy_ops
from ..ops import rollback
from ..ops.destroy import Retired
from ..ops.rollback import Rollback, shown_source
from ..ops.state import leaf
from .batch import HostResult, batch_outcome, one_or_batch
from .session import Outcome, Session, confirm, run


def gone_name(dataset: str) -> str:
    """A destroyed dataset as the batch table shows it: its leaf, and a data
    disk marked as one (it has its host's name too)."""
    parent, _, name = dataset.rpartition("/")
    return f"{name} (data disk)" if parent.endswith("/data") else name


def rolled_back(one: Rollback) -> Outcome:
    result = one.result()
    kept = (
        f"; previous state kept as {leaf(result['archive'])}"
        if result["archive"]
        else "; previous state discarded"
    )
    return Outcome(result, f"host {one.host} rolled back to {one.source}{kept}")


def rollback_batch(plans: list[Rollback]) -> Outcome:
    return batch_outcome(
        [
            HostResult(
                p.host,
                {"source": p.source, "archive": p.result()["archive"]},
                f"kept as {leaf(p.archive)}" if p.result()["archive"] else "discarded",
                p.error,
                {"to": shown_source(p)},
            )
            for p in plans
        ],
        "rolled back",
        {},
    )


def destroyed_one(one: Retired) -> Outcome:
    return Outcome({"destroyed": one.gone}, f"destroyed host {one.host}")


def destroyed_batch(results: list[Retired]) -> Outcome:
    return batch_outcome(
        [
            HostResult(
                r.host, {"destroyed": r.gone}, ", ".join(gone_name(g) for g in r.gone), r.error
            )
            for r in results
        ],
        "destroyed",
        {"destroyed": [g for r in results for g in r.gone]},
    )


def rollback_(
    ctx: typer.Context,
    hosts: Annotated[list[str], typer.Argument(metavar="HOST...")],
    to: Annotated[
        str | None,
        typer.Option(
            "--to",
            metavar="RESTORE-POINT",
            help="a restore point (default: the state it was provisioned in)",
        ),
    ] = None,
    discard: Annotated[
        bool, typer.Option(help="throw the replaced state away instead of archiving it")
    ] = False,
    force: Annotated[
        bool, typer.Option(help="even while the machine is logged in to its disk")
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="do not ask before --discard destroys")
    ] = False,
) -> None:
    """Revert hosts' disks, keeping what they replace unless --discard (which
    asks first, or wants --yes). Several hosts: one engine call takes their
    exports down and one puts them back; a host that fails (in use, unknown)
    fails alone."""

    def action(s: Session) -> Outcome:
        names = list(dict.fromkeys(host_name(h) for h in hosts))
        point = snapshot_name(to) if to is not None else None  # before the server
        question = f"roll back {', '.join(names)} and destroy what the rollback replaces?"
        if discard and not s.dry_run and not confirm(question, yes, s.json):
            return Outcome({"hosts": []}, "nothing rolled back")
        plans = rollback.rollback(s.context, names, point, discard, force)
        return one_or_batch(plans, rolled_back, rollback_batch, batched=len(names) > 1)

    run(ctx, "rollback", action)


def prune(
    ctx: typer.Context,
    hosts: Annotated[list[str] | None, typer.Argument(metavar="[HOST]...")] = None,
    older_than: Annotated[
        str | None,
        typer.Option(
            "--older-than",
            metavar="AGE",
            help="only states archived longer ago than AGE (e.g. 30d, 12h); "
            "without HOST, every host's",
        ),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False,
) -> None:
    """Remove archived states (what rollbacks and rebases kept): all of the
    hosts given, or with --older-than the old ones (of every host when no
    HOST is given). Example: zboot prune --older-than 30d --yes"""

    def action(s: Session) -> Outcome:
        names = [host_name(h) for h in hosts or []] or None
        age = age_seconds(older_than) if older_than is not None else None
        if names is None and age is None:
            raise InvalidInput("give HOST..., or --older-than AGE for every host's")
        whose = ", ".join(names) if names else "every host"
        aged = f" archived more than {older_than} ago" if older_than else ""
        question = f"remove the archived states of {whose}{aged}?"
        if not s.dry_run and not confirm(question, yes, s.json):
            return Outcome({"pruned": []}, "nothing removed")
        pruned = destroy_ops.prune(s.context, names, age)
        return Outcome(
            {"pruned": pruned},
            f"removed {len(pruned)} archived state{'' if len(pruned) == 1 else 's'}",
        )

    run(ctx, "prune", action)


def destroy(
    ctx: typer.Context,
    hosts: Annotated[list[str], typer.Argument(metavar="HOST...")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False,
    force: Annotated[
        bool, typer.Option(help="even while the machine is logged in to its disk")
    ] = False,
) -> None:
    """Retire hosts: their exports, disks, restore points and archived states.
    Several hosts: one engine call takes every export down; a host that
    fails (in use, unknown) fails alone."""

    def action(s: Session) -> Outcome:
        names = list(dict.fromkeys(host_name(h) for h in hosts))
        disks = "its disk" if len(names) == 1 else "their disks"
        if not s.dry_run and not confirm(f"destroy {', '.join(names)} and {disks}?", yes, s.json):
            return Outcome({"destroyed": []}, "nothing destroyed")
        results = destroy_ops.destroy(s.context, names, force)
        return one_or_batch(results, destroyed_one, destroyed_batch, batched=len(names) > 1)

    run(ctx, "destroy", action)


def register(app: typer.Typer) -> None:
    for name, command in (("rollback", rollback_), ("prune", prune), ("destroy", destroy)):
        app.command(name)(command)
