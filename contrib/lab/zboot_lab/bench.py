"""The fleet benchmark (`contrib/bench/fleet`): zboot's batches against the
pattern other tools use, on the lab's storage VM, in one run, one table.

- zboot: `clone IMAGE --hosts FILE`, `rollback HOST...`, `rebase HOST...
  --to IMAGE` (onto a version made just before), `destroy HOST...` for N =
  1, 10, 50, 100 hosts, run as a user runs them (the CLI).
- The baseline at N = 1 and 10, per host: a fresh `ssh` for each `zfs`
  command and for each `targetcli` step (backstore, target, LUN, ACL; for a
  rollback or a rebase, delete them, rename the disk away, clone the
  version, re-create them), a fresh `ssh ... targetcli
  saveconfig`, and a fresh `ssh` writing the boot file: what the Proxmox
  ZFS-over-iSCSI plugin and home scripts do. Its disks live in their own
  dataset (BASE), so zboot never sees them.
- iSCSI read throughput of one exported clone from the host (iscsi-perf)
  next to reading the same zvol inside the VM (dd).

The VM is emulated (TCG), so absolute times are slow; the ratios are what to
compare. The table goes to stdout and, with the machine and date, into
docs/benchmarks.md."""

from __future__ import annotations

import json
import os
import platform
import re
import shlex
import subprocess
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from . import vm
from .config import write_config
from .devenv import ensure_venv
from .install import install_all
from .keys import ssh_argv
from .layout import BOOT_DIR, IQN_BASE, POOL, REPO_ROOT, ZBOOT_ROOT, Layout
from .procs import LabError
from .progress import say, step
from .remote import ssh, ssh_text
from .storm import SECTION as STORM_SECTION

SIZES = (1, 10, 50, 100)
BASELINE_SIZES = (1, 10)
IMAGE = "benchgold"
IMAGE_MIB = 64
BASE = f"{POOL}/zboot-bench-baseline"  # the baseline's own disks, outside zboot's root
PERF_SECONDS = 10
OPS = ("provision", "rollback", "rebase", "destroy")


@dataclass(frozen=True)
class Timing:
    tool: str  # "zboot" or "baseline"
    op: str  # provision, rollback, destroy
    n: int
    seconds: float

    @property
    def per_host(self) -> float:
        return self.seconds / self.n


def hosts(prefix: str, n: int) -> list[tuple[str, str]]:
    """n (host, MAC) pairs; the prefix keeps runs of different sizes apart."""
    tag = zlib.crc32(prefix.encode()) % 256
    return [
        (f"{prefix}{i:03}", f"52:54:00:{tag:02x}:{i // 256:02x}:{i % 256:02x}")
        for i in range(1, n + 1)
    ]


