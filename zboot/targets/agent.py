"""Shipping a small Python program to the server: the distribution's python3
runs a one-line bootstrap (`-c`), which reads the program's source, a NUL and
a JSON request from stdin and runs the program with the request in `REQUEST`.
The request (secrets included) never appears in any argv on the server.
It runs isolated: see remote.python."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import ServerError
from ..remote.base import Runner
from ..remote.python import SERVER_PYTHON, bootstrap, payload, python_argv

__all__ = [
    "SERVER_PYTHON",
    "agent_source",
    "bootstrap",
    "payload",
    "python_argv",
    "run_agent",
]


def agent_source(filename: str) -> str:
    """The text of an agent module that sits next to this file."""
    return Path(__file__).with_name(filename).read_text()


def run_agent(
    runner: Runner,
    name: str,
    source: str,
    request: dict[str, Any],
    *,
    read_only: bool,
    what: str,
    hint: str,
) -> Any:
    """Run the agent once with request and return its JSON answer (None when it
    prints nothing); read_only: the request only reads (see Runner.run). A
    failure is a ServerError with the agent's last stderr line, which agents
    keep free of secrets."""
    argv = python_argv(bootstrap(name))
    result = runner.run(
        argv, input=payload(source, request), timeout=300, check=False, read_only=read_only
    )
    if result.returncode != 0:
        lines = result.stderr.decode(errors="replace").strip().splitlines()
        raise ServerError(
            f"{what} failed on the server: {lines[-1] if lines else 'no message'}", hint=hint
        )
    return json.loads(result.stdout or b"null")
