"""Faults the suite of test_faults.py does not reach: the same kills on the
istgt engine, and a fault inside one engine call (the LIO agent killed half
way through a batch of targets).

istgt: in the lab istgt runs on the host for its own tests, where there is no
ZFS. Here it runs in the storage VM instead (the VM shares the host's /usr,
and its /etc is its own), under Debian's service script (one bug of it fixed,
see zboot_lab.istgt.configure_in_guest), with the lab's base config, so zboot drives it over SSH as
on a real server. Each of clone, rollback and destroy goes through a chain of
runs of the same command, each SIGKILLed at the next fault point (the points
and their order are zboot's, from a dry run with a trace), then one run without a fault: the same
command for clone and destroy, `zboot sync` for rollback. After each chain the
host is ready (or gone), istgt serves exactly the ready hosts from a config
whose admin part is untouched, each logs in with its CHAP secret, and no zvol
is left without its host.

LIO agent: ZBOOT_TEST_FAULT=lio-agent:N makes every agent process of the run
SIGKILL itself when it is about to give target N+1 its ACL (see
zboot/testing/faults.py): N targets whole, one half-made, the rest not begun,
nothing saved.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_faults import POINTS, VARIANTS, Server
from zboot_lab import istgt
from zboot_lab.layout import BOOT_DIR, SECRETS_DIR, Layout
from zboot_lab.remote import ssh, ssh_text

from zboot.targets.istgt import parse_block, split_block

pytestmark = pytest.mark.lab

IMAGE_BYTES = 4 << 20
CHAINS = {"clone": "the same command", "rollback": "zboot sync", "destroy": "the same command"}
VARIANTS_BY_OP = {op: next(v for v in VARIANTS if v.op == op) for op in CHAINS}


def secrets_dir(root: str) -> str:
    return f"{SECRETS_DIR}/{root.replace('/', '_')}"


class IstgtServer(Server):
    """A zboot root on the lab VM whose engine is istgt, run in the VM; per
    operation, its host and command line and the points it passes in order."""

    def __init__(self, lab: Layout, work: Path) -> None:
        super().__init__(lab, "istgt", work)
        self.prefix = f"f{uuid.uuid4().hex[:4]}i"
        self.plans: dict[str, tuple[str, list[str], list[str]]] = {}  # op -> host, argv, points
        self.walked: set[str] = set()  # operations whose chain converged

    def new_host(self) -> tuple[str, str]:
        self.count += 1
        return (
            f"{self.prefix}{self.count:03}",
            f"52:54:00:f2:{self.count // 256:02x}:{self.count % 256:02x}",
        )


ISTGT_DOWN = r"""
zfs destroy -r "$1" 2>/dev/null; service istgt stop >/dev/null 2>&1
umount /etc/init.d/istgt 2>/dev/null; rm -f /run/zboot-lab-istgt.init; true
"""


@pytest.fixture(scope="module")
def on_istgt(
    lab_session: Layout, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IstgtServer]:
    """A root on istgt with an image and two ready hosts (one to roll back,
    one to destroy), and each operation's order of points."""
    lab = lab_session
    istgt.configure_in_guest(lab, istgt.base_config(lab))
    s = IstgtServer(lab, tmp_path_factory.mktemp("istgt-faults"))
    try:
        disk = s.work / "gold.raw"
        disk.write_bytes(os.urandom(IMAGE_BYTES))
        s.zboot("init")
        s.zboot("image", "import", "gold", str(disk))
        s.zboot("image", "snapshot", "gold")
        s.image_sum = s.image_checksum()
        stock = [s.new_host() for _ in range(2)]
        made = s.work / "stock.csv"
        made.write_text("host,mac,chap\n" + "".join(f"{h},{m},one-way\n" for h, m in stock))
        s.zboot("clone", "gold", "--hosts", str(made))
        hosts = {"clone": s.new_host(), "rollback": stock[0], "destroy": stock[1]}
        argvs = {op: v.argv(*hosts[op]) for op, v in VARIANTS_BY_OP.items()}
        for op, walk in orders(s, argvs).items():
            s.plans[op] = (hosts[op][0], argvs[op], walk)
        yield s
    finally:
        names = list(host_states(lab, s.root))
        if names:
            s.run(["destroy", *names, "--yes", "--force"])
        ssh(lab, ["sh", "-c", ISTGT_DOWN, "sh", s.root])


