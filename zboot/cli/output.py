"""What zboot prints: tables (tabulate) for people, a versioned JSON envelope
for programs, and one place that turns errors into messages and exit codes."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from tabulate import tabulate

from ..errors import ExitCode, ZbootError

ENVELOPE_VERSION = 1


def envelope(
    command: str, data: Any, errors: Sequence[dict[str, Any]] = (), exit_code: int = 0
) -> dict[str, Any]:
    return {
        "version": ENVELOPE_VERSION,
        "command": command,
        "status": "ok" if exit_code == 0 else "error",
        "exit_code": exit_code,
        "data": data,
        "errors": list(errors),
    }


def emit_json(
    command: str, data: Any, errors: Sequence[dict[str, Any]] = (), exit_code: int = 0
) -> None:
    print(json.dumps(envelope(command, data, errors, exit_code), indent=2, default=str))


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    if not rows:
        return "(none)"
    return tabulate(
        [[row.get(c, "") for c in columns] for row in rows],
        headers=[c.upper() for c in columns],
        tablefmt="simple",
    )


def report_error(command: str, err: ZbootError, as_json: bool) -> int:
    if as_json:
        emit_json(command, None, [err.to_json()], int(err.exit_code))
    else:
        print(f"zboot: error: {err.message}", file=sys.stderr)
        if err.hint:
            print(f"zboot: hint: {err.hint}", file=sys.stderr)
    return int(err.exit_code)


def report_interrupt(command: str, as_json: bool) -> int:
    if as_json:
        emit_json(
            command,
            None,
            [{"kind": "interrupted", "code": 130, "message": "interrupted", "hint": None}],
            130,
        )
    else:
        print("zboot: interrupted", file=sys.stderr)
    return int(ExitCode.INTERRUPTED)


@contextmanager
def progress_bar(title: str, enabled: bool = True) -> Iterator[Callable[[int, int], None] | None]:
    """A rich progress bar (bytes, rate, ETA) on stderr when it is a terminal;
    nothing otherwise, so stdout carries only the result."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        transient=True,
        console=Console(stderr=True),
    ) as bar:
        task = bar.add_task(title, total=None)

        def update(sent: int, total: int) -> None:
            bar.update(task, completed=sent, total=total)

        yield update
