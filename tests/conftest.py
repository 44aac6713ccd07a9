"""Test wiring: the `lab` fixture brings the storage VM up once per session,
for tests marked `lab` or `e2e` only; `pytest -m "not lab and not e2e"` needs
neither root nor QEMU."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAB_CMD = REPO / "contrib" / "lab" / "lab"
sys.path.insert(0, str(REPO / "contrib" / "lab"))
sys.path.insert(0, str(REPO / "tests" / "lab"))

from zboot_cli import Zboot  # noqa: E402
from zboot_lab import costs, vm  # noqa: E402
from zboot_lab.layout import POOL, Layout  # noqa: E402
from zboot_lab.remote import ssh, ssh_text  # noqa: E402


@pytest.fixture(scope="session")
def lab_session() -> Iterator[Layout]:
    layout = Layout.from_env()
    was_running = vm.running_pid(layout) is not None
    try:
        with costs.timed("lab up (boot, or reuse the running VM)"):
            subprocess.run([str(LAB_CMD), "up"], check=True)
    except subprocess.CalledProcessError:
        if not was_running:  # leave nothing behind that this session started
            subprocess.run([str(LAB_CMD), "down"], check=False)
        raise
    yield layout
    if not was_running and not os.environ.get("ZBOOT_LAB_KEEP"):
        subprocess.run([str(LAB_CMD), "down"], check=True)


@pytest.fixture
def lab(request: pytest.FixtureRequest, lab_session: Layout) -> Layout:
    """The running lab. Only tests marked lab or e2e may use it."""
    marks = {m.name for m in request.node.iter_markers()}
    if not marks & {"lab", "e2e"}:
        pytest.fail("a test that uses the lab must be marked lab or e2e")
    return lab_session


# Each zboot test gets its own root dataset on the lab's pool and leaves
# nothing behind: its hosts' exports are taken down before the datasets go.
@pytest.fixture
def zboot(lab: Layout, tmp_path: Path) -> Iterator[Zboot]:
    root = f"{POOL}/t-{uuid.uuid4().hex[:8]}"
    text = lab.config.read_text().replace(f'root = "{POOL}/zboot"', f'root = "{root}"')
    config = tmp_path / "zboot.toml"
    config.write_text(text)
    run = Zboot(config, root)
    yield run
    # the hosts' disks, read straight from ZFS (cheaper than `zboot list`)
    names = ssh_text(lab, ["sh", "-c", 'zfs list -H -o name -d 1 -t volume "$1/hosts" '
                           '2>/dev/null | sed "s|.*/||"; true', "sh", root]).split()
    if names:  # one batch: one engine call takes every export down
        run.raw("destroy", *names, "--yes", "--force")
    # the root's dataset, and its (now empty) directory of secret files
    secrets = next((line.split('"')[1] for line in text.splitlines()
                    if line.startswith("secrets_dir")), "/etc/zboot/secrets")
    ssh(lab, ["sh", "-c", 'zfs destroy -r "$1" 2>/dev/null; rmdir "$2" 2>/dev/null; true',
              "sh", root, f"{secrets}/{root.replace('/', '_')}"])


STARTED = time.monotonic()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Where this run's time went, when it used the lab (see docs/lab.md)."""
    if not costs.SPENT:
        return
    total = time.monotonic() - STARTED
    terminalreporter.section(f"where the time went ({total:.0f} s in all)")
    for line in costs.report(total):
        terminalreporter.write_line(line)
