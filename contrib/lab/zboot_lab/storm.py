"""The reset storm (`contrib/bench/storm`): `zboot serve` answering 40
ephemeral hosts that ask for their scripts at once, next to one host asking
alone, in one run. Every answer must be a host's script after its reset.

- single: one ephemeral host asks, alone, three times; its answer time (the
  median) is the baseline, and the service's log gives its server time.
- storm: 40 ephemeral hosts ask at the same moment (40 threads, one
  connection each, from the storage server itself, so the service is run
  with check_mac = false: its own address has no neighbour entry).

The requests come from inside the VM so no network emulation sits between
them and the service. The table goes to stdout and into docs/benchmarks.md
(the "Reset storm" section; the fleet benchmark keeps it)."""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

from . import service
from .devenv import ensure_venv
from .layout import LAN_SERVER, POOL, REPO_ROOT, Layout
from .procs import LabError
from .progress import say, step
from .remote import ssh, ssh_text
from .vm import start as start_vm

STORM = 40
SECTION = "## Reset storm"
# Asks for each MAC's script at once (a thread each); prints per request the
# status, the seconds it took and whether the answer boots a disk.
ASKER = f"""
import json, sys, threading, time, urllib.request
macs = sys.argv[1:]
out = [None] * len(macs)
start = threading.Barrier(len(macs))
def ask(n):
    start.wait()
    t = time.monotonic()
    url = "http://{LAN_SERVER}:{service.PORT}/" + macs[n].replace(":", "-") + ".ipxe"
    try:
        with urllib.request.urlopen(url, timeout=600) as r:
            body = r.read().decode()
            out[n] = [r.status, time.monotonic() - t, "sanboot" in body]
    except Exception as e:
        out[n] = [getattr(e, "code", 0), time.monotonic() - t, False]
threads = [threading.Thread(target=ask, args=(n,)) for n in range(len(macs))]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps(out))
"""
SPENT_RE = re.compile(r"reset \((?:reset ([0-9.]+) s)?")


def mac(n: int) -> str:
    return f"52:54:00:5a:{n // 256:02x}:{n % 256:02x}"


class Storm:
    def __init__(self, layout: Layout, python: Path, work: Path) -> None:
        self.layout = layout
        self.python = python
        self.root = f"{POOL}/storm-{uuid.uuid4().hex[:6]}"
        text = layout.config.read_text().replace(f'root = "{POOL}/zboot"', f'root = "{self.root}"')
        self.config = work / "storm.toml"
        self.config.write_text(service.client_config(text))
        self.work = work

    def zboot(self, *args: str) -> None:
        subprocess.run(
            [str(self.python), "-m", "zboot", "--config", str(self.config), *args],
            check=True,
            capture_output=True,
            cwd=REPO_ROOT,
        )

    def prepare(self) -> None:
        self.zboot("init")
        self.zboot("image", "create", "gold", "--size", "8M")
        self.zboot("image", "snapshot", "gold")
        hosts = self.work / "storm-hosts.csv"
        hosts.write_text("host,mac\n" + "".join(f"st{n:02},{mac(n)}\n" for n in range(STORM + 1)))
        self.zboot("clone", "gold", "--hosts", str(hosts), "--ephemeral")

    def ask(self, macs: list[str]) -> list[tuple[int, float, bool]]:
        out = ssh(self.layout, ["python3", "-c", ASKER, *macs], timeout=900).stdout
        return [(int(s), float(t), bool(b)) for s, t, b in json.loads(out)]

    def server_seconds(self, since: int) -> list[float]:
        """The reset phase of each answer the service logged after line since."""
        lines = service.log(self.layout).splitlines()[since:]
        return [float(m[1]) for line in lines if (m := SPENT_RE.search(line)) and m[1]]

    def resets(self) -> dict[str, int]:
        text = ssh_text(
            self.layout,
            [
                "zfs",
                "get",
                "-H",
                "-r",
                "-o",
                "name,value",
                "org.zboot:resets",
                f"{self.root}/hosts",
            ],
        )
        return {
            line.split()[0].rsplit("/", 1)[1]: int(line.split()[1])
            for line in text.splitlines()
            if line.split()[1].isdigit()
        }

    def cleanup(self) -> None:
        names = [f"st{n:02}" for n in range(STORM + 1)]
        subprocess.run(
            [
                str(self.python),
                "-m",
                "zboot",
                "--config",
                str(self.config),
                "destroy",
                *names,
                "--yes",
                "--force",
            ],
            capture_output=True,
            check=False,
            cwd=REPO_ROOT,
        )
        ssh(self.layout, ["zfs", "destroy", "-r", self.root], check=False)


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, round(0.95 * len(ordered)) - 1)]


