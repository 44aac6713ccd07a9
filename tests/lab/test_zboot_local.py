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

import jsonschema
import pytest
from zboot_lab.layout import POOL, Layout
from zboot_lab.remote import ssh, ssh_text

from zboot.schema import envelope_schema

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
# The guest sees the host's root read-only, this checkout and its .venv included.
PYTHON = str(REPO / ".venv" / "bin" / "python")
SCHEMA = envelope_schema()


def zboot_on_server(lab: Layout, config: str, *args: str) -> Any:
    line = (
        f"cd {shlex.quote(str(REPO))} && {shlex.quote(PYTHON)} -m zboot --server local "
        f"--config {shlex.quote(config)} --json " + shlex.join(args)
    )
    result = ssh(
        lab, ["sh", "-c", line], check=False, kind="zboot command (in the VM, --server local)"
    )
    out: dict[str, Any] = json.loads(result.stdout)
    assert result.returncode == 0, out
    jsonschema.validate(out, SCHEMA)
    return out["data"]


SOURCES = """
set -e
head -c 1048576 /dev/urandom > "$1.raw"
head -c 3145728 /dev/zero >> "$1.raw"
qemu-img convert -f raw -O qcow2 "$1.raw" "$1.qcow2"
zfs create -V 4M "$2"
udevadm settle
dd if="$1.raw" of="/dev/zvol/$2" bs=1M status=none conv=fsync
sha256sum < "$1.raw"
"""


@pytest.mark.full  # zboot in the emulated VM: CI runs the contract on both backends
def test_local_run_uses_libzfs_core(lab: Layout) -> None:
    tag = uuid.uuid4().hex[:8]
    root, device_source = f"{POOL}/l-{tag}", f"{POOL}/l-{tag}-src"
    config, files = f"/run/zboot-l-{tag}.toml", f"/run/zboot-l-{tag}"
    ssh(
        lab,
        ["sh", "-c", 'cat > "$1"', "sh", config],
        stdin=f'[zfs]\npool = "{POOL}"\nroot = "{root}"\n'.encode(),
    )
    try:
        want = ssh_text(lab, ["sh", "-c", SOURCES, "sh", files, device_source]).split()[0]
        init = zboot_on_server(lab, config, "init")
        assert init["backend"] == "libzfs_core"
        assert {"target.engine", "target.iqn_base", "server.host"} <= set(init["config"]["added"])

        for name, source in (
            ("fromqcow", f"{files}.qcow2"),
            ("fromdev", f"/dev/zvol/{device_source}"),
        ):
            imported = zboot_on_server(lab, config, "image", "import", name, source)
            assert imported["size"] == 4 * 1024 * 1024
            assert zvol_sha(lab, imported["dataset"], imported["size"]) == want, name
        zboot_on_server(lab, config, "image", "create", "blank", "--size", "8M")
        zboot_on_server(lab, config, "image", "snapshot", "fromdev", "-m", "from a device")
        zboot_on_server(lab, config, "clone", "fromdev", "pcd", "--mac", "52:54:00:0b:00:02")
        # (each zboot start costs about 10 s in the emulated VM; `list` and
        # `image list` read the same state as `show` and `image show`)
        shown = zboot_on_server(lab, config, "image", "show", "fromdev")
        assert [(v["version"], v["message"], v["hosts"]) for v in shown["versions"]] == [
            ("v1", "from a device", "pcd")
        ]

        zboot_on_server(lab, config, "snapshot", "pcd", "-n", "p1")
        rolled = zboot_on_server(lab, config, "rollback", "pcd", "--to", "p1")
        assert rolled["archive"].startswith(f"{root}/archive/pcd-")
        names = ssh_text(lab, ["zfs", "list", "-H", "-r", "-t", "all", "-o", "name", root]).split()
        assert f"{root}/hosts/pcd@p1" in names  # promoted back to the host
        shown_host = zboot_on_server(lab, config, "show", "pcd")
        assert (shown_host["record"]["image"], shown_host["record"]["version"]) == ("fromdev", "v1")
        archived = shown_host["archives"]
        assert [a["name"] for a in archived] == [rolled["archive"].rsplit("/", 1)[1]]
        assert zboot_on_server(lab, config, "prune", "pcd", "--yes")["pruned"] == [
            archived[0]["name"]
        ]
        assert leaf_names(lab, f"{root}/archive") == []
        zboot_on_server(lab, config, "destroy", "pcd", "--yes")
        for image in ("fromqcow", "fromdev", "blank"):
            zboot_on_server(lab, config, "image", "destroy", image, "--yes")
        assert leaf_names(lab, root) == ["archive", "hosts", "images"]

        history = ssh_text(lab, ["zpool", "history", POOL])
        mine = [line for line in history.splitlines() if root in line]
        assert any("zfs create -s -V 8388608" in line for line in mine)  # via the CLI
        for verb in ("snapshot", "clone", "rename", "promote", "destroy"):
            assert not any(f"zfs {verb} " in line for line in mine), (verb, mine)
    finally:
        ssh(
            lab,
            [
                "sh",
                "-c",
                'zfs destroy -r "$1"; zfs destroy -r "$2"; rm -f "$3" "$4".*; true',
                "sh",
                root,
                device_source,
                config,
                files,
            ],
        )


def zvol_sha(lab: Layout, dataset: str, nbytes: int) -> str:
    return ssh_text(
        lab, ["sh", "-c", f'head -c {nbytes} "/dev/zvol/$1" | sha256sum', "sh", dataset]
    ).split()[0]


def leaf_names(lab: Layout, dataset: str) -> list[str]:
    """Every dataset and snapshot below dataset, relative to it."""
    listed = ssh_text(lab, ["zfs", "list", "-H", "-r", "-t", "all", "-o", "name", dataset])
    return sorted(name[len(dataset) + 1 :] for name in listed.split() if name != dataset)
