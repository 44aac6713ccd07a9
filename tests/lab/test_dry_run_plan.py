"""--dry-run plans what a real run does: for every command that changes the
server, on LIO and on tgt, the plan (`--dry-run --json`, `data.planned`) and
the real run's list of changes (`-v`, its `change: ` lines) are the same list,
made by the same code (remote.plan.PlanRunner) in both modes."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from zboot_cli import Zboot, zboot_root
from zboot_lab.layout import Layout
from zboot_lab.remote import ssh, ssh_text

pytestmark = pytest.mark.lab

# Only what a clock decides differs between a dry run and the real run made a
# few seconds later: the UTC times zboot stamps on records (org.zboot:created=
# 2026-11-30T14:55:00Z), the archive names a rollback makes (pc1-20261130-145500)
# and a default restore point's name (rp-20261130-145500). Everything else,
# byte counts of written files and CHAP secrets included, must match as it is.
CLOCK = [
    (re.compile(r"\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\b"), "<time>"),
    (re.compile(r"\b\d{8}-\d{6}\b"), "<stamp>"),
]


def normalised(lines: list[str]) -> list[str]:
    for pattern, placeholder in CLOCK:
        lines = [pattern.sub(placeholder, line) for line in lines]
    return lines


def recorded(lab: Layout, zboot: Zboot) -> str:
    """What a dry run must leave as it is: the root's datasets and zboot's
    properties on them, and the root's secret files (one SSH command on the
    lab's shared connection; the boot directory is shared with the other
    engine's root, which changes beside this one)."""
    secrets = f"{lab_secrets(zboot)}/{zboot.root.replace('/', '_')}"
    return ssh_text(
        lab,
        [
            "sh",
            "-c",
            'zfs get -H -r -s local -o name,property,value all "$1" 2>&1; ls -l "$2" 2>&1; true',
            "sh",
            zboot.root,
            secrets,
        ],
    )


def plan_then_run(lab: Layout, zboot: Zboot, *args: str) -> list[str]:
    """Run args with --dry-run, then for real; both lists of changes must be
    the same (and not empty: every command here changes something), and the
    dry run must have changed nothing."""
    before = recorded(lab, zboot)
    dry = zboot("--dry-run", *args)["data"]
    assert recorded(lab, zboot) == before, args
    assert dry["dry_run"] is True
    planned: list[str] = dry["planned"]
    zboot("-v", *args)
    changed = [
        line.removeprefix("change: ")
        for line in zboot.stderr.splitlines()
        if line.startswith("change: ")
    ]
    assert changed, (args, zboot.stderr)
    assert normalised(planned) == normalised(changed), "\n".join(
        [" ".join(args), "planned:", *planned, "changed:", *changed]
    )
    return changed


def with_engine(lab: Layout, zboot: Zboot, engine: str, config: Path | None = None) -> Zboot:
    """zboot on the same root, its config (rewritten in place, or written to
    config) pointed at one of the lab VM's engines and its portal."""
    own = Path(zboot.env["ZBOOT_CONFIG"])
    text = re.sub(r'(?m)^engine = ".*"$', f'engine = "{engine}"', own.read_text())
    if engine != "auto":
        text = text.replace(lab.portal("lio"), lab.portal(engine))
    (config or own).write_text(text)
    return Zboot(config or own, zboot.root)


