"""A running operating system keeps its disk through the server's changes.

A machine boots the writer image (the lab's Linux OS whose /init starts
open-iscsi's iscsid, then writes 64 KiB blocks with fsync to its iSCSI root in
a loop), on LIO in one test (in CI) and on tgt in the other (`lab test
--full`), one after the other (two at once were slower on 2 CPUs). While it
writes, the server goes through what an admin does to a running server:

- on LIO: `zboot sync`; a batch clone of 3 other hosts (`--hosts` CSV), then
  a batch destroy of them; a reload of LIO, done as Debian's
  rtslib-fb-targetctl service does on restart (`targetctl clear`, then
  `targetctl restore` of the saved configuration);
- on tgt: tgtd restarted as Debian's tgt service does (targets offline and
  removed, `tgtadm --op delete --mode system`, TERM then KILL if it is still
  there, as start-stop-daemon's retry does), started again with the lab's
  portal and its configuration from conf.d (`tgt-admin --execute`).

Each machine then reads back what it wrote. It must have had no I/O error
(its kernel log), the same sha256 for what it wrote and what it read back,
and, for the target restarts, the proof that its session really dropped (the
kernel's "detected conn error") and came back (iscsid's "operational after
recovery") with the writes going on after it. docs/boot.md, "A running
machine through the server's changes", has the figures."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from test_linux_clients import dhcp_lines, on_lan
from zboot_cli import Zboot
from zboot_lab import bootlan, client
from zboot_lab.layout import BOOT_DIR, GUEST_TGT_PORT, Layout
from zboot_lab.linux_golden import write_linux_writer_golden
from zboot_lab.remote import ssh

pytestmark = pytest.mark.e2e

LIO_MAC, TGT_MAC = "52:54:00:e2:17:01", "52:54:00:e2:17:02"
OTHERS = [(f"pco{n}", f"52:54:00:e2:17:1{n}") for n in (1, 2, 3)]
AT_RE = re.compile(r"ZBOOT-WRITER-AT (\d+)")
STALL_RE = re.compile(r"ZBOOT-WRITER-STALL (\{.*\})")
GOES_ON = 32  # blocks the writer must write after a change (2 progress lines)
CLIENT_TIMEOUT = 420

# What Debian's rtslib-fb-targetctl unit does on restart (ExecStop, ExecStart).
LIO_RELOAD = "targetctl clear && targetctl restore"
# What Debian's /etc/init.d/tgt does on restart, with the lab's portal.
TGT_RESTART = f"""
tgtadm --op update --mode sys --name State -v offline
tgt-admin --offline ALL
tgt-admin --update ALL -c /dev/null -f
tgtadm --op delete --mode system
# as start-stop-daemon --retry TERM/10/KILL/5 would: tgtd with a session
# still open does not always exit on the delete alone
for signal in TERM KILL; do
    for _ in $(seq 100); do pidof tgtd >/dev/null || break; sleep 0.1; done
    pids=$(pidof tgtd) && kill -s "$signal" $pids
