"""A progress bar for batches, on stderr, only when stderr is a terminal and
the output is for people (not --json): the hosts whose zfs changes are done
(the part of a batch that grows with it). Quiet everywhere else."""

from __future__ import annotations

import sys
from collections.abc import Callable

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

ProgressFn = Callable[[int, int], None]


class HostsBar:
    """Started on first report with more than one host; stop() clears it."""

    def __init__(self, label: str) -> None:
        self.label = label
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def __call__(self, done: int, total: int) -> None:
        if total < 2:
            return
        if self._progress is None:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task(self.label, total=total)
        if self._task is not None:
            self._progress.update(self._task, completed=done, total=total)

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def hosts_bar(label: str, as_json: bool) -> HostsBar | None:
    """A bar for a terminal; None when nobody watches (pipes, --json, CI)."""
    if as_json or not sys.stderr.isatty():
        return None
    return HostsBar(label)
