"""`zboot dhcp` and `zboot pxelinux`: the DHCP (or PXELINUX) part of a
diskless boot, for the hosts zboot knows (MACs and initiator names come from
their records)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer

from ..boot import dhcp as dhcp_config
from ..boot import ipxe
from ..errors import InvalidInput
from ..names import address, host_name
from ..ops.state import read_state
from .session import Outcome, Session, run


def register(app: typer.Typer) -> None:
    @app.command("dhcp")
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
            if fmt not in dhcp_config.FORMATS:
                raise InvalidInput(
                    f"unknown format {fmt!r}", hint=f"one of {', '.join(dhcp_config.FORMATS)}"
                )
            for option, value in (("--tftp-server", tftp_server), ("--router", router)):
                if value is not None:  # they go into the DHCP server's config as they are
                    address(value, option)
            wanted = [host_name(h) for h in hosts or []]
            if not s.config.boot_url:
                raise InvalidInput(
                    "the config has no boot URL ([boot] url)",
                    hint="the URL clients fetch <mac>.ipxe scripts from, e.g. http://10.0.0.1/boot",
                )
            site = dhcp_config.Site(
                s.config.boot_url, tftp_server or urlsplit(s.config.boot_url).hostname or "", router
            )
            state = read_state(s.zfs, s.config)
            chosen = (
                [state.host(n) for n in wanted]
                if wanted
                else sorted(state.hosts.values(), key=lambda h: h.name)
            )
            entries = [
                dhcp_config.DhcpHost(h.name, h.get("mac"), h.get("initiator")) for h in chosen
            ]
            text = dhcp_config.render(fmt, site, entries)
            if write is not None:
                write.write_text(text)
            return Outcome(
                {
                    "format": fmt,
                    "hosts": [e.name for e in entries],
                    "file": str(write) if write else None,
                    "config": text,
                },
                f"wrote {write}" if write else text.rstrip("\n"),
            )

        run(ctx, "dhcp", action, changes=False)

    @app.command("pxelinux")
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
            name = host_name(host)
            if not s.config.boot_url:
                raise InvalidInput("the config has no boot URL ([boot] url)")
            record = read_state(s.zfs, s.config).host(name).dataset.record()
            root = tftp_dir.rstrip("/")
            files = {
                f"{root}/{ipxe.CHAIN_SCRIPT}": ipxe.chain_script(s.config.boot_url),
                f"{root}/pxelinux.cfg/{ipxe.pxelinux_name(record['mac'])}": ipxe.pxelinux_config(
                    name
                ),
            }
            s.runner.run(["mkdir", "-p", f"{root}/pxelinux.cfg"])
            for path, text in files.items():
                s.runner.write_file(path, text.encode(), mode=0o644)
            return Outcome(
                {"host": name, "files": list(files)},
                "\n".join(f"wrote {p}" for p in files) + f"\n(PXELINUX needs ipxe.lkrn in {root})",
            )

        run(ctx, "pxelinux", action)
