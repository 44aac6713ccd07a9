"""zboot's own LIO exports, with real logins from the host (libiscsi): the
host's initiator reads its disk, any other name is refused; while a session
is open, rollback and destroy exit 4 and change nothing; after it ends they
go through, and the export comes back after a rollback."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from zboot_cli import Zboot
from zboot_lab import iscsi
from zboot_lab.layout import Layout
from zboot_lab.remote import ssh_text

pytestmark = pytest.mark.lab

MIB = 1024 * 1024
INITIATOR = "iqn.2010-04.org.ipxe:pce1"  # zboot's default for host pce1
INTRUDER = "iqn.2010-04.org.ipxe:intruder"


def datasets(lab: Layout, root: str) -> str:
    return ssh_text(lab, ["zfs", "list", "-H", "-p", "-r", "-t", "all", "-o",
                          "name,origin,org.zboot:state", root])


def wait_until(check: object, seconds: float = 60.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if callable(check) and check():
            return True
        time.sleep(1)
    return False


def test_lio_export_lifecycle(lab: Layout, zboot: Zboot, tmp_path: Path) -> None:
    data = os.urandom(MIB) + bytes(3 * MIB)
    source = tmp_path / "disk.raw"
    source.write_bytes(data)
    portal = f"127.0.0.1:{lab.lio_port}"

    zboot("init")
    zboot("image", "import", "gold", str(source))
    zboot("image", "snapshot", "gold")
    cloned = zboot("clone", "gold", "pce1", "--mac", "52:54:00:0e:00:01")["data"]
    target = cloned["target"]
    assert target == f"{cloned['target'].rsplit(':', 1)[0]}:pce1"

    shown = zboot("export", "show", "pce1")["data"]
    assert shown["exported"] and shown["lun"] == 0 and shown["initiator"] == INITIATOR
    assert shown["root_path"].endswith(f":0:{target}") and shown["in_use"] == []

    copy = tmp_path / "read.raw"
    iscsi.read_lun(portal, target, 0, INITIATOR, copy)
    assert copy.read_bytes() == data  # the host's initiator reads its own disk
    refused = iscsi.inquiry(portal, target, 0, INTRUDER)
    assert refused.returncode != 0 and "Authorization failure" in refused.stderr

    perf = subprocess.Popen(["iscsi-perf", "-i", INITIATOR, f"iscsi://{portal}/{target}/0"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_until(lambda: zboot("export", "show", "pce1")["data"]["in_use"])
        [row] = zboot("list")["data"]
        assert row["in_use"] == [INITIATOR] and row["target"] == target
        before = datasets(lab, zboot.root)
        for args in (["rollback", "pce1"], ["destroy", "pce1", "--yes"]):
            out = zboot(*args, code=4)
            assert INITIATOR in out["errors"][0]["message"], args
        assert datasets(lab, zboot.root) == before
        assert perf.poll() is None  # the session was never cut
    finally:
        perf.terminate()
        perf.wait(timeout=30)

    assert wait_until(lambda: not zboot("export", "show", "pce1")["data"]["in_use"])
    zboot("rollback", "pce1")
    iscsi.read_lun(portal, target, 0, INITIATOR, copy)
    assert copy.read_bytes() == data  # exported again after the rollback
    zboot("destroy", "pce1", "--yes")
    gone = iscsi.inquiry(portal, target, 0, INITIATOR)
    assert gone.returncode != 0  # no target left behind
