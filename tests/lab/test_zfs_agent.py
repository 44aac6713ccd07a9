"""A big batch over SSH: its clones, renames and promotes made by zboot's ZFS
agent through libzfs_core on the server (zboot.zfs.lzc_remote), not by a
`zfs` command each. zfs(8) logs every command it runs in the pool history;
libzfs_core calls leave no such line, which is how the test knows. The
hosts come out as a batch of `zfs` commands makes them: exported, with
their records, rolled back onto their origin with the old disks archived,
and a bad host fails alone."""

from __future__ import annotations

from pathlib import Path

import pytest
from zboot_cli import Zboot
from zboot_lab.layout import POOL, Layout
from zboot_lab.remote import ssh_text

from zboot.zfs.lzc_remote import AT_LEAST

pytestmark = pytest.mark.lab


def test_a_big_batch_goes_through_libzfs_core_and_fails_host_by_host(
    lab: Layout, zboot: Zboot, tmp_path: Path
) -> None:
    image = tmp_path / "gold.raw"
    image.write_bytes(bytes(1 << 20))
    zboot("init")
    zboot("image", "import", "gold", str(image))
    zboot("image", "snapshot", "gold")
    names = [f"zag{n:02}" for n in range(AT_LEAST + 1)]  # one fails, AT_LEAST go on
    listing = tmp_path / "hosts.csv"
    listing.write_text(
        "host,mac\n" + "".join(f"{h},52:54:00:a9:00:{n:02x}\n" for n, h in enumerate(names))
    )
    made = zboot("-v", "clone", "gold", "--hosts", str(listing))["data"]
    assert (made["cloned"], made["failed"]) == (len(names), 0)
    ran = [line for line in zboot.stderr.splitlines() if line.startswith("ran: ")]
    assert any("zboot-lzc-agent" in line for line in ran)
    assert not any(line.startswith("ran: zfs clone") for line in ran), ran

    # one host's disk moved out of zboot's root by hand: its rollback fails alone
    away = f"{POOL}/{zboot.root.rsplit('/', 1)[1]}-gone"
    ssh_text(lab, ["zfs", "rename", f"{zboot.root}/hosts/{names[0]}", away])
    rolled = zboot.raw("rollback", *names)
    results = {r["host"]: r for r in rolled["data"]["hosts"]}
    assert rolled["exit_code"] != 0 and not results[names[0]]["ok"]
    assert all(results[h]["ok"] for h in names[1:]), results
    ssh_text(lab, ["zfs", "rename", away, f"{zboot.root}/hosts/{names[0]}"])

    listed = {h["name"]: h for h in zboot("list")["data"]}
    assert all(listed[h]["state"] == "ready" and listed[h]["target"] for h in names)
    archives = ssh_text(lab, ["zfs", "list", "-H", "-o", "name", "-r", f"{zboot.root}/archive"])
    assert sum(f"/archive/{h}-" in archives for h in names[1:]) == AT_LEAST
    shown = zboot("show", names[1])["data"]
    assert shown["record"]["origin"].endswith("/images/gold@v1")
    zboot("destroy", *names, "--yes")

    history = ssh_text(lab, ["zpool", "history", POOL])
    mine = [
        line
        for line in history.splitlines()
        if f"{zboot.root}/hosts/zag" in line and away not in line
    ]
    assert not any(f"zfs {verb} " in line for verb in ("clone", "rename") for line in mine), mine
