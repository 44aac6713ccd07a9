"""The route to a server through a jump host, against two small SSH servers
in this process (paramiko's server side, on 127.0.0.1): the second is reached
only through a direct-tcpip channel of the first, each one's host key is
checked, and only the keys IdentitiesOnly names are offered."""

from __future__ import annotations

import base64
import contextlib
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import paramiko
import pytest
from paramiko.common import (
    AUTH_FAILED,
    AUTH_SUCCESSFUL,
    OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED,
    OPEN_SUCCEEDED,
)
from ssh_agent import running_agent

from zboot.errors import HostKeyError, ServerError
from zboot.remote.ssh import SshRunner
from zboot.remote.ssh_config import ENV


def keygen(path: Path, passphrase: str = "") -> Path:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-f", str(path)], check=True
    )
    return path


def pub(path: Path) -> str:
    return " ".join(path.with_name(path.name + ".pub").read_text().split()[:2])


def blob(path: Path) -> bytes:
    return base64.b64decode(pub(path).split()[1])


def _pump(a: paramiko.Channel | socket.socket, b: paramiko.Channel | socket.socket) -> None:
    with contextlib.suppress(OSError, EOFError):
        while data := a.recv(1 << 15):
            b.sendall(data)
    with contextlib.suppress(OSError, EOFError):
        b.close()


@dataclass
class Server(paramiko.ServerInterface):
    """Accepts one client key; records the keys offered and where it forwarded."""

    accepts: bytes
    offered: list[bytes] = field(default_factory=list)
    forwarded: list[tuple[str, int]] = field(default_factory=list)

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        self.offered.append(key.asbytes())
        ok = key.asbytes() == self.accepts and username == "zb"
        return AUTH_SUCCESSFUL if ok else AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        return OPEN_SUCCEEDED if kind == "session" else OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_direct_tcpip_request(
        self, chanid: int, origin: tuple[str, int], destination: tuple[str, int]
    ) -> int:
        self.forwarded.append(destination)
        return OPEN_SUCCEEDED


class Listener:
    """An SSH server on 127.0.0.1:port; direct-tcpip channels are connected for real."""

    def __init__(self, host_key: Path, client_key: Path) -> None:
        self.key = paramiko.Ed25519Key.from_private_key_file(str(host_key))
        self.server = Server(blob(client_key))
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.transports: list[paramiko.Transport] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = self.sock.accept()
                # each connection on its own thread: a client that hangs up
                # mid-handshake (a refused host key) must not stop the next
                threading.Thread(target=self._connection, args=(conn,), daemon=True).start()

    def _connection(self, conn: socket.socket) -> None:
        transport = paramiko.Transport(conn)
        transport.add_server_key(self.key)
        self.transports.append(transport)
        try:
            transport.start_server(server=self.server)
        except (paramiko.SSHException, OSError, EOFError):
            return
        self._channels(transport)

    def _channels(self, transport: paramiko.Transport) -> None:
        while transport.is_active():
            channel = transport.accept(0.5)
            if channel is None or not self.server.forwarded:
                continue
            host, port = self.server.forwarded[-1]
            with contextlib.suppress(OSError):
                out = socket.create_connection((host, port), 5)
                for a, b in ((channel, out), (out, channel)):
                    threading.Thread(target=_pump, args=(a, b), daemon=True).start()

    def close(self) -> None:
        self.sock.close()
        for transport in self.transports:
            transport.close()


def asking(runner: SshRunner, ask: Callable[[str], str] = lambda _: "open sesame") -> SshRunner:
    """runner, typing the storage key's passphrase with ask."""
    runner.ask_passphrase = ask
    return runner


