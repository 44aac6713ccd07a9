"""Security properties of the real zboot CLI against the storage VM (LIO, the
lab's engine): a changed or unknown SSH host key is refused before anything
runs; CHAP secrets never show in the server's process list, in zboot's output
(`-v`, `--json`) or in the server's logs; and the files that hold them are
root's alone.

Each zboot command takes seconds on the emulated server, so the CHAP hosts'
life (clone, batch clone, rollback, mode, export show, destroy) runs once, in
a module fixture with its own root dataset (cleaned up like the `zboot`
fixture's), and three tests check what it recorded: `ps` samples, output, and
the secret files' modes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from zboot_cli import Zboot
from zboot_lab.layout import POOL, Layout
from zboot_lab.remote import ssh, ssh_text

from zboot.config import load
from zboot.ops.paths import secret_path, secrets_dir

pytestmark = pytest.mark.lab

MIB = 1 << 20
LIO_SAVED = "/etc/rtslib-fb-target/saveconfig.json"


def mac(octet: int, n: int) -> str:
    return f"52:54:00:5e:{octet:02x}:{n:02x}"


def has_dataset(lab: Layout, name: str) -> bool:
    return ssh(lab, ["zfs", "list", "-H", "-o", "name", name], check=False).returncode == 0


# --- 1. the server's SSH host key ----------------------------------------------


def fingerprint(public_key: Path) -> str:
    out = subprocess.run(["ssh-keygen", "-lf", str(public_key)], check=True, capture_output=True)
    return out.stdout.decode().split()[1]


def with_known_hosts(
    lab: Layout, zboot: Zboot, tmp_path: Path, name: str, entries: str
) -> tuple[Zboot, Path]:
    """A Zboot like the test's, whose [server] known_hosts is a file of its own."""
    known = tmp_path / f"{name}.known_hosts"
    known.write_text(entries)
    text = Path(zboot.env["ZBOOT_CONFIG"]).read_text()
    assert f'known_hosts = "{lab.known_hosts}"' in text
    config = tmp_path / f"{name}.toml"
    config.write_text(text.replace(str(lab.known_hosts), str(known)))
    return Zboot(config, zboot.root), known


