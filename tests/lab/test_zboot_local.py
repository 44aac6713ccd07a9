"""zboot run on the storage server itself (`--server local`): the same workflow,
with changes made through libzfs_core (pyzfs). zfs(8) logs every command it
runs in the pool history; libzfs_core calls leave no such line, which is how
the test knows pyzfs really did the work."""

from __future__ import annotations

import json
import shlex
import uuid
from pathlib import Path
from typing import Any

import pytest
from zboot_lab.layout import POOL, Layout
from zboot_lab.remote import ssh, ssh_text

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
# The guest sees the host's root read-only, this checkout and its .venv included.
PYTHON = str(REPO / ".venv" / "bin" / "python")


def zboot_on_server(lab: Layout, config: str, *args: str) -> dict[str, Any]:
    line = (f"cd {shlex.quote(str(REPO))} && {shlex.quote(PYTHON)} -m zboot --server local "
            f"--config {shlex.quote(config)} --json " + shlex.join(args))
    result = ssh(lab, ["sh", "-c", line], check=False)
    out: dict[str, Any] = json.loads(result.stdout)
    assert result.returncode == 0, out
    return out["data"]  # type: ignore[no-any-return]


def test_local_run_uses_libzfs_core(lab: Layout) -> None:
    root = f"{POOL}/l-{uuid.uuid4().hex[:8]}"
    config = f"/run/zboot-{root.rsplit('/', 1)[1]}.toml"
    ssh(lab, ["sh", "-c", 'cat > "$1"', "sh", config],
        stdin=f'[zfs]\npool = "{POOL}"\nroot = "{root}"\n'.encode())
    try:
        assert zboot_on_server(lab, config, "init")["backend"] == "libzfs_core"
        zboot_on_server(lab, config, "image", "create", "base", "--size", "8M")
        assert zboot_on_server(lab, config, "image", "snapshot", "base")["version"] == "v1"
        zboot_on_server(lab, config, "clone", "base", "pcl", "--mac", "52:54:00:0b:00:01")
        zboot_on_server(lab, config, "snapshot", "pcl", "p1")
        rolled = zboot_on_server(lab, config, "rollback", "pcl", "p1")
        assert rolled["archive"].startswith(f"{root}/archive/pcl-")
        names = ssh_text(lab, ["zfs", "list", "-H", "-r", "-t", "all", "-o", "name", root]).split()
        assert f"{root}/hosts/pcl@p1" in names  # promoted back to the host
        zboot_on_server(lab, config, "destroy", "pcl", "--yes")

        history = ssh_text(lab, ["zpool", "history", POOL])
        mine = [line for line in history.splitlines() if root in line]
        assert any("zfs create -s -V 8388608" in line for line in mine)  # via the CLI
        for verb in ("snapshot", "clone", "rename", "promote", "destroy"):
            assert not any(f"zfs {verb} " in line for line in mine), (verb, mine)
    finally:
        ssh(lab, ["sh", "-c", 'zfs destroy -r "$1" 2>/dev/null; rm -f "$2"; true',
                  "sh", root, config])
