"""`zboot server check`: what the storage server has and lacks (read-only)."""

from __future__ import annotations

import typer

from ..errors import ServerError, ZbootError
from ..ops import server_check
from ..ops.server_check import ENGINE_NAMES, Item, Report
from ..ops.server_install import NOT_HERE
from ..remote.plan import PlanRunner
from .output import table
from .session import Outcome, Session, run

app = typer.Typer(help="The storage server itself.", no_args_is_help=True)


class NotReady(ServerError):
    """The server lacks something zboot needs (exit 5, the server's code)."""

    kind = "server-not-ready"


@app.command("check")
def check(ctx: typer.Context) -> None:
    """Show what the server has and lacks for zboot and each target engine.

    Looks at the login (root or sudo -n), SFTP, ZFS and the pool, the
    server's python3, every engine's tools, modules and services, and the
    boot side (boot dir served over HTTP, iPXE first stages, TFTP); for
    each thing missing, the command that installs it on that system.
    Changes nothing. Exit 0 when zboot can work with the server and its
    configured engine, 5 when not.

    Example: zboot --server root@storage server check
    """

    def action(s: Session) -> Outcome:
        report = server_check.check(
            s.runner, s.config, where(s), sftp_check(s) if not s.config.server.is_local else None
        )
        return outcome(report)

    run(ctx, "server check", action, changes=False)


def where(s: Session) -> str:
    server = s.config.server
    if server.is_local:
        return "local"
    user = f"{server.user}@" if server.user else ""
    return f"{user}{server.host}" + (f":{server.port}" if server.port else "")


def sftp_check(s: Session) -> server_check.SftpCheck:
    def opens() -> str | None:
        runner = s.runner
        inner = runner.inner if isinstance(runner, PlanRunner) else runner
        sftp = getattr(inner, "sftp", None)
        if sftp is None:
            return None
        try:
            sftp()
        except ServerError as err:
            return err.message
        return None

    return opens


def outcome(report: Report) -> Outcome:
    os = report.os
    data = {
        "server": report.server,
        "os": {
            "id": os.id or None,
            "version": os.version or None,
            "name": os.name or None,
            "kernel": os.kernel or None,
            "family": os.family,
        },
        "engine": {
            "configured": report.configured,
            "used": report.engine,
            "usable": report.engines.get(report.engine, False),
        },
        "engines": report.engines,
        "ready": report.ready,
        "checks": [i.to_json() for i in report.items],
    }
    errors: list[ZbootError] = []
    if not report.ready:
        names = ", ".join(f"{i.area} {i.name}" for i in report.missing)
        errors.append(
            NotReady(
                f"the server lacks what zboot needs: {names}",
                hint="install what the check lists (the install column)",
            )
        )
    return Outcome(data, text(report), errors=errors)


def rows(report: Report) -> list[Item]:
    """The items for people: an engine that is not usable here and not the
    one in use is one row, not one per missing part."""
    out: list[Item] = []
    for name in dict.fromkeys(i.area for i in report.items):
        items = [i for i in report.items if i.area == name]
        if name in ENGINE_NAMES and name != report.engine and not report.engines.get(name):
            lacking = [i for i in items if i.install is not None and not i.ok] or items
            detail = "not usable: lacks " + ", ".join(i.name for i in lacking)
            how = lacking[0].install
            fix = None if how in NOT_HERE.values() else how  # another system's engine
            out.append(Item(name, f"{name} engine", False, detail, False, fix))
        else:
            out += items
    return out


def text(report: Report) -> str:
    os = report.os
    usable = [n for n in ENGINE_NAMES if report.engines.get(n)]
    head = [
        f"server {report.server}: {os.name or os.kernel or 'unknown system'}",
        f"target engines usable here: {', '.join(usable) or 'none'}; configured: "
        f"{report.configured}" + (f" ({report.engine})" if report.configured == "auto" else ""),
    ]
    shown = rows(report)
    body = table(
        [
            {
                "area": i.area,
                "item": i.name,
                "ok": "yes" if i.ok else ("NO" if i.needed else "no"),
                "detail": i.detail,
            }
            for i in shown
        ],
        ["area", "item", "ok", "detail"],
    )
    fixes: dict[str, list[str]] = {}  # install command -> what it gets
    for i in shown:
        if not i.ok and i.install:
            fixes.setdefault(i.install, []).append(i.name)
    lines = [f"  {', '.join(names)}: {how}" for how, names in fixes.items()]
    tail = ["", "to get what is missing:", *lines] if lines else []
    verdict = "ready" if report.ready else "NOT ready (needed: the rows marked NO)"
    return "\n".join([*head, "", body, *tail, "", f"verdict: {verdict}"])
