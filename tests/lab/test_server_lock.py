"""The server lock against the storage VM: two zboots provisioning at once
both succeed, one after the other, and LIO ends up with every export of
both; a zboot that waits too long gives up with exit 4; reads never wait."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from zboot_cli import Zboot
from zboot_lab import iscsi
from zboot_lab.keys import ssh_argv
from zboot_lab.layout import Layout
from zboot_lab.remote import ssh_text

pytestmark = pytest.mark.lab

LOCK_FILE = "/run/zboot/lock"
# a lock held by hand, as zboot's holder holds it, until its stdin ends
HAND_HOLDER = (
    "import fcntl, os, sys; os.makedirs('/run/zboot', 0o700, exist_ok=True); "
    f"fd = os.open({LOCK_FILE!r}, os.O_RDWR | os.O_CREAT, 0o600); "
    "fcntl.lockf(fd, fcntl.LOCK_EX); os.pwrite(fd, b'a lock held by hand\\n', 0); "
    "print('held', flush=True); sys.stdin.read()"
)


def hosts_file(path: Path, prefix: str, octet: int) -> Path:
    path.write_text(
        "host,mac\n"
        + "".join(f"{prefix}{n:02},52:54:00:1c:{octet:02x}:{n:02x}\n" for n in range(1, 11))
    )
    return path


def start(zboot: Zboot, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "zboot", "--json", *args],
        env=zboot.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.full  # CI's time budget: docs/lab.md
def test_two_zboots_provisioning_at_once_take_turns(
    lab: Layout, zboot: Zboot, tmp_path: Path
) -> None:
    disk = tmp_path / "disk.raw"
    disk.write_bytes(os.urandom(1 << 20))
    zboot("init")
    zboot("image", "import", "gold", str(disk))
    zboot("image", "snapshot", "gold")
    first = start(zboot, "clone", "gold", "--hosts", str(hosts_file(tmp_path / "a.csv", "pcla", 1)))
    deadline = time.monotonic() + 120
    while "zboot clone" not in ssh_text(lab, ["cat", LOCK_FILE]):  # the first holds it
        assert time.monotonic() < deadline and first.poll() is None, first.communicate()
        time.sleep(0.5)
    second = start(
        zboot, "clone", "gold", "--hosts", str(hosts_file(tmp_path / "b.csv", "pclb", 2))
    )
    outputs = [p.communicate(timeout=600) for p in (first, second)]
    assert [p.returncode for p in (first, second)] == [0, 0], outputs
    assert "waiting up to" in outputs[1][1] and "zboot clone by" in outputs[1][1]
    made = [h["record"] for out, _ in outputs for h in json.loads(out)["data"]["hosts"]]
    assert len(made) == 20
    portal = f"127.0.0.1:{lab.lio_port}"
    for record in made:  # every export works, for its own initiator
        login = iscsi.inquiry(portal, record["target"], 0, record["initiator"])
        assert login.returncode == 0, (record["target"], login.stderr)
    saved = json.loads(ssh_text(lab, ["cat", "/etc/rtslib-fb-target/saveconfig.json"]))
    targets = {t["wwn"] for t in saved["targets"]}
    assert {r["target"] for r in made} <= targets  # the saved config has both batches


def test_a_zboot_that_waits_too_long_gives_up_and_reads_never_wait(
    lab: Layout, zboot: Zboot, tmp_path: Path
) -> None:
    zboot("init")
    config = tmp_path / "impatient.toml"
    text = Path(zboot.env["ZBOOT_CONFIG"]).read_text()
    text = re.sub(r"(?m)^lock_timeout = .*\n", "", text)  # init writes the default
    config.write_text(text.replace("[server]\n", "[server]\nlock_timeout = 3\n", 1))
    holder = subprocess.Popen(
        [*ssh_argv(lab, shared=False), shlex.join(["python3", "-c", HAND_HOLDER])],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        impatient = Zboot(config, zboot.root)
        started = time.monotonic()
        refused = impatient("image", "create", "blank", "--size", "8M", code=4)
        assert time.monotonic() - started < 60
        assert "locked by a lock held by hand" in refused["errors"][0]["message"]
        assert "waiting up to 3 s" in impatient.stderr
        unlock = impatient("unlock", "--yes", code=4)["errors"][0]["message"]
        assert "held by a lock held by hand, which is not a zboot" in unlock
        assert impatient("image", "list")["data"] == []  # a read takes no lock
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=60)
    assert "blank" not in ssh_text(lab, ["zfs", "list", "-H", "-o", "name", "-r", zboot.root])


def server_state(lab: Layout, root: str) -> tuple[str, str]:
    """What a zboot run can change: the root's datasets and LIO's targets."""
    datasets = ssh_text(lab, ["zfs", "list", "-H", "-o", "name", "-r", root])
    targets = ssh_text(lab, ["sh", "-c", "ls /sys/kernel/config/target/iscsi 2>/dev/null; true"])
    return datasets, targets


@pytest.mark.full  # a minute of waiting for the lease: CI's time budget (docs/lab.md)
def test_a_vanished_zboot_lets_go_within_a_minute_and_lands_nothing_after(
    lab: Layout, zboot: Zboot, tmp_path: Path
) -> None:
    """A zboot that goes silent (stopped here: SIGSTOP freezes its heartbeat
    as a dead laptop or a cut cable would) holds the lock until the server's
    holder has heard nothing for 40 s; then a second zboot goes on, and the
    first, when it wakes up, changes nothing more and says why."""
    disk = tmp_path / "disk.raw"
    disk.write_bytes(os.urandom(1 << 20))
    zboot("init")
    zboot("image", "import", "gold", str(disk))
    zboot("image", "snapshot", "gold")
    hosts = hosts_file(tmp_path / "a.csv", "pcva", 3)
    trace, release = tmp_path / "trace", tmp_path / "release"
    first = subprocess.Popen(
        [sys.executable, "-m", "zboot", "--json", "clone", "gold", "--hosts", str(hosts)],
        env=zboot.env
        | {
            "ZBOOT_TEST_FAULT": "clone.cloned:stall",
            "ZBOOT_TEST_FAULT_TRACE": str(trace),
            "ZBOOT_TEST_FAULT_RELEASE": str(release),
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not (trace.exists() and "clone.cloned" in trace.read_text()):
        assert time.monotonic() < deadline and first.poll() is None, first.communicate()
        time.sleep(0.2)
    os.kill(first.pid, signal.SIGSTOP)  # vanished, lock held, its zvols made
    try:
        asked = zboot("unlock", code=2)["errors"][0]["message"]  # --json: wants --yes
        assert asked.startswith("end zboot clone by") and "--yes" in asked
        started = time.monotonic()
        zboot("image", "create", "blank", "--size", "8M")  # waits, then goes on
        waited = time.monotonic() - started
        assert "held by zboot clone by" in zboot.stderr
        print(f"\nlock free {waited:.1f} s after the first zboot went silent")
        assert waited < 60
        after_second = server_state(lab, zboot.root)
        release.touch()
    finally:
        os.kill(first.pid, signal.SIGCONT)
    out, _ = first.communicate(timeout=120)
    assert first.returncode != 0, out
    assert "lost the server's lock" in out, out
    assert server_state(lab, zboot.root) == after_second  # nothing of the first landed
    made = zboot("clone", "gold", "--hosts", str(hosts))["data"]["hosts"]  # finishes it
    assert len(made) == 10
    for host in made:
        record = host["record"]
        login = iscsi.inquiry(f"127.0.0.1:{lab.lio_port}", record["target"], 0, record["initiator"])
        assert login.returncode == 0, (record["target"], login.stderr)
