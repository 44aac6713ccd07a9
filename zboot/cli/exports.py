"""`zboot export ...`: how a host's disk is exported, for attaching it by hand."""

from __future__ import annotations

import typer

from ..names import host_name
from ..ops.exports import host_export
from ..ops.state import read_state
from .session import Outcome, Session, run

app = typer.Typer(help="The iSCSI export of each host's disk.", no_args_is_help=True)


def root_path(portal: str, lun: int, target: str) -> str:
    """iPXE's iscsi: URI (RFC 4173 order; iPXE wants the LUN in hex)."""
    address, _, port = portal.rpartition(":") if ":" in portal else (portal, "", "")
    return f"iscsi:{address}::{port}:{lun:x}:{target}"


@app.command("show")
def show(ctx: typer.Context, host: str) -> None:
    """Everything needed to attach the host's disk by hand."""
    def action(s: Session) -> Outcome:
        h = read_state(s.zfs, s.config).host(host_name(host))
        export = host_export(s.config, h.name, h.get("initiator"))
        engine = s.engine
        present = export.target in engine.exports()
        in_use = engine.sessions([export.target]).get(export.target, [])
        portal = s.config.portal or "<server>:3260"
        data = {"host": h.name, "engine": engine.name, "portal": portal,
                "target": export.target, "lun": engine.lun, "initiator": export.initiator,
                "chap_user": None, "exported": present, "in_use": in_use,
                "root_path": root_path(portal, engine.lun, export.target)}
        text = "\n".join(f"{k.replace('_', ' ')}: {v}" for k, v in (
            ("engine", engine.name), ("portal", portal), ("target", export.target),
            ("lun", engine.lun), ("initiator", export.initiator), ("chap user", "(no CHAP)"),
            ("exported", "yes" if present else "NO (zboot sync puts it back)"),
            ("in use by", ", ".join(in_use) or "nobody"), ("ipxe root-path", data["root_path"])))
        return Outcome(data, text)
    run(ctx, "export show", action)
