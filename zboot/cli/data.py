"""`zboot data rebase HOST... --to IMAGE[@VERSION]`: hosts' data disks move
onto another version of a data image; `zboot data reset HOST...`: back to
how they were made. The OS disks stay as they are."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import InvalidInput
from ..ops import data as data_ops
from ..ops.data import DataRebased
from ..ops.state import leaf
from .batch import HostResult, batch_outcome, one_or_batch
from .lifecycle import named_hosts
from .session import Outcome, Session, confirm, run

app = typer.Typer(
    help="Each host's data disk: the second disk beside its OS disk.", no_args_is_help=True
)


def detail(one: DataRebased) -> str:
    if not one.moved:
        return f"on {leaf(one.to)} already, nothing changed"
    if one.to.startswith(data_ops.EMPTY):
        return f"empty again; previous data disk {kept(one)}"
    return f"previous data disk {kept(one)}"


def kept(one: DataRebased) -> str:
    return f"kept as {leaf(one.archive)}" if one.archive else "discarded"


def rebased_one(one: DataRebased) -> Outcome:
    if one.to.startswith(data_ops.EMPTY):
        return Outcome(one.result(), f"data disk of {one.host}: {detail(one)}")
    verb = "moved onto" if one.moved else "stays on"
    return Outcome(one.result(), f"data disk of {one.host} {verb} {leaf(one.to)}; {detail(one)}")


def rebased_batch(results: list[DataRebased]) -> Outcome:
    return batch_outcome(
        [
            HostResult(
                r.host, {k: v for k, v in r.result().items() if k != "host"}, detail(r), r.error
            )
            for r in results
        ],
        "replaced",
        {},
    )


@app.command("rebase")
def rebase(
    ctx: typer.Context,
    hosts: Annotated[list[str] | None, typer.Argument(metavar="HOST...")] = None,
    to: Annotated[
        str,
        typer.Option(
            "--to", metavar="IMAGE[@VERSION]", help="the data image version (default: its newest)"
        ),
    ] = "",
    hosts_file: Annotated[
        Path | None,
        typer.Option("--hosts", metavar="FILE", help="the hosts of a CSV or TOML hosts file"),
    ] = None,
    discard: Annotated[
        bool, typer.Option(help="throw each replaced data disk away instead of archiving it")
    ] = False,
    force: Annotated[
        bool, typer.Option(help="even while the machine is logged in to its disks")
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="do not ask before --discard destroys")
    ] = False,
) -> None:
    """Move hosts' data disks onto another version of a data image: each gets
    a fresh clone of it; the old one is archived unless --discard (which asks
    first). OS disks, targets, CHAP secrets and scripts stay as they are.
    Example: zboot data rebase pc01 pc02 --to games@v4"""

    def action(s: Session) -> Outcome:
        if not to:
            raise InvalidInput("give the data image version: --to IMAGE[@VERSION]")
        return replace_disks(s, hosts, hosts_file, to, discard, force, yes)

    run(ctx, "data rebase", action)


@app.command("reset")
def reset(
    ctx: typer.Context,
    hosts: Annotated[list[str] | None, typer.Argument(metavar="HOST...")] = None,
    hosts_file: Annotated[
        Path | None,
        typer.Option("--hosts", metavar="FILE", help="the hosts of a CSV or TOML hosts file"),
    ] = None,
    discard: Annotated[
        bool, typer.Option(help="throw each replaced data disk away instead of archiving it")
    ] = False,
    force: Annotated[
        bool, typer.Option(help="even while the machine is logged in to its disks")
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="do not ask before --discard destroys")
    ] = False,
) -> None:
    """Put hosts' data disks back to how they were made: a fresh clone of the
    data image version each came from, or a fresh empty disk of its size. The
    old one is archived unless --discard (which asks first). rollback, rebase
    and the OS disk's resets never touch a data disk: this is how to.
    Example: zboot data reset pc01"""

    def action(s: Session) -> Outcome:
        return replace_disks(s, hosts, hosts_file, None, discard, force, yes)

    run(ctx, "data reset", action)


def replace_disks(
    s: Session,
    hosts: list[str] | None,
    hosts_file: Path | None,
    to: str | None,
    discard: bool,
    force: bool,
    yes: bool,
) -> Outcome:
    """data rebase (to: the version) and data reset (to None), as one."""
    names = named_hosts(hosts, hosts_file)
    question = f"replace the data disks of {', '.join(names)} and destroy the old ones?"
    if discard and not s.dry_run and not confirm(question, yes, s.json):
        return Outcome({"hosts": []}, "nothing replaced")
    results = data_ops.data_rebase(s.context, names, to, discard, force)
    batched = len(names) > 1 or hosts_file is not None
    return one_or_batch(results, rebased_one, rebased_batch, batched=batched)
