"""`zboot power on HOST...`: switch machines on with Wake-on-LAN, sent by the
storage server on the boot LAN (the workflow is zboot.ops.power). `power`
is a group so that other actions (off, cycle) can join `on` later."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ..names import host_name
from ..ops import power as ops
from ..ops.power import Wake
from .batch import HostResult, batch_outcome, one_or_batch
from .session import Outcome, Session, run

app = typer.Typer(help="Switch machines on (Wake-on-LAN from the server).", no_args_is_help=True)


@app.command("on")
def power_on(
    ctx: typer.Context,
    hosts: Annotated[list[str], typer.Argument(metavar="HOST...")],
) -> None:
    """Switch machines on: the storage server sends each one's Wake-on-LAN
    magic packet on the boot LAN (out of the interface the config's
    serve.interface names), to the MAC zboot has for it. The machine must
    have Wake-on-LAN enabled in its firmware; zboot cannot see whether it
    woke. Example: zboot power on pc01 pc02"""

    def action(s: Session) -> Outcome:
        names = list(dict.fromkeys(host_name(h) for h in hosts))
        wakes = ops.power_on(s.context, names)
        interface = s.config.serve.interface or ""
        return one_or_batch(
            wakes,
            lambda one: Outcome(
                view(one, interface),
                f"host {one.host}: Wake-on-LAN sent to {one.mac} on {interface}",
            ),
            lambda all_: batch_outcome(
                [
                    HostResult(w.host, {"mac": w.mac or None}, f"{w.mac} on {interface}", w.error)
                    for w in all_
                ],
                "sent",
                {"interface": interface},
            ),
            batched=len(names) > 1,
        )

    # sending changes nothing on the server: no lock to wait for
    run(ctx, "power on", action, changes=False)


def view(wake: Wake, interface: str) -> dict[str, Any]:
    return {"host": wake.host, "mac": wake.mac, "interface": interface}
