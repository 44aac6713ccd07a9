"""`zboot dhcp` and `zboot pxelinux`: the DHCP (or PXELINUX) part of a
diskless boot, for the hosts zboot knows (MACs and initiator names come from
their records)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..names import host_name
from ..ops import bootfiles
from .session import Outcome, Session, run


def dhcp(
    ctx: typer.Context,
    hosts: Annotated[
        list[str] | None,
        typer.Argument(metavar="[HOST]...", help="these hosts only (default: every host)"),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="isc, dnsmasq, kea or ms-dhcp")] = "isc",
    write: Annotated[
        Path | None,
        typer.Option("--write", metavar="FILE", help="write it to FILE (on this machine)"),
    ] = None,
    tftp_server: Annotated[
        str | None,
        typer.Option(help="serves undionly.kpxe/snponly.efi (default: the boot URL's host)"),
    ] = None,
    router: Annotated[
        str | None, typer.Option(help="a router for the PXE ROM only; iPXE never gets one")
    ] = None,
) -> None:
    """Print the DHCP config that chainloads iPXE into each host's script."""

    def action(s: Session) -> Outcome:
        made = bootfiles.dhcp_config(
            s.context, [host_name(h) for h in hosts or []], fmt, tftp_server, router
        )
        text = made.text
        if write is not None:
            write.write_text(text)
        return Outcome(
            {
                "format": fmt,
                "hosts": made.hosts,
                "file": str(write) if write else None,
                "config": text,
            },
            f"wrote {write}" if write else text.rstrip("\n"),
        )

    run(ctx, "dhcp", action, changes=False)


def pxelinux(
    ctx: typer.Context,
    host: str,
    tftp_dir: Annotated[
        str, typer.Option("--dir", help="the TFTP root PXELINUX serves from (on the server)")
    ] = "/srv/tftp",
) -> None:
    """For sites that run PXELINUX: write pxelinux.cfg/01-<mac> so the host
    chains into iPXE and its own script."""

    def action(s: Session) -> Outcome:
        files = bootfiles.write_pxelinux(s.context, host_name(host), tftp_dir)
        root = tftp_dir.rstrip("/")
        return Outcome(
            {"host": host_name(host), "files": files},
            "\n".join(f"wrote {p}" for p in files) + f"\n(PXELINUX needs ipxe.lkrn in {root})",
        )

    run(ctx, "pxelinux", action)


def register(app: typer.Typer) -> None:
    app.command("dhcp")(dhcp)
    app.command("pxelinux")(pxelinux)
