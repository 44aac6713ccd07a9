"""zboot reset on the lab's LIO: three ephemeral hosts reset in one command
(their disks rolled back in place to their base; only a host whose own
machine is still logged in has its export taken down and put back); what
was written to a disk is gone and recorded; a host's own stale session is
cut off, while a host another initiator is logged in to is refused and left
as it was.

In the full run only (`lab test --full`): CI resets ephemeral hosts under
real clients (tests/e2e/test_serve_clients.py) and runs a reset's fault
chain; the refusal of a foreign initiator is a unit test there
(tests/unit/test_reset.py)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from test_zboot_exports import golden
from zboot_cli import Zboot
from zboot_lab.layout import Layout
from zboot_lab.remote import ssh, ssh_text

pytestmark = [pytest.mark.lab, pytest.mark.full]

MIB = 1024 * 1024
DATA = os.urandom(MIB) + bytes(3 * MIB)
HOSTS = ("rst1", "rst2", "rst3")
FOREIGN = "iqn.2010-04.org.ipxe:rst3-new"  # rst3's record, once its machine is logged in


def sha256(lab: Layout, device: str) -> str:
    return ssh_text(lab, ["sha256sum", device]).split()[0]


def session(lab: Layout, target: str, initiator: str) -> subprocess.Popen[bytes]:
    url = f"iscsi://127.0.0.1:{lab.lio_port}/{target}/0"
    return subprocess.Popen(
        ["iscsi-perf", "-i", initiator, url], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


# LIO shows an ACL's session in its info file (what rtslib reads).
LOGGED_IN = r"""
for i in $(seq 120); do
    n=0
    for t in "$@"; do
        cat /sys/kernel/config/target/iscsi/"$t"/tpgt_1/acls/*/info 2>/dev/null |
            grep -q InitiatorName && n=$((n + 1))
    done
    [ "$n" -eq $# ] && exit 0
    sleep 0.5
done
exit 1
"""


def logged_in(lab: Layout, targets: list[str]) -> None:
    """Wait (on the server) until each target has a session."""
    ssh(lab, ["sh", "-c", LOGGED_IN, "sh", *targets])


def test_reset_three_ephemeral_hosts_in_one_command(
    lab: Layout, zboot: Zboot, tmp_path: Path
) -> None:
    golden(zboot, tmp_path, DATA)
    batch = tmp_path / "hosts.csv"
    batch.write_text("host,mac\n" + "".join(f"{h},52:54:00:1e:00:0{h[-1]}\n" for h in HOSTS))
    made = zboot("clone", "gold", "--hosts", str(batch), "--ephemeral")["data"]["hosts"]
    targets = {row["host"]: row["record"]["target"] for row in made}
    disk = {h: f"/dev/zvol/{zboot.root}/hosts/{h}" for h in HOSTS}
    image = sha256(lab, f"/dev/zvol/{zboot.root}/images/gold")
    ssh(lab, ["dd", "if=/dev/urandom", f"of={disk['rst1']}", "bs=1M", "count=2", "conv=fsync"])
    assert sha256(lab, disk["rst1"]) != image
    # rst2's machine left a session (it is booting again); rst3's disk is in
    # use by a machine that is no longer the one its record names
    own = session(lab, targets["rst2"], "iqn.2010-04.org.ipxe:rst2")
    other = session(lab, targets["rst3"], "iqn.2010-04.org.ipxe:rst3")
    try:
        logged_in(lab, [targets["rst2"], targets["rst3"]])
        ssh(lab, ["zfs", "set", f"org.zboot:initiator={FOREIGN}", f"{zboot.root}/hosts/rst3"])
        rst3 = f"{zboot.root}/hosts/rst3"
        facts = ["zfs", "get", "-Hp", "-o", "value", "guid,written,org.zboot:last-reset", rst3]
        before = ssh_text(lab, facts)

        out = zboot("-v", "reset", *HOSTS, "--yes", code=4)
        rows = {r["host"]: r for r in out["data"]["hosts"]}
        assert rows["rst1"]["ok"] and rows["rst2"]["ok"], rows
        assert rows["rst3"]["error"]["kind"] == "conflict"
        assert "iqn.2010-04.org.ipxe:rst3 " in rows["rst3"]["error"]["message"]
        agent = [
            line
            for line in zboot.stderr.splitlines()
            if line.startswith("change: ") and "<zboot agent>" in line
        ]
        assert len(agent) == 2, agent  # one engine call down, one up, for the batch

        assert sha256(lab, disk["rst1"]) == image  # what was written is gone
        shown = zboot("show", "rst1")["data"]["ephemeral"]
        assert shown["ephemeral"] and shown["resets_at_boot"] and shown["resets"] == 1
        assert shown["discarded"] >= 2 * MIB and shown["last_reset"]
        assert rows["rst1"]["discarded"] == shown["discarded"]
        assert rows["rst2"]["resets"] == 1
        states = ["zfs", "get", "-H", "-o", "value", "org.zboot:state,org.zboot:ephemeral"]
        got = ssh_text(lab, [*states, *(f"{zboot.root}/hosts/{h}" for h in HOSTS)]).split()
        assert got == ["ready", "on"] * 3, got
        # rst3: the same disk, nothing written by zboot, its machine still on
        assert ssh_text(lab, facts) == before and before.split()[-1] == "-"
        assert other.poll() is None
    finally:
        for perf in (own, other):
            perf.terminate()
            perf.wait(timeout=30)
