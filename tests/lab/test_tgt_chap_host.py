"""CHAP on tgt, live on this machine (no VM): the test starts its own tgtd in
the foreground on a private management port (7) and loopback portal
(127.0.0.1:43270), drives it with zboot's tgt engine, logs in with libiscsi,
and stops that tgtd by its PID. Backing stores are sparse files. Meanwhile
`ps` is sampled: no secret may ever be on a command line zboot runs."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from file_exports import creds, env_with, file_export, held_session
from file_exports import login as file_login
from zboot_lab import iscsi

from zboot.remote.local import LocalRunner
from zboot.targets.agent import SERVER_PYTHON
from zboot.targets.base import Export
from zboot.targets.tgt import TgtEngine, conf_path, parse_accounts, socket_path

pytestmark = pytest.mark.lab

CONTROL_PORT = 7
PORT = 43270
PORTAL = f"127.0.0.1:{PORT}"
IQN_BASE = "iqn.2026-11.lab.zboot"
INTRUDER = "iqn.2010-04.org.ipxe:intruder"
IPC_DIR = Path("/var/run/tgtd")


def tgtadm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["tgtadm", "-C", str(CONTROL_PORT), *args], capture_output=True, text=True, timeout=30
    )


def port_taken() -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", PORT)) == 0


@pytest.fixture
def tgtd(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Our own tgtd, stopped (by its PID only) and cleaned up afterwards."""
    missing = [
        t
        for t in ("tgtd", "tgtadm", "tgt-admin", "iscsi-inq", "iscsi-perf", "ps")
        if shutil.which(t) is None
    ]
    if missing or os.geteuid() != 0:
        pytest.fail(
            f"needs root and {', '.join(missing) or 'tgt and libiscsi-bin'} "
            "(contrib/lab/lab installs them)"
        )
    sock = Path(socket_path(CONTROL_PORT))
    if port_taken() or tgtadm("--op", "show", "--mode", "system").returncode == 0:
        pytest.fail(f"{PORTAL} or tgtd control port {CONTROL_PORT} is already in use")
    made_dir = not IPC_DIR.exists()
    log = (tmp_path / "tgtd.log").open("wb")
    proc = subprocess.Popen(
        ["tgtd", "-f", "--iscsi", f"portal={PORTAL}", "-C", str(CONTROL_PORT)],
        stdout=log,
        stderr=log,
    )
    try:
        deadline = time.monotonic() + 20
        while tgtadm("--op", "show", "--mode", "system").returncode != 0 or not port_taken():
            assert proc.poll() is None, (tmp_path / "tgtd.log").read_text()
            assert time.monotonic() < deadline, "tgtd did not come up"
            time.sleep(0.1)
        yield proc
    finally:
        # tgtd ignores SIGTERM; its own way out is "delete system" (as tgt.service).
        tgtadm("--op", "delete", "--mode", "system")
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()  # this PID only
            proc.wait(timeout=15)
        log.close()
        for leftover in (sock, Path(f"{sock}.lock")):
            leftover.unlink(missing_ok=True)
        if made_dir:
            with contextlib.suppress(OSError):
                IPC_DIR.rmdir()