def orders(s: IstgtServer, argvs: dict[str, list[str]]) -> dict[str, list[str]]:
    """The points each operation passes, in order: a dry run of each with a
    trace (it reads the server and runs zboot's steps, changing nothing), all
    at once. The order is zboot's, the same for every engine; the dry runs go
    through LIO, since a dry run through istgt waits for a restart that never
    happens and fails (a defect of the istgt engine)."""
    config = Path(s.zboot.env["ZBOOT_CONFIG"])
    on_lio = config.with_name("dry-run-lio.toml")
    on_lio.write_text(config.read_text().replace('engine = "istgt"', 'engine = "lio"'))
    runs = {}
    for op, argv in argvs.items():
        trace = s.work / f"order-{op}"
        env = dict(s.zboot.env, ZBOOT_CONFIG=str(on_lio), ZBOOT_TEST_FAULT_TRACE=str(trace))
        command = [sys.executable, "-m", "zboot", "--json", "--dry-run", *argv]
        runs[op] = (trace, subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True))
    found = {}
    for op, (trace, run) in runs.items():
        out, _ = run.communicate(timeout=600)
        assert run.returncode == 0, out
        found[op] = [p for p in trace.read_text().split() if p != "engine-call"]
        assert set(found[op]) == {p for p in POINTS if p.startswith(f"{op}.")}, found[op]
    return found


# One command in the VM: what istgt serves, its two files, the disks of the
# root with their state, the scripts (by the host in their header) and the
# secret files, each section after a line "== <name>".
ISTGT_STATE = r"""
printf '[Global]\n  Host 127.0.0.1\n  Port %s\n  AuthMethod None\n' "$1" >/run/zboot-lab-istgt.ctl
echo "== served"; istgtcontrol -q -c /run/zboot-lab-istgt.ctl list
echo "== conf"; cat "$2"
echo "== auth"; cat "$3"
echo "== disks"; zfs get -H -o name,value -s local -r -t volume org.zboot:state "$4/hosts" |
    sed 's|.*/||'
echo "== scripts"; grep -h "^# zboot: host [^,]*, mode [a-z]*, root $4;" "$5"/*.ipxe |
    sed 's/^# zboot: host \([^,]*\),.*/\1/'
echo "== secrets"; ls "$6" | sed -n 's/\.chap$//p'
true
"""


def istgt_state(s: IstgtServer) -> dict[str, set[str]]:
    """This run's hosts as the server holds them: disks (ready or any),
    targets istgt serves, hosts in zboot's block of istgt.conf (and those of
    them with CHAP in the AuthFile), scripts and secret files. The admin's
    part of istgt.conf must be as the lab wrote it."""
    out = ssh_text(
        s.lab,
        [
            "sh",
            "-c",
            ISTGT_STATE,
            "sh",
            str(s.lab.istgt_control_port),
            str(istgt.CONF),
            str(istgt.AUTH),
            s.root,
            BOOT_DIR,
            secrets_dir(s.root),
        ],
    )
    part = dict(re.findall(r"^== (\w+)\n(.*?)(?=^== |\Z)", out, re.MULTILINE | re.DOTALL))
    admin, block = split_block(part["conf"])
    assert admin == istgt.base_config(s.lab), "the admin's part of istgt.conf changed"
    exports = parse_block(block, split_block(part["auth"])[1])
    disks = dict(line.split("\t") for line in part["disks"].splitlines())
    return {
        "ready": {h for h, state in disks.items() if state == "ready"},
        "disk": set(disks),
        "served": {t.rsplit(":", 1)[1] for t in part["served"].split() if f":{s.prefix}" in t},
        "block": {e.host for e in exports if e.host.startswith(s.prefix)},
        "chap": {e.host for e in exports if e.host.startswith(s.prefix) and e.chap},
        "script": set(part["scripts"].split()),
        "secret": set(part["secrets"].split()),
    }


# INQUIRY in the VM as a host's initiator, with the CHAP secret of its file
# (read there, and given to libiscsi in its environment, never in argv).
ISTGT_LOGIN = """
import json, os, sys
chap_file, initiator, url = sys.argv[1:]
with open(chap_file) as f:
    chap = json.load(f)
env = dict(os.environ, LIBISCSI_CHAP_USERNAME=chap["user"], LIBISCSI_CHAP_PASSWORD=chap["secret"])
os.execvpe("iscsi-inq", ["iscsi-inq", "-i", initiator, url], env)
"""


def istgt_login(s: IstgtServer, host: str) -> subprocess.CompletedProcess[bytes]:
    record = logins(s.lab, s.root)[host]
    url = f"iscsi://127.0.0.1:{s.lab.istgt_port}/{record['target']}/0"
    chap_file = f"{secrets_dir(s.root)}/{host}.chap"
    return ssh(
        s.lab, ["python3", "-c", ISTGT_LOGIN, chap_file, record["initiator"], url], check=False
    )


