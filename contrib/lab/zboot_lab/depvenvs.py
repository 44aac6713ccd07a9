"""The two extra virtualenvs `lab test` runs the fast tests in, so the
dependency bounds in pyproject.toml stay true: one resolved to the lowest
version each direct dependency allows (`uv pip install --resolution
lowest-direct`), one to the newest. Both live under the lab's state
directory (venvs/lowest, venvs/newest) and are kept while pyproject.toml and
the checkout's path stay the same; the newest one is made again each day, so
a release that breaks zboot shows up within a day."""

from __future__ import annotations

import datetime
import hashlib
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .install import SYSTEM_PYTHON
from .layout import REPO_ROOT, Layout
from .procs import run

KINDS = ("lowest", "newest")
STAMP = ".zboot-deps"


@dataclass(frozen=True)
class DepVenv:
    kind: str
    python: Path
    made: bool  # False: the cached one was reused


def key(kind: str, today: datetime.date | None = None) -> str:
    """What the venv was made from: pyproject.toml, this checkout's path (the
    editable install points at it) and, for the newest, the day."""
    digest = hashlib.sha256((REPO_ROOT / "pyproject.toml").read_bytes())
    digest.update(str(REPO_ROOT).encode())
    if kind == "newest":
        digest.update((today or datetime.date.today()).isoformat().encode())
    return digest.hexdigest()


def uv(layout: Layout) -> Path:
    """uv (from PyPI), in a venv of its own under the lab's state directory."""
    home = layout.state / "venvs" / "uv"
    binary = home / "bin" / "uv"
    if not binary.exists():
        shutil.rmtree(home, ignore_errors=True)
        run([SYSTEM_PYTHON, "-m", "venv", str(home)])
        run([str(home / "bin" / "pip"), "install", "-q", "uv"])
    return binary


def ensure(layout: Layout, kind: str) -> DepVenv:
    """The `kind` venv with zboot (editable) and its test extras, made anew
    when its key changed. Like .venv it sees the system's packages (rtslib,
    pyzfs), and like .venv it is made from Debian's python."""
    if kind not in KINDS:
        raise ValueError(f"no such dependency venv: {kind}")
    home = layout.state / "venvs" / kind
    python = home / "bin" / "python"
    stamp = home / STAMP
    want = key(kind)
    if stamp.exists() and stamp.read_text() == want and python.exists():
        return DepVenv(kind, python, made=False)
    shutil.rmtree(home, ignore_errors=True)
    home.parent.mkdir(parents=True, exist_ok=True)
    run([SYSTEM_PYTHON, "-m", "venv", "--system-site-packages", str(home)])
    resolution = ["--resolution", "lowest-direct"] if kind == "lowest" else []
    run(
        [
            str(uv(layout)),
            "pip",
            "install",
            "--quiet",
            "--python",
            str(python),
            *resolution,
            "-e",
            f"{REPO_ROOT}[test]",
        ]
    )
    stamp.write_text(want)
    return DepVenv(kind, python, made=True)


def versions(python: Path, names: tuple[str, ...] = ("typer", "click", "rich")) -> str:
    """The versions that matter most, for the phase table ("typer 0.21.1, ...")."""
    code = (
        "import importlib.metadata as m, sys\n"
        "def v(n):\n"
        "    try: return m.version(n)\n"
        "    except m.PackageNotFoundError: return '-'\n"
        "print(', '.join(f'{n} {v(n)}' for n in sys.argv[1:]))"
    )
    out = subprocess.run(
        [str(python), "-c", code, *names], capture_output=True, text=True, check=False
    )
    return out.stdout.strip()
