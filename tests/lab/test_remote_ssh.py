"""SshRunner against the storage VM: real sshd, real remote shell, real SFTP.
Connections are slow under emulation, so most tests share one runner (and prove
that it used one connection); the host-key tests need their own."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from zboot_lab.layout import Layout

from zboot.errors import CommandFailed, HostKeyError, NotFound, ServerError
from zboot.remote import SshRunner

pytestmark = pytest.mark.lab

HOSTILE = [
    "$(echo hacked)",
    "`echo hacked`",
    "a; echo hacked",
    "two  words",
    "'single'",
    '"double"',
    "it's",
    "new\nline",
    "*",
    "~",
    "$HOME",
    "-n",
    "",
    "back\\slash",
    "tab\there",
    "&& echo hacked",
    "| cat",
    "> /tmp/x",
    "#comment",
    "ünïcødé",
]
MiB = 1 << 20


def lab_runner(
    lab: Layout,
    known_hosts: Path | None = None,
    trust_unknown_host: bool = False,
    agent: bool = True,
) -> SshRunner:
    return SshRunner(
        "127.0.0.1",
        port=lab.ssh_port,
        user="root",
        key_file=str(lab.client_key),
        known_hosts=str(known_hosts or lab.known_hosts),
        connect_timeout=60,
        trust_unknown_host=trust_unknown_host,
        agent=agent,
    )


@pytest.fixture(scope="module")
def shared(lab_session: Layout) -> Iterator[SshRunner]:
    runner = lab_runner(lab_session)
    yield runner
    runner.close()


@pytest.fixture
def runner(lab: Layout, shared: SshRunner) -> SshRunner:
    return shared


@pytest.fixture
def scratch(runner: SshRunner) -> Iterator[str]:
    """A fresh directory under /run (the VM's /tmp is read-only)."""
    path = f"/run/zboot-remote-test-{uuid.uuid4().hex[:8]}"
    runner.run(["mkdir", "-m", "700", path])
    yield path
    runner.run(["rm", "-rf", "--", path])


def host_fingerprint(lab: Layout) -> str:
    pub = lab.host_key.with_name(lab.host_key.name + ".pub")
    out = subprocess.run(["ssh-keygen", "-lf", str(pub)], check=True, capture_output=True)
    return out.stdout.decode().split()[1]


def test_zfs_version(runner: SshRunner) -> None:
    lines = runner.run(["zfs", "version"]).text.split()
    assert any(line.startswith("zfs-2.") for line in lines), lines


def test_hostile_arguments_survive_the_remote_shell(runner: SshRunner) -> None:
    result = runner.run(["printf", "%s\\0", *HOSTILE])
    assert result.stdout.decode().split("\0")[:-1] == HOSTILE


def test_stdin_is_delivered(runner: SshRunner) -> None:
    data = os.urandom(5 * MiB)
    result = runner.run(["sha256sum"], input=data)
    assert result.text.split()[0] == hashlib.sha256(data).hexdigest()


def test_large_stdout_is_read_fully_alongside_stderr(runner: SshRunner) -> None:
    script = (
        "exec 3>&1; head -c 20971520 /dev/urandom | tee /dev/fd/3 | sha256sum >&2; "
        "head -c 1048576 /dev/zero >&2"
    )
    result = runner.run(["bash", "-c", script])
    assert len(result.stdout) == 20 * MiB
    digest = result.stderr[:64].decode()
    assert digest == hashlib.sha256(result.stdout).hexdigest()
    assert result.stderr.count(b"\0") == MiB


def test_stream_sends_the_source_and_reports_progress(runner: SshRunner) -> None:
    data = os.urandom(3 * MiB + 17)
    seen: list[int] = []
    result = runner.stream(
        ["sha256sum"], io.BytesIO(data), chunk=MiB, on_progress=seen.append, timeout=120
    )
    assert result.text.split()[0] == hashlib.sha256(data).hexdigest()
    assert seen == [MiB, 2 * MiB, 3 * MiB, 3 * MiB + 17]


def test_non_zero_exit(runner: SshRunner) -> None:
    with pytest.raises(CommandFailed) as caught:
        runner.run(["sh", "-c", "echo nope >&2; exit 7"])
    assert caught.value.returncode == 7 and "nope" in caught.value.message
    result = runner.run(["sh", "-c", "exit 7"], check=False)
    assert result.returncode == 7


def test_timeout_closes_the_channel_but_keeps_the_connection(runner: SshRunner) -> None:
    with pytest.raises(ServerError) as caught:
        runner.run(["sleep", "20"], timeout=1)
    assert "sleep 20" in caught.value.message and "timed out" in caught.value.message
    assert runner.run(["echo", "still here"]).text == "still here\n"


@pytest.mark.parametrize("through", ["the session agent", "SFTP"])
def test_files_round_trip_atomically(
    lab: Layout, runner: SshRunner, scratch: str, through: str
) -> None:
    files = runner if through == "the session agent" else lab_runner(lab, agent=False)
    path = f"{scratch}/boot file's.ipxe"
    files.write_file(path, b"#!ipxe\nsanboot\n", mode=0o600)
    files.write_file(path, b"#!ipxe\nexit\n", mode=0o640)
    assert files.read_file(path) == b"#!ipxe\nexit\n"
    assert runner.run(["stat", "-c", "%a", path]).text == "640\n"
    assert runner.run(["ls", "-A", scratch]).text == "boot file's.ipxe\n"  # no temp left
    files.remove_file(path)
    files.remove_file(path)
    with pytest.raises(NotFound):
        files.read_file(path)
    assert (files._sftp is not None) == (through == "SFTP")  # the way asked for
    if files is not runner:
        files.close()


def test_reads_run_side_by_side_and_are_recorded_in_order(runner: SshRunner) -> None:
    """Two reads that can only finish together (one writes a FIFO the other
    reads: run one after the other, the first would wait for its timeout)."""
    fifo = f"/tmp/zboot-reads-{uuid.uuid4().hex[:8]}"
    runner.run(["mkfifo", "-m", "600", fifo])
    try:
        argvs = [["sh", "-c", 'echo meet > "$1"', "sh", fifo], ["cat", fifo]]
        written, read = runner.reads(argvs, timeout=30)
        assert (written.returncode, read.returncode, read.text) == (0, 0, "meet\n")
        assert runner.commands[-2:] == [tuple(argv) for argv in argvs]
    finally:
        runner.run(["rm", "-f", fifo])


def test_one_connection_for_everything(runner: SshRunner) -> None:
    """Runs after the tests above, which all shared this runner."""
    transport = runner.transport()
    for _ in range(3):
        runner.run(["true"])
    runner.read_file("/etc/hostname")
    assert runner.transport() is transport
    assert runner.connects == 1
    assert len(runner.commands) > 10


def test_ssh_config_and_sudo(lab: Layout, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """~/.ssh/config supplies host, port, user, key and known_hosts; sudo -n file ops."""
    ssh_dir = tmp_path / ".ssh"
    ssh_dir.mkdir()
    (ssh_dir / "config").write_text(
        f"Host zboot-lab\n  HostName 127.0.0.1\n  Port {lab.ssh_port}\n  User root\n"
        f"  IdentityFile {lab.client_key}\n  UserKnownHostsFile {lab.known_hosts}\n"
    )
    monkeypatch.setenv("HOME", str(tmp_path))
    # without the session agent: each command through sudo on a channel of its own
    with SshRunner("zboot-lab", sudo=True, agent=False) as runner:
        path = f"/run/zboot-sudo-test-{uuid.uuid4().hex[:8]}"
        try:
            runner.write_file(path, b"secret", mode=0o600)
            assert runner.read_file(path) == b"secret"
            check = runner.run(["sh", "-c", 'echo "$SUDO_USER"; stat -c %a "$1"', "sh", path])
            assert check.text == "root\n600\n"
        finally:
            runner.remove_file(path)
        assert all(b"secret" not in repr(argv).encode() for argv in runner.commands)
        assert runner.connects == 1


AGENT_PARENT = 'a=$(awk \'/^PPid/ {print $2}\' "/proc/$PPID/status"); cat "/proc/$a/comm"'


def test_session_agent_runs_commands_under_sudo(lab: Layout) -> None:
    """With sudo, the session agent itself is started through sudo, once, and
    every command is its child (the agent's parent is sudo)."""
    with SshRunner(
        "127.0.0.1",
        port=lab.ssh_port,
        user="root",
        key_file=str(lab.client_key),
        known_hosts=str(lab.known_hosts),
        sudo=True,
    ) as runner:
        parent = runner.run(["sh", "-c", AGENT_PARENT])
        again = runner.run(["sh", "-c", "echo $PPID"])
        first = runner.run(["sh", "-c", "echo $PPID"])
        assert parent.text == "sudo\n"
        assert again.text == first.text  # the same agent process for both


def test_changed_host_key_is_refused(lab: Layout, tmp_path: Path) -> None:
    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    kind, blob = other.with_name("other.pub").read_text().split()[:2]
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{lab.ssh_port} {kind} {blob}\n")
    runner = lab_runner(lab, known, trust_unknown_host=True)  # trust never covers a change
    with pytest.raises(HostKeyError) as caught:
        runner.run(["true"])
    assert "CHANGED" in caught.value.message and host_fingerprint(lab) in caught.value.message
    assert runner.commands == [("true",)]


def test_unknown_host_key_is_refused_unless_trusted(lab: Layout, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text("")
    with pytest.raises(HostKeyError) as caught:
        lab_runner(lab, known).run(["true"])
    message = caught.value.message
    assert f"[127.0.0.1]:{lab.ssh_port}" in message and host_fingerprint(lab) in message
    assert caught.value.hint and "--accept-new-host-key" in caught.value.hint
    assert known.read_text() == ""

    with lab_runner(lab, known, trust_unknown_host=True) as trusting:
        assert trusting.run(["echo", "ok"]).text == "ok\n"
    assert known.read_text().split() == lab.known_hosts.read_text().split()


def test_known_hosts_markers_are_understood(lab: Layout, tmp_path: Path) -> None:
    """@cert-authority lines (common in /etc/ssh/ssh_known_hosts) are skipped,
    not a traceback; a key marked @revoked is refused even where it is also
    listed as trusted, and even with --accept-new-host-key."""
    trusted = lab.known_hosts.read_text().strip().splitlines()[0]
    kind, blob = trusted.split()[1:3]
    known = tmp_path / "known_hosts"
    known.write_text(f"@cert-authority *.example.org {kind} {blob}\n{trusted}\n")
    with lab_runner(lab, known) as runner:
        assert runner.run(["echo", "ok"]).text == "ok\n"
    known.write_text(f"{trusted}\n@revoked * {kind} {blob}\n")
    with pytest.raises(HostKeyError) as caught:
        lab_runner(lab, known, trust_unknown_host=True).run(["true"])
    assert "@revoked" in caught.value.message and host_fingerprint(lab) in caught.value.message
