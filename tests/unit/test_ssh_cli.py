"""Bad ~/.ssh/config input through the real CLI: a clear message, the exit
code, the JSON envelope, and no traceback; nothing is connected to."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any, ClassVar

import pytest
from typer.testing import CliRunner

from zboot.cli.app import app
from zboot.errors import ServerError
from zboot.remote import ssh as ssh_module


def zboot(home: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[int, dict[str, Any]]:
    config = home / "zboot.toml"
    config.write_text('[server]\nhost = "storage"\n[zfs]\npool = "tank"\n')
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    monkeypatch.delenv("ZBOOT_SSH_CONFIG", raising=False)
    result = CliRunner().invoke(app, ["--config", str(config), "--json", *args])
    # an exception zboot did not turn into its exit code would show here
    assert isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, json.loads(result.stdout)


def ssh_config(home: Path, text: str) -> None:
    (home / ".ssh").mkdir(exist_ok=True)
    (home / ".ssh" / "config").write_text(text)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # free again once closed: nothing listens


@pytest.mark.parametrize(
    ("text", "code", "message"),
    [
        ("Include ~/.ssh/config\n", 2, "SSH config Include loop: "),
        ("Host storage\n  ProxyJump bad@@host\n", 2, "ProxyJump 'bad@@host' for storage"),
        ("Host storage\n  Port many\n", 2, "Host storage: port 'many'"),
        ("Host storage\n  Port\n", 2, "line 2: 'Port' is not 'Keyword value'"),
    ],
)
def test_bad_ssh_config_exits_cleanly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, code: int, message: str
) -> None:
    ssh_config(tmp_path, text)
    status, envelope = zboot(tmp_path, monkeypatch, "list")
    assert status == code and envelope["exit_code"] == code
    assert message in envelope["errors"][0]["message"]


def test_an_unreachable_jump_host_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    port = closed_port()
    ssh_config(
        tmp_path,
        f"Host storage\n  HostName 10.255.255.1\n  ProxyJump root@127.0.0.1:{port}\n",
    )
    status, envelope = zboot(tmp_path, monkeypatch, "list")
    assert status == 5
    assert envelope["errors"][0]["message"].startswith(
        f"cannot connect to jump host root@127.0.0.1:{port} over SSH"
    )


class NoServer:
    """Stands in for SshRunner: records how the CLI made it, and answers its
    first command with an unreachable server."""

    made: ClassVar[list[dict[str, Any]]] = []

    def __init__(self, host: str, **options: Any) -> None:
        self.made.append(options)
        self.commands: list[tuple[str, ...]] = []

    def cut(self) -> None:
        pass

    def close(self) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        def unreachable(*args: Any, **kwargs: Any) -> Any:
            raise ServerError("storage: unreachable (test)")

        return unreachable


@pytest.mark.parametrize(
    ("args", "agent", "prefetch"),
    [
        (["snapshot", "h1"], True, ()),  # changes, without the engine
        (["image", "snapshot", "gold"], True, ()),
        (["mode", "h1", "install"], True, ()),  # the engine only for maintenance
        (["mode", "h1", "maintenance"], True, ("rtslib_fb",)),
        (["rollback", "h1"], True, ("rtslib_fb",)),  # rtslib while the state is read
        (["list"], False, ()),  # ZFS, and sessions read by a shell: no agent
        (["show", "h1"], False, ()),  # ZFS alone: no agent at all
    ],
)
def test_the_session_agent_imports_rtslib_only_for_commands_that_call_the_engine(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    agent: bool,
    prefetch: tuple[str, ...],
) -> None:
    config = tmp_path / "zboot.toml"
    config.write_text(
        '[server]\nhost = "storage"\n[zfs]\npool = "tank"\n[target]\nengine = "lio"\n'
    )
    monkeypatch.setattr(ssh_module, "SshRunner", NoServer)
    NoServer.made.clear()
    result = CliRunner().invoke(app, ["--config", str(config), "--json", *args])
    assert result.exit_code != 0 and "unreachable (test)" in result.stdout
    [options] = NoServer.made
    assert (options["agent"], tuple(options["prefetch"])) == (agent, prefetch)
