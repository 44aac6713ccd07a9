"""The image lifecycle of a fleet: commit (a host's disk becomes its image's
next version) and rebase (hosts move onto another version and stay who they
are). Each parses its arguments, makes one call into zboot.ops, and renders."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import InvalidInput
from ..names import HostName, host_name, image_name, snapshot_name
from ..names import message as message_text
from ..ops import commit as commit_ops
from ..ops import rebase as rebase_ops
from ..ops.hostfile import read_host_names
from ..ops.rebase import Rebased
from ..ops.state import leaf
from .batch import HostResult, batch_outcome, one_or_batch
from .session import Outcome, Session, confirm, run


def commit(
    ctx: typer.Context,
    host: Annotated[str, typer.Argument(metavar="HOST")],
    message: Annotated[str, typer.Option("-m", "--message", help="what changed")],
    from_: Annotated[
        str | None,
        typer.Option(
            "--from",
            metavar="RESTORE-POINT",
            help="commit this restore point of the host (it may be running meanwhile)",
        ),
    ] = None,
    image: Annotated[
        str | None,
        typer.Option(
            "--image",
            metavar="NEW-IMAGE",
            help="make the disk a new image's first version instead (a clone of the "
            "host's version: fast, and it keeps that version from being pruned)",
        ),
    ] = None,
) -> None:
    """Make a host's disk its image's next version (one incremental stream on
    the server; the image is unchanged if it fails). Refused while the
    machine is logged in, unless --from a restore point taken before. The host
    stays on its version: zboot rebase moves hosts onto the new one.
    Example: zboot commit pc01 -m 'drivers updated'"""

    def action(s: Session) -> Outcome:
        name = host_name(host)  # bad input stops here, before the server
        message_text(message)
        point = snapshot_name(from_) if from_ is not None else None
        into = image_name(image) if image is not None else None
        done = commit_ops.commit(s.context, name, message, point, into)
        return Outcome(
            done.result(),
            f"host {name} committed as {done.image}@{done.version} "
            f"(on top of {leaf(done.base)}); move hosts onto it with "
            f"zboot rebase HOST... --to {done.image}",
        )

    run(ctx, "commit", action)


def named_hosts(hosts: list[str] | None, hosts_file: Path | None) -> list[HostName]:
    """HOST... or --hosts FILE (not both, not neither), checked, each once."""
    given = list(hosts or [])
    if hosts_file is not None:
        if given:
            raise InvalidInput("give HOST... or --hosts FILE, not both")
        given = read_host_names(hosts_file)
    if not given:
        raise InvalidInput("give HOST... or --hosts FILE")
    return list(dict.fromkeys(host_name(h) for h in given))


def rebase_detail(one: Rebased) -> str:
    if not one.moved:
        return f"on {leaf(one.to)} already, nothing changed"
    archive = one.result()["archive"]
    return f"previous disk kept as {leaf(str(archive))}" if archive else "previous disk discarded"


def rebased_one(one: Rebased) -> Outcome:
    verb = "rebased onto" if one.moved else "stays on"
    return Outcome(one.result(), f"host {one.host} {verb} {leaf(one.to)}; {rebase_detail(one)}")


def rebased_batch(results: list[Rebased]) -> Outcome:
    return batch_outcome(
        [
            HostResult(
                r.host,
                {k: v for k, v in r.result().items() if k != "host"},
                rebase_detail(r),
                r.error,
            )
            for r in results
        ],
        f"on {leaf(results[0].to)}" if results else "rebased",
        {},
    )


def rebase(
    ctx: typer.Context,
    hosts: Annotated[list[str] | None, typer.Argument(metavar="HOST...")] = None,
    to: Annotated[
        str,
        typer.Option(
            "--to", metavar="IMAGE[@VERSION]", help="the image version (default: its newest)"
        ),
    ] = "",
    hosts_file: Annotated[
        Path | None,
        typer.Option(
            "--hosts",
            metavar="FILE",
            help="the hosts of a CSV or TOML hosts file (as clone --hosts takes)",
        ),
    ] = None,
    discard: Annotated[
        bool, typer.Option(help="throw each replaced disk away instead of archiving it")
    ] = False,
    force: Annotated[
        bool, typer.Option(help="even while the machine is logged in to its disk")
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="do not ask before --discard destroys")
    ] = False,
) -> None:
    """Move hosts onto another image version: each gets a fresh clone of it
    and keeps its MAC, initiator, target, CHAP secrets, mode and ephemeral
    setting; its old disk is archived unless --discard (which asks first).
    A host on that version already is left as it is. Example:
    zboot rebase pc01 pc02 --to win11@v3"""

    def action(s: Session) -> Outcome:
        if not to:
            raise InvalidInput("give the image version: --to IMAGE[@VERSION]")
        names = named_hosts(hosts, hosts_file)
        question = f"rebase {', '.join(names)} and destroy the disks the rebase replaces?"
        if discard and not s.dry_run and not confirm(question, yes, s.json):
            return Outcome({"hosts": []}, "nothing rebased")
        results = rebase_ops.rebase(s.context, names, to, discard, force)
        batched = len(names) > 1 or hosts_file is not None
        return one_or_batch(results, rebased_one, rebased_batch, batched=batched)

    run(ctx, "rebase", action)


def register(app: typer.Typer) -> None:
    app.command("commit")(commit)
    app.command("rebase")(rebase)
