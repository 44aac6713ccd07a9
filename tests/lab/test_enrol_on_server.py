"""Enrolment on the lab's real pool: two machines recorded by the boot
service's own function (record_seen, run in-process over zboot's SSH runner,
as `zboot serve` calls it), listed by `zboot discovered`, adopted in one
command, after which each has its host and neither has a record. The image
and the checks at the end go straight to ZFS: each zboot command costs 5-10 s
in the emulated VM."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from zboot_cli import Zboot
from zboot_lab.layout import Layout
from zboot_lab.remote import ssh, ssh_text

from zboot.cli.session import Session
from zboot.names import mac
from zboot.ops import enrol
from zboot.ops.enrol import RECORDED, Seen

# CI runs this one; the e2e enrolment through the real service and a real
# client's boot is left to `lab test --full` (docs/lab.md).
pytestmark = pytest.mark.lab


def test_two_machines_are_recorded_listed_and_adopted(lab: Layout, zboot: Zboot) -> None:
    # the image made straight with zfs, as `zboot image create` and `snapshot`
    # would (two zboot commands cost about 16 s in the emulated VM)
    images = f"{zboot.root}/images"
    made = "org.zboot:created=2030-01-01T00:00:00Z"
    ssh(
        lab,
        [
            "sh",
            "-c",
            'zfs create -p -o mountpoint=none "$1" && '
            'zfs create -s -V 8M -o org.zboot:kind=image -o "$2" "$1/gold" && '
            'zfs snapshot -o "$2" "$1/gold@v1"',
            "sh",
            images,
            made,
        ],
    )
    prefix = "52:54:00:e1:" + secrets.token_hex(1)
    macs = [mac(f"{prefix}:{n:02x}") for n in (1, 2)]
    hostile = {"manufacturer": "QEMU\t\n\x1b[31m", "serial": "S" * 100, "colour": "red"}
    session = Session(config_file=Path(zboot.env["ZBOOT_CONFIG"]))
    try:
        seen = [Seen(m, hostile | {"uuid": f"uuid-{m[-2:]}"}, "10.0.0.9") for m in macs]
        assert enrol.record_seen(session.context, seen) == [RECORDED, RECORDED]
    finally:
        session.close()

    listed = zboot("discovered")["data"]
    assert [(r["mac"], r["uuid"], r["address"]) for r in listed] == [
        (macs[0], "uuid-01", "10.0.0.9"),
        (macs[1], "uuid-02", "10.0.0.9"),
    ]
    assert listed[0]["manufacturer"] == "QEMU???[31m" and listed[0]["serial"] == "S" * 64

    adopted = zboot("adopt", *macs, "--image", "gold", "--names", "lab{n:02}")["data"]
    assert [(h["host"], h["ok"]) for h in adopted["hosts"]] == [("lab01", True), ("lab02", True)]
    assert adopted["undiscovered"] == []
    # read straight from ZFS (`zboot list` and `discovered` cost 9 s each)
    hosts = ssh_text(
        lab, ["zfs", "get", "-H", "-r", "-o", "name,value", "org.zboot:mac", f"{zboot.root}/hosts"]
    ).splitlines()
    assert hosts[1:] == [
        f"{zboot.root}/hosts/lab01\t{macs[0]}",
        f"{zboot.root}/hosts/lab02\t{macs[1]}",
    ]
    where = f"{zboot.root}/discovered"
    props = ssh_text(lab, ["zfs", "get", "-H", "-s", "local", "-o", "property", "all", where])
    assert "org.zboot:seen-" not in props
