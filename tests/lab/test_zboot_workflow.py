"""The zboot CLI over SSH against the lab's real pool: init -> import (raw and
qcow2, verified byte for byte) -> snapshot -> clone two hosts -> write ->
rollback (bytes back, discarded state kept) -> a new image version and a
rebase of both hosts onto it (the export serves its bytes, the host stays
who it was) -> destroy refused while hosts
depend on the image -> destroy hosts -> destroy image. A dry import changes
nothing (the other commands' dry runs: test_dry_run_plan.py)."""

from __future__ import annotations

import hashlib
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest
from zboot_cli import Zboot
from zboot_lab import iscsi
from zboot_lab.layout import POOL, Layout
from zboot_lab.remote import ssh, ssh_text

pytestmark = pytest.mark.lab


def zvol_sha(lab: Layout, dataset: str, nbytes: int) -> str:
    return ssh_text(
        lab, ["sh", "-c", f'head -c {nbytes} "/dev/zvol/$1" | sha256sum', "sh", dataset]
    ).split()[0]


def everything(lab: Layout, root: str) -> str:
    """Every property of every dataset under root, once ZFS has settled (pending
    writes synced, background frees of earlier destroys finished)."""
    return ssh_text(
        lab,
        [
            "sh",
            "-c",
            'zpool sync "$1" && zpool wait -t free "$1" && zfs list -H -p -r -t all -o all "$2"',
            "sh",
            POOL,
            root,
        ],
    )