done
for _ in $(seq 50); do pidof tgtd >/dev/null || break; sleep 0.1; done
if pidof tgtd >/dev/null; then echo "tgtd did not stop" >&2; exit 1; fi
/usr/sbin/tgtd --iscsi portal=0.0.0.0:{GUEST_TGT_PORT}
for _ in $(seq 50); do tgtadm --op show --mode sys >/dev/null 2>&1 && break; sleep 0.2; done
tgtadm --op update --mode sys --name State -v offline
tgt-admin --execute
tgtadm --op update --mode sys --name State -v ready
"""


class Writer:
    """A writer machine running, and what each change on the server did to it."""

    def __init__(self, lab: Layout, mac: str) -> None:
        self.lab, self.mac = lab, mac
        self.client = client.Background(lab, mac, "bios", timeout=CLIENT_TIMEOUT)
        self.changes: list[dict[str, Any]] = []

    @property
    def stop_file(self) -> str:
        return f"{BOOT_DIR}/zboot-writer-stop-{self.mac.replace(':', '-')}"

    def blocks(self) -> int:
        found = AT_RE.findall(self.client.console())
        return int(found[-1]) if found else 0

    def stalls(self) -> list[dict[str, Any]]:
        return [json.loads(s) for s in STALL_RE.findall(self.client.console())]

    def started(self) -> None:
        self.client.wait_for(r"ZBOOT-WRITER-START", timeout=240)

    def through(self, change: str, act: Callable[[], object]) -> None:
        """Make the change and wait until the writer has gone on writing."""
        stalls, start = len(self.stalls()), time.monotonic()
        act()
        took = time.monotonic() - start
        goal, deadline = self.blocks() + GOES_ON, time.monotonic() + 150
        while self.blocks() < goal:
            assert not self.client.done(), f"{self.mac} ended during {change}"
            assert time.monotonic() < deadline, f"{self.mac} stopped writing after {change}"
            time.sleep(0.5)
        new = self.stalls()[stalls:]
        self.changes.append(
            {
                "change": change,
                "seconds": round(took, 1),
                "stalls": [s["centiseconds"] / 100 for s in new],
            }
        )

    def finish(self) -> dict[str, Any]:
        ssh(self.lab, ["touch", self.stop_file])
        result = self.client.result(timeout=CLIENT_TIMEOUT)
        report = result.writer
        print(f"\n{self.mac}: {self.changes}\n{self.mac}: {report} ({result.log})")
        assert report is not None, result
        return report


def writer_root(
    lab: Layout, zboot: Zboot, tmp_path: Path, engine: str, host: str, mac: str
) -> None:
    lan = on_lan(lab, zboot, engine)
    image = tmp_path / f"writer-{engine}.img"
    write_linux_writer_golden(lab, image)
    lan("init")
    lan("image", "import", "linux", str(image))
    lan("image", "snapshot", "linux")
    lan("clone", "linux", host, "--mac", mac)


def assert_went_through(report: dict[str, Any], restarted: bool) -> None:
    """No I/O error, what was read back is what was written, and (restarted)
    the session dropped and came back while the writes went on."""
    assert report["io_errors"] == [] and report["write_failures"] == 0, report
    assert report["blocks"] > 0 and report["sha_read"] == report["sha_written"], report
    if restarted:
        assert report["conn_errors"], report  # the kernel saw the connection break
        assert any("after recovery" in line for line in report["recovered"]), report
        assert report["stalls"] and report["blocks"] > report["stalls"][-1]["block"], report


def writing_through(
    lab: Layout,
    zboot: Zboot,
    tmp_path: Path,
    engine: str,
    changes: Mapping[str, Callable[[], object]],
) -> tuple[Writer, dict[str, Any]]:
    """Boot a writer machine on engine, make the changes while it writes,
    and return it with its report."""
    mac = LIO_MAC if engine == "lio" else TGT_MAC
    writer_root(lab, zboot, tmp_path, engine, f"pcw-{engine}", mac)
    with ExitStack() as stack:
        stack.enter_context(bootlan.serving(lab, "dnsmasq", dhcp_lines(zboot, "dnsmasq", tmp_path)))
        writer = Writer(lab, mac)
        stack.callback(writer.client.stop)
        stack.callback(ssh, lab, ["rm", "-f", writer.stop_file])
        writer.started()
        for change, act in changes.items():
            writer.through(change, act)
        return writer, writer.finish()


# about 110 s on a fast day, 200 s on a slow one (the writer starts writing
# about 30 s after power-on): `lab test --full` only, CI's time budget (docs/lab.md)
@pytest.mark.full
def test_a_running_machine_keeps_its_disk_through_zboot_and_a_lio_reload(
    lab: Layout, zboot: Zboot, tmp_path: Path
) -> None:
    batch = tmp_path / "others.csv"
    batch.write_text("host,mac\n" + "".join(f"{host},{mac}\n" for host, mac in OTHERS))
    others = [host for host, _ in OTHERS]
    writer, report = writing_through(
        lab,
        zboot,
        tmp_path,
        "lio",
        {
            "zboot sync": lambda: zboot("sync"),
            "batch clone": lambda: zboot("clone", "linux", "--hosts", str(batch)),
            "batch destroy": lambda: zboot("destroy", *others, "--yes"),
            "LIO reload": lambda: ssh(lab, ["sh", "-c", LIO_RELOAD]),
        },
    )
    assert_went_through(report, restarted=True)
    # One break, the reload's: sync and the batch of other hosts did not touch
    # the running machine's session.
    assert len(report["conn_errors"]) == 1, (writer.changes, report)


@pytest.mark.full  # about 150 s, most of it the restart and iscsid's retries: docs/boot.md
def test_a_running_machine_keeps_its_disk_through_a_tgtd_restart(
    lab: Layout, zboot: Zboot, tmp_path: Path
) -> None:
    restart = {"tgtd restart": lambda: ssh(lab, ["sh", "-c", TGT_RESTART])}
    writer, report = writing_through(lab, zboot, tmp_path, "tgt", restart)
    assert_went_through(report, restarted=True)
    assert len(report["conn_errors"]) == 1, (writer.changes, report)
