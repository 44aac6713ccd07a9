"""The project's own virtualenv (.venv) for tests and development, and the
one test command: lint, types, then pytest with the lab brought up by the
tests' session fixture."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

from .install import SYSTEM_PYTHON
from .layout import REPO_ROOT
from .procs import LabError, run
from .progress import step

VENV = REPO_ROOT / ".venv"
STAMP = VENV / ".zboot-installed"


def ensure_venv() -> Path:
    """Create .venv from Debian's python (it sees rtslib and pyzfs) and install
    zboot with its test extras; redo it only when pyproject.toml changed."""
    want = hashlib.sha256((REPO_ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == want:
        return VENV / "bin" / "python"
    with step(f"installing zboot and its test tools into {VENV}"):
        run([SYSTEM_PYTHON, "-m", "venv", "--system-site-packages", str(VENV)])
        pip = str(VENV / "bin" / "pip")
        run([pip, "install", "-q", "--upgrade", "pip"])
        run([pip, "install", "-q", "-e", f"{REPO_ROOT}[test]"])
        STAMP.write_text(want)
    return VENV / "bin" / "python"


def run_tests(pytest_args: list[str]) -> int:
    python = str(ensure_venv())
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    checks = [
        ("ruff", [python, "-m", "ruff", "check", "zboot", "tests", "contrib/lab",
                  "contrib/bench/fleet"]),
        ("mypy --strict", [python, "-m", "mypy", "zboot", "contrib/lab/zboot_lab", "tests"]),
    ]
    for name, argv in checks:
        with step(name):
            if subprocess.call(argv, cwd=REPO_ROOT, env=env) != 0:
                raise LabError(f"{name} found problems (above)")
    # The slowest tests are listed at the end, to keep an eye on the lab's cost.
    return subprocess.call([python, "-m", "pytest", "--durations=12", *pytest_args],
                           cwd=REPO_ROOT, env=env)
