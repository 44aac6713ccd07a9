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
from ..errors import InvalidInput, ZbootError
from ..ops.context import Context, open_context
from ..remote import lock
from ..remote.base import Runner
from ..remote.local import LocalRunner
from ..remote.plan import PlanRunner
from ..zfs.cli import datasets_argvs
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
    _context: Context | None = None
    progress: HostsBar | None = None  # a batch's bar, on a terminal
    command: str = ""
    changes: bool = False  # take the server's lock before the first command
    engine: bool = False  # the command uses the target engine

    @property
    def config(self) -> config_mod.Config:
        if self._config is None:
            if self.server is None and config_mod.find_config(self.config_file) is None:
                raise no_server()
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
                    # the session agent pays off where a run makes changes or
                    # calls the engine; a read of ZFS alone is quicker without
                    agent=self.changes or self.engine,
                    prefetch=LIO_MODULES
                    if self.engine and self.config.engine in ("lio", "auto")
                    else (),
                    # a run that changes reads every dataset first, once it
                    # holds the lock: the agent starts those reads at once
                    early_reads=datasets_argvs(self.config.root) if self.changes else (),
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
    def context(self) -> Context:
        """What the workflows in zboot.ops work with: made on first use (a
        command that fails on its arguments never reads the config)."""
        if self._context is None:
            self._context = open_context(
                self.config, self.runner, dry_run=self.dry_run, on_progress=self.progress
            )
        return self._context

    def close(self) -> None:
        if self._runner is not None:
            self._runner.close()


def no_server() -> InvalidInput:
    """No config file and no --server: zboot does not guess that this machine
    is the storage server (on a laptop that ends in `zfs: command not found`)."""
    looked = " or ".join(str(p) for p in config_mod.default_paths())
    return InvalidInput(
        f"no storage server given: no --server, and no config file at {looked}",
        hint="give --server USER@HOST (--server local on the storage server itself), "
        "or write a config with `zboot init --server USER@HOST --pool POOL ...`, "
        f"or create {config_mod.user_config()} with a [server] host",
    )


# what the LIO engine's agent imports on the server: the session agent
# imports it while the command reads its state (remote.agent_client)
LIO_MODULES = ("rtslib_fb",)


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run(
    ctx: typer.Context,
    command: str,
    action: Callable[[Session], Outcome],
    changes: bool = True,
    engine: bool | None = None,
) -> None:
    """Run action; print its outcome (or the dry-run plan); exit with its code.
    A command that changes the server holds the server's lock while it runs.
    engine: the command uses the target engine (default: when it changes)."""
    session: Session = ctx.obj
    session.command, session.changes = command, changes
    session.engine = changes if engine is None else engine
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
    if session.verbose:
        list_commands(session)
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


def list_commands(session: Session) -> None:
    """-v, on stderr (also with --json): every command run, then, in a real
    run, what changed, in the lines a dry run plans it with."""
    if session._runner is None:
        return
    for argv in session._runner.commands:
        line = " ".join(argv).replace(lock.HOLDER, "<zboot lock holder>")
        print("ran: " + line, file=sys.stderr)
    if not session.dry_run:
        for line in session._runner.changes:
            print(f"change: {line}", file=sys.stderr)


def confirm(question: str, yes: bool, as_json: bool) -> bool:
    """Ask on a terminal; without one (or with --json), --yes is required."""
    if yes:
        return True
    if as_json or not sys.stdin.isatty():
        raise InvalidInput(f"{question} Give --yes when there is no terminal to ask on.")
    return typer.confirm(question)