def report(
    single: list[float], single_server: list[float], storm: list[float], batch: list[float]
) -> str:
    base = statistics.median(single)
    per_host = sum(batch) / STORM if batch else float("nan")
    lines = [
        SECTION,
        "",
        f"Written by `contrib/bench/storm` on {time.strftime('%Y-%m-%d')}: `zboot serve` in the",
        "lab's emulated storage VM (TCG), LIO, 8 MiB image; requests from the VM itself.",
        "",
        "| | requests | answer p50 | answer p95 | answer max | server time per host |",
        "|---|---:|---:|---:|---:|---:|",
        f"| one host alone (median of {len(single)}) | 1 | {base:.1f} s | - | {max(single):.1f} s "
        f"| {statistics.median(single_server):.1f} s |",
        f"| storm: {STORM} hosts at once | {STORM} | {statistics.median(storm):.1f} s "
        f"| {p95(storm):.1f} s | {max(storm):.1f} s | {per_host:.2f} s |",
        "",
        f"p95 of the storm / one host alone: **{p95(storm) / base:.2f}** (the goal: at most 2). "
        f"The storm's {STORM} resets ran in {len(batch)} batch(es) of the service's "
        f"({', '.join(f'{s:.1f} s' for s in batch)} of reset each).",
        "",
    ]
    return "\n".join(lines)


def write_section(text: str) -> None:
    path = REPO_ROOT / "docs" / "benchmarks.md"
    old = path.read_text()
    kept = old.split(SECTION)[0].rstrip("\n")
    path.write_text(kept + "\n\n" + text)


def run_storm(layout: Layout) -> int:
    python = ensure_venv()
    start_vm(layout)
    work = layout.state / "bench"
    work.mkdir(parents=True, exist_ok=True)
    storm = Storm(layout, python, work)
    try:
        with step(f"{STORM + 1} ephemeral hosts"):
            storm.prepare()
        with service.serving(layout, storm.config, check_mac=False):
            single: list[float] = []
            for _ in range(3):
                ((status, seconds, boots),) = storm.ask([mac(STORM)])
                if status != 200 or not boots:
                    raise LabError(f"the single host got {status}")
                single.append(seconds)
            single_server = storm.server_seconds(0)
            logged = len(service.log(layout).splitlines())
            with step(f"{STORM} hosts at once"):
                answers = storm.ask([mac(n) for n in range(STORM)])
            batch = storm.server_seconds(logged)
        bad = [n for n, (status, _, boots) in enumerate(answers) if status != 200 or not boots]
        counts = storm.resets()
        missing = [f"st{n:02}" for n in range(STORM) if counts.get(f"st{n:02}") != 1]
        if bad or missing:
            raise LabError(f"not answered with a script: {bad}; not reset once: {missing}")
        # one reset time per batch: the log repeats it on each of the batch's lines
        text = report(single, single_server, [t for _, t, _ in answers], sorted(set(batch)))
    finally:
        storm.cleanup()
    write_section(text)
    say(text)
    return 0


if __name__ == "__main__":
    sys.exit(run_storm(Layout.from_env()))
