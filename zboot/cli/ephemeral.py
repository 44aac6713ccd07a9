"""`zboot ephemeral|keep HOST... on|off` and `zboot reset HOST...`: hosts
whose disks go back to their image version at every boot, and the reset
itself (the workflow is zboot.ops.reset)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ..names import host_name, human_size
from ..ops import reset as ops
from ..ops.reset import Flagged, Reset
from .batch import HostResult, batch_outcome, one_or_batch
from .session import Outcome, Session, confirm, run

HOSTS = Annotated[list[str], typer.Argument(metavar="HOST...")]
SWITCH = Annotated[str, typer.Argument(metavar="on|off")]


def _flag(ctx: typer.Context, flag: str, hosts: list[str], value: str) -> None:
    def action(s: Session) -> Outcome:
        ops.check_switch(flag, value)  # before the server
        names = list(dict.fromkeys(host_name(h) for h in hosts))
        results = ops.set_flag(s.context, names, flag, value)
        return one_or_batch(
            results,
            lambda one: Outcome(_flag_view(one), f"host {one.host}: {flag} {value}"),
            lambda all_: batch_outcome(
                [HostResult(r.host, _flag_view(r), "", r.error) for r in all_],
                f"{flag} {value}",
                {flag: value == "on"},
            ),
            batched=len(names) > 1,
        )

    run(ctx, flag, action)


def _flag_view(r: Flagged) -> dict[str, Any]:
    return {"host": r.host, r.flag: r.value == "on"}


def ephemeral(ctx: typer.Context, hosts: HOSTS, value: SWITCH) -> None:
    """Make hosts ephemeral (on: each boot of the machine starts from the image
    version the host was cloned from, its changes discarded) or not (off).
    Separate from the boot mode. Example: zboot ephemeral pc01 pc02 on"""
    _flag(ctx, "ephemeral", hosts, value)


def keep(ctx: typer.Context, hosts: HOSTS, value: SWITCH) -> None:
    """Keep an ephemeral host's changes across its boots (on) until keep is
    off again; its next boot after that resets it. Example: zboot keep pc01 on"""
    _flag(ctx, "keep", hosts, value)


def reset_view(r: Reset) -> dict[str, Any]:
    return {
        "host": r.host,
        "source": r.source,
        "discarded": r.discarded,
        "resets": r.resets,
        "last_reset": (r.record or {}).get("last-reset"),
    }


def reset(
    ctx: typer.Context,
    hosts: HOSTS,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False,
) -> None:
    """Return hosts' disks to the image version they were cloned from,
    discarding their changes (asks first, or wants --yes). A machine of the
    host's own logged in is cut off (it is rebooting); any other initiator
    logged in refuses that host. Several hosts: one engine call takes their
    exports down and one puts them back; a host that fails fails alone."""

    def action(s: Session) -> Outcome:
        names = list(dict.fromkeys(host_name(h) for h in hosts))
        question = f"reset {', '.join(names)} and discard their changes?"
        if not s.dry_run and not confirm(question, yes, s.json):
            return Outcome({"hosts": []}, "nothing reset")
        results = ops.reset_hosts(s.context, names)
        return one_or_batch(
            results,
            lambda one: Outcome(
                reset_view(one),
                f"host {one.host} reset to {one.source}; "
                f"{human_size(one.discarded)} discarded (reset {one.resets})",
            ),
            lambda all_: batch_outcome(
                [
                    HostResult(
                        r.host,
                        reset_view(r),
                        f"{human_size(r.discarded)} discarded",
                        r.error,
                        {"to": r.source.rsplit("/", 1)[-1]},
                    )
                    for r in all_
                ],
                "reset",
                {},
            ),
            batched=len(names) > 1,
        )

    run(ctx, "reset", action)


def register(app: typer.Typer) -> None:
    for name, command in (("ephemeral", ephemeral), ("keep", keep), ("reset", reset)):
        app.command(name)(command)