# Every host of a root with its record (target, initiator) and its CHAP
# file, as JSON: one command in the VM.
LOGINS = """
import json, os, subprocess, sys
root, secrets = sys.argv[1:]
props = subprocess.run(
    ["zfs", "get", "-H", "-o", "name,property,value", "-s", "local", "-r", "-t", "volume",
     "org.zboot:target,org.zboot:initiator", root + "/hosts"],
    capture_output=True, text=True, check=True,
).stdout
found = {}
for line in props.splitlines():
    name, key, value = line.split("\\t")
    host = name.rsplit("/", 1)[1]
    found.setdefault(host, {})[key.split(":")[1]] = value
for host, record in found.items():
    path = os.path.join(secrets, host + ".chap")
    record["chap"] = json.load(open(path)) if os.path.exists(path) else None
print(json.dumps(found))
"""


def logins(lab: Layout, root: str) -> dict[str, dict[str, Any]]:
    """host -> its target, initiator and CHAP (None without a secret file)."""
    found: dict[str, dict[str, Any]] = json.loads(
        ssh_text(lab, ["python3", "-c", LOGINS, root, secrets_dir(root)])
    )
    return found


# `lab test --full` walks clone's, rollback's and destroy's chains; CI none
# (its time budget: istgt's exports, sessions and boots run in CI)
@pytest.mark.full
@pytest.mark.parametrize("op", list(CHAINS))
def test_istgt_kill_at_every_step_then_the_run_converges(on_istgt: IstgtServer, op: str) -> None:
    s = on_istgt
    started = time.monotonic()
    host, argv, walk = s.plans[op]
    for point in walk:
        trace = s.work / f"trace-{uuid.uuid4().hex[:6]}"
        broken = s.run(argv, fault=f"{point}:kill", trace=trace)
        assert point in trace.read_text().split(), f"{point} was not reached"
        assert broken.returncode == -9, (point, broken.stdout, broken.stderr)
        s.injected += 1
    finish = s.run(["sync"] if CHAINS[op] == "zboot sync" else argv)
    assert finish.returncode == 0, (finish.stdout, finish.stderr)

    found = istgt_state(s)
    assert found["disk"] == found["ready"], found  # nothing half-made
    assert found["served"] == found["block"] == found["ready"], found
    assert found["script"] == found["secret"] == found["chap"] == found["ready"], found
    if VARIANTS_BY_OP[op].after is None:
        listed = ssh_text(s.lab, ["zfs", "list", "-H", "-o", "name", "-r", "-t", "all", s.root])
        assert f"/{host}" not in listed and f"{host}-" not in listed, listed  # archives too
    else:
        assert host in found["ready"]
        login = istgt_login(s, host)
        assert login.returncode == 0, login.stderr
    s.walked.add(op)
    print(
        f"\nistgt {op}: killed at {', '.join(walk)}; then {CHAINS[op]}: converged "
        f"in {time.monotonic() - started:.0f} s"
    )


@pytest.mark.full
def test_istgt_after_the_walk_doctor_is_clean_and_the_image_intact(on_istgt: IstgtServer) -> None:
    s = on_istgt
    assert s.walked == set(CHAINS)
    doctor = s.run(["doctor"])
    assert doctor.returncode == 0, doctor.stdout
    assert json.loads(doctor.stdout)["data"]["findings"] == []
    assert s.image_checksum() == s.image_sum
    print(f"\nistgt: {s.injected} kills, one at each point; {s.count} hosts made")


# --- a fault inside one engine call ---------------------------------------------


def lio_targets(lab: Layout, prefix: str) -> dict[str, dict[str, str]]:
    """Per host of prefix, what LIO's configfs holds for its target: whether
    the TPG is enabled, its LUNs, its ACLs and the directory's inode (a target
    made anew has another)."""
    out = ssh_text(
        lab,
        [
            "sh",
            "-c",
            'cd /sys/kernel/config/target/iscsi && for t in *:"$1"*; do [ -d "$t" ] || continue; '
            'printf "%s %s %s %s %s\\n" "${t##*:}" "$(stat -c %i "$t")" '
            '"$(cat "$t/tpgt_1/enable")" '
            '"$(ls "$t/tpgt_1/lun" | tr "\\n" ,)" "$(ls "$t/tpgt_1/acls" | tr "\\n" ,)"; done',
            "sh",
            prefix,
        ],
    )
    found = {}
    for line in out.splitlines():
        host, inode, enabled, luns, acls = [*line.split(" "), "", ""][:5]
        found[host] = {"inode": inode, "enabled": enabled, "luns": luns, "acls": acls}
    return found


