"""Single-host latency (issue 21): what one command for one host costs a
person at a terminal. Each command runs as zboot over SSH (wall clock, the
median of several), next to one SSH login running `true` (OpenSSH, a fresh
connection, median of 5) and the floor of that command (floor.py: the same
ZFS and LIO work in one process in the storage VM). The goal:
zboot <= 1.5 x (login + floor)."""

from __future__ import annotations

import statistics
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass

from .clirun import Ran, ZbootCli, summary
from .floor import Floor, Phase, Spent, run_floor_cleanly
from .keys import ssh_argv
from .layout import Layout
from .procs import LabError

# a host's life, in the order the table lists it; `mode` is a switch to
# install mode and one back (each a sample)
SINGLE = ("clone", "rollback", "destroy", "mode", "snapshot", "show", "list")
# the order a cycle runs them in: each needs the host the one before left
CYCLE = ("clone", "snapshot", "show", "list", "mode", "rollback", "destroy")
GOAL = 1.5


@dataclass(frozen=True)
class OneHost:
    """One host's commands: zboot's (on image) and the floor's."""

    image: str
    host: str
    mac: str

    def zboot_args(self, op: str) -> list[list[str]]:
        h = self.host
        return {
            "clone": [["clone", self.image, h, "--mac", self.mac]],
            "rollback": [["rollback", h]],
            "destroy": [["destroy", h, "--yes"]],
            "mode": [["mode", h, "install"], ["mode", h, "normal"]],
            "snapshot": [["snapshot", h]],
            "show": [["show", h]],
            "list": [["list"]],
        }[op]

    def floor_phases(self, floor: Floor, op: str) -> list[Phase]:
        h = self.host
        if op == "clone":
            return [floor.clone(op, [(h, self.mac)])]
        if op == "rollback":
            return [floor.rollback(op, [h])]
        if op == "destroy":
            return [floor.destroy(op, [h])]
        if op == "mode":
            return [floor.mode(op, h, "install"), floor.mode(op, h, "normal")]
        if op == "snapshot":
            return [floor.snapshot(op, h)]
        if op == "show":
            return [floor.show(op)]
        if op == "list":
            return [floor.listing(op)]
        raise ValueError(f"no single-host command {op!r}")


@dataclass(frozen=True)
class Latency:
    op: str
    zboot: list[float]
    login: float  # the median login
    floor: list[Spent]
    commands: list[str]  # what one zboot run of it ran on the server

    @property
    def zboot_median(self) -> float:
        return statistics.median(self.zboot)

    @property
    def floor_median(self) -> float:
        return statistics.median(s.seconds for s in self.floor)

    @property
    def ratio(self) -> float:
        return self.zboot_median / (self.login + self.floor_median)

    @property
    def rest(self) -> float:
        """zboot's own time: neither the login nor the floor's work."""
        return self.zboot_median - self.login - self.floor_median


def login_seconds(layout: Layout, runs: int = 5) -> list[float]:
    """Fresh OpenSSH logins (no shared connection) running `true`."""
    out = []
    for _ in range(runs):
        start = time.monotonic()
        done = subprocess.run(
            [*ssh_argv(layout, shared=False), "true"], capture_output=True, timeout=120
        )
        out.append(time.monotonic() - start)
        if done.returncode != 0:
            raise LabError(f"ssh ... true failed: {done.stderr.decode(errors='replace')}")
    return out


def run_zboot(cli: ZbootCli, one: OneHost, sequence: Sequence[str]) -> dict[str, list[Ran]]:
    """Run the ops in sequence, each as zboot commands; each command's run by op."""
    runs: dict[str, list[Ran]] = {}
    for op in sequence:
        for args in one.zboot_args(op):
            runs.setdefault(op, []).append(cli(*args))
    return runs


def run_floors(
    layout: Layout, floor: Floor, one: OneHost, sequence: Sequence[str]
) -> dict[str, list[Spent]]:
    """The floor of the same sequence, in one process (with its own set-up
    and clean-up); its times by op."""
    phases = [floor.setup()]
    for op in sequence:
        phases += one.floor_phases(floor, op)
    phases.append(floor.cleanup())
    found: dict[str, list[Spent]] = {}
    for spent in run_floor_cleanly(layout, floor, phases):
        found.setdefault(spent.label, []).append(spent)
    return found


def measure(
    layout: Layout,
    cli: ZbootCli,
    zboot_host: OneHost,
    floor: Floor,
    floor_host: OneHost,
    runs: int,
    ops: Sequence[str] = SINGLE,
) -> list[Latency]:
    """The cycle, runs times: each time zboot's, then the floor's (a process
    of its own, so a load that comes and goes on the server weighs on both
    alike); then the logins. A row for each of ops, in their order."""
    zboot: dict[str, list[Ran]] = {}
    floors: dict[str, list[Spent]] = {}
    for _ in range(runs):
        for op, ran in run_zboot(cli, zboot_host, CYCLE).items():
            zboot.setdefault(op, []).extend(ran)
        for op, spent in run_floors(layout, floor, floor_host, CYCLE).items():
            floors.setdefault(op, []).extend(spent)
    login = statistics.median(login_seconds(layout))
    return rows(zboot, login, floors, ops)


def rows(
    zboot: dict[str, list[Ran]], login: float, floors: dict[str, list[Spent]], ops: Sequence[str]
) -> list[Latency]:
    """A row for each of ops: zboot's runs of it, the login, its floors."""
    return [
        Latency(op, [r.seconds for r in zboot[op]], login, floors[op], zboot[op][0].commands)
        for op in ops
    ]


def table(rows: Sequence[Latency]) -> str:
    head = (
        "| command | zboot s | SSH login s | floor s | zboot / (login + floor) "
        f"| goal <= {GOAL} | zboot's own s | zboot ran on the server (-v) |"
    )
    lines = [head, "|---|---:|---:|---:|---:|---|---:|---|"]
    for r in rows:
        verdict = "met" if r.ratio <= GOAL else "MISSED"
        lines.append(
            f"| {r.op} | {r.zboot_median:.2f} | {r.login:.2f} | {r.floor_median:.2f} "
            f"| {r.ratio:.2f} | {verdict} | {r.rest:.2f} | {summary(r.commands)} |"
        )
    return "\n".join(lines)


def floor_parts(rows: Sequence[Latency]) -> list[str]:
    """Where each floor's time goes (its first run), the biggest parts first."""
    lines = []
    for r in rows:
        parts = sorted(r.floor[0].parts.items(), key=lambda kv: -kv[1])
        shown = ", ".join(f"{k} {v:.2f}" for k, v in parts if v >= 0.005)
        lines.append(f"- {r.op}: {shown}")
    return lines
