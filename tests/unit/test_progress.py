"""The batch progress bar: only for people at a terminal, and it counts hosts."""

from __future__ import annotations

import io

import pytest

from zboot.cli.progress import HostsBar, hosts_bar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_no_bar_for_json_or_a_pipe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert hosts_bar("clone: hosts", as_json=False) is None
    monkeypatch.setattr("sys.stderr", Terminal())
    assert hosts_bar("clone: hosts", as_json=True) is None
    assert isinstance(hosts_bar("clone: hosts", as_json=False), HostsBar)


def test_the_bar_counts_hosts_and_is_cleared_at_the_end(monkeypatch: pytest.MonkeyPatch) -> None:
    screen = Terminal()
    monkeypatch.setattr("sys.stderr", screen)
    bar = hosts_bar("rollback: hosts", as_json=False)
    assert bar is not None
    bar(1, 1)  # a single host: no bar
    assert screen.getvalue() == ""
    bar(10, 20)
    bar(20, 20)
    bar.stop()
    shown = screen.getvalue()
    assert "rollback: hosts" in shown and "20/20" in shown
