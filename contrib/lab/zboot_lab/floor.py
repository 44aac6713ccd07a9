"""The floor (issue 21): the ZFS and LIO work zboot does for an operation,
done by one Python process inside the storage VM (floor_vm.py, shipped on
stdin) and timed there. What is left of zboot's time above it is zboot's
own: the SSH connection, the server lock, Python and agent start-ups, a
process (or a remote shell) per step, and its records.

Each operation runs the commands `zboot -v` lists for it (OpenZFS 2.3, LIO,
zboot at 4bff25d), built with zboot's own argv code (zboot.zfs.cli and
zboot.zfs.program), on the floor's own datasets, targets and files. A
"mark" below is a property set on several disks at once: one `zfs program`
(zboot.zfs.program.SET_PROPS, split as zboot splits it) for a batch, one
`zfs set` for a single host. zboot -v for N hosts, and the floor:

- every command: `zfs list` and `zfs get` of the root, side by side. Floor:
  the same, of its own root.
- clone: N `zfs clone -o ...`; the LIO agent (a walk of LIO, N exports,
  one save); a mark (step exported); `mkdir -p` of the boot directory; N
  boot files; a mark (done). Floor: the same, the agent's rtslib calls
  made in-process.
- rollback and rebase: who is logged in (a shell reading configfs); a mark
  (each disk its plan); the LIO agent (walk, N deletes); N `zfs rename`;
  N `zfs clone`; a mark (the archives); the agent (walk, N exports, one
  save); a mark (done). Floor: one walk with the sessions, the rest the
  same.
- a batch of zboot.zfs.lzc_remote.AT_LEAST hosts or more: its clones and
  its renames through libzfs_core by zboot's ZFS agent, no `zfs clone` or
  `zfs rename`. Floor: the same agent's code, in-process.
- destroy: the agent (sessions); a mark (destroying); the agent (walk, N
  deletes, save); `rm -f` of the secret files; N boot files removed (SFTP);
  one `zfs program` (zboot.zfs.program.DESTROY). Floor: one walk, the files
  removed in-process, the same channel program.
- mode: `zfs set` (switching); `mkdir -p`; the boot file; `zfs set` (done).
- snapshot: one `zfs snapshot -o created=...`.
- show: the reads alone.
- list: a shell reading who is logged in to every host's target from
  configfs (zboot.targets.lio.SESSIONS). Floor: the sessions read
  in-process with rtslib.

When zboot's list changes, the benchmark's text and tests/lab/
test_bench_ratios.py say so (they compare the zfs commands of both).

Not in the floor: the lock holder zboot starts on the server, SSH, and
every process start that is not a zfs command (zboot's session agent or
its engine agents, `mkdir`, `rm`)."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zboot.boot.ipxe import BootTarget, render, script_name
from zboot.targets.base import disk_serial
from zboot.zfs import lzc_remote, program
from zboot.zfs.cli import (
    LIST_FIELDS,
    VALUES,
    Change,
    change_argv,
    filesystem_argv,
    full_key,
    prop_args,
)

from .layout import HOST_FROM_GUEST, POOL, Layout
from .procs import LabError
from .remote import ssh

ROOT = f"{POOL}/zboot-bench-floor"  # the benchmark's floor, outside zboot's root
SCRIPT = Path(__file__).with_name("floor_vm.py")
# floor_vm.py, then NUL, then the request, on stdin (as zboot ships its agents)
BOOTSTRAP = (
    "import sys; src, _, req = sys.stdin.buffer.read().partition(b'\\0'); "
    "exec(compile(src, 'zboot-floor', 'exec'), {'__name__': 'zboot_floor', 'REQUEST': req})"
)
LISTEN = ("0.0.0.0", 3260)  # noqa: S104  # as zboot's LIO engine listens
CLIENT_PORTAL = f"{HOST_FROM_GUEST}:3260"  # only the boot files' text

Step = dict[str, Any]


@dataclass
class Phase:
    label: str
    steps: list[Step]
    timed: bool = True

    def zfs_commands(self) -> list[str]:
        """`zfs <verb>` of every zfs command, in order (the reads as two)."""
        argvs = [a for s in self.steps for a in s.get("argvs", [s.get("argv", [])])]
        return [" ".join(a[:2]) for a in argvs if a[:1] == ["zfs"]]


@dataclass
class Floor:
    """The floor's datasets (under root), targets (IQNs under its own base),
    LIO stores and files (a directory of its own), and the steps of each
    operation on them. It remembers what its phases leave behind (each
    host's origin and archives) so a later phase can be planned before any runs."""

    root: str = ROOT
    tag: str = "bench"  # keeps two floors' IQNs, stores and files apart
    image_mib: int = 64
    fill: bool = True  # random bytes in the image (False: empty, as `zboot image create`)
    version: int = 1
    origins: dict[str, str] = field(default_factory=dict)  # host -> the snapshot it came from
    macs: dict[str, str] = field(default_factory=dict)
    archives: dict[str, list[str]] = field(default_factory=dict)
    counter: itertools.count[int] = field(default_factory=itertools.count)

    @property
    def image(self) -> str:
        return f"{self.root}/images/gold"

    @property
    def iqn_base(self) -> str:
        return f"iqn.2026-11.lab.zboot-floor.{self.tag}"

    @property
    def store_prefix(self) -> str:
        return f"zfloor-{self.tag}-"

    @property
    def directory(self) -> str:
        return f"/srv/zboot-floor-{self.tag}"

    def dataset(self, host: str) -> str:
        return f"{self.root}/hosts/{host}"

    def target(self, host: str) -> str:
        return f"{self.iqn_base}:{host}"

    # --- the steps zboot's commands share --------------------------------------
    def reads(self) -> Step:
        """ZfsCli.datasets(root): every dataset with zboot's properties."""
        listing = ["zfs", "list", "-Hp", "-r", "-t", "all", "-s", "createtxg", "-o"]
        props = ["zfs", "get", "-Hp", "-r", "-s", "local", "-t", "all", "-o"]
        return {
            "do": "reads",
            "argvs": [
                [*listing, ",".join(LIST_FIELDS), self.root],
                [*props, VALUES, "all", self.root],
            ],
        }

    def mark(self, hosts: Sequence[str], props: dict[str, str]) -> list[Step]:
        """The same properties on each host's disk, as ZfsCli.mark."""
        return sets([(self.dataset(h), props) for h in hosts])

    def boot_files(self, hosts: Sequence[str], mode: str = "normal") -> list[Step]:
        steps: list[Step] = [{"do": "mkdir", "path": f"{self.directory}/boot"}]
        for host in hosts:
            boot = BootTarget(
                host, CLIENT_PORTAL, 0, self.target(host), initiator(host), None, self.root
            )
            path = f"{self.directory}/boot/{script_name(self.macs[host])}"
            steps.append({"do": "write", "path": path, "text": render(mode, boot)})
        return steps

    def exports(self, hosts: Sequence[str]) -> list[Step]:
        made = [
            {
                "storage": f"{self.store_prefix}{h}",
                "device": f"/dev/zvol/{self.dataset(h)}",
                "serial": disk_serial(h),
                "target": self.target(h),
                "initiator": initiator(h),
            }
            for h in hosts
        ]
        return [{"do": "lio-create", "exports": made}, {"do": "lio-save"}]

    def unexport(self, hosts: Sequence[str]) -> Step:
        """Each host's target and its store, as zboot's agent deletes them."""
        return {
            "do": "lio-delete",
            "targets": [self.target(h) for h in hosts],
            "stores": [f"{self.store_prefix}{h}" for h in hosts],
        }

    def walk(self, hosts: Sequence[str], luns: bool = True) -> Step:
        return {"do": "lio-walk", "targets": [self.target(h) for h in hosts], "luns": luns}

    def archive_name(self, host: str) -> str:
        stamp = f"{time.strftime('%Y%m%d', time.gmtime())}-{next(self.counter):06}"
        return f"{self.root}/archive/{host}-{stamp}"  # as long as zboot's (a time of day)

    # --- operations -------------------------------------------------------------
    def clone(self, label: str, pairs: Sequence[tuple[str, str]]) -> Phase:
        origin = f"{self.image}@v{self.version}"
        steps = [self.reads()]
        clones = []
        for host, mac in pairs:
            self.macs[host], self.origins[host] = mac, origin
            props = {
                "kind": "host",
                "mac": mac,
                "image": "gold",
                "version": f"v{self.version}",
                "origin": origin,
                "created": now(),
                "mode": "normal",
                "initiator": initiator(host),
                "step": "clone:cloned",
                "state": "provisioning",
                "target": self.target(host),
            }
            clones.append(Change.clone(origin, self.dataset(host), props))
        steps += one_by_one(clones)
        hosts = [h for h, _ in pairs]
        steps += [self.walk([]), *self.exports(hosts)]
        steps += self.mark(hosts, {"step": "clone:exported"})
        steps += self.boot_files(hosts)
        steps += self.mark(hosts, {"step": "clone:done", "state": "ready"})
        return Phase(label, steps)

    def rollback(self, label: str, hosts: Sequence[str], rebase: bool = False) -> Phase:
        """Each host's disk renamed into the archive and its origin (rebase:
        the image's latest version) cloned back under its name."""
        steps = [self.reads(), self.walk(hosts)]
        plans, moves = [], []
        for host in hosts:
            source = f"{self.image}@v{self.version}" if rebase else self.origins[host]
            archive = self.archive_name(host)
            plan = {
                "host": host,
                "rollback-to": source,
                "rollback-archive": archive,
                "step": "rollback:planned",
                "state": "rolling-back",
            }
            plans.append((self.dataset(host), plan))
            record = self.record(host, source) | plan | {"rolled-back": now()}
            if rebase:
                record |= {"rebased": now(), "rebased-from": f"gold@{leaf(self.origins[host])}"}
            record |= {"step": "rollback:cloned"}
            moves.append((host, source, archive, record))
            self.origins[host] = source
            self.archives.setdefault(host, []).append(archive)
        steps += sets(plans)
        steps.append(self.unexport(hosts))
        steps += one_by_one([Change.rename(self.dataset(h), a) for h, _, a, _ in moves])
        steps += one_by_one([Change.clone(src, self.dataset(h), rec) for h, src, _, rec in moves])
        mark = {"kind": "archive", "state": "archived", "archived": now()}
        steps += sets([(archive, mark) for _, _, archive, _ in moves])
        steps += self.exports(hosts)
        steps += self.mark(hosts, {"step": "rollback:done", "state": "ready"})
        return Phase(label, steps)

    def record(self, host: str, source: str) -> dict[str, str]:
        return {
            "kind": "host",
            "mac": self.macs[host],
            "image": "gold",
            "version": leaf(source),
            "origin": source,
            "created": now(),
            "mode": "normal",
            "initiator": initiator(host),
            "target": self.target(host),
        }

    def destroy(self, label: str, hosts: Sequence[str]) -> Phase:
        steps = [self.reads(), self.walk(hosts)]
        steps += self.mark(hosts, {"step": "destroy:marked", "state": "destroying"})
        steps += [self.unexport(hosts), {"do": "lio-save"}]
        gone = [f"{self.directory}/secrets/{h}.chap" for h in hosts]
        gone += [f"{self.directory}/boot/{script_name(self.macs[h])}" for h in hosts]
        steps.append({"do": "remove", "paths": gone})
        names = [n for h in hosts for n in (*self.archives.pop(h, []), self.dataset(h))]
        argv = program.destroy_argv(self.root.split("/")[0], names)
        steps.append({"do": "run", "argv": argv, "stdin": program.DESTROY, "program": True})
        for host in hosts:
            self.origins.pop(host, None)
        return Phase(label, steps)

    def mode(self, label: str, host: str, mode: str) -> Phase:
        steps = [self.reads(), *self.mark([host], {"step": f"mode:{mode}", "state": "switching"})]
        steps += self.boot_files([host], mode)
        steps += self.mark([host], {"mode": mode, "step": "mode:done", "state": "ready"})
        return Phase(label, steps)

    def snapshot(self, label: str, host: str) -> Phase:
        point = f"{self.dataset(host)}@rp-{time.strftime('%Y%m%d')}-{next(self.counter):06}"
        argv = ["zfs", "snapshot", *prop_args({"created": now()}), point]
        return Phase(label, [self.reads(), {"do": "run", "argv": argv}])

    def show(self, label: str) -> Phase:
        return Phase(label, [self.reads()])

    def listing(self, label: str) -> Phase:
        return Phase(label, [self.reads(), self.walk(sorted(self.origins), luns=False)])

    # --- set-up and clean-up (not timed) ------------------------------------------
    def new_version(self) -> Phase:
        """The image's next version, as `zboot image snapshot` makes it before a rebase."""
        self.version += 1
        return Phase(
            f"v{self.version}", [run(["zfs", "snapshot", f"{self.image}@v{self.version}"])], False
        )

    def setup(self) -> Phase:
        """A clean slate, then the floor's root and its golden image (image_mib
        MiB, sparse, of random bytes as `zboot image import` makes one of a
        file, or empty)."""
        steps = self.cleanup().steps
        for part in ("images", "hosts", "archive"):
            steps.append(run(filesystem_argv(f"{self.root}/{part}")))
        size = str(self.image_mib << 20)
        steps.append(run(change_argv(Change.volume(self.image, int(size), {"kind": "image"}))))
        if self.fill:
            steps.append({"do": "fill", "device": f"/dev/zvol/{self.image}", "mib": self.image_mib})
        steps.append(run(["zfs", "snapshot", f"{self.image}@v1"]))
        steps.append({"do": "mkdir", "path": f"{self.directory}/secrets"})
        return Phase("set-up", steps, timed=False)

    def cleanup(self) -> Phase:
        """The floor's targets and stores, its root and its directory: all it made."""
        return Phase(
            "clean-up",
            [
                {"do": "lio-clean", "iqn_base": self.iqn_base},
                run(["zfs", "destroy", "-r", self.root], check=False),
                run(["rm", "-rf", self.directory]),
            ],
            timed=False,
        )

    def request(self, phases: Sequence[Phase]) -> dict[str, Any]:
        return {
            "save_file": f"{self.directory}/saveconfig.json",
            "store_prefix": self.store_prefix,
            "portal": list(LISTEN),
            "lzc_agent": lzc_remote.AGENT,
            "phases": [{"label": p.label, "timed": p.timed, "steps": p.steps} for p in phases],
        }


def sets(props: Sequence[tuple[str, dict[str, str]]]) -> list[Step]:
    """Each dataset's properties as zboot sets them (ZfsCli.set_many): a
    `zfs set` for one dataset, else channel programs (SET_PROPS), as many as
    zboot splits them into."""
    if len(props) == 1:
        return [zfs(Change.set(*props[0]))]
    full = [(name, {full_key(k): v for k, v in values.items()}) for name, values in props]
    return [
        {
            "do": "run",
            "argv": program.set_props_argv(pool, [full[i] for i in part]),
            "stdin": program.SET_PROPS,
            "program": True,
        }
        for pool, part in program.set_batches(full)
    ]


def one_by_one(changes: Sequence[Change]) -> list[Step]:
    """One command per host, one after another, as zboot's remote shell runs
    a batch's chains (zboot.remote.chains); a batch big enough for zboot's
    ZFS agent through libzfs_core, as the agent makes it
    (zboot.zfs.lzc_remote)."""
    chains = [[c] for c in changes]
    if lzc_remote.fits(chains):
        return [{"do": "lzc", **lzc_remote.request(chains)}]
    return [zfs(c) for c in changes]


def zfs(change: Change) -> Step:
    return run(change_argv(change))


def run(argv: list[str], check: bool = True) -> Step:
    return {"do": "run", "argv": argv, "check": check}


def initiator(host: str) -> str:
    return f"iqn.2010-04.org.ipxe:{host}"


def leaf(snapshot: str) -> str:
    return snapshot.rsplit("@", 1)[-1]


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass(frozen=True)
class Spent:
    """A timed phase: its seconds in all, and by kind of step (`zfs clone`,
    `lio-create`, `lio-save`, `write`, ...)."""

    label: str
    seconds: float
    parts: dict[str, float]


def run_floor(
    layout: Layout, floor: Floor, phases: Sequence[Phase], timeout: float = 7200
) -> list[Spent]:
    """Run phases in one process in the storage VM; each timed phase's time,
    in order."""
    request = json.dumps(floor.request(phases)).encode()
    result = ssh(
        layout,
        ["/usr/bin/python3", "-I", "-c", BOOTSTRAP],
        stdin=SCRIPT.read_bytes() + b"\0" + request,
        check=False,
        timeout=timeout,
        kind="the floor (one process in the storage VM)",
    )
    if result.returncode != 0:
        raise LabError(f"the floor failed: {result.stderr.decode(errors='replace').strip()}")
    answer = json.loads(result.stdout)
    return [Spent(str(a), float(b), dict(c)) for a, b, c in answer["seconds"]]


def run_floor_cleanly(layout: Layout, floor: Floor, phases: Sequence[Phase]) -> list[Spent]:
    """run_floor; if it breaks off, the floor's clean-up in a process of its own."""
    try:
        return run_floor(layout, floor, phases)
    except BaseException:
        run_floor(layout, floor, [floor.cleanup()])
        raise
