"""The fleet benchmark's text: the batch table (zboot, its floor and the
baseline), its ratios, and docs/benchmarks.md put together from sections,
each written by the run that measured it (a run rewrites its own sections
and keeps the others)."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import vm

OPS = ("provision", "rollback", "rebase", "destroy")
TOOLS = ("zboot", "floor", "baseline")
TITLE = "# Benchmarks"
FLEET = "## Provision, rollback, rebase, destroy"
LATENCY = "## Single-host latency"
SCALE = "## Scale"
THROUGHPUT = "## iSCSI read throughput"
STORM = "## Reset storm"  # contrib/bench/storm's, kept last (it rewrites from there on)
ORDER = (FLEET, LATENCY, SCALE, THROUGHPUT)


@dataclass(frozen=True)
class Timing:
    tool: str  # "zboot", "floor" or "baseline"
    op: str  # provision, rollback, rebase, destroy
    n: int
    seconds: float

    @property
    def per_host(self) -> float:
        return self.seconds / self.n


def per_host(timings: Sequence[Timing], tool: str, op: str, n: int) -> float | None:
    found = [t for t in timings if (t.tool, t.op, t.n) == (tool, op, n)]
    return found[0].per_host if found else None


def verdict(value: float, goal: float, at_most: bool = True) -> str:
    return "met" if (value <= goal if at_most else value >= goal) else "MISSED"


def ratio_lines(timings: Sequence[Timing]) -> list[str]:
    """Per operation: the baseline's cost over zboot's at N = 10 (want >= 10),
    zboot's growth from N = 10 to 100 (want <= 1.5), and zboot over its floor
    at each N (want <= 1.5 at N = 100); then rollback over clone."""
    sizes = sorted({t.n for t in timings if t.tool == "zboot"})
    lines = []
    for op in OPS:
        z10, z100 = per_host(timings, "zboot", op, 10), per_host(timings, "zboot", op, 100)
        b10 = per_host(timings, "baseline", op, 10)
        parts = []
        if z10 and b10:
            speedup = b10 / z10
            parts.append(
                f"baseline/zboot per host at N=10 = {speedup:.1f} "
                f"(want >= 10: {verdict(speedup, 10, at_most=False)})"
            )
        if z10 and z100:
            growth = z100 / z10
            parts.append(
                f"zboot per host N=100 / N=10 = {growth:.2f} (want <= 1.5: {verdict(growth, 1.5)})"
            )
        floors = [
            (n, z / f)
            for n in sizes
            if (z := per_host(timings, "zboot", op, n)) and (f := per_host(timings, "floor", op, n))
        ]
        if floors:
            shown = ", ".join(f"N={n} {r:.2f}" for n, r in floors)
            at100 = dict(floors).get(100)
            goal = f" (want <= 1.5 at N=100: {verdict(at100, 1.5)})" if at100 else ""
            parts.append(f"zboot/floor per host {shown}{goal}")
        lines.append(f"- **{op}**: " + "; ".join(parts) if parts else f"- **{op}**:")
    lines.append(rollback_line(timings, sizes))
    return lines


def rollback_line(timings: Sequence[Timing], sizes: Sequence[int]) -> str:
    """Rollback per host over clone per host, zboot's and the floor's (the
    work itself: a rollback's ZFS steps are about twice a clone's)."""
    parts = []
    for tool in ("zboot", "floor"):
        found = [
            (n, r / c)
            for n in sizes
            if (r := per_host(timings, tool, "rollback", n))
            and (c := per_host(timings, tool, "provision", n))
        ]
        if found:
            parts.append(f"{tool} " + ", ".join(f"N={n} {x:.2f}" for n, x in found))
    met = [
        verdict(r / c, 1.2)
        for n in (10, 100)
        if (r := per_host(timings, "zboot", "rollback", n))
        and (c := per_host(timings, "zboot", "provision", n))
    ]
    goal = f" (zboot's want <= 1.2 at N=10 and 100: {', '.join(met)})" if met else ""
    return "- **rollback/provision per host**: " + "; ".join(parts) + goal


def table(timings: Sequence[Timing]) -> str:
    """One markdown table: a row per (tool, N), wall time and per host for each op."""
    rows = sorted({(t.tool, t.n) for t in timings}, key=lambda k: (TOOLS.index(k[0]), k[1]))
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


def when(seconds: float) -> list[str]:
    """A section's first lines: when and where it ran, and how long it took."""
    return [
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"this part took {seconds / 60:.0f} min",
        f"- machine: {machine()}",
    ]


HEADER = [
    TITLE,
    "",
    "Written by `contrib/bench/fleet` (`--only` reruns some sections, `--scale N` adds the "
    "scale section) and `contrib/bench/storm` (the reset storm); do not edit by hand. Each "
    "section says when and where it ran.",
    "",
    "The storage VM is emulated, so every process it starts is slow: compare ratios, not "
    "absolute times.",
]


def split(text: str) -> dict[str, str]:
    """A benchmarks page's sections by heading (each with its heading line)."""
    sections: dict[str, str] = {}
    heading = ""
    for line in text.splitlines(keepends=True):
        if line.startswith("## "):
            heading = line.rstrip("\n")
        if heading:
            sections[heading] = sections.get(heading, "") + line
    return sections


def merge(old: str, new: Mapping[str, str]) -> str:
    """The page with new's sections (by heading) in place of old's, the
    others kept; this benchmark's in ORDER, any other before the storm."""
    kept = split(old)
    sections = {**kept, **{h: t.rstrip("\n") + "\n" for h, t in new.items()}}
    heads = [h for h in ORDER if h in sections]
    heads += [h for h in sections if h not in ORDER and h != STORM]
    heads += [STORM] if STORM in sections else []
    return "\n".join(HEADER) + "\n\n" + "\n".join(sections[h].rstrip("\n") + "\n" for h in heads)
