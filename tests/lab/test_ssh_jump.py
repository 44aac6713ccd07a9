"""zboot reaches the storage server only through a jump host, configured the
way people do it: ~/.ssh/config with an Include for the server's entry and
ProxyJump to a bastion's entry, known_hosts entries for both, and zboot's own
config saying nothing but `host = "storage"`.

The server is a second sshd inside the lab VM, bound to 127.0.0.1 there (so
only the VM itself can reach it), with a host key and an authorized key made
here; the jump host is the VM's own sshd, forwarded to 127.0.0.1 on this
machine. HOME points zboot at the test's ~/.ssh."""

from __future__ import annotations

import random
import shlex
import socket
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from zboot_cli import Zboot
from zboot_lab.layout import ZBOOT_ROOT, Layout
from zboot_lab.remote import ssh

pytestmark = pytest.mark.lab

SERVER_KEYS = ("host", "port", "user", "key", "known_hosts")
IMAGES = f"{ZBOOT_ROOT}/images"


@dataclass
class Inner:
    """The second sshd: where it listens inside the VM, and its keys here."""

    port: int
    host_pub: str  # "type base64"
    client_key: Path


def _free_here(port: int) -> bool:
    """Nothing listens on 127.0.0.1:port on this machine (so a direct
    connection to the inner server's address cannot reach anything)."""
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def _keygen(path: Path, comment: str) -> str:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)], check=True
    )
    return " ".join(path.with_name(path.name + ".pub").read_text().split()[:2])


@pytest.fixture(scope="module")
def inner(lab_session: Layout, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Inner]:
    lab = lab_session
    keys = tmp_path_factory.mktemp("inner-keys")
    host_pub = _keygen(keys / "host", "zboot-jump-test-host")
    client_pub = _keygen(keys / "client", "zboot-jump-test-client")
    where = f"/run/zboot-jump-{uuid.uuid4().hex[:8]}"
    port = next(p for p in random.sample(range(22200, 22900), 50) if _free_here(p))
    # As storage-init.sh starts the lab's own sshd (no PAM, plain curve25519),
    # but on loopback only, with SFTP, and daemonised with a PID file.
    sshd = [
        "/usr/sbin/sshd",
        "-f",
        "/dev/null",
        "-E",
        f"{where}/sshd.log",
        "-h",
        f"{where}/host",
        *("-o", f"ListenAddress 127.0.0.1:{port}"),
        *("-o", f"PidFile {where}/sshd.pid"),
        *("-o", f"AuthorizedKeysFile {where}/authorized_keys"),
        *("-o", "PermitRootLogin prohibit-password"),
        *("-o", "PasswordAuthentication no"),
        *("-o", "UseDNS no"),
        *("-o", "UsePAM no"),
        *("-o", "Subsystem sftp internal-sftp"),
        *("-o", "KexAlgorithms curve25519-sha256,curve25519-sha256@libssh.org"),
    ]
    # one SSH command: the files (the host key on stdin), then sshd, then its PID file
    script = f'umask 077; mkdir {where}; cat > {where}/host; echo "$1" > {where}/authorized_keys; '
    script += shlex.join(sshd) + f"; for i in $(seq 50); do [ -s {where}/sshd.pid ] && exit 0; "
    script += f"sleep 0.1; done; cat {where}/sshd.log >&2; exit 1"
    ssh(lab, ["sh", "-c", script, "sh", client_pub], stdin=(keys / "host").read_bytes())
    try:
        yield Inner(port, host_pub, keys / "client")
    finally:  # stopped by its PID, then its files go
        ssh(
            lab,
            ["sh", "-c", f'kill "$(cat {where}/sshd.pid)"; rm -rf {where}'],
            check=False,
        )


def _images_on_the_vm(lab: Layout) -> set[str]:
    """The lab root's images, read from ZFS over the lab's own connection."""
    script = 'zfs list -H -o name -d 1 -t volume "$1" 2>/dev/null; true'  # none yet: none
    out = ssh(lab, ["sh", "-c", script, "sh", IMAGES])
    return {line.rsplit("/", 1)[1] for line in out.stdout.decode().split()}


@dataclass
class Setup:
    home: Path
    zboot: Zboot


