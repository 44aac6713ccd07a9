"""Enrolment commands: discovered (the machines the boot service saw with a
MAC no host has) and adopt (turn them into hosts)."""

from __future__ import annotations

from typing import Annotated

import typer

from ..ops import enrol
from ..ops.enrol import Adoption, Seen
from .hosts import clone_batch_outcome
from .output import table
from .session import Outcome, Session, run


def seen_row(s: Seen) -> dict[str, str]:
    return (
        {"mac": s.mac}
        | {fact: s.facts.get(fact, "") for fact in enrol.FACTS}
        | {"address": s.address, "first": s.first, "last": s.last}
    )


def both(platform: str, arch: str) -> str:
    return "/".join(filter(None, (platform, arch))) or "-"


COLUMNS = ["mac", "manufacturer", "product", "serial", "uuid", "platform/buildarch"]


def discovered(ctx: typer.Context) -> None:
    """Machines that booted with a MAC no host has (recorded by zboot serve)."""

    def action(s: Session) -> Outcome:
        rows = [seen_row(one) for one in enrol.discovered(s.context)]
        shown = [
            row
            | {"platform/buildarch": "/".join(filter(None, (row["platform"], row["buildarch"])))}
            for row in rows
        ]
        return Outcome(rows, table(shown, [*COLUMNS, "address", "first", "last"]))

    run(ctx, "discovered", action, changes=False)


def adopted_outcome(image: str, done: Adoption) -> Outcome:
    """A row per machine as `zboot clone --hosts` prints, and the MACs that
    were never discovered."""
    outcome = clone_batch_outcome(image, done.results, show_secrets=False)
    outcome.data["undiscovered"] = list(done.undiscovered)
    if done.undiscovered:
        outcome.text += "\nnever discovered (adopted as given): " + ", ".join(done.undiscovered)
    if done.forget_error is not None:
        outcome.errors.append(done.forget_error)
    return outcome


def adopt(
    ctx: typer.Context,
    macs: Annotated[list[str], typer.Argument(metavar="MAC...")],
    image: Annotated[
        str, typer.Option("--image", metavar="IMAGE[@VERSION]", help="the image to clone")
    ],
    names: Annotated[
        str | None,
        typer.Option(
            "--names",
            metavar="PATTERN",
            help="host names, e.g. pc{n:02} -> pc01, pc02 (default: [serve] adopt_names)",
        ),
    ] = None,
) -> None:
    """Provision discovered machines in one batch, named by a pattern.
    Example: zboot adopt 52:54:00:12:34:01 52:54:00:12:34:02 --image win11 --names pc{n:02}"""

    def action(s: Session) -> Outcome:
        return adopted_outcome(image, enrol.adopt(s.context, macs, image, names))

    run(ctx, "adopt", action)


def register(app: typer.Typer) -> None:
    app.command("discovered")(discovered)
    app.command("adopt")(adopt)