class PsWatch:
    """Samples every process's command line until stopped."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.samples = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stopping.is_set():
            out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
            self.seen.update(out.splitlines())
            self.samples += 1
            self.stopping.wait(0.05)

    def __enter__(self) -> PsWatch:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stopping.set()
        self.thread.join(timeout=30)

    def leaked(self, secrets: list[str]) -> list[str]:
        return [line for line in self.seen for s in secrets if s in line]


def export(tmp_path: Path, host: str, chap: bool = False, mutual: bool = False) -> Export:
    return file_export(tmp_path, host, chap=chap, mutual=mutual)


def login(e: Export, initiator: str | None = None, **chap: str) -> subprocess.CompletedProcess[str]:
    return file_login(PORTAL, e, 1, initiator, **chap)


def accounts() -> list[str]:
    shown = tgtadm("--op", "show", "--mode", "account")
    assert shown.returncode == 0, shown.stderr
    return parse_accounts(shown.stdout)


def secrets_of(*exports: Export) -> list[str]:
    return [s for e in exports if e.chap for s in (e.chap.secret, e.chap.mutual_secret) if s]


def test_chap_on_tgt_without_secrets_in_argv(tgtd: subprocess.Popen[bytes], tmp_path: Path) -> None:
    runner = LocalRunner()
    conf_dir = tmp_path / "conf.d"
    engine = TgtEngine(runner, control_port=CONTROL_PORT, conf_dir=str(conf_dir))
    plain = export(tmp_path, "pcth1")
    chap = export(tmp_path, "pcth2", chap=True)
    mutual = export(tmp_path, "pcth3", mutual=True)
    assert chap.chap and mutual.chap and mutual.chap.mutual_user and mutual.chap.mutual_secret
    secrets = secrets_of(chap, mutual)

    with PsWatch() as watch:
        engine.apply(create=[plain, chap, mutual])  # one batch
    assert watch.samples > 0 and not watch.leaked(secrets)
    assert sum(SERVER_PYTHON in c for c in runner.commands) == 1  # one agent process
    assert not [c for c in runner.commands for s in secrets if any(s in a for a in c)]
    assert sorted(accounts()) == sorted([chap.chap.user, mutual.chap.user, mutual.chap.mutual_user])

    # The initiator's side: no CHAP, a wrong secret and a wrong target secret fail.
    assert login(plain).returncode == 0
    assert login(plain, INTRUDER).returncode != 0
    refused = login(chap)
    assert refused.returncode != 0 and "Authentication failure" in refused.stderr
    assert login(chap, **creds(chap, secret=iscsi.wrong(chap.chap.secret))).returncode != 0
    assert login(chap, **creds(chap)).returncode == 0
    assert login(chap, INTRUDER, **creds(chap)).returncode != 0  # right secret, wrong name
    assert login(mutual).returncode != 0
    assert login(mutual, **creds(mutual)).returncode == 0
    wrong_target = login(
        mutual, **creds(mutual, target_secret=iscsi.wrong(mutual.chap.mutual_secret))
    )
    assert wrong_target.returncode != 0 and "CHAP_R" in wrong_target.stderr

    # While a CHAP session is up, no secret is on any command line either.
    with (
        PsWatch() as watch,
        held_session(
            engine, f"iscsi://{PORTAL}/{mutual.target}/1", mutual, env_with(creds(mutual))
        ),
    ):
        assert engine.sessions([mutual.target, chap.target]) == {mutual.target: [mutual.initiator]}
        time.sleep(0.5)
    assert watch.samples > 1 and not watch.leaked(secrets)
    assert any("iscsi-perf" in line for line in watch.seen)

    # The conf.d files: 0600, CHAP users only where there is CHAP.
    texts = {
        e.host: Path(conf_path(e.host, str(conf_dir))).read_text() for e in (plain, chap, mutual)
    }
    assert "user" not in texts["pcth1"]
    assert f"incominguser {chap.chap.user} {chap.chap.secret}\n" in texts["pcth2"]
    assert f"outgoinguser {mutual.chap.mutual_user} {mutual.chap.mutual_secret}\n" in texts["pcth3"]
    assert {Path(conf_path(h, str(conf_dir))).stat().st_mode & 0o777 for h in texts} == {0o600}

    # Delete: the host's accounts go with its target, the others stay.
    engine.apply(delete=[chap.target])
    assert sorted(accounts()) == sorted([mutual.chap.user, mutual.chap.mutual_user])
    assert login(chap, **creds(chap)).returncode != 0
    assert login(mutual, **creds(mutual)).returncode == 0

    # Re-created with new secrets (zboot sync after a re-key): only the new ones work.
    rekeyed = export(tmp_path, "pcth3", mutual=True)
    with PsWatch() as watch:
        engine.apply(create=[rekeyed])
    assert not watch.leaked(secrets_of(rekeyed))
    assert login(mutual, **creds(mutual)).returncode != 0
    assert login(rekeyed, **creds(rekeyed)).returncode == 0

    engine.apply(delete=[plain.target, rekeyed.target])
    assert accounts() == [] and engine.sessions([plain.target]) == {}
    assert tgtadm("--op", "show", "--mode", "target").stdout == ""

    # After a restart, tgt's own tgt-admin restores target and accounts from
    # the conf file (it passes the secrets to tgtadm in argv: tgt's tool, not zboot's).
    restored = subprocess.run(
        ["tgt-admin", "-C", str(CONTROL_PORT), "-e", "-c", conf_path("pcth3", str(conf_dir))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert restored.returncode == 0, restored.stderr
    assert login(rekeyed).returncode != 0
    assert login(rekeyed, **creds(rekeyed)).returncode == 0
    engine.apply(delete=[rekeyed.target])
    assert accounts() == []
    assert tgtadm("--op", "show", "--mode", "target").stdout == ""
