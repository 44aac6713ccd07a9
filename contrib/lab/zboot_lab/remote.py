"""Run commands on the storage VM over SSH (OpenSSH, the lab's own key)."""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Sequence

from .costs import timed
from .keys import ssh_argv
from .layout import Layout
from .procs import LabError


def ssh(
    layout: Layout,
    argv: Sequence[str],
    *,
    stdin: bytes | None = None,
    check: bool = True,
    timeout: float = 600,
    kind: str = "ssh command (tests, shared connection)",
) -> subprocess.CompletedProcess[bytes]:
    """Run argv on the storage VM (quoted for its shell); raise if it fails and check is set.
    kind: what its time counts as in the run's "where the time went"."""
    command = shlex.join(argv)
    with timed(kind):
        result = subprocess.run(
            [*ssh_argv(layout), command],
            input=stdin if stdin is not None else b"",
            capture_output=True,
            timeout=timeout,
        )
    if check and result.returncode != 0:
        raise LabError(
            f"on the storage VM: {command} exited {result.returncode}: "
            + result.stderr.decode(errors="replace").strip()
        )
    return result


def ssh_text(layout: Layout, argv: Sequence[str]) -> str:
    """Run argv on the storage VM and return what it printed."""
    return ssh(layout, argv).stdout.decode()
