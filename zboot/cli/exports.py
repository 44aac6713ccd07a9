"""`zboot export ...`: how a host's disk is exported, for attaching it by hand."""

from __future__ import annotations

from typing import Annotated

import typer

from ..boot.ipxe import root_path
from ..names import host_name
from ..ops.exports import show_export
from .hosts import chap_view
from .session import Outcome, Session, run

app = typer.Typer(help="The iSCSI export of each host's disk.", no_args_is_help=True)


@app.command("show")
def show(
    ctx: typer.Context,
    host: str,
    show_secrets: Annotated[
        bool, typer.Option("--show-secrets", help="print the CHAP secrets too")
    ] = False,
) -> None:
    """Everything needed to attach the host's disk by hand."""

    def action(s: Session) -> Outcome:
        view = show_export(s.context, host_name(host))
        export, present, in_use = view.export, view.present, view.in_use
        chap = chap_view(export.chap, show_secrets)
        portal = s.config.portal or "<server>:3260"
        data = {
            "host": export.host,
            "engine": view.engine,
            "portal": portal,
            "target": export.target,
            "lun": view.lun,
            "initiator": export.initiator,
            "chap_user": chap["user"] if chap else None,
            "chap_credentials": chap,
            "exported": present,
            "in_use": in_use,
            "root_path": root_path(portal, view.lun, export.target),
        }
        chap_lines = [
            (f"chap {k.replace('_', ' ')}", v) for k, v in (chap or {}).items() if v is not None
        ] or [("chap", "(none)")]
        text = "\n".join(
            f"{k.replace('_', ' ')}: {v}"
            for k, v in (
                ("engine", view.engine),
                ("portal", portal),
                ("target", export.target),
                ("lun", view.lun),
                ("initiator", export.initiator),
                *chap_lines,
                ("exported", "yes" if present else "NO (zboot sync puts it back)"),
                ("in use by", ", ".join(in_use) or "nobody"),
                ("ipxe root-path", data["root_path"]),
            )
        )
        return Outcome(data, text)

    run(ctx, "export show", action, changes=False, engine=True)