def test_image_and_host_lifecycle(lab: Layout, zboot: Zboot, tmp_path: Path) -> None:
    data = os.urandom(1024 * 1024) + bytes(3 * 1024 * 1024)
    raw = tmp_path / "disk.raw"
    raw.write_bytes(data)
    qcow = tmp_path / "disk.qcow2"
    subprocess.run(
        ["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(qcow)], check=True
    )
    want = hashlib.sha256(data).hexdigest()
    root = zboot.root

    zboot("init")
    for name, source in (("fromraw", raw), ("fromqcow", qcow)):
        imported = zboot("image", "import", name, str(source))["data"]
        assert imported["size"] == len(data)
        assert zvol_sha(lab, imported["dataset"], len(data)) == want
    zboot("image", "destroy", "fromraw", "--yes")
    piped = zboot("image", "import", "fromstdin", "-", "--size", "4M", stdin=data)["data"]
    assert zvol_sha(lab, piped["dataset"], len(data)) == want
    zboot("image", "import", "short", "-", "--size", "8M", stdin=data, code=2)  # too short
    zboot("image", "destroy", "fromstdin", "--yes")

    assert zboot("image", "snapshot", "fromqcow", "-m", "golden")["data"]["version"] == "v1"
    zboot("clone", "fromqcow", "pc1", "--mac", "52:54:00:0a:00:01")
    zboot("clone", "fromqcow@v1", "pc2", "--mac", "52-54-00-0A-00-02")
    hosts = {h["name"]: h for h in zboot("list")["data"]}
    assert hosts["pc2"]["mac"] == "52:54:00:0a:00:02"
    assert hosts["pc1"]["image"] == "fromqcow@v1"

    # Dry runs: an import (its source read, nothing sent) plans and changes
    # nothing here; every other changing command is planned, run, and the
    # two lists compared in test_dry_run_plan.py, each dry run checked to
    # have changed nothing.
    before = everything(lab, root)
    assert zboot("--dry-run", "image", "import", "another", str(raw))["data"]["planned"]
    assert everything(lab, root) == before

    pc1 = f"{root}/hosts/pc1"
    ssh(lab, ["sh", "-c", 'head -c 1048576 /dev/urandom > "/dev/zvol/$1"; sync', "sh", pc1])
    scribbled = zvol_sha(lab, pc1, len(data))
    assert scribbled != want

    rolled = zboot("rollback", "pc1")["data"]
    assert zvol_sha(lab, pc1, len(data)) == want
    assert zvol_sha(lab, rolled["archive"], len(data)) == scribbled  # not lost
    shown = zboot("show", "pc1")["data"]
    assert [a["name"] for a in shown["archives"]] == [rolled["archive"].rsplit("/", 1)[1]]

    # A rollback cut short after its rename (as by a lost connection): the
    # disk sits in the archive with the plan on it; the next rollback ends it.
    pc2, cut = f"{root}/hosts/pc2", f"{root}/archive/pc2-cut"
    ssh(
        lab,
        [
            "sh",
            "-c",
            "zfs set org.zboot:host=pc2 org.zboot:state=rolling-back "
            '"org.zboot:rollback-to=$3" "org.zboot:rollback-archive=$2" "$1" && '
            'zfs rename "$1" "$2"',
            "sh",
            pc2,
            cut,
            f"{root}/images/fromqcow@v1",
        ],
    )
    assert "cut short" in zboot("show", "pc2", code=3)["errors"][0]["message"]
    finished = zboot("rollback", "pc2")["data"]
    assert finished["archive"] == cut
    assert zvol_sha(lab, pc2, len(data)) == want
    listed = zboot("list")["data"]
    assert [h["state"] for h in listed if h["name"] == "pc2"] == ["ready"]

    # The image's next version, and both hosts rebased onto it in one batch:
    # new disks cloned from v2 under the same names, so pc1's export (same
    # target, same initiator) serves v2's bytes; the old disks are archived.
    image = f"{root}/images/fromqcow"
    ssh(lab, ["sh", "-c", 'head -c 4096 /dev/urandom > "/dev/zvol/$1"; sync', "sh", image])
    v2 = zvol_sha(lab, image, len(data))
    assert zboot("image", "snapshot", "fromqcow", "-m", "second")["data"]["version"] == "v2"
    was = {h["name"]: h for h in listed}  # a new image version changes no host
    moved = zboot("rebase", "pc1", "pc2", "--to", "fromqcow")["data"]["hosts"]
    assert [(h["host"], h["moved"]) for h in moved] == [("pc1", True), ("pc2", True)]
    after = {h["name"]: h for h in zboot("list")["data"]}
    for name in ("pc1", "pc2"):
        assert after[name]["image"] == "fromqcow@v2"
        assert {k: v for k, v in after[name].items() if k not in ("image", "used", "state")} == {
            k: v for k, v in was[name].items() if k not in ("image", "used", "state")
        }
    read = tmp_path / "pc1.raw"
    shown = zboot("show", "pc1")["data"]
    record = shown["record"]
    iscsi.read_lun(f"127.0.0.1:{lab.lio_port}", record["target"], 0, record["initiator"], read)
    assert record["rebased-from"] == "fromqcow@v1"
    assert hashlib.sha256(read.read_bytes()[: len(data)]).hexdigest() == v2
    assert len(shown["archives"]) == 2  # the rollback's, and the rebase's
    again = zboot("rebase", "pc1", "--to", "fromqcow@v2")["data"]
    assert again["moved"] is False  # on v2 already: nothing changes

    refused = zboot("image", "destroy", "fromqcow", "--yes", code=4)
    assert "pc1" in refused["errors"][0]["message"]

    zboot("destroy", "pc1", "pc2", "--yes")
    zboot("image", "destroy", "fromqcow", "--yes")
    left = ssh_text(lab, ["zfs", "list", "-H", "-r", "-t", "all", "-o", "name", root]).split()
    # nothing left behind, not even by the import that came up short
    assert left == [root, f"{root}/archive", f"{root}/hosts", f"{root}/images"]


def test_unknown_host_key_is_refused(lab: Layout, zboot: Zboot, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    config = Path(zboot.env["ZBOOT_CONFIG"])
    config.write_text(config.read_text().replace(str(lab.known_hosts), str(empty)))
    refused = zboot("list", code=5)
    assert refused["errors"][0]["kind"] == "host-key"
    assert "--accept-new-host-key" in (refused["errors"][0]["hint"] or "")


def test_bad_names_exit_2_and_run_nothing(lab: Layout, zboot: Zboot) -> None:
    before = everything(lab, POOL)
    for bad in ("pc;reboot", "$(id)", "../x", "a b", "pc@1"):
        zboot("clone", "anything", bad, "--mac", "52:54:00:0a:00:09", code=2)
    zboot("clone", "anything", "pc9", "--mac", "ff:ff:ff:ff:ff:ff", code=2)
    assert everything(lab, POOL) == before


def read_terminal(master: int) -> bytes:
    """Everything written to a pty until its last writer closes it."""
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the other side is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def test_import_shows_progress_on_a_terminal(lab: Layout, zboot: Zboot, tmp_path: Path) -> None:
    source = tmp_path / "big.raw"
    source.write_bytes(os.urandom(32 * 1024 * 1024))
    master, terminal = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "zboot", "image", "import", "big", str(source)],
        stdout=subprocess.PIPE,
        stderr=terminal,
        env=zboot.env | {"TERM": "xterm-256color", "COLUMNS": "120"},
    )
    os.close(terminal)
    drawn = read_terminal(master).decode(errors="replace")
    os.close(master)
    stdout = proc.communicate(timeout=600)[0].decode()
    assert proc.returncode == 0, drawn[-2000:]
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", drawn)  # colours and cursor moves off
    last = screen.replace("\r", "\n").strip().splitlines()[-1]
    assert "importing" in screen
    assert re.search(r"[0-9.]+/33\.6 MB [0-9.]+ [kM]B/s [0-9]:[0-9]{2}:[0-9]{2}", screen), last
    assert "33.6/33.6 MB" in screen, last  # it reached the end
    assert stdout.startswith("imported ") and "\x1b" not in stdout  # the bar stays off stdout