def host_states(lab: Layout, root: str) -> dict[str, str]:
    """Each host's state, read from its zvol (none when the root is not there)."""
    out = ssh(
        lab,
        [
            "zfs",
            "get",
            "-H",
            "-o",
            "name,value",
            "-s",
            "local",
            "-r",
            "-t",
            "volume",
            "org.zboot:state",
            f"{root}/hosts",
        ],
        check=False,
    ).stdout.decode()
    rows = (line.split("\t") for line in out.splitlines())
    return {name.rsplit("/", 1)[1]: state for name, state in rows}


def whole(target: dict[str, str]) -> bool:
    return (
        target["enabled"] == "1" and target["luns"] == "lun_0," and target["acls"].count(",") == 1
    )


@pytest.mark.full  # 90 s: CI's time budget; `lab test --full` runs it
def test_lio_agent_killed_half_way_through_a_batch(lab: Layout, tmp_path: Path) -> None:
    """A batch clone whose agent dies after 2 of 4 targets is finished by
    zboot's own fallback (one engine call per host); a batch left by a killed
    clone, whose `zboot sync` loses its agent after 2 of 4, is finished by the
    next sync. No half-made target is left, the hosts already consistent keep
    their targets untouched, and all 8 log in."""
    started = time.monotonic()
    s = Server(lab, "lio", tmp_path)
    s.prefix = f"a{uuid.uuid4().hex[:4]}l"
    s.count = 0
    macs = {}

    def batch(n: int) -> Path:
        rows = []
        for _ in range(n):
            s.count += 1
            host = f"{s.prefix}{s.count:03}"
            macs[host] = f"52:54:00:f3:{s.count // 256:02x}:{s.count % 256:02x}"
            rows.append(f"{host},{macs[host]},one-way\n")
        path = tmp_path / f"batch{s.count}.csv"
        path.write_text("host,mac,chap\n" + "".join(rows))
        return path

    try:
        disk = tmp_path / "gold.raw"
        disk.write_bytes(os.urandom(IMAGE_BYTES))
        s.zboot("init")
        s.zboot("image", "import", "gold", str(disk))
        s.zboot("image", "snapshot", "gold")

        # 1. the batch's agent dies after 2 whole targets, one half-made
        trace = tmp_path / "trace"
        first = s.run(["clone", "gold", "--hosts", str(batch(4))], fault="lio-agent:2", trace=trace)
        assert first.returncode == 0, (first.stdout, first.stderr)
        # the batch's engine call failed, then one per host went through
        assert trace.read_text().split().count("engine-call") == 1 + 4
        done = lio_targets(lab, s.prefix)
        assert len(done) == 4 and all(whole(t) for t in done.values()), done

        # 2. a clone killed before its exports, then a sync whose agent dies
        second = batch(4)
        killed = s.run(["clone", "gold", "--hosts", str(second)], fault="clone.secrets:kill")
        assert killed.returncode == -9
        cut = s.run(["sync"], fault="lio-agent:2")
        assert json.loads(cut.stdout)["exit_code"] == 5, cut.stdout
        half = lio_targets(lab, s.prefix)
        new = sorted(set(half) - set(done))
        assert len(new) == 3 and sum(whole(half[h]) for h in new) == 2, half  # 2 whole, 1 half
        assert [half[h] for h in done] == [done[h] for h in done]  # the first batch untouched
        states = host_states(lab, s.root)
        assert sorted(states.values()).count("ready") == 4, states  # the second batch unfinished

        finished = s.run(["sync"])
        assert finished.returncode == 0, finished.stdout
        after = lio_targets(lab, s.prefix)
        assert len(after) == 8 and all(whole(t) for t in after.values()), after
        assert {h: after[h]["inode"] for h in done} == {h: done[h]["inode"] for h in done}
        assert set(host_states(lab, s.root).values()) == {"ready"}
        saved = ssh_text(lab, ["cat", "/etc/rtslib-fb-target/saveconfig.json"])
        assert all(f":{h}" in saved for h in after), "LIO's saved configuration lacks a target"
        assert json.loads(s.run(["doctor"]).stdout)["data"]["findings"] == []
        records = logins(lab, s.root)
        assert set(records) == set(after)
        for host, record in records.items():
            login = s.login(record, record["chap"])
            assert login.returncode == 0, (host, login.stderr)
        print(
            f"\nLIO agent killed after 2 of 4 targets: clone finished in the same run; "
            f"sync cut (3 of 4 begun, 2 whole), next sync finished; 8 of 8 whole, 4 untouched; "
            f"{time.monotonic() - started:.0f} s"
        )
    finally:
        names = list(host_states(lab, s.root))
        if names:
            s.run(["destroy", *names, "--yes", "--force"])
        ssh(lab, ["sh", "-c", 'zfs destroy -r "$1" 2>/dev/null; true', "sh", s.root])