class Bench:
    def __init__(self, layout: Layout, python: Path, config: Path) -> None:
        self.layout, self.python, self.config = layout, python, config

    # --- zboot, as a user runs it ---------------------------------------------
    def zboot(self, *args: str) -> dict[str, object]:
        result = subprocess.run(
            [str(self.python), "-m", "zboot", "--json", *args],
            capture_output=True,
            text=True,
            timeout=3600,
            env=dict(os.environ, ZBOOT_CONFIG=str(self.config)),
        )
        envelope = json.loads(result.stdout or "{}")
        if result.returncode != 0:
            raise LabError(f"zboot {shlex.join(args)} failed: {result.stdout}{result.stderr}")
        data = envelope.get("data")
        return data if isinstance(data, dict) else {}

    def timed(self, *args: str) -> float:
        start = time.monotonic()
        self.zboot(*args)
        return time.monotonic() - start

    def zboot_run(self, n: int, workdir: Path) -> list[Timing]:
        pairs = hosts(f"bz{n}x", n)
        listing = workdir / f"hosts-{n}.csv"
        listing.write_text("host,mac\n" + "".join(f"{h},{m}\n" for h, m in pairs))
        names = [h for h, _ in pairs]
        out = []
        with step(f"zboot: {n} host(s)"):
            out.append(
                Timing("zboot", "provision", n, self.timed("clone", IMAGE, "--hosts", str(listing)))
            )
            out.append(Timing("zboot", "rollback", n, self.timed("rollback", *names)))
            self.zboot("image", "snapshot", IMAGE, "-m", f"bench: the version {n} hosts move to")
            rebase = self.timed("rebase", *names, "--to", IMAGE)
            out.append(Timing("zboot", "rebase", n, rebase))
            out.append(Timing("zboot", "destroy", n, self.timed("destroy", *names, "--yes")))
        return out

    # --- the baseline: a fresh ssh per step ----------------------------------
    def fresh_ssh(self, command: str, stdin: bytes = b"") -> None:
        result = subprocess.run(
            [*ssh_argv(self.layout), command], input=stdin, capture_output=True, timeout=600
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

    def baseline_run(self, n: int) -> list[Timing]:
        pairs = hosts(f"bl{n}x", n)
        origin = f"{ZBOOT_ROOT}/images/{IMAGE}@v1"
        boot = BOOT_DIR
        out = []
        with step(f"baseline: {n} host(s)"):
            start = time.monotonic()
            for host, mac in pairs:
                self.clone(origin, host)
                self.export_steps(host)
                self.targetcli("saveconfig")
                script = f"#!ipxe\nsanboot iscsi:10.0.2.2::::{IQN_BASE}:{host}\n"
                self.fresh_ssh(f"cat > {boot}/bench-{mac.replace(':', '-')}.ipxe", script.encode())
            out.append(Timing("baseline", "provision", n, time.monotonic() - start))
            start = time.monotonic()
            for host, _ in pairs:
                self.replace_disk(host, origin, "old")
            out.append(Timing("baseline", "rollback", n, time.monotonic() - start))
            made = self.zboot("image", "snapshot", IMAGE, "-m", f"bench: baseline {n}")
            version = f"{ZBOOT_ROOT}/images/{IMAGE}@{made['version']}"
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

    # --- throughput ----------------------------------------------------------
    def throughput(self, workdir: Path) -> tuple[float, float]:
        """MB/s: iSCSI from the host (iscsi-perf, 128 KiB reads, 8 in flight) and
        dd inside the VM, on the same clone; each reads it once first (warm)."""
        host, mac = hosts("bperf", 1)[0]
        self.zboot("clone", IMAGE, host, "--mac", mac)
        try:
            url = f"iscsi://127.0.0.1:{self.layout.lio_port}/{IQN_BASE}:{host}/0"
            perf = subprocess.run(
                [
                    "iscsi-perf",
                    "-i",
                    f"iqn.2010-04.org.ipxe:{host}",
                    "-b",
                    "256",
                    "-m",
                    "8",
                    "-t",
                    str(PERF_SECONDS),
                    url,
                ],
                capture_output=True,
                text=True,
                timeout=PERF_SECONDS + 120,
            )
            found = re.findall(r"iops average \d+ \((\d+) MB/s\)", perf.stdout)
            if not found:
                raise LabError(f"iscsi-perf printed no average: {perf.stdout}{perf.stderr}")
            device = f"/dev/zvol/{ZBOOT_ROOT}/hosts/{host}"
            ssh(self.layout, ["dd", f"if={device}", "of=/dev/null", "bs=128k"])
            dd = ssh(self.layout, ["dd", f"if={device}", "of=/dev/null", "bs=128k"])
            rate = re.search(r"copied, ([\d.]+) s", dd.stderr.decode())
            if rate is None:
                raise LabError(f"dd printed no time: {dd.stderr.decode()}")
            return float(found[-1]), IMAGE_MIB * 1.048576 / float(rate[1])
        finally:
            self.zboot("destroy", host, "--yes")

    # --- set-up --------------------------------------------------------------
    def prepare(self, workdir: Path) -> None:
        with step("cleaning up after an earlier benchmark"):
            old = [
                str(h["name"])
                for h in self.zboot_list()
                if str(h["name"]).startswith(("bz", "bperf"))
            ]
            if old:
                self.zboot("destroy", *old, "--yes", "--force")
            ssh(self.layout, ["sh", "-c", SYSTEM_BUS])
            ssh(self.layout, ["sh", "-c", CLEAN_BASELINE], timeout=1200)
            if IMAGE in self.images():
                self.zboot("image", "destroy", IMAGE, "--yes")
        with step(f"a {IMAGE_MIB} MiB golden image"):
            image = workdir / "golden.img"
            image.write_bytes(os.urandom(IMAGE_MIB << 20))
            self.zboot("init")
            self.zboot("image", "import", IMAGE, str(image))
            self.zboot("image", "snapshot", IMAGE)
            ssh(self.layout, ["zfs", "create", "-p", BASE])

    def zboot_list(self) -> list[dict[str, object]]:
        result = subprocess.run(
            [str(self.python), "-m", "zboot", "--json", "list"],
            capture_output=True,
            text=True,
            timeout=600,
            env=dict(os.environ, ZBOOT_CONFIG=str(self.config)),
        )
        data = json.loads(result.stdout or "{}").get("data")
        return [d for d in data if isinstance(d, dict)] if isinstance(data, list) else []

    def images(self) -> list[str]:
        text = ssh_text(
            self.layout,
            ["sh", "-c", f"zfs list -H -o name -r {ZBOOT_ROOT}/images 2>/dev/null; true"],
        )
        return [line.rsplit("/", 1)[-1] for line in text.split()]


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


def ratio_lines(timings: Sequence[Timing]) -> list[str]:
    """The two ratios the issue asks for, per operation."""
    by = {(t.tool, t.op, t.n): t for t in timings}
    lines = []
    for op in OPS:
        z10, z100, b10 = (
            by.get(("zboot", op, 10)),
            by.get(("zboot", op, 100)),
            by.get(("baseline", op, 10)),
        )
        parts = [f"**{op}**:"]
        if z10 and b10:
            speedup = b10.per_host / z10.per_host
            parts.append(
                f"baseline/zboot per host at N=10 = {speedup:.1f} "
                f"(want >= 10: {'met' if speedup >= 10 else 'MISSED'})"
            )
        if z10 and z100:
            growth = z100.per_host / z10.per_host
            parts.append(
                f"zboot per host N=100 / N=10 = {growth:.2f} "
                f"(want <= 1.5: {'met' if growth <= 1.5 else 'MISSED'})"
            )
        lines.append(("- " + parts[0] + " " + "; ".join(parts[1:])).rstrip())
    return lines


def table(timings: Sequence[Timing]) -> str:
    """One markdown table: a row per (tool, N), wall time and per host for each op."""
    rows = sorted({(t.tool, t.n) for t in timings}, key=lambda k: (k[0] != "zboot", k[1]))
    by = {(t.tool, t.op, t.n): t for t in timings}
    head = "| tool | N | " + " | ".join(f"{op} s | {op} s/host" for op in OPS) + " |"
    rule = "|" + "---|" * (2 + 2 * len(OPS))
    lines = [head, rule]
    for tool, n in rows:
        cells = []
        for op in OPS:
            t = by.get((tool, op, n))
            cells += [f"{t.seconds:.1f}", f"{t.per_host:.2f}"] if t else ["-", "-"]
        lines.append(f"| {tool} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    mem = next(
        (
            int(line.split()[1]) // 1024
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        ),
        0,
    )
    return (
        f"host: {os.cpu_count()} x {cpu}, {mem} MiB, Linux {platform.release()}; "
        f"storage VM: QEMU TCG (no KVM), {vm.VM_CPUS} vCPUs, {vm.VM_MEMORY}, "
        f"OpenZFS and LIO (rtslib-fb) in Debian 12; zboot over SSH (paramiko)"
    )


def report(timings: Sequence[Timing], perf: tuple[float, float], seconds: float) -> str:
    iscsi, local = perf
    return "\n".join(
        [
            "# Benchmarks",
            "",
            "Written by `contrib/bench/fleet` (one run, one command); do not edit by hand.",
            "",
            f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
            f"- machine: {machine()}",
            f"- golden image: {IMAGE_MIB} MiB of random data; the benchmark took "
            f"{seconds / 60:.0f} min",
            "",
            "The storage VM is emulated, so every process it starts is slow: compare "
            "ratios, not absolute times.",
            "",
            "## Provision, rollback, rebase, destroy",
            "",
            "zboot: one command per operation for all N hosts (`clone IMAGE --hosts FILE`, "
            "`rollback HOST...`, `rebase HOST... --to IMAGE` onto a version made just "
            "before, `destroy HOST...`). Baseline: per host a fresh `ssh` for "
            "every `zfs` command and every `targetcli` step, then `targetcli saveconfig`, "
            "and a fresh `ssh` for the boot file; its rebase is the fleet update done by "
            "hand: the export taken down, the old disk renamed away, a clone of the new "
            "version, the export made again.",
            "",
            table(timings),
            "",
            *ratio_lines(timings),
            "",
            "## iSCSI read throughput",
            "",
            "| path | MB/s |",
            "|---|---|",
            f"| iSCSI from the host (iscsi-perf, 128 KiB reads, 8 in flight, "
            f"{PERF_SECONDS} s) | {iscsi:.0f} |",
            f"| the same zvol read inside the VM (dd, 128 KiB) | {local:.0f} |",
            "",
            "Both read blocks ZFS holds in memory (the clone shares them with the image), "
            "so this compares the iSCSI path with the local read, not disks. The iSCSI "
            "path crosses QEMU's user-mode network into an emulated VM.",
            "",
        ]
    )


def run_bench(
    layout: Layout, sizes: Sequence[int] = SIZES, baseline_sizes: Sequence[int] = BASELINE_SIZES
) -> int:
    install_all(layout)
    python = ensure_venv()
    vm.start(layout)
    bench = Bench(layout, python, write_config(layout))
    workdir = layout.state / "bench"
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    bench.prepare(workdir)
    timings: list[Timing] = []
    for n in baseline_sizes:
        timings += bench.baseline_run(n)
    for n in sizes:
        timings += bench.zboot_run(n, workdir)
    with step("iSCSI throughput"):
        perf = bench.throughput(workdir)
    text = report(timings, perf, time.monotonic() - started)
    path = REPO_ROOT / "docs" / "benchmarks.md"
    storm = path.read_text().partition(STORM_SECTION)  # contrib/bench/storm's part stays
    path.write_text(text + (f"\n{STORM_SECTION}{storm[2]}" if storm[1] else ""))
    say(text)
    say("written to docs/benchmarks.md")
    return 0
