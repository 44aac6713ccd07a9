"""Running Python programs on the storage server (engine agents, the lock
holder). They run as root, so their Python is isolated from where and by
whom zboot was started: `env -i` (no PYTHONPATH, PYTHONSTARTUP, LD_PRELOAD,
...), `python3 -I` (no current directory, no user site on sys.path) and the
working directory `/` before anything is imported (a `json.py` planted where
an admin runs `zboot --server local` is never imported)."""

from __future__ import annotations

SERVER_PYTHON = "/usr/bin/python3"  # the distribution's, never a virtualenv's
SERVER_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def python_argv(program: str, *args: str, site: bool = True) -> list[str]:
    """argv running `program` (Python source) with args in the server's python3,
    isolated (see the module docstring); site=False: without the site module
    (a faster start, for a program that needs only the standard library)."""
    return [
        "env",
        "-i",
        SERVER_PATH,
        SERVER_PYTHON,
        "-I" if site else "-IS",
        "-c",
        f"import os; os.chdir('/'); {program}",
        *args,
    ]
