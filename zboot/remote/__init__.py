"""Running commands and handling files on the storage server, locally or over SSH.

`SshRunner` is imported lazily so that paramiko is loaded only when SSH is used."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import DEFAULT_TIMEOUT, Result, Runner, check_result
from .local import LocalRunner

if TYPE_CHECKING:
    from .ssh import SshRunner, command_line

__all__ = [
    "DEFAULT_TIMEOUT",
    "LocalRunner",
    "Result",
    "Runner",
    "SshRunner",
    "check_result",
    "command_line",
]


def __getattr__(name: str) -> Any:
    if name in ("SshRunner", "command_line"):
        from . import ssh

        return getattr(ssh, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
