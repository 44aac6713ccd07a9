"""Fault injection against the storage VM, for LIO and tgt. The fault
points of clone, rollback, destroy and mode are found by reading zboot's
source for `faults.point(...)`, not listed here, and the order in which each
way of running an operation passes them by running it once with a trace.

Then, per engine and way of running, one host goes through a chain of runs
of the same command, each cut short at the next point by a kill (nothing
cleans up) or a dropped SSH connection (the clean-up runs and fails), one on
each engine; on LIO also, where an engine call follows, by a failing target
engine (a wrapper round the engine, so the same on any). Every run after the first
starts from what the fault before left, so each fault's state is what the
next run must recover from. The last run has no fault: on LIO the same
command again, on tgt `zboot sync`. Then the server must have converged:

- the host is ready in the mode wanted (or gone, for destroy) and logs in
  for real (libiscsi, with its CHAP secret);
- every host of the run has exactly its target, script and secret file,
  counted on the server itself, and nothing of a destroyed host is left;
- at the end, `zboot doctor` finds nothing and the golden image is
  byte-identical to what was imported.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from zboot_cli import Zboot
from zboot_lab.layout import POOL, Layout
from zboot_lab.remote import ssh, ssh_text

pytestmark = pytest.mark.lab

SOURCE = Path(__file__).resolve().parents[2] / "zboot"
ENGINES = ("lio", "tgt")
IMAGE_BYTES = 4 << 20


def fault_points() -> dict[str, bool]:
    """Every `faults.point(NAME, engine=...)` in zboot's source: name -> whether
    an engine call follows it."""
    found: dict[str, bool] = {}
    for path in sorted(SOURCE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "point"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "faults"
            ):
                continue
            name = node.args[0]
            assert isinstance(name, ast.Constant) and isinstance(name.value, str), path
            engine = any(
                k.arg == "engine" and isinstance(k.value, ast.Constant) and k.value.value is True
                for k in node.keywords
            )
            assert name.value not in found, f"fault point {name.value} appears twice"
            found[name.value] = engine
    return found


POINTS = fault_points()


@dataclass(frozen=True)
class Variant:
    """One way to run an operation: its command line for a host, and what the
    host must be before (None: not there yet)."""

    op: str
    argv: Callable[[str, str], list[str]]
    # None, "normal", "maintenance", or "newest": normal, rebased onto the
    # image's newest version first (what a commit needs)
    before: str | None
    after: str | None  # the mode afterwards; None: the host is gone
    # an operation built on another's steps (reset: a discarding rollback):
    # its chain faults every point it passes, on these engines alone
    own_chain: tuple[str, ...] = ()


VARIANTS = [
    Variant("clone", lambda h, mac: ["clone", "gold", h, "--mac", mac, "--chap"], None, "normal"),
    Variant("rollback", lambda h, mac: ["rollback", h], "normal", "normal"),
    Variant("destroy", lambda h, mac: ["destroy", h, "--yes"], "normal", None),
    Variant("mode", lambda h, mac: ["mode", h, "local"], "normal", "local"),
    Variant("mode", lambda h, mac: ["mode", h, "maintenance"], "normal", "maintenance"),
    Variant("mode", lambda h, mac: ["mode", h, "normal"], "maintenance", "normal"),
    Variant("reset", lambda h, mac: ["reset", h, "--yes"], "normal", "normal", ("lio",)),
    # rebase: rollback's steps onto gold@v2 (the stock hosts are on v1)
    Variant(
        "rebase", lambda h, mac: ["rebase", h, "--to", "gold@v2"], "normal", "normal", ("lio",)
    ),
    # commit: the host's disk as gold's next version; its own points
    Variant("commit", lambda h, mac: ["commit", h, "-m", "faulted"], "newest", "normal", ("lio",)),
]


FINISH = {"lio": "the same command", "tgt": "zboot sync"}


# Chains that `lab test --full` walks and CI leaves out (its time budget):
# rebase runs rollback's steps, which CI faults in rollback's own chains;
# on tgt, every chain (CI faults every point once on LIO, a kill or a drop,
# and every engine point with an engine failure; the full run adds the other
# kind of each on tgt, finished by `zboot sync`).
FULL_ONLY = {"rebase"}
FULL_ONLY_ENGINES = {"tgt"}


def full_only(engine: str, op: str = "") -> list[pytest.MarkDecorator]:
    return [pytest.mark.full] if engine in FULL_ONLY_ENGINES or op in FULL_ONLY else []


def chains() -> list[Any]:
    """(engine, variant number): a chain of faulted runs for each."""
    return [
        pytest.param(engine, n, marks=full_only(engine, v.op))
        for engine in ENGINES
        for n, v in enumerate(VARIANTS)
        if not v.own_chain or engine in v.own_chain
    ]


class Server:
    """One engine's zboot root on the lab VM, with the numbers the note reports."""

    def __init__(self, lab: Layout, engine: str, work: Path) -> None:
        self.lab, self.engine = lab, engine
        self.root = f"{POOL}/f{engine}-{uuid.uuid4().hex[:6]}"
        text = lab.config.read_text().replace(f'root = "{POOL}/zboot"', f'root = "{self.root}"')
        text = text.replace('engine = "lio"', f'engine = "{engine}"').replace(
            lab.portal("lio"), lab.portal(engine)
        )
        config = work / f"{engine}.toml"
        config.write_text(text)
        self.zboot = Zboot(config, self.root)
        self.work = work
        self.port, self.lun = (lab.lio_port, 0) if engine == "lio" else (lab.tgt_port, 1)
        self.count = 0
        self.prefix = f"f{uuid.uuid4().hex[:4]}{engine[0]}"
        self.ready: list[tuple[str, str]] = []  # ready hosts, made in one batch
        self.covered: set[tuple[str, str]] = set()  # (point, fault) injected
        self.own: dict[str, set[tuple[str, str]]] = {}  # an own_chain variant's, by op
        self.chains: dict[int, list[tuple[str, str]]] = {}  # variant -> its faults
        self.injected = 0
        self.image_sum = ""

    def new_host(self) -> tuple[str, str]:
        """A host name no other run shares (target names are per iqn_base,
        which every root on the lab shares), and its MAC."""
        self.count += 1
        return (
            f"{self.prefix}{self.count:03}",
            f"52:54:00:f{ENGINES.index(self.engine)}:"
            f"{self.count // 256:02x}:{self.count % 256:02x}",
        )

    def run(
        self, argv: list[str], fault: str | None = None, trace: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        env = dict(self.zboot.env)
        env.pop("ZBOOT_TEST_FAULT", None)
        if fault:
            env["ZBOOT_TEST_FAULT"] = fault
        if trace:
            env["ZBOOT_TEST_FAULT_TRACE"] = str(trace)
        return subprocess.run(
            [sys.executable, "-m", "zboot", "--json", *argv],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
        )

    def image_checksum(self) -> str:
        device = f"/dev/zvol/{self.root}/images/gold"
        return ssh_text(self.lab, ["sha256sum", device]).split()[0]

    def login(
        self, record: dict[str, str], chap: dict[str, str] | None
    ) -> subprocess.CompletedProcess[str]:
        """INQUIRY as the host's machine: its initiator name and CHAP secret."""
        env = dict(os.environ)
        if chap is not None:
            env |= {
                "LIBISCSI_CHAP_USERNAME": chap["user"],
                "LIBISCSI_CHAP_PASSWORD": chap["secret"],
            }
        url = f"iscsi://127.0.0.1:{self.port}/{record['target']}/{self.lun}"
        return subprocess.run(
            ["iscsi-inq", "-i", record["initiator"], url],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )


class Servers:
    """Each engine's server, set up when its first scenario runs and kept for
    the rest (parametrizing a module fixture per scenario would set it up
    again for every one)."""

    def __init__(self, lab: Layout, work: Path) -> None:
        self.lab, self.work = lab, work
        self.made: dict[str, Server] = {}
        self.traces: dict[int, list[str]] = {}  # variant -> the points it passes

    def get(self, engine: str) -> Server:
        if engine not in self.made:
            self.made[engine] = self._set_up(engine)
        return self.made[engine]

    def _set_up(self, engine: str) -> Server:
        s = Server(self.lab, engine, self.work)
        disk = self.work / f"gold-{engine}.raw"
        disk.write_bytes(os.urandom(IMAGE_BYTES))
        s.zboot("init")
        s.zboot("image", "import", "gold", str(disk))
        s.zboot("image", "snapshot", "gold")
        s.image_sum = s.image_checksum()
        assert s.image_sum == hashlib.sha256(disk.read_bytes()).hexdigest()
        stock = [s.new_host() for _ in range((2 if engine == ENGINES[0] else 1) * len(VARIANTS))]
        made = self.work / f"stock-{engine}.csv"
        made.write_text("host,mac,chap\n" + "".join(f"{h},{m},one-way\n" for h, m in stock))
        s.zboot("clone", "gold", "--hosts", str(made))
        if any(v.op == "rebase" and engine in v.own_chain for v in VARIANTS):
            s.zboot("image", "snapshot", "gold")  # v2, for rebase; the stock is on v1
        s.ready = stock
        return s

    def tear_down(self) -> None:
        for s in self.made.values():
            hosts = s.zboot.raw("list").get("data") or []
            for host in hosts:  # a failed run may leave one in maintenance
                if host["mode"] == "maintenance":
                    s.run(["mode", host["name"], "normal", "--force"])
            if hosts:
                s.run(["destroy", *(h["name"] for h in hosts), "--yes", "--force"])
            ssh(self.lab, ["sh", "-c", 'zfs destroy -r "$1" 2>/dev/null; true', "sh", s.root])


@pytest.fixture(scope="module")
def servers(lab_session: Layout, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    made = Servers(lab_session, tmp_path_factory.mktemp("faults"))
    yield made
    made.tear_down()


def prepare(s: Server, variant: Variant) -> tuple[str, str]:
    """A host as the variant needs it: a ready one from the stock made in
    one batch at the start, or a new name."""
    if variant.before is None:
        return s.new_host()
    host, mac = s.ready.pop()
    if variant.before == "maintenance":
        s.zboot("mode", host, "maintenance")
    if variant.before == "newest":
        s.zboot("rebase", host, "--to", "gold")
    return host, mac


def versions(s: Server) -> dict[str, str]:
    """gold's versions as ZFS has them: name -> message (a commit's staged
    snapshot, zboot-commit, is not a version)."""
    out = ssh_text(
        s.lab,
        [
            "zfs",
            "list",
            "-H",
            "-t",
            "snapshot",
            "-o",
            "name,org.zboot:message",
            "-r",
            f"{s.root}/images/gold",
        ],
    )
    found = dict(line.split("\t") for line in out.splitlines())
    return {k.split("@")[1]: v for k, v in found.items() if not k.endswith("@zboot-commit")}


def settle(s: Server, host: str, variant: Variant) -> None:
    """Leave maintenance, so the next maintenance scenario may take the image."""
    if variant.after == "maintenance":
        s.zboot("mode", host, "normal")


# One command on the server lists, for this run's hosts: the zvols with
# their state, the targets, the scripts (by the host in their header) and
# the secret files.
INVENTORY = r"""
root=$1 prefix=$2 boot=$3 secrets=$4 engine=$5
zfs get -H -o name,value -s local org.zboot:state -r -t volume "$root/hosts" |
    sed 's|.*/||; s|\t| |; s|^|disk |'
if [ "$engine" = lio ]; then ls /sys/kernel/config/target/iscsi
else tgtadm --lld iscsi --mode target --op show | sed -n 's/^Target [0-9]*: //p'; fi |
    sed -n "s|.*:\($prefix[0-9]*\)$|target \1|p"
grep -h "^# zboot: host $prefix[0-9]*, mode [a-z]*, root $root;" "$boot"/*.ipxe 2>/dev/null |
    sed 's/^# zboot: host \([^,]*\),.*/script \1/'
ls "$secrets" 2>/dev/null | sed -n "s/^\($prefix[0-9]*\)\.chap$/secret \1/p"
[ -z "$6" ] && exit 0
zfs get -H -o property,value -s local all "$root/hosts/$6" 2>/dev/null |
    sed -n 's/^org\.zboot:\([a-z-]*\)\t/record \1 /p'
[ -f "$secrets/$6.chap" ] && printf 'chap json %s\n' "$(cat "$secrets/$6.chap")"
true
"""


def inventory(s: Server, host: str = "") -> dict[str, dict[str, str]]:
    """kind -> {host: detail} for disk (its state), target, script, secret;
    with a host, also its record (key -> value) and its CHAP file (chap)."""
    config = Path(s.zboot.env["ZBOOT_CONFIG"]).read_text()
    boot = next(line.split('"')[1] for line in config.splitlines() if line.startswith("dir"))
    secrets = next(
        line.split('"')[1] for line in config.splitlines() if line.startswith("secrets_dir")
    )
    out = ssh_text(
        s.lab,
        [
            "sh",
            "-c",
            INVENTORY,
            "sh",
            s.root,
            s.prefix,
            boot,
            f"{secrets}/{s.root.replace('/', '_')}",
            s.engine,
            host,
        ],
    )
    found: dict[str, dict[str, str]] = {
        "disk": {},
        "target": {},
        "script": {},
        "secret": {},
        "record": {},
        "chap": {},
    }
    for line in out.splitlines():
        kind, key, detail = [*line.split(" ", 2), ""][:3]
        found[kind][key] = detail
    return found


def converged(s: Server, host: str, variant: Variant) -> None:
    """Every host of the run ready, with exactly its target, script and
    secret, and nothing of a destroyed host left; this one logs in."""
    found = inventory(s, host)
    assert set(found["disk"].values()) <= {"ready"}, found["disk"]
    assert (
        set(found["target"]) == set(found["script"]) == set(found["secret"]) == set(found["disk"])
    ), found
    if variant.after is None:
        assert host not in found["disk"]
        listed = ssh_text(s.lab, ["zfs", "list", "-H", "-o", "name", "-r", "-t", "all", s.root])
        assert f"/{host}" not in listed and f"{host}-" not in listed  # archives too
        return
    got = found["record"]
    assert (got["state"], got["mode"]) == ("ready", variant.after), got
    if variant.op == "reset":  # the old disk is gone, however the reset was finished
        listed = ssh_text(s.lab, ["zfs", "list", "-H", "-o", "name", "-r", s.root + "/archive"])
        assert f"/{host}-" not in listed and got["resets"] == "1", (listed, got)
    if variant.op == "commit":  # nothing staged is left, however it was finished
        snapshots = ["zfs", "list", "-H", "-t", "all", "-o", "name", "-r", s.root]
        listed = ssh_text(s.lab, snapshots)
        assert "@zboot-commit" not in listed and f"{s.root}/commit/" not in listed, listed
    if variant.op == "rebase":  # on the new version, however the rebase was finished
        assert (got["version"], got["rebased-from"]) == ("v2", "gold@v1"), got
    chap = json.loads(found["chap"]["json"]) if "json" in found["chap"] else None
    login = s.login(got, chap)
    assert login.returncode == 0, (got["target"], login.stderr)


def passes(servers: Servers, number: int) -> list[str]:
    """The points a variant passes, in order, with "engine-call" where the
    engine is called: from one clean run with a trace, on the first engine
    (the order is zboot's, the same for every engine)."""
    if number not in servers.traces:
        s = servers.get(ENGINES[0])
        variant = VARIANTS[number]
        host, mac = prepare(s, variant)
        trace = s.work / f"trace-{uuid.uuid4().hex[:6]}"
        done = s.run(variant.argv(host, mac), trace=trace)
        assert done.returncode == 0, done.stderr
        settle(s, host, variant)
        servers.traces[number] = trace.read_text().split()
    return servers.traces[number]


def plan_chain(s: Server, passed: list[str], variant: Variant) -> list[tuple[str, str]]:
    """Each point the variant passes that this engine has not had yet gets a
    kill or a drop (alternating, the other way round on the other engine);
    on LIO, each point an engine call follows also gets an engine failure
    (injected by a wrapper round the engine, so the same for every engine)."""
    chain = []
    seen = s.own.setdefault(variant.op, set()) if variant.own_chain else s.covered
    for i, point in enumerate(passed):
        if point == "engine-call":
            continue
        assert point in POINTS, point
        kind = ("kill", "drop")[(sorted(POINTS).index(point) + ENGINES.index(s.engine)) % 2]
        kinds = [kind] if not any((point, k) in seen for k in ("kill", "drop")) else []
        if (
            s.engine == ENGINES[0]
            and POINTS[point]
            and "engine-call" in passed[i:]
            and (point, "engine") not in seen
        ):
            kinds.append("engine")
        for k in kinds:
            s.covered.add((point, k))
            seen.add((point, k))
            chain.append((point, k))
    return chain


@pytest.mark.parametrize(("engine", "number"), chains())
def test_faults_at_every_step_then_the_run_converges(
    servers: Servers, engine: str, number: int
) -> None:
    passed = passes(servers, number)
    server = servers.get(engine)
    variant = VARIANTS[number]
    chain = plan_chain(server, passed, variant)
    host, mac = prepare(server, variant)
    argv = variant.argv(host, mac)
    before = versions(server)
    for point, fault in chain:
        trace = server.work / f"trace-{uuid.uuid4().hex[:6]}"
        broken = server.run(argv, fault=f"{point}:{fault}", trace=trace)
        assert point in trace.read_text().split(), f"{point} was not reached"
        if fault == "kill":
            assert broken.returncode == -9, (point, broken.stdout, broken.stderr)
        else:  # a clear error, in the envelope
            assert json.loads(broken.stdout)["exit_code"] == 5, (point, fault, broken.stdout)
        server.injected += 1
        if variant.op == "commit":  # the image as before, or the version whole
            now = versions(server)
            assert now == before or (
                len(now) == len(before) + 1 and now.items() >= before.items()
            ), (point, fault, before, now)
            assert now == before or "faulted" in now.values(), (point, fault, now)
    finish = server.run(argv if server.engine == "lio" else ["sync"])
    assert finish.returncode == 0, (finish.stdout, finish.stderr)
    converged(server, host, variant)
    if variant.op == "commit":  # committed exactly once
        assert len(versions(server)) == len(before) + 1
    settle(server, host, variant)
    print(
        f"\n{engine} {' '.join(argv[:1] + argv[2:3])}: "
        + ", ".join(f"{p}:{f}" for p, f in chain)
        + f"; then {FINISH[engine]}"
    )


def test_every_point_gets_a_fault_and_every_engine_point_an_engine_failure(
    servers: Servers,
) -> None:
    """After LIO's chains (the ones CI runs): each point had a kill or a drop,
    and each point an engine call follows an engine failure."""
    covered = servers.get(ENGINES[0]).covered
    assert {p for p, _ in covered} == set(POINTS)
    assert {p for p, k in covered if k == "engine"} == {p for p, calls in POINTS.items() if calls}


@pytest.mark.full
def test_every_point_gets_every_fault_on_some_engine(servers: Servers) -> None:
    """After both engines' chains: each point had a kill and a drop (one on
    each engine). (Each engine point's engine failure, on LIO: the test above.)"""
    for engine in ENGINES:
        assert {p for p, _ in servers.get(engine).covered} == set(POINTS), engine
    kinds = {(p, k) for e in ENGINES for p, k in servers.get(e).covered}
    assert {(p, k) for p in POINTS for k in ("kill", "drop")} <= kinds


def test_every_operation_has_fault_points() -> None:
    ops = {p.split(".")[0] for p in POINTS}
    # reset and rebase: rollback's points
    assert ops == {"clone", "rollback", "destroy", "mode", "commit"}, ops
    assert any(POINTS.values())  # engine failures are injected somewhere


@pytest.mark.parametrize("engine", [pytest.param(e, marks=full_only(e)) for e in ENGINES])
def test_the_server_holds_nothing_else_and_the_image_is_intact(
    servers: Servers, engine: str
) -> None:
    """After every fault of this engine: the engine's targets, the zvols, the
    scripts and the secret files are exactly those of the hosts zboot lists,
    counted on the server itself, and the golden image has not changed."""
    server = servers.get(engine)
    doctor = server.run(["doctor"])
    assert doctor.returncode == 0, doctor.stdout
    hosts = {h["name"]: h for h in server.zboot("list")["data"]}
    disks = ssh_text(
        server.lab,
        ["zfs", "list", "-H", "-o", "name", "-r", "-t", "volume", f"{server.root}/hosts"],
    ).split()
    assert sorted(d.rsplit("/", 1)[1] for d in disks) == sorted(hosts)
    if server.engine == "lio":
        targets = ssh_text(server.lab, ["ls", "/sys/kernel/config/target/iscsi"]).split()
    else:
        shown = ssh_text(
            server.lab, ["tgtadm", "--lld", "iscsi", "--mode", "target", "--op", "show"]
        )
        targets = [line.split()[2] for line in shown.splitlines() if line.startswith("Target ")]
    ours = {t for t in targets if t.rsplit(":", 1)[-1].startswith(server.prefix)}
    assert ours == {h["target"] for h in hosts.values()}
    assert server.image_checksum() == server.image_sum
    print(
        f"\n{server.engine}: {server.injected} faults injected at {len(POINTS)} points, "
        f"{server.count} hosts made, image sha256 {server.image_sum[:16]} unchanged"
    )