def _ssh_config(lab: Layout, inner: Inner, home: Path, jump: bool) -> None:
    dot_ssh = home / ".ssh"
    (dot_ssh / "conf.d").mkdir(parents=True, exist_ok=True)
    (dot_ssh / "config").write_text(
        "# the server's entry comes from conf.d, relative to ~/.ssh\n"
        "Include conf.d/*.conf\n\n"
        "Host jump\n"
        "  HostName 127.0.0.1\n"
        f"  Port {lab.ssh_port}\n"
        "  User root\n"
        f"  IdentityFile {lab.client_key}\n"
        "  IdentitiesOnly yes\n"
    )
    (dot_ssh / "conf.d" / "storage.conf").write_text(
        "Host storage\n"
        "  HostName 127.0.0.1\n"
        f"  Port {inner.port}\n"
        "  User root\n"
        "  IdentityFile ~/.ssh/storage_key\n"
        "  IdentitiesOnly yes\n"
        "  ConnectTimeout 60\n" + ("  ProxyJump jump\n" if jump else "")
    )
    key = dot_ssh / "storage_key"
    key.write_bytes(inner.client_key.read_bytes())
    key.chmod(0o600)


def _known_hosts(lab: Layout, inner: Inner, home: Path, with_jump: bool = True) -> None:
    lines = [f"[127.0.0.1]:{inner.port} {inner.host_pub}"]
    if with_jump:
        lines.insert(0, lab.known_hosts.read_text().strip())
    (home / ".ssh" / "known_hosts").write_text("\n".join(lines) + "\n")


@pytest.fixture
def setup(lab: Layout, inner: Inner, tmp_path: Path) -> Setup:
    home = tmp_path / "home"
    _ssh_config(lab, inner, home, jump=True)
    _known_hosts(lab, inner, home)
    config = tmp_path / "zboot.toml"
    kept = [
        line
        for line in lab.config.read_text().splitlines()
        if line.split("=")[0].strip() not in SERVER_KEYS
    ]
    text = "\n".join(kept).replace("[server]", '[server]\nhost = "storage"')
    config.write_text(text + "\n")
    run = Zboot(config, "")
    run.env["HOME"] = str(home)
    run.env.pop("SSH_AUTH_SOCK", None)  # only the keys the config names
    run.env.pop("ZBOOT_SSH_CONFIG", None)
    return Setup(home, run)


def test_commands_reach_the_server_only_through_the_jump_host(
    lab: Layout, inner: Inner, setup: Setup
) -> None:
    assert '[server]\nhost = "storage"\n' in (Path(setup.zboot.env["ZBOOT_CONFIG"]).read_text())
    assert isinstance(setup.zboot("list")["data"], list)
    images = setup.zboot("image", "list")
    assert {i["name"] for i in images["data"]} == _images_on_the_vm(lab)
    # the commands really ran on the VM: the inner sshd logged root's logins
    log = ssh(lab, ["sh", "-c", "cat /run/zboot-jump-*/sshd.log"]).stdout.decode()
    assert log.count("Accepted publickey for root from 127.0.0.1") >= 2

    # without ProxyJump the same address is tried from here, where nothing listens
    _ssh_config(lab, inner, setup.home, jump=False)
    failed = setup.zboot("list", code=5)
    message = failed["errors"][0]["message"]
    assert f"cannot connect to root@127.0.0.1:{inner.port} over SSH" in message


def test_the_jump_hosts_key_is_checked_too(lab: Layout, inner: Inner, setup: Setup) -> None:
    _known_hosts(lab, inner, setup.home, with_jump=False)
    failed = setup.zboot("list", code=5)
    error = failed["errors"][0]
    assert error["kind"] == "host-key"
    assert error["message"].startswith(
        f"unknown SSH host key for jump host [127.0.0.1]:{lab.ssh_port}"
    )
    assert "--accept-new-host-key" in error["hint"]
    known = (setup.home / ".ssh" / "known_hosts").read_text()
    assert str(lab.ssh_port) not in known  # nothing recorded without being asked


@pytest.mark.full
def test_proxy_command(lab: Layout, inner: Inner, setup: Setup) -> None:
    """ProxyCommand through the lab's OpenSSH client (`ssh -W`) to the same server."""
    hop = " ".join(
        [
            "ssh -F none",
            f"-i {lab.client_key} -o IdentitiesOnly=yes -o BatchMode=yes",
            f"-o UserKnownHostsFile={lab.known_hosts} -o StrictHostKeyChecking=yes",
            f"-p {lab.ssh_port} -W %h:%p root@127.0.0.1",
        ]
    )
    with open(setup.home / ".ssh" / "conf.d" / "storage.conf", "a") as handle:
        handle.write(f"\nHost storage-pc\n  HostName 127.0.0.1\n  Port {inner.port}\n")
        handle.write("  User root\n  IdentityFile ~/.ssh/storage_key\n")
        handle.write(f"  ProxyCommand {hop}\n")
    (setup.home / ".ssh" / "known_hosts").write_text(f"[127.0.0.1]:{inner.port} {inner.host_pub}\n")
    images = setup.zboot("--server", "storage-pc", "image", "list")
    assert {i["name"] for i in images["data"]} == _images_on_the_vm(lab)