def test_a_changed_or_unknown_host_key_is_refused_and_nothing_runs(
    lab: Layout, zboot: Zboot, tmp_path: Path
) -> None:
    # `init` is the probe: with the right key it creates the root dataset and
    # adds to the config file, so "nothing ran" is something to check.
    real = fingerprint(lab.host_key.with_name(lab.host_key.name + ".pub"))
    forged = tmp_path / "forged"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "forged", "-f", str(forged)],
        check=True,
    )
    kind, blob = forged.with_name("forged.pub").read_text().split()[:2]
    entry = f"[127.0.0.1]:{lab.ssh_port} {kind} {blob}\n"  # same type, another key
    changed, changed_file = with_known_hosts(lab, zboot, tmp_path, "changed", entry)
    config_text = Path(changed.env["ZBOOT_CONFIG"]).read_text()

    for extra in ([], ["--accept-new-host-key"]):  # a changed key is refused even then
        [error] = changed(*extra, "init", code=5)["errors"]
        assert error["kind"] == "host-key" and error["code"] == 5, error
        assert "CHANGED" in error["message"], error
        assert fingerprint(forged.with_name("forged.pub")) in error["message"], error
        assert real in error["message"] and "attack" in error["hint"], error
        assert changed_file.read_text() == entry  # the known entry is not replaced
    human = subprocess.run(
        [sys.executable, "-m", "zboot", "clone", "gold", "pck1", "--mac", mac(1, 1)],
        env=changed.env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert human.returncode == 5 and human.stdout == "", human
    assert (
        f"zboot: error: SSH host key for root@127.0.0.1:{lab.ssh_port} CHANGED" in human.stderr
    ), human.stderr
    assert "zboot: hint: this may be an attack" in human.stderr, human.stderr

    # Unknown (an empty known_hosts): refused, and not recorded, without the option.
    unknown, unknown_file = with_known_hosts(lab, zboot, tmp_path, "unknown", "")
    [error] = unknown("init", code=5)["errors"]
    assert error["kind"] == "host-key" and "unknown SSH host key" in error["message"], error
    assert real in error["message"] and "--accept-new-host-key" in error["hint"], error
    assert unknown_file.read_text() == ""

    assert not has_dataset(lab, zboot.root)  # nothing ran on the server
    assert Path(changed.env["ZBOOT_CONFIG"]).read_text() == config_text

    # The same config works once the key is accepted: the refusals were the key's.
    assert unknown("--accept-new-host-key", "init")["data"]["root"] == zboot.root
    assert has_dataset(lab, zboot.root)
    recorded = unknown_file.read_text().split()
    assert recorded[0] == f"[127.0.0.1]:{lab.ssh_port}"
    assert recorded[1:] == lab.known_hosts.read_text().split()[1:3]


# --- the CHAP hosts' life, once for tests 2 to 4 --------------------------------


@dataclass
class Samples:
    """The storage VM's process list as `ps -eo args` shows it: how many passes,
    every distinct line."""

    count: int = 0
    lines: set[str] = field(default_factory=set)


# What `ps -eo args` prints, read by one long-lived process: under emulation
# each fork and exec of ps costs about half a second of the VM's time, which
# made samples ten times sparser and the commands under test much slower.
SAMPLER = """
import os, sys, time
mark, seen = sys.argv[1], set()
while True:
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = f.read().replace(b"\\0", b" ").replace(b"\\n", b" ").strip()
        except OSError:
            continue
        line = args.decode(errors="replace")
        if line and line not in seen:
            seen.add(line)
            print(line)
    print(mark, flush=True)
    time.sleep(0.05)
"""


@contextmanager
def ps_sampler(lab: Layout) -> Iterator[Samples]:
    """Sample every process's command line in the storage VM every ~50 ms (plus
    the time a pass takes) into a file under /run, each line once, with a
    mark line after each pass, until the block ends; then stop the sampler
    by its PID and read the file."""
    mark = f"zboot-ps-sample-{uuid.uuid4().hex[:12]}"
    out = f"/run/{mark}"  # the VM's /tmp is read-only
    pid = ssh_text(
        lab,
        [
            "sh",
            "-c",
            '/usr/bin/python3 -c "$1" "$2" >"/run/$2" 2>&1 </dev/null & echo $!',
            "sh",
            SAMPLER,
            mark,
        ],
    ).strip()
    assert pid.isdigit(), pid
    samples = Samples()
    try:
        yield samples
    finally:
        # Only our own sampler: its command line carries the mark.
        ssh(
            lab,
            [
                "sh",
                "-c",
                'grep -q "$2" "/proc/$1/cmdline" || exit 0; kill "$1"; '
                'while kill -0 "$1" 2>/dev/null; do sleep 0.1; done',
                "sh",
                pid,
                mark,
            ],
            check=False,
        )
        samples.count = int(ssh_text(lab, ["grep", "-cx", mark, out]))
        samples.lines = set(ssh_text(lab, ["sort", "-u", out]).splitlines())
        ssh(lab, ["rm", "-f", "--", out])


def stat(lab: Layout, paths: list[str]) -> dict[str, tuple[str, str, str, str]]:
    """path: (octal mode, owner, group, type) in the storage VM."""
    text = ssh_text(lab, ["stat", "-c", "%n|%a|%U|%G|%F", "--", *paths])
    return {
        row[0]: (row[1], row[2], row[3], row[4])
        for row in (line.split("|") for line in text.splitlines())
    }


@dataclass
class Lifecycle:
    secrets: list[str]  # every CHAP secret the hosts had, from the server's files
    outputs: list[tuple[tuple[str, ...], str]]  # each -v --json command and what it printed
    cloned: dict[str, Any]  # the single clone's data
    shown: str  # what `export show --show-secrets` printed
    samples: Samples
    secret_dirs: list[str]
    secret_files: list[str]
    stats: dict[str, tuple[str, str, str, str]]  # of both, while the hosts lived
    listing: list[str]  # the host secret directory's entries, then


def live_chap_hosts(lab: Layout, zboot: Zboot, work: Path) -> Lifecycle:
    """A golden image; then, with `ps` sampled in the VM: clone --mutual-chap,
    a batch clone with a chap column (one-way, mutual, none), rollback of
    two, mode local and normal, export show, and destroy, each with -v and
    --json and without --show-secrets; and one `export show --show-secrets`.
    The secrets and the files' modes are read while the hosts live."""
    source = work / "disk.raw"
    source.write_bytes(os.urandom(MIB))
    zboot("init")
    zboot("image", "import", "gold", str(source))
    zboot("image", "snapshot", "gold")
    config = load(Path(zboot.env["ZBOOT_CONFIG"]))
    here = secrets_dir(config)
    # an admin made the root's directory too open: zboot closes it (the one above it,
    # made root-only here as zboot makes it, zboot never re-modes: it may be anyone's)
    ssh(
        lab,
        ["sh", "-c", 'mkdir -p -m 0700 "$1" && mkdir -m 0755 "$2"', "sh", config.secrets_dir, here],
    )
    hosts = [f"pcs{n}" for n in range(1, 5)]
    listing = work / "hosts.csv"
    listing.write_text(
        "host,mac,initiator,chap\n"
        f"pcs2,{mac(2, 2)},,one-way\n"
        f"pcs3,{mac(2, 3)},,mutual\n"
        f"pcs4,{mac(2, 4)},,\n"
    )
    outputs: list[tuple[tuple[str, ...], str]] = []

    def step(*args: str) -> dict[str, Any]:
        out = zboot("-v", *args)
        outputs.append((args, json.dumps(out) + "\n" + zboot.stderr))
        return out

    with ps_sampler(lab) as samples:
        # A canary: a command line that lives one second must be caught.
        ssh(lab, ["sh", "-c", "sleep 1; true", f"zboot-canary-{work.name}"])
        cloned = step("clone", "gold", "pcs1", "--mac", mac(2, 1), "--mutual-chap")["data"]
        assert step("clone", "gold", "--hosts", str(listing))["data"]["cloned"] == 3
        files = [secret_path(config, h) for h in hosts[:3]]
        stats = stat(lab, [config.secrets_dir, here, *files])
        entries = ssh_text(lab, ["ls", "-A", here]).split()
        text = ssh_text(lab, ["sh", "-c", 'for f; do cat "$f"; echo; done', "sh", *files])
        stored = [json.loads(line) for line in text.splitlines()]
        step("rollback", "pcs1", "pcs2")  # both re-exported with their secrets
        step("mode", "pcs1", "local")
        step("mode", "pcs1", "normal")
        step("export", "show", "pcs1")
        shown = zboot("export", "show", "pcs1", "--show-secrets")
        step("destroy", *hosts, "--yes")
    secrets = [s for h in stored for s in (h["secret"], h["mutual_secret"]) if s]
    assert len(set(secrets)) == 5 and all(len(s) == 16 for s in secrets), stored
    assert not [
        d
        for d in ssh_text(
            lab, ["zfs", "list", "-H", "-o", "name", "-t", "all", "-r", zboot.root]
        ).split()
        if "pcs" in d
    ]
    return Lifecycle(
        secrets,
        outputs,
        cloned,
        json.dumps(shown),
        samples,
        [config.secrets_dir, here],
        files,
        stats,
        entries,
    )


@pytest.fixture(scope="module")
def chap_hosts(
    lab_session: Layout, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Lifecycle]:
    """live_chap_hosts under a root dataset of its own, removed afterwards as the
    `zboot` fixture does."""
    lab = lab_session
    work = tmp_path_factory.mktemp("security")
    root = f"{POOL}/t-{uuid.uuid4().hex[:8]}"
    config = work / "zboot.toml"
    config.write_text(lab.config.read_text().replace(f'root = "{POOL}/zboot"', f'root = "{root}"'))
    zboot = Zboot(config, root)
    try:
        yield live_chap_hosts(lab, zboot, work)
    finally:
        names = [host["name"] for host in zboot.raw("list").get("data") or []]
        if names:
            zboot.raw("destroy", *names, "--yes", "--force")
        ssh(
            lab,
            [
                "sh",
                "-c",
                'zfs destroy -r "$1" 2>/dev/null; rmdir "$2" 2>/dev/null; true',
                "sh",
                root,
                secrets_dir(load(config)),
            ],
        )


# --- 2. the server's process list --------------------------------------------------


def test_secrets_never_appear_in_the_servers_process_list(
    lab: Layout, chap_hosts: Lifecycle
) -> None:
    run = chap_hosts
    # The secrets are the ones zboot uses: --show-secrets prints them.
    assert [s for s in run.secrets if s in run.shown] == run.secrets[:2], run.shown
    # The sampler ran throughout and saw zboot's own processes on the server
    # (its rtslib agent, its zfs chains), so it could have seen a leak.
    assert run.samples.count > 20, run.samples.count
    assert [line for line in run.samples.lines if "zboot-canary-" in line]
    assert [
        line for line in run.samples.lines if "zboot-lio-agent" in line or "org.zboot:" in line
    ], sorted(run.samples.lines)
    leaked = [line for line in run.samples.lines for s in run.secrets if s in line]
    assert not leaked, leaked


# --- 3. zboot's output and the server's logs -----------------------------------------


def secrets_in_logs(lab: Layout, secrets: list[str]) -> tuple[list[str], str]:
    """`file:match` for every secret found in the storage VM's /var/log (every
    readable file, recursively), and the journal's text. A line every sshd
    log has is looked for too, to show the search works: it must be the
    only thing found."""
    canary = "Accepted publickey for root"
    patterns = "".join(f"{p}\n" for p in [*secrets, canary]).encode()  # stdin, not argv
    found = ssh(
        lab,
        ["grep", "-r", "-a", "-o", "-F", "-s", "--devices=skip", "-f", "-", "/var/log"],
        stdin=patterns,
        check=False,
    )
    assert found.returncode in (0, 1), found.stderr
    hits = sorted(set(found.stdout.decode(errors="replace").splitlines()))
    journal = ssh(
        lab,
        [
            "sh",
            "-c",
            "command -v journalctl >/dev/null || exit 0; "
            "journalctl --no-pager -q -o cat 2>/dev/null; true",
        ],
    ).stdout
    return hits, journal.decode(errors="replace")


def test_secrets_never_appear_in_output_or_logs(lab: Layout, chap_hosts: Lifecycle) -> None:
    run = chap_hosts
    # Without --show-secrets, the CHAP users are shown and nothing else.
    assert run.cloned["chap_credentials"] == {
        "user": run.cloned["initiator"],
        "mutual_user": run.cloned["target"],
    }
    assert [args[0] for args, _ in run.outputs] == [
        "clone",
        "clone",
        "rollback",
        "mode",
        "mode",
        "export",
        "destroy",
    ]
    for args, out in run.outputs:
        assert "\nran: " in out, (args, out)  # -v listed the commands it ran
        assert not [s for s in run.secrets if s in out], (args, out)

    # The server's logs. The boot directory is left out on purpose: a CHAP
    # host's iPXE script must carry its secrets (the client boots from it,
    # served over HTTP), and it is no log.
    hits, journal = secrets_in_logs(lab, run.secrets)
    assert hits and all(h.endswith(":Accepted publickey for root") for h in hits), hits
    assert not [s for s in run.secrets if s in journal]


# --- 4. where the secrets are kept ---------------------------------------------------


def test_secret_files_are_root_only(lab: Layout, chap_hosts: Lifecycle) -> None:
    run = chap_hosts
    for directory in run.secret_dirs:  # the host one was made 0755 beforehand
        mode, owner, _, kind = run.stats[directory]
        assert kind == "directory" and owner == "root", run.stats
        assert int(mode, 8) & 0o077 == 0, run.stats  # no group or other access at all
    for path in run.secret_files:
        assert run.stats[path] == ("600", "root", "root", "regular file"), run.stats
    assert sorted(run.listing) == ["pcs1.chap", "pcs2.chap", "pcs3.chap"]  # not pcs4
    # LIO's saved setup holds the same secrets (rtslib writes it for zboot's agent).
    assert stat(lab, [LIO_SAVED])[LIO_SAVED][:3] == ("600", "root", "root")