def every_change(
    lab: Layout, zboot: Zboot, work: Path, engine: str, macs: str, everything: bool
) -> None:
    """One root, one engine: the whole life of an image and its hosts, each
    step planned, then run. The hosts are named after the engine (target
    names share the lab's iqn_base across roots); macs: their MACs but the
    last byte (the boot directory is shared, its scripts named by MAC).
    everything=False: only the commands whose plan involves the engine
    (the others, engine-blind, are planned on the other root), to spare the
    lab's time: every zboot command costs seconds on the emulated server."""
    one, two, three = (f"{engine}{n}" for n in (1, 2, 3))
    with_engine(lab, zboot, engine)  # no init: image create makes the root's datasets
    step = plan_then_run if everything else run_only
    step(lab, zboot, "image", "create", "gold", "--size", "8M")
    step(lab, zboot, "image", "snapshot", "gold")
    chap = plan_then_run(lab, zboot, "clone", "gold", one, "--mac", f"{macs}:01", "--chap")
    assert any(line.startswith("write ") and ".chap (" in line for line in chap)
    listing = work / "hosts.csv"
    listing.write_text(f"host,mac\n{two},{macs}:02\n{three},{macs}:03\n")
    batch = plan_then_run(lab, zboot, "clone", "gold", "--hosts", str(listing))
    assert sum(line.startswith("zfs clone ") for line in batch) == 2
    step(lab, zboot, "snapshot", one)  # a default restore point: rp-<time>
    rolled = plan_then_run(lab, zboot, "rollback", one)
    assert any(line.startswith(f"zfs rename {zboot.root}/hosts/{one} ") for line in rolled)
    plan_then_run(lab, zboot, "mode", two, "install")
    step(lab, zboot, "mode", two, "normal")
    # the image's lifecycle: a host's disk sent as the next version (v2),
    # and a host moved onto it (its export down and up: the engine's calls)
    step(lab, zboot, "commit", three, "-m", "three's disk")
    rebased = plan_then_run(lab, zboot, "rebase", two, "--to", "gold")
    assert any(line.startswith("zfs clone ") and "/gold@v2 " in line for line in rebased)
    # drift for sync to repair: the CHAP host's secret file lost, so new
    # secrets, its export made again with them (by the engine), and its script
    secret = f"{lab_secrets(zboot)}/{zboot.root.replace('/', '_')}/{one}.chap"
    ssh(lab, ["rm", "-f", secret])
    synced = plan_then_run(lab, zboot, "sync")
    assert any(line.startswith(f"write {secret} (") for line in synced), synced
    assert any("<zboot agent>" in line or "tgtadm" in line for line in synced), synced
    step(lab, zboot, "prune", one, "--yes")
    plan_then_run(lab, zboot, "destroy", one, two, three, "--yes")
    step(lab, zboot, "image", "destroy", "gold@v1", "--yes")


def run_only(lab: Layout, zboot: Zboot, *args: str) -> list[str]:
    """The real run alone (its plan is checked on the other root)."""
    zboot(*args)
    return []


def lab_secrets(zboot: Zboot) -> str:
    text = Path(zboot.env["ZBOOT_CONFIG"]).read_text()
    return next(line.split('"')[1] for line in text.splitlines() if line.startswith("secrets_dir"))


def auto_engine(lab: Layout, zboot: Zboot) -> tuple[str, str]:
    """The engine `engine = "auto"` picks, on a root of its own (the others
    change under it): in a dry run, in a real one (doctor changes nothing
    and names it; on an empty root it finds nothing to fix)."""
    auto = with_engine(lab, zboot, "auto")
    dry = auto("--dry-run", "doctor")["data"]["result"]["engine"]
    return dry, auto("doctor")["data"]["engine"]


@pytest.mark.full  # CI's time budget: the plans are unit-tested; docs/lab.md
def test_a_dry_run_plans_what_the_real_run_changes_on_lio_and_tgt(
    lab: Layout, tmp_path: Path
) -> None:
    # Two roots, one per engine, side by side: the dry runs take no lock and
    # the real runs wait for each other's lock, so the two sequences share
    # the lab's time (every zboot command costs seconds over SSH).
    started = time.monotonic()
    with (
        zboot_root(lab, tmp_path / "lio") as on_lio,
        zboot_root(lab, tmp_path / "tgt") as on_tgt,
        zboot_root(lab, tmp_path / "auto") as on_auto,
        ThreadPoolExecutor(3) as pool,
    ):
        runs = [
            pool.submit(every_change, lab, on_lio, tmp_path / "lio", "lio", "52:54:00:d7:01", True),
            pool.submit(
                every_change, lab, on_tgt, tmp_path / "tgt", "tgt", "52:54:00:d7:02", False
            ),
        ]
        # engine = "auto" picks in a dry run what it picks in a real one. The
        # lab VM has both rtslib and tgtadm (the tests choose tgt by naming
        # it), so auto means LIO here in both; a tgt-only server, where a dry
        # run used to pick LIO (its rtslib and tool checks were only planned),
        # is covered by the unit test
        # test_auto_picks_tgt_on_a_tgt_only_server_under_dry_run.
        auto = pool.submit(auto_engine, lab, on_auto)
        for run in runs:
            run.result()
        assert auto.result() == ("lio", "lio")
    print(f"dry-run plan test: {time.monotonic() - started:.0f} s")
