"""Scale (issue 21, `contrib/bench/fleet --scale N`): provision, rollback and
destroy of N hosts (500) in one batch each, next to 10, and `list` and
`doctor` with that many hosts. No baseline and no floor at this size."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .baseline import hosts
from .bench_report import SCALE, verdict, when
from .clirun import ZbootCli
from .layout import POOL, Layout
from .procs import LabError
from .progress import step
from .remote import ssh_text

SMALL = 10
BATCH_OPS = ("provision", "rollback", "destroy")
READ_OPS = ("list", "doctor")
GIB = 1 << 30


@dataclass(frozen=True)
class ScaleRun:
    n: int
    seconds: dict[str, float]  # provision, list, doctor, rollback, destroy


def free_bytes(layout: Layout) -> int:
    return int(ssh_text(layout, ["zfs", "list", "-Hp", "-o", "available", POOL]).strip())


def check_room(layout: Layout, n: int, image_mib: int) -> int:
    """The pool's free bytes, refused when n hosts might not fit: each host is
    a clone of the image (its blocks shared) and a rollback keeps the old
    disk, so a GiB and a MiB per host is plenty when nothing writes to them."""
    free = free_bytes(layout)
    want = GIB + n * (1 << 20) + (image_mib << 20)
    if free < want:
        raise LabError(
            f"pool {POOL} has {free / GIB:.1f} GiB free; {n} hosts want {want / GIB:.1f}"
        )
    return free


def run_size(cli: ZbootCli, image: str, workdir: Path, n: int) -> ScaleRun:
    pairs = hosts(f"bs{n}x", n)
    listing = workdir / f"scale-{n}.csv"
    listing.write_text("host,mac\n" + "".join(f"{h},{m}\n" for h, m in pairs))
    names = [h for h, _ in pairs]
    seconds = {}
    with step(f"scale: {n} hosts"):
        seconds["provision"] = cli("clone", image, "--hosts", str(listing)).seconds
        seconds["list"] = cli("list").seconds
        # 6: drift found (another root's leftovers are not this run's to judge)
        seconds["doctor"] = cli("doctor", codes=(0, 6)).seconds
        seconds["rollback"] = cli("rollback", *names).seconds
        seconds["destroy"] = cli("destroy", *names, "--yes").seconds
    return ScaleRun(n, seconds)


def table(runs: Sequence[ScaleRun]) -> str:
    head = "| N | " + " | ".join(f"{op} s | {op} s/host" for op in BATCH_OPS)
    head += " | " + " | ".join(f"`{op}` s" for op in READ_OPS) + " |"
    lines = [head, "|" + "---:|" * (1 + 2 * len(BATCH_OPS) + len(READ_OPS))]
    for r in runs:
        cells = [f"{r.seconds[op]:.1f} | {r.seconds[op] / r.n:.2f}" for op in BATCH_OPS]
        cells += [f"{r.seconds[op]:.1f}" for op in READ_OPS]
        lines.append(f"| {r.n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ratio_lines(small: ScaleRun, big: ScaleRun, login: float) -> list[str]:
    lines = []
    for op in BATCH_OPS:
        growth = (big.seconds[op] / big.n) / (small.seconds[op] / small.n)
        lines.append(
            f"- **{op}**: per host N={big.n} / N={small.n} = {growth:.2f} "
            f"(want <= 1.5: {verdict(growth, 1.5)})"
        )
    for op in READ_OPS:
        bound = 2 * small.seconds[op] + login
        lines.append(
            f"- **`{op}`** with {big.n} hosts: {big.seconds[op]:.1f} s; 2 x its time with "
            f"{small.n} ({small.seconds[op]:.1f} s) + one SSH login ({login:.2f} s) = "
            f"{bound:.1f} s (want at most that: {verdict(big.seconds[op], bound)})"
        )
    return lines


def section(
    runs: Sequence[ScaleRun],
    logins: Sequence[float],
    image: str,
    image_mib: int,
    free: int,
    seconds: float,
) -> str:
    small, big = runs[0], runs[-1]
    login = statistics.median(logins)
    return "\n".join(
        [
            SCALE,
            "",
            *when(seconds),
            f"- golden image: `{image}`, {image_mib} MiB of random data; every host is a "
            f"clone of it and nothing writes to them, so they share its blocks (pool {POOL} "
            f"had {free / GIB:.1f} GiB free before the run)",
            "",
            f"zboot as in the fleet table, one command per operation for all N hosts, at "
            f"N = {small.n} and N = {big.n}: `clone IMAGE --hosts FILE`, then `list` and "
            "`doctor` (exit 0, or 6 when it finds drift: both read everything), `rollback "
            "HOST...`, `destroy HOST...`. The SSH login is the median of "
            f"{len(logins)} fresh OpenSSH connections running `true`.",
            "",
            table(runs),
            "",
            *ratio_lines(small, big, login),
            "",
        ]
    )
