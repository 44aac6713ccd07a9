"""The fleet benchmark (`contrib/bench/fleet`): zboot's batches against the
pattern other tools use and against the floor, on the lab's storage VM, in
one run; the text goes into docs/benchmarks.md, a section per part.

- zboot: `clone IMAGE --hosts FILE`, `rollback HOST...`, `rebase HOST...
  --to IMAGE` (onto a version made just before), `destroy HOST...` for N =
  1, 10, 50, 100 hosts, run as a user runs them (the CLI).
- The floor (floor.py): the same ZFS and LIO work for the same N, done by
  one Python process inside the storage VM and timed there.
- The baseline at N = 1 and 10, per host: a fresh `ssh` for each `zfs`
  command and for each `targetcli` step (backstore, target, LUN, ACL; for a
  rollback or a rebase, delete them, rename the disk away, clone the
  version, re-create them), a fresh `ssh ... targetcli
  saveconfig`, and a fresh `ssh` writing the boot file: what the Proxmox
  ZFS-over-iSCSI plugin and home scripts do. Its disks live in their own
  dataset (BASE), so zboot never sees them.
- Single-host latency (latency.py): one host's commands next to an SSH
  login and their floors.
- Scale (scale.py, with --scale N): N hosts next to 10.
- iSCSI read throughput of one exported clone from the host (iscsi-perf)
  next to reading the same zvol inside the VM (dd).

The VM is emulated (TCG), so absolute times are slow; the ratios are what to
compare."""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import latency, scale
from .baseline import BASE, CLEAN_BASELINE, SYSTEM_BUS, Baseline, hosts
from .bench_report import (
    FLEET,
    LATENCY,
    OPS,
    SCALE,
    THROUGHPUT,
    Timing,
    merge,
    ratio_lines,
    table,
    when,
)
from .clirun import Ran, ZbootCli, zfs_commands
from .config import write_config
from .devenv import ensure_venv
from .floor import Floor, Phase, Spent, run_floor_cleanly
from .install import install_all
from .layout import IQN_BASE, REPO_ROOT, ZBOOT_ROOT, Layout
from .procs import LabError
from .progress import say, step
from .remote import ssh, ssh_text
from .vm import start as start_vm

SIZES = (1, 10, 50, 100)
BASELINE_SIZES = (1, 10)
LATENCY_RUNS = 5
IMAGE = "benchgold"
IMAGE_MIB = 64
PERF_SECONDS = 10
SECTIONS = ("fleet", "latency", "scale", "throughput")
PREFIXES = ("bz", "bs", "bperf")  # the benchmark's hosts in zboot's root


@dataclass
class Options:
    sizes: Sequence[int] = SIZES
    baseline_sizes: Sequence[int] = BASELINE_SIZES
    latency_runs: int = LATENCY_RUNS
    scale: int = 0  # N for the scale section; 0: none
    only: Sequence[str] = ("fleet", "latency", "throughput")
    output: Path = REPO_ROOT / "docs" / "benchmarks.md"


@dataclass
class FleetRun:
    """The fleet table's run: timings, and for each (op, N) what zboot ran
    on the server and the floor's phase and time."""

    timings: list[Timing] = field(default_factory=list)
    ran: dict[tuple[str, int], Ran] = field(default_factory=dict)
    phases: dict[tuple[str, int], Phase] = field(default_factory=dict)
    spent: dict[tuple[str, int], Spent] = field(default_factory=dict)


