"""The fleet benchmark's baseline: what the Proxmox ZFS-over-iSCSI plugin
and home scripts do, per host a fresh `ssh` (its own login, not the lab's
shared connection) for every `zfs` command and every `targetcli` step, a
fresh `ssh ... targetcli saveconfig`, and a fresh `ssh` writing the boot
file. Its disks live in their own dataset (BASE), so zboot never sees them."""

from __future__ import annotations

import shlex
import subprocess
import time
import zlib
from collections.abc import Callable

from .bench_report import Timing
from .keys import ssh_argv
from .layout import BOOT_DIR, IQN_BASE, POOL, Layout
from .procs import LabError
from .progress import step

BASE = f"{POOL}/zboot-bench-baseline"  # the baseline's own disks, outside zboot's root


def hosts(prefix: str, n: int) -> list[tuple[str, str]]:
    """n (host, MAC) pairs; the prefix keeps runs of different sizes apart."""
    tag = zlib.crc32(prefix.encode()) % 256
    return [
        (f"{prefix}{i:03}", f"52:54:00:{tag:02x}:{i // 256:02x}:{i % 256:02x}")
        for i in range(1, n + 1)
    ]


class Baseline:
    """new_version(): makes the image's next version and returns its snapshot."""

    def __init__(self, layout: Layout, origin: str, new_version: Callable[[], str]) -> None:
        self.layout, self.origin, self.new_version = layout, origin, new_version

    def fresh_ssh(self, command: str, stdin: bytes = b"") -> None:
        result = subprocess.run(
            [*ssh_argv(self.layout, shared=False), command],
            input=stdin,
            capture_output=True,
            timeout=600,
        )
        if result.returncode != 0:
            raise LabError(
                f"baseline step {command!r} failed: "
                + (result.stdout + result.stderr).decode(errors="replace").strip()
            )

    def clone(self, origin: str, host: str) -> None:
        """zfs clone, and wait in the same ssh for udev's /dev/zvol link."""
        self.fresh_ssh(
            shlex.join(["zfs", "clone", origin, f"{BASE}/{host}"]) + " && udevadm settle"
        )

    def targetcli(self, *args: str) -> None:
        self.fresh_ssh(shlex.join(["targetcli", *args]))

    def export_steps(self, host: str) -> None:
        iqn = f"{IQN_BASE}:{host}"
        self.targetcli(
            "/backstores/block", "create", f"name={host}", f"dev=/dev/zvol/{BASE}/{host}"
        )
        self.targetcli("/iscsi", "create", iqn)
        self.targetcli(f"/iscsi/{iqn}/tpg1/luns", "create", f"/backstores/block/{host}")
        self.targetcli(f"/iscsi/{iqn}/tpg1/acls", "create", f"iqn.2010-04.org.ipxe:{host}")

    def unexport_steps(self, host: str) -> None:
        self.targetcli("/iscsi", "delete", f"{IQN_BASE}:{host}")
        self.targetcli("/backstores/block", "delete", host)

    def replace_disk(self, host: str, origin: str, suffix: str) -> None:
        """A rollback or rebase by hand: the export down, the disk renamed
        away (to <host>-<suffix>), a clone of origin, the export back, saved."""
        self.unexport_steps(host)
        self.fresh_ssh(shlex.join(["zfs", "rename", f"{BASE}/{host}", f"{BASE}/{host}-{suffix}"]))
        self.clone(origin, host)
        self.export_steps(host)
        self.targetcli("saveconfig")

    def run(self, n: int) -> list[Timing]:
        pairs = hosts(f"bl{n}x", n)
        boot = BOOT_DIR
        out = []
        with step(f"baseline: {n} host(s)"):
            start = time.monotonic()
            for host, mac in pairs:
                self.clone(self.origin, host)
                self.export_steps(host)
                self.targetcli("saveconfig")
                script = f"#!ipxe\nsanboot iscsi:10.0.2.2::::{IQN_BASE}:{host}\n"
                self.fresh_ssh(f"cat > {boot}/bench-{mac.replace(':', '-')}.ipxe", script.encode())
            out.append(Timing("baseline", "provision", n, time.monotonic() - start))
            start = time.monotonic()
            for host, _ in pairs:
                self.replace_disk(host, self.origin, "old")
            out.append(Timing("baseline", "rollback", n, time.monotonic() - start))
            version = self.new_version()
            start = time.monotonic()
            for host, _ in pairs:
                self.replace_disk(host, version, "prev")
            out.append(Timing("baseline", "rebase", n, time.monotonic() - start))
            start = time.monotonic()
            for host, mac in pairs:
                self.unexport_steps(host)
                self.targetcli("saveconfig")
                self.fresh_ssh(shlex.join(["zfs", "destroy", "-r", f"{BASE}/{host}-old"]))
                self.fresh_ssh(shlex.join(["zfs", "destroy", "-r", f"{BASE}/{host}-prev"]))
                self.fresh_ssh(shlex.join(["zfs", "destroy", "-r", f"{BASE}/{host}"]))
                self.fresh_ssh(
                    shlex.join(["rm", "-f", f"{boot}/bench-{mac.replace(':', '-')}.ipxe"])
                )
            out.append(Timing("baseline", "destroy", n, time.monotonic() - start))
        return out


# targetcli asks D-Bus for tcmu-runner's backstores and fails without a
# system bus; the lab's VM runs none, so the baseline starts one.
SYSTEM_BUS = (
    "test -S /run/dbus/system_bus_socket || "
    "{ mkdir -p /run/dbus && dbus-uuidgen --ensure && dbus-daemon --system --fork; }"
)

# Every baseline target (named after BASE's hosts) and disk, from any earlier run.
CLEAN_BASELINE = f"""
for t in $(targetcli ls /iscsi 1 2>/dev/null | grep -o '{IQN_BASE}:bl[0-9]*x[0-9]*'); do
  targetcli /iscsi delete "$t" >/dev/null
done
for b in $(targetcli ls /backstores/block 1 2>/dev/null | grep -o 'bl[0-9]*x[0-9]*' | sort -u); do
  targetcli /backstores/block delete "$b" >/dev/null
done
targetcli saveconfig >/dev/null
zfs list {BASE} >/dev/null 2>&1 && zfs destroy -r {BASE}
rm -f /srv/zboot/boot/bench-*.ipxe
true
"""
