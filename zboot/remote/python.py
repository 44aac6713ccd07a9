"""Running Python programs on the storage server (engine agents, the lock
holder). They run as root, so their Python is isolated from where and by
whom zboot was started: `env -i` (no PYTHONPATH, PYTHONSTARTUP, LD_PRELOAD,
...), `python3 -I` (no current directory, no user site on sys.path) and the
working directory `/` before anything is imported (a `json.py` planted where
an admin runs `zboot --server local` is never imported)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

SERVER_PYTHON = "/usr/bin/python3"  # the distribution's, never a virtualenv's
SERVER_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


PREFIX = "import os; os.chdir('/'); "


def python_argv(program: str, *args: str, site: bool = True) -> list[str]:
    """argv running `program` (Python source) with args in the server's python3,
    isolated (see the module docstring); site=False: without the site module
    (a faster start, for a program that needs only the standard library).

    A program run with the site module (the engine agents, the rtslib probe)
    may run inside zboot's session agent instead of a new process (see
    remote.session_agent), so it must leave the process as it found it: no
    signal handlers, no threads left running, nothing left open. The lock
    holder and breaker and the wake sender run with site=False, always in a
    process of their own."""
    return [
        "env",
        "-i",
        SERVER_PATH,
        SERVER_PYTHON,
        "-I" if site else "-IS",
        "-c",
        PREFIX + program,
        *args,
    ]


def in_process(argv: Sequence[str]) -> tuple[str, Sequence[str]] | None:
    """(program, args) when argv is python_argv(program, *args) with the site
    module (see python_argv), else None."""
    head = ["env", "-i", SERVER_PATH, SERVER_PYTHON, "-I", "-c"]
    if list(argv[:6]) != head or len(argv) < 7 or not argv[6].startswith(PREFIX):
        return None
    return argv[6], argv[7:]


def module_name(name: str) -> str:
    """The `__name__` an agent runs under (it calls main() only under it)."""
    return f"zboot_{name}_agent"


def bootstrap(name: str) -> str:
    """The `-c` program: split stdin into the agent's source and its request,
    then run the source with REQUEST set."""
    return (
        "import sys; src, _, req = sys.stdin.buffer.read().partition(b'\\0'); "
        f"exec(compile(src, 'zboot-{name}-agent', 'exec'), "
        f"{{'__name__': '{module_name(name)}', 'REQUEST': req}})"
    )


def payload(source: str, request: dict[str, Any]) -> bytes:
    return source.encode() + b"\0" + json.dumps(request).encode()