class Bench:
    def __init__(self, layout: Layout, cli: ZbootCli, workdir: Path) -> None:
        self.layout, self.cli, self.workdir = layout, cli, workdir

    # --- zboot, as a user runs it ---------------------------------------------
    def zboot_run(self, n: int, run: FleetRun) -> None:
        pairs = hosts(f"bz{n}x", n)
        listing = self.workdir / f"hosts-{n}.csv"
        listing.write_text("host,mac\n" + "".join(f"{h},{m}\n" for h, m in pairs))
        names = [h for h, _ in pairs]
        with step(f"zboot: {n} host(s)"):
            run.ran["provision", n] = self.cli("clone", IMAGE, "--hosts", str(listing))
            run.ran["rollback", n] = self.cli("rollback", *names)
            self.cli("image", "snapshot", IMAGE, "-m", f"bench: the version {n} hosts move to")
            run.ran["rebase", n] = self.cli("rebase", *names, "--to", IMAGE)
            run.ran["destroy", n] = self.cli("destroy", *names, "--yes")
        run.timings += [Timing("zboot", op, n, run.ran[op, n].seconds) for op in OPS]

    # --- the floor: the same work, one process in the VM ----------------------
    def floor_run(self, sizes: Sequence[int], run: FleetRun) -> None:
        floor = Floor(image_mib=IMAGE_MIB)
        phases = [floor.setup()]
        for n in sizes:
            pairs = hosts(f"fz{n}x", n)
            names = [h for h, _ in pairs]
            run.phases["provision", n] = floor.clone(f"provision {n}", pairs)
            run.phases["rollback", n] = floor.rollback(f"rollback {n}", names)
            version = floor.new_version()
            run.phases["rebase", n] = floor.rollback(f"rebase {n}", names, rebase=True)
            run.phases["destroy", n] = floor.destroy(f"destroy {n}", names)
            phases += [run.phases[op, n] for op in OPS[:2]]
            phases += [version, *(run.phases[op, n] for op in OPS[2:])]
        phases.append(floor.cleanup())
        with step(f"the floor: {', '.join(map(str, sizes))} host(s), one process in the VM"):
            for spent in run_floor_cleanly(self.layout, floor, phases):
                op, size = spent.label.split()
                run.spent[op, int(size)] = spent
                run.timings.append(Timing("floor", op, int(size), spent.seconds))

    def new_version(self) -> str:
        made = self.cli.data("image", "snapshot", IMAGE, "-m", "bench: a baseline's rebase")
        return f"{ZBOOT_ROOT}/images/{IMAGE}@{made['version']}"

    # --- throughput ----------------------------------------------------------
    def throughput(self) -> tuple[float, float]:
        """MB/s: iSCSI from the host (iscsi-perf, 128 KiB reads, 8 in flight) and
        dd inside the VM, on the same clone; each reads it once first (warm)."""
        host, mac = hosts("bperf", 1)[0]
        self.cli("clone", IMAGE, host, "--mac", mac)
        try:
            url = f"iscsi://127.0.0.1:{self.layout.lio_port}/{IQN_BASE}:{host}/0"
            perf = subprocess.run(
                [
                    *("iscsi-perf", "-i", f"iqn.2010-04.org.ipxe:{host}"),
                    *("-b", "256", "-m", "8", "-t", str(PERF_SECONDS), url),
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
            self.cli("destroy", host, "--yes")

    # --- set-up --------------------------------------------------------------
    def prepare(self) -> None:
        with step("cleaning up after an earlier benchmark"):
            listed = self.cli("list").data
            old = [
                str(h["name"])
                for h in (listed if isinstance(listed, list) else [])
                if isinstance(h, dict) and str(h["name"]).startswith(PREFIXES)
            ]
            if old:
                self.cli("destroy", *old, "--yes", "--force")
            ssh(self.layout, ["sh", "-c", SYSTEM_BUS])
            ssh(self.layout, ["sh", "-c", CLEAN_BASELINE], timeout=1200)
            if IMAGE in self.images():
                self.cli("image", "destroy", IMAGE, "--yes")
        with step(f"a {IMAGE_MIB} MiB golden image"):
            image = self.workdir / "golden.img"
            image.write_bytes(os.urandom(IMAGE_MIB << 20))
            self.cli("init")
            self.cli("image", "import", IMAGE, str(image))
            self.cli("image", "snapshot", IMAGE)
            ssh(self.layout, ["zfs", "create", "-p", BASE])

    def images(self) -> list[str]:
        text = ssh_text(
            self.layout,
            ["sh", "-c", f"zfs list -H -o name -r {ZBOOT_ROOT}/images 2>/dev/null; true"],
        )
        return [line.rsplit("/", 1)[-1] for line in text.split()]

    # --- the sections --------------------------------------------------------
    def fleet(self, options: Options) -> str:
        started = time.monotonic()
        run = FleetRun()
        baseline = Baseline(self.layout, f"{ZBOOT_ROOT}/images/{IMAGE}@v1", self.new_version)
        for n in options.baseline_sizes:
            run.timings += baseline.run(n)
        for n in options.sizes:
            self.zboot_run(n, run)
        self.floor_run(options.sizes, run)
        return fleet_section(run, time.monotonic() - started)

    def latency(self, options: Options) -> str:
        started = time.monotonic()
        zboot_host = latency.OneHost(IMAGE, *hosts("bzlat", 1)[0])
        floor_host = latency.OneHost("gold", *hosts("fzlat", 1)[0])
        with step(f"single-host latency: {options.latency_runs} runs"):
            rows = latency.measure(
                self.layout,
                self.cli,
                zboot_host,
                Floor(tag="lat", root=f"{ZBOOT_ROOT}-bench-floor-lat", image_mib=IMAGE_MIB),
                floor_host,
                options.latency_runs,
            )
        return latency_section(rows, options.latency_runs, time.monotonic() - started)

    def scale(self, options: Options) -> str:
        started = time.monotonic()
        free = scale.check_room(self.layout, options.scale, IMAGE_MIB)
        runs = [
            scale.run_size(self.cli, IMAGE, self.workdir, n) for n in (scale.SMALL, options.scale)
        ]
        logins = latency.login_seconds(self.layout)
        return scale.section(runs, logins, IMAGE, IMAGE_MIB, free, time.monotonic() - started)

    def throughput_section(self) -> str:
        started = time.monotonic()
        with step("iSCSI throughput"):
            iscsi, local = self.throughput()
        return throughput_section(iscsi, local, time.monotonic() - started)


def floor_check(run: FleetRun) -> str:
    """Whether the floor ran the zfs commands zboot ran (-v), op by op."""
    differ = []
    for (op, n), ran in sorted(run.ran.items()):
        phase = run.phases.get((op, n))
        if phase is not None and zfs_commands(ran.commands) != phase.zfs_commands():
            differ.append(
                f"{op} N={n}: zboot ran {', '.join(zfs_commands(ran.commands))}; "
                f"the floor {', '.join(phase.zfs_commands())}"
            )
    if not differ:
        return (
            "The floor ran the same zfs commands, in the same order, as zboot did (its -v) "
            "for every operation and N."
        )
    return "The floor's zfs commands DIFFER from zboot's (update floor.py): " + "; ".join(differ)


def floor_parts(run: FleetRun) -> list[str]:
    """Where the floor's time went at the largest N, by kind of step."""
    if not run.spent:
        return []
    n = max(n for _, n in run.spent)
    lines = [f"Where the floor's time went at N = {n} (seconds, by kind of step):", ""]
    for op in OPS:
        spent = run.spent.get((op, n))
        if spent is not None:
            parts = sorted(spent.parts.items(), key=lambda kv: -kv[1])
            lines.append(f"- {op}: " + ", ".join(f"{k} {v:.1f}" for k, v in parts if v >= 0.05))
    return lines


FLOOR_TEXT = (
    "Floor: the same ZFS and LIO work zboot does for the operation, done by one Python "
    "process inside the storage VM for the whole run (`/usr/bin/python3`, sent over SSH on "
    "stdin) and timed there with `time.monotonic()`: the zfs commands `zboot -v` lists "
    "(the reads of the root, clones, renames, property sets, the destroy channel program), "
    "the rtslib calls zboot's LIO agent makes (backstore, target, portal, LUN, ACL; one "
    "walk of LIO), one save of LIO's configuration, the boot files. Python's start-up and "
    "rtslib's import come before the clock starts: they are overhead zboot has to hide, "
    "as are SSH, the server lock and a process per step. The floor has its own dataset, "
    "IQNs and LIO stores, and removes them; see `contrib/lab/zboot_lab/floor.py`."
)


def fleet_section(run: FleetRun, seconds: float) -> str:
    return "\n".join(
        [
            FLEET,
            "",
            *when(seconds),
            f"- golden image: {IMAGE_MIB} MiB of random data",
            "",
            "zboot: one command per operation for all N hosts (`clone IMAGE --hosts FILE`, "
            "`rollback HOST...`, `rebase HOST... --to IMAGE` onto a version made just "
            "before, `destroy HOST...`). Baseline: per host a fresh `ssh` (its own login) "
            "for every `zfs` command and every `targetcli` step, then `targetcli saveconfig`, "
            "and a fresh `ssh` for the boot file; its rebase is the fleet update done by "
            "hand: the export taken down, the old disk renamed away, a clone of the new "
            "version, the export made again.",
            "",
            FLOOR_TEXT,
            "",
            table(run.timings),
            "",
            *ratio_lines(run.timings),
            "",
            floor_check(run),
            "",
            *floor_parts(run),
            "",
        ]
    )


def latency_section(rows: Sequence[latency.Latency], runs: int, seconds: float) -> str:
    return "\n".join(
        [
            LATENCY,
            "",
            *when(seconds),
            "",
            f"One host through `clone`, `snapshot`, `show`, `list`, `mode install` and "
            f"back to `normal`, `rollback` and `destroy`, {runs} times. zboot: each command "
            f"as a user runs it (the CLI over SSH, on the wall clock), the median of {runs} "
            f"(`mode`: of {2 * runs} switches). SSH login: the median of 5 fresh OpenSSH "
            "connections running `true`. Floor: that command's ZFS and LIO work done in the "
            "VM as in the fleet table, by one process per cycle, each just after zboot's "
            "cycle (so a load that comes and goes weighs on both alike); the median of as "
            "many. zboot's own: zboot - login - floor, the time neither SSH's login nor the "
            "work itself explains: Python start-ups (zboot's, and its session agent's on "
            "the server, which takes the lock and runs each step), rtslib's import, its "
            "records. The last column is what zboot ran on the server (its -v).",
            "",
            latency.table(rows),
            "",
            "Where each floor's time went (seconds, its first run):",
            "",
            *latency.floor_parts(rows),
            "",
        ]
    )


def throughput_section(iscsi: float, local: float, seconds: float) -> str:
    return "\n".join(
        [
            THROUGHPUT,
            "",
            *when(seconds),
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


def run_bench(layout: Layout, options: Options) -> int:
    install_all(layout)
    python = ensure_venv()
    start_vm(layout)
    workdir = layout.state / "bench"
    workdir.mkdir(parents=True, exist_ok=True)
    bench = Bench(layout, ZbootCli(python, write_config(layout)), workdir)
    bench.prepare()
    sections: dict[str, str] = {}
    if "fleet" in options.only:
        sections[FLEET] = bench.fleet(options)
    if "latency" in options.only:
        sections[LATENCY] = bench.latency(options)
    if "scale" in options.only and options.scale:
        sections[SCALE] = bench.scale(options)
    if "throughput" in options.only:
        sections[THROUGHPUT] = bench.throughput_section()
    old = options.output.read_text() if options.output.exists() else ""
    options.output.write_text(merge(old, sections))
    say("\n".join(sections.values()))
    say(f"written to {options.output}")
    return 0
