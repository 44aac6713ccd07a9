"""Faults the suite of test_faults.py does not reach: the same kills on the
istgt engine, and a fault inside one engine call (the LIO agent killed half
way through a batch of targets).

istgt: in the lab istgt runs on the host for its own tests, where there is no
ZFS. Here it runs in the storage VM instead (the VM shares the host's /usr,
and its /etc is its own), under Debian's service script, with the lab's base
config, so zboot drives it over SSH exactly as on a real server. Each of
clone, rollback and destroy goes through a chain of runs of the same command,
each SIGKILLed at the next fault point (the points and their order are
zboot's, from a dry run with a trace), then one run without a fault: the same
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
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_faults import POINTS, VARIANTS, Server, Variant
from zboot_lab import istgt
from zboot_lab.layout import BOOT_DIR, SECRETS_DIR, Layout
from zboot_lab.remote import ssh, ssh_text

from zboot.targets.istgt import parse_block, parse_sections, split_block

pytestmark = pytest.mark.lab

IMAGE_BYTES = 4 << 20
CHAINS = {"clone": "the same command", "rollback": "zboot sync", "destroy": "the same command"}


def secrets_dir(root: str) -> str:
    return f"{SECRETS_DIR}/{root.replace('/', '_')}"


class IstgtServer(Server):
    """A zboot root on the lab VM whose engine is istgt, run in the VM."""

    def __init__(self, lab: Layout, work: Path) -> None:
        super().__init__(lab, "istgt", work)
        self.prefix = f"f{uuid.uuid4().hex[:4]}i"
        self.walked: dict[str, list[str]] = {}  # operation -> points killed at, in order

    def new_host(self) -> tuple[str, str]:
        self.count += 1
        return (
            f"{self.prefix}{self.count:03}",
            f"52:54:00:f2:{self.count // 256:02x}:{self.count % 256:02x}",
        )


def control(lab: Layout, command: str) -> str:
    """istgtcontrol in the VM, at the lab config's [UnitControl] portal."""
    settings = f"[Global]\n  Host 127.0.0.1\n  Port {lab.istgt_control_port}\n  AuthMethod None\n"
    return ssh_text(
        lab, ["sh", "-c", f'printf "$1" | istgtcontrol -q -c /dev/stdin {command}', "sh", settings]
    )


@pytest.fixture(scope="module")
def on_istgt(
    lab_session: Layout, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IstgtServer]:
    lab = lab_session
    base = istgt.base_config(lab)
    ssh(
        lab,
        [
            "sh",
            "-c",
            'mkdir -p /etc/istgt /var/istgt && cat >"$1" && : >"$2" && chmod 600 "$2" '
            "&& service istgt restart >/dev/null 2>&1; true",
            "sh",
            str(istgt.CONF),
            str(istgt.AUTH),
        ],
        stdin=base.encode(),
    )
    s = IstgtServer(lab, tmp_path_factory.mktemp("istgt-faults"))
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
    s.ready = stock
    yield s
    names = [h["name"] for h in s.zboot.raw("list").get("data") or []]
    if names:
        s.run(["destroy", *names, "--yes", "--force"])
    ssh(
        lab,
        [
            "sh",
            "-c",
            'zfs destroy -r "$1" 2>/dev/null; service istgt stop >/dev/null 2>&1; true',
            "sh",
            s.root,
        ],
    )


