"""One zboot run: its options, its one connection to the server, and the
wrapper that turns an action into output and an exit code."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer

from .. import config as config_mod
from .. import faults
from ..config import default_engine
from ..errors import InvalidInput, ZbootError
from ..remote import lock
from ..remote.base import Runner
from ..remote.local import LocalRunner
from ..remote.plan import PlanRunner
from ..targets.base import NoEngine, TargetEngine
from ..targets.comstar import ComstarEngine
from ..targets.ctld import CtldEngine
from ..targets.istgt import DEFAULT_CONF as ISTGT_CONF
from ..targets.istgt import IstgtEngine
from ..targets.lio import LioEngine, has_rtslib
from ..targets.tgt import TgtEngine
from ..zfs.cli import ZfsCli
from ..zfs.lzc import zfs_backend
from .output import emit_json, report_error, report_interrupt
from .progress import HostsBar, hosts_bar


@dataclass
class Outcome:
    data: Any
    text: str
    # a batch that went on past failed hosts: their errors, and a non-zero exit
    errors: list[ZbootError] = field(default_factory=list)


@dataclass
class Session:
    config_file: Path | None = None
    server: str | None = None
    json: bool = False
    dry_run: bool = False
    verbose: int = 0
    accept_new_host_key: bool = False
    _config: config_mod.Config | None = None
    _runner: PlanRunner | None = None
    _zfs: ZfsCli | None = None
    _engine: TargetEngine | None = None
    progress: HostsBar | None = None  # a batch's bar, on a terminal
    command: str = ""
    changes: bool = False  # take the server's lock before the first command

    @property
    def config(self) -> config_mod.Config:
        if self._config is None:
            self._config = config_mod.load(self.config_file, self.server)
        return self._config

    @property
    def runner(self) -> Runner:
        """The server's runner inside a PlanRunner, in both modes: a dry run
        plans every change, a real run makes it; both list it in .changes.
        A real run that changes takes the lock (never listed) inside it."""
        if self._runner is None:
            server = self.config.server
            real: Runner
            if server.is_local:
                real = LocalRunner(sudo=server.sudo)
            else:
                from ..remote.ssh import SshRunner

                real = SshRunner(
                    server.host,
                    port=server.port,
                    user=server.user,
                    key_file=server.key,
                    known_hosts=server.known_hosts,
                    sudo=server.sudo,
                    trust_unknown_host=self.accept_new_host_key,
                )
                faults.on_drop(real.cut)
            inner: Runner = real
            if self.changes and not self.dry_run:  # a dry run holds no lock
                where = "this server" if server.is_local else server.host
                inner = lock.LockedRunner(
                    real,
                    lambda inner: lock.acquire(
                        inner, self.command, server.lock_timeout, where, say
                    ),
                )
            self._runner = PlanRunner(inner, execute=not self.dry_run)
        return self._runner

    @property
    def zfs(self) -> ZfsCli:
        if self._zfs is None:
            self._zfs = zfs_backend(self.runner, self.config.server.is_local, self.dry_run)
            self._zfs.on_progress = self.progress
        return self._zfs

    @property
    def engine(self) -> TargetEngine:
        """The configured target engine; "auto" looks at what the server has."""
        if self._engine is None:
            self._engine = faults.watch(make_engine(self.config.engine, self.runner))
        return self._engine

    def close(self) -> None:
        if self._runner is not None:
            self._runner.close()


BUILT_ENGINES = ("lio", "tgt", "istgt", "ctld", "comstar", "none")
ENGINE_TOOLS = ("targetcli", "tgtadm", "istgtcontrol", "ctladm", "itadm")
FREEBSD_ISTGT_CONF = "/usr/local/etc/istgt/istgt.conf"


def tools_on_server(runner: Runner, names: tuple[str, ...]) -> list[str]:
    """Which of these commands the server has on its PATH."""
    check = 'for t; do command -v "$t" >/dev/null && echo "$t"; done; true'
    return runner.run(["sh", "-c", check, "sh", *names], read_only=True).text.split()


def make_engine(name: str, runner: Runner) -> TargetEngine:
    if name == "auto":
        name = default_engine(tools_on_server(runner, ENGINE_TOOLS), has_rtslib(runner))
    if name == "lio":
        return LioEngine(runner)
    if name == "tgt":
        return TgtEngine(runner)
    if name == "istgt":
        on_freebsd = runner.run(["test", "-e", FREEBSD_ISTGT_CONF], check=False).ok
        return IstgtEngine(runner, conf=FREEBSD_ISTGT_CONF if on_freebsd else ISTGT_CONF)
    if name == "ctld":
        return CtldEngine(runner)
    if name == "comstar":
        return ComstarEngine(runner)
    if name == "none":
        return NoEngine()
    raise InvalidInput(
        f"target engine {name!r} is not supported",
        hint=f"set [target] engine to one of: {', '.join(BUILT_ENGINES)}",
    )


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run(
    ctx: typer.Context, command: str, action: Callable[[Session], Outcome], changes: bool = True
) -> None:
    """Run action; print its outcome (or the dry-run plan); exit with its code.
    A command that changes the server holds the server's lock while it runs."""
    session: Session = ctx.obj
    session.command, session.changes = command, changes
    session.progress = hosts_bar(f"{command}: hosts", session.json)
    try:
        outcome = action(session)
    except ZbootError as err:
        raise typer.Exit(report_error(command, err, session.json)) from None
    except KeyboardInterrupt:
        raise typer.Exit(report_interrupt(command, session.json)) from None
    finally:
        if session.progress is not None:
            session.progress.stop()
        session.close()
    listed = session._runner.changes if session._runner is not None else []
    if session.verbose and session._runner is not None:  # on stderr, also with --json
        for argv in session._runner.commands:
            print("ran: " + " ".join(argv), file=sys.stderr)
        if not session.dry_run:  # what changed, listed as a dry run plans it
            for line in listed:
                print(f"change: {line}", file=sys.stderr)
    code = int(outcome.errors[0].exit_code) if outcome.errors else 0
    if session.json:
        data = (
            {"dry_run": True, "planned": listed, "result": outcome.data}
            if session.dry_run
            else outcome.data
        )
        emit_json(command, data, [e.to_json() for e in outcome.errors], code)
        raise typer.Exit(code)
    if session.dry_run:
        print("dry run: nothing was changed. Planned commands:")
        for line in listed or ["(none)"]:
            print(f"  {line}")
    elif outcome.text:
        print(outcome.text)
    for failure in outcome.errors:
        print(f"zboot: error: {failure.message}", file=sys.stderr)
    raise typer.Exit(code)


def confirm(question: str, yes: bool, as_json: bool) -> bool:
    """Ask on a terminal; without one (or with --json), --yes is required."""
    if yes:
        return True
    if as_json or not sys.stdin.isatty():
        raise InvalidInput(f"{question} Give --yes when there is no terminal to ask on.")
    return typer.confirm(question)