@dataclass
class Lab:
    home: Path
    jump: Listener
    target: Listener
    jump_client: Path
    target_client: Path
    other: Path  # a key the agent would offer; never accepted


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Lab]:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    jump_client = keygen(home / ".ssh" / "jump_key")
    target_client = keygen(home / ".ssh" / "storage_key", "open sesame")
    other = keygen(tmp_path / "other")
    jump = Listener(keygen(tmp_path / "jump_host"), jump_client)
    target = Listener(keygen(tmp_path / "target_host"), target_client)
    (home / ".ssh" / "known_hosts").write_text(
        f"[127.0.0.1]:{jump.port} {pub(tmp_path / 'jump_host')}\n"
        f"[127.0.0.1]:{target.port} {pub(tmp_path / 'target_host')}\n"
    )
    (home / ".ssh" / "config").write_text(
        "Include conf.d/*\n"
        f"Host jump\n  HostName 127.0.0.1\n  Port {jump.port}\n  User zb\n"
        "  IdentityFile ~/.ssh/jump_key\n  IdentitiesOnly yes\n"
    )
    (home / ".ssh" / "conf.d").mkdir()
    (home / ".ssh" / "conf.d" / "storage").write_text(
        f"Host storage\n  HostName 127.0.0.1\n  Port {target.port}\n  User zb\n"
        "  IdentityFile ~/.ssh/storage_key\n  ProxyJump jump\n  ConnectTimeout 10\n"
    )
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    try:
        yield Lab(home, jump, target, jump_client, target_client, other)
    finally:
        jump.close()
        target.close()


def test_the_server_is_reached_through_the_jump_host(lab: Lab) -> None:
    asked: list[str] = []

    def ask(prompt: str) -> str:
        asked.append(prompt)
        return "open sesame"

    with asking(SshRunner("storage"), ask) as runner:
        live = runner.transport()
        assert live.is_authenticated()
        assert live.get_remote_server_key().asbytes() == lab.target.key.asbytes()
        assert len(runner._route) == 2 and runner.connects == 1
    assert lab.jump.server.forwarded == [("127.0.0.1", lab.target.port)]
    assert lab.jump.server.offered == [blob(lab.jump_client)]  # IdentitiesOnly: the one key
    assert lab.target.server.offered == [blob(lab.target_client)]
    assert asked == [f"Enter passphrase for key '{lab.target_client}': "]  # asked once


def test_an_unknown_jump_host_key_is_refused_before_any_key_is_offered(lab: Lab) -> None:
    known = lab.home / ".ssh" / "known_hosts"
    known.write_text(known.read_text().splitlines()[1] + "\n")  # the target's line only
    with pytest.raises(
        HostKeyError, match=f"unknown SSH host key for jump host \\[127.0.0.1\\]:{lab.jump.port}"
    ):
        asking(SshRunner("storage")).transport()
    assert lab.jump.server.offered == [] and lab.target.server.offered == []
    # --accept-new-host-key records the jump host's key where it is looked for
    with asking(SshRunner("storage", trust_unknown_host=True)) as r:
        r.transport()
    assert f"[127.0.0.1]:{lab.jump.port} ssh-ed25519 " in known.read_text()


def test_without_identities_only_the_agent_keys_go_first(
    lab: Lab, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with running_agent(tmp_path / "agent.sock", lab.other) as sock:
        monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
        with asking(SshRunner("storage")) as runner:
            runner.transport()
    assert lab.jump.server.offered == [blob(lab.jump_client)]  # IdentitiesOnly yes
    assert lab.target.server.offered == [blob(lab.other), blob(lab.target_client)]


RELAY = """
import socket, sys, threading
conn = socket.create_connection((sys.argv[1], int(sys.argv[2])))
def back():
    while data := conn.recv(65536):
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
threading.Thread(target=back, daemon=True).start()
while data := sys.stdin.buffer.read1(65536):
    conn.sendall(data)
"""


def test_proxy_command_carries_the_connection(lab: Lab, tmp_path: Path) -> None:
    """ProxyCommand with %h and %p filled in, the jump host never touched."""
    relay = tmp_path / "relay.py"
    relay.write_text(RELAY)
    with open(lab.home / ".ssh" / "conf.d" / "storage", "a") as handle:
        handle.write(
            f"Host storage-pc\n  HostName 127.0.0.1\n  Port {lab.target.port}\n  User zb\n"
            f"  IdentityFile ~/.ssh/storage_key\n  ProxyCommand {sys.executable} {relay} %h %p\n"
        )
    with asking(SshRunner("storage-pc")) as runner:
        live = runner.transport()
        assert live.get_remote_server_key().asbytes() == lab.target.key.asbytes()
        assert len(runner._route) == 1
    assert lab.target.server.offered == [blob(lab.target_client)]
    assert lab.jump.server.offered == [] and lab.jump.server.forwarded == []


def test_a_passphrase_with_no_terminal_is_a_clear_error(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    with pytest.raises(ServerError) as caught:
        SshRunner("storage").transport()
    assert f"the SSH key {lab.target_client} is encrypted" in caught.value.message
    assert caught.value.hint and "ssh-add" in caught.value.hint