def order(s: IstgtServer, variant: Variant, argv: list[str]) -> list[str]:
    """The points the variant passes, in order: a dry run with a trace (it
    reads the server and runs zboot's steps, changing nothing). The order is
    zboot's, the same for every engine; the dry run goes through LIO, since
    one through istgt waits for a restart that never happens (see below)."""
    trace = s.work / f"trace-{uuid.uuid4().hex[:6]}"
    config = Path(s.zboot.env["ZBOOT_CONFIG"])
    on_lio = config.with_name("dry-run-lio.toml")
    on_lio.write_text(config.read_text().replace('engine = "istgt"', 'engine = "lio"'))
    env = dict(s.zboot.env, ZBOOT_CONFIG=str(on_lio), ZBOOT_TEST_FAULT_TRACE=str(trace))
    env.pop("ZBOOT_TEST_FAULT", None)
    done = subprocess.run(
        [sys.executable, "-m", "zboot", "--json", "--dry-run", *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout
    passed = [p for p in trace.read_text().split() if p != "engine-call"]
    assert {p.split(".")[0] for p in passed} == {variant.op}
    return passed


def istgt_state(s: IstgtServer) -> dict[str, set[str]]:
    """This run's hosts as the server holds them: disks (ready or not),
    targets istgt serves, targets in zboot's block of istgt.conf, scripts,
    secret files, and AuthFile groups."""
    served = {t.rsplit(":", 1)[1] for t in control(s.lab, "list").split() if f":{s.prefix}" in t}
    conf = ssh_text(s.lab, ["cat", str(istgt.CONF)])
    auth = ssh_text(s.lab, ["cat", str(istgt.AUTH)])
    admin, block = split_block(conf)
    assert admin == istgt.base_config(s.lab), "the admin's part of istgt.conf changed"
    assert parse_sections(block) or not block  # zboot's block parses as istgt config
    exports = [e for e in parse_block(block, split_block(auth)[1]) if e.host.startswith(s.prefix)]
    states = ssh_text(
        s.lab,
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
            f"{s.root}/hosts",
        ],
    )
    disks = {
        line.split("\t")[0].rsplit("/", 1)[1]: line.split("\t")[1] for line in states.splitlines()
    }
    files = ssh_text(
        s.lab,
        [
            "sh",
            "-c",
            'grep -h "^# zboot: host [^,]*, mode [a-z]*, root $1;" "$2"/*.ipxe | '
            "sed 's/^# zboot: host \\([^,]*\\),.*/script \\1/'; "
            'ls "$3" | sed -n "s/^\\(.*\\)\\.chap$/secret \\1/p"; true',
            "sh",
            s.root,
            BOOT_DIR,
            secrets_dir(s.root),
        ],
    )
    return {
        "ready": {h for h, state in disks.items() if state == "ready"},
        "disk": set(disks),
        "served": served,
        "block": {e.host for e in exports},
        "chap": {e.host for e in exports if e.chap is not None},
        "script": {line.split()[1] for line in files.splitlines() if line.startswith("script ")},
        "secret": {line.split()[1] for line in files.splitlines() if line.startswith("secret ")},
    }


def host_record(lab: Layout, root: str, host: str) -> dict[str, str]:
    """The host's record, read from its zvol's properties."""
    props = ssh_text(
        lab,
        ["zfs", "get", "-H", "-o", "property,value", "-s", "local", "all", f"{root}/hosts/{host}"],
    )
    return {
        key.removeprefix("org.zboot:"): value
        for key, value in (line.split("\t", 1) for line in props.splitlines())
    }


def istgt_login(s: IstgtServer, host: str) -> subprocess.CompletedProcess[bytes]:
    """INQUIRY in the VM as the host's initiator, with its CHAP secret (on stdin)."""
    record = host_record(s.lab, s.root, host)
    chap = json.loads(ssh_text(s.lab, ["cat", f"{secrets_dir(s.root)}/{host}.chap"]))
    url = f"iscsi://127.0.0.1:{s.lab.istgt_port}/{record['target']}/0"
    return ssh(
        s.lab,
        [
            "sh",
            "-c",
            "read -r u; read -r p; "
            'LIBISCSI_CHAP_USERNAME=$u LIBISCSI_CHAP_PASSWORD=$p iscsi-inq -i "$1" "$2"',
            "sh",
            record["initiator"],
            url,
        ],
        stdin=f"{chap['user']}\n{chap['secret']}\n".encode(),
        check=False,
    )


@pytest.mark.parametrize("op", list(CHAINS))
def test_istgt_kill_at_every_step_then_the_run_converges(on_istgt: IstgtServer, op: str) -> None:
    s = on_istgt
    started = time.monotonic()
    variant = next(v for v in VARIANTS if v.op == op)
    host, mac = s.new_host() if variant.before is None else s.ready.pop()
    argv = variant.argv(host, mac)
    walk = order(s, variant, argv)
    assert set(walk) == {p for p in POINTS if p.startswith(f"{op}.")}, walk
    for point in walk:
        trace = s.work / f"trace-{uuid.uuid4().hex[:6]}"
        broken = s.run(argv, fault=f"{point}:kill", trace=trace)
        assert point in trace.read_text().split(), f"{point} was not reached"
        assert broken.returncode == -9, (point, broken.stdout, broken.stderr)
        s.injected += 1
    finish = s.run(["sync"] if CHAINS[op] == "zboot sync" else argv)
    assert finish.returncode == 0, (finish.stdout, finish.stderr)
    s.walked[op] = walk

    found = istgt_state(s)
    assert found["disk"] == found["ready"], found  # nothing half-made
    assert (
        found["served"] == found["block"] == found["ready"] == found["script"] == found["secret"]
    ), found
    assert found["chap"] == found["ready"], found
    if variant.after is None:
        listed = ssh_text(s.lab, ["zfs", "list", "-H", "-o", "name", "-r", "-t", "all", s.root])
        assert f"/{host}" not in listed and f"{host}-" not in listed, listed  # archives too
    else:
        assert host in found["ready"]
        login = istgt_login(s, host)
        assert login.returncode == 0, login.stderr
    print(
        f"\nistgt {op}: killed at {', '.join(walk)}; then {CHAINS[op]}: converged "
        f"in {time.monotonic() - started:.0f} s"
    )


def test_istgt_after_the_walk_doctor_is_clean_and_the_image_intact(on_istgt: IstgtServer) -> None:
    s = on_istgt
    assert set(s.walked) == set(CHAINS), s.walked
    doctor = s.run(["doctor"])
    assert doctor.returncode == 0, doctor.stdout
    assert json.loads(doctor.stdout)["data"]["findings"] == []
    assert s.image_checksum() == s.image_sum
    print(
        f"\nistgt: {s.injected} kills at {sum(map(len, s.walked.values()))} points, {s.count} hosts"
    )


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


def whole(target: dict[str, str]) -> bool:
    return (
        target["enabled"] == "1" and target["luns"] == "lun_0," and target["acls"].count(",") == 1
    )


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
        first = s.run(["clone", "gold", "--hosts", str(batch(4))], fault="lio-agent:2")
        assert first.returncode == 0, (first.stdout, first.stderr)
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
        states = {h["name"]: h["state"] for h in s.zboot("list")["data"]}
        assert sorted(states.values()).count("ready") == 4, states  # the second batch unfinished

        finished = s.run(["sync"])
        assert finished.returncode == 0, finished.stdout
        after = lio_targets(lab, s.prefix)
        assert len(after) == 8 and all(whole(t) for t in after.values()), after
        assert {h: after[h]["inode"] for h in done} == {h: done[h]["inode"] for h in done}
        assert {h["state"] for h in s.zboot("list")["data"]} == {"ready"}
        saved = ssh_text(lab, ["cat", "/etc/rtslib-fb-target/saveconfig.json"])
        assert all(f":{h}" in saved for h in after), "LIO's saved configuration lacks a target"
        assert json.loads(s.run(["doctor"]).stdout)["data"]["findings"] == []
        for host in after:
            record = host_record(lab, s.root, host)
            chap = json.loads(ssh_text(lab, ["cat", f"{secrets_dir(s.root)}/{host}.chap"]))
            login = s.login(record, chap)
            assert login.returncode == 0, (host, login.stderr)
        print(
            f"\nLIO agent killed after 2 of 4 targets: clone finished in the same run; "
            f"sync cut (3 of 4 begun, 2 whole), next sync finished; 8 of 8 whole, 4 untouched; "
            f"{time.monotonic() - started:.0f} s"
        )
    finally:
        names = [h["name"] for h in s.zboot.raw("list").get("data") or []]
        if names:
            s.run(["destroy", *names, "--yes", "--force"])
        ssh(lab, ["sh", "-c", 'zfs destroy -r "$1" 2>/dev/null; true', "sh", s.root])
