"""~/.ssh/config as zboot reads it: Include (globs, relative names, loops),
the precedence of zboot's own settings, ProxyJump and ProxyCommand routes."""

from __future__ import annotations

from pathlib import Path

import pytest

from zboot.errors import InvalidInput
from zboot.remote.ssh_config import (
    ENV,
    SshConfig,
    config_path,
    parse_jumps,
    resolve,
)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A HOME of its own with an empty ~/.ssh; ZBOOT_SSH_CONFIG unset."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv(ENV, raising=False)
    (tmp_path / ".ssh").mkdir()
    return tmp_path


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_include_globs_and_relative_names_resolve_under_dot_ssh(home: Path) -> None:
    ssh = home / ".ssh"
    write(ssh / "config", "Include conf.d/*.conf\nHost *\n  User fallback\n")
    write(ssh / "conf.d" / "20-storage.conf", "Host storage\n  HostName 10.0.0.2\n  Port 2200\n")
    write(ssh / "conf.d" / "10-bastion.conf", "Host bastion\n  HostName 10.0.0.1\n  User jump\n")
    write(ssh / "conf.d" / "ignored.txt", "Host storage\n  HostName 6.6.6.6\n")
    (ssh / "conf.d" / "sub.conf").mkdir()  # a directory the glob matches: skipped
    config = SshConfig.load()
    assert config.path == str(ssh / "config")
    storage = config.lookup("storage")
    assert (storage.text("hostname"), storage.number("port")) == ("10.0.0.2", 2200)
    assert storage.text("user") == "fallback"
    assert config.lookup("bastion").text("user") == "jump"
    # sorted glob order: 10-bastion before 20-storage in the expanded text
    assert config.text.index("10.0.0.1") < config.text.index("10.0.0.2")


def test_include_of_a_missing_file_is_ignored_as_openssh_does(home: Path) -> None:
    write(home / ".ssh" / "config", "Include nothing-here absent/*\nHost a\n  Port 2\n")
    assert SshConfig.load().lookup("a").number("port") == 2


def test_include_with_absolute_and_tilde_names(home: Path, tmp_path: Path) -> None:
    elsewhere = write(tmp_path / "etc" / "extra", "Host b\n  Port 3\n")
    write(home / "mine", "Host c\n  Port 4\n")
    write(home / ".ssh" / "config", f"Include {elsewhere} ~/mine\n")
    config = SshConfig.load()
    assert config.lookup("b").number("port") == 3 and config.lookup("c").number("port") == 4


def test_include_inside_a_host_block_applies_only_there(home: Path) -> None:
    """OpenSSH: an Include inside a block that does not match includes nothing
    for that host, and the enclosing block goes on after the Include."""
    ssh = home / ".ssh"
    write(ssh / "only-lab", "User labuser\nHost *\n  Port 2222\n")
    write(ssh / "config", "Host lab\n  Include only-lab\n  HostName 10.9.9.9\nHost *\n  Port 22\n")
    config = SshConfig.load()
    lab = config.lookup("lab")
    assert (lab.text("user"), lab.number("port"), lab.text("hostname")) == (
        "labuser",
        2222,
        "10.9.9.9",
    )
    other = config.lookup("other")
    assert (other.text("user"), other.number("port"), other.text("hostname")) == (
        None,
        22,
        "other",
    )


def test_include_loop_and_depth_are_clear_errors(home: Path) -> None:
    ssh = home / ".ssh"
    write(ssh / "config", "Include a\n")
    write(ssh / "a", "Include b\n")
    write(ssh / "b", "Host x\nInclude a\n")
    with pytest.raises(InvalidInput, match=r"Include loop: .*/a -> .*/b -> .*/a"):
        SshConfig.load()
    for n in range(20):  # a chain, no loop: too deep
        write(ssh / f"deep{n}", f"Include deep{n + 1}\n")
    write(ssh / "config", "Include deep0\n")
    with pytest.raises(InvalidInput, match="nested over 16 deep"):
        SshConfig.load()


def test_unreadable_config_is_a_clear_error(home: Path) -> None:
    (home / ".ssh" / "config").mkdir()
    with pytest.raises(InvalidInput, match=r"cannot read SSH config .*config: Is a directory"):
        SshConfig.load()
    (home / ".ssh" / "config").rmdir()
    write(home / ".ssh" / "config", "Include bad\n")
    (home / ".ssh" / "bad").write_bytes(b"Host \xff\xfe\n")
    with pytest.raises(InvalidInput, match=r"cannot read SSH config .*/bad: .*utf-8"):
        SshConfig.load()


def test_garbled_lines_are_clear_errors(home: Path) -> None:
    path = write(home / ".ssh" / "config", "Host a\n  Port\n")
    with pytest.raises(InvalidInput, match=r"config, line 2: 'Port' is not 'Keyword value'"):
        SshConfig.load()
    path.write_text("Host a\n  Port twenty\n")
    with pytest.raises(InvalidInput, match=r"Host a: port 'twenty'"):
        resolve(SshConfig.load(), "a")
    path.write_text('Host "a\n')
    with pytest.raises(InvalidInput, match=r"line 1: Host"):
        SshConfig.load()


def test_zboot_ssh_config_names_the_file(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(home / ".ssh" / "config", "Host s\n  Port 1\n")
    other = write(home / "elsewhere" / "ssh.conf", "Include fragment\nHost s\n  Port 2\n")
    write(home / ".ssh" / "fragment", "Host s\n  User frag\n")  # relative: ~/.ssh, as OpenSSH
    monkeypatch.setenv(ENV, str(other))
    assert config_path() == str(other)
    found = SshConfig.load().lookup("s")
    assert (found.number("port"), found.text("user")) == (2, "frag")
    monkeypatch.setenv(ENV, str(home / "missing"))
    with pytest.raises(InvalidInput, match="ZBOOT_SSH_CONFIG names"):
        config_path()


def test_no_config_at_all_is_fine(home: Path) -> None:
    target = resolve(SshConfig.load(), "storage.example.org")
    assert (target.hostname, target.port, target.user, target.via) == (
        "storage.example.org",
        22,
        None,
        None,
    )
    assert target.key_files[-1] == str(home / ".ssh" / "id_ed25519_sk")
    assert target.known_hosts == (str(home / ".ssh" / "known_hosts"),)


def test_zboot_settings_win_over_the_ssh_config(home: Path) -> None:
    write(
        home / ".ssh" / "config",
        "Host storage\n  HostName 10.0.0.2\n  Port 2200\n  User admin\n"
        "  IdentityFile ~/.ssh/storage_key\n  UserKnownHostsFile ~/.ssh/kh_storage\n"
        "  ProxyCommand nc -x proxy %h %p %r\n",
    )
    config = SshConfig.load()
    from_ssh = resolve(config, "storage")
    assert (from_ssh.hostname, from_ssh.port, from_ssh.user) == ("10.0.0.2", 2200, "admin")
    assert from_ssh.key_files == (str(home / ".ssh" / "storage_key"),)
    assert from_ssh.known_hosts == (str(home / ".ssh" / "kh_storage"),)
    assert from_ssh.proxy_command == "nc -x proxy 10.0.0.2 2200 admin"
    ours = resolve(
        config, "storage", port=22, user="zb", key_file="/keys/zb", known_hosts="/keys/kh"
    )
    assert (ours.hostname, ours.port, ours.user) == ("10.0.0.2", 22, "zb")
    assert ours.key_files == ("/keys/zb",)
    assert ours.known_hosts == ("/keys/kh",) and ours.system_known_hosts == ()
    assert ours.proxy_command == "nc -x proxy 10.0.0.2 22 zb"  # %p, %r: zboot's values
    assert ours.known_name == "10.0.0.2"


def test_identities_only_and_connect_timeout(home: Path) -> None:
    write(
        home / ".ssh" / "config",
        "Host a\n  IdentitiesOnly yes\n  ConnectTimeout 7\n  IdentityFile ~/.ssh/k1\n"
        "Host *\n  IdentityFile ~/.ssh/k2\n",
    )
    config = SshConfig.load()
    a = resolve(config, "a")
    assert a.identities_only and a.connect_timeout == 7.0
    assert a.key_files == (str(home / ".ssh" / "k1"), str(home / ".ssh" / "k2"))
    b = resolve(config, "b")
    assert not b.identities_only and b.connect_timeout is None
    assert b.key_files == (str(home / ".ssh" / "k2"),)


@pytest.mark.parametrize(
    ("spec", "hops"),
    [
        ("bastion", [("bastion", None, None)]),
        ("admin@bastion:2222", [("bastion", "admin", 2222)]),
        ("ssh://admin@bastion:2222", [("bastion", "admin", 2222)]),
        ("a, b@[fd00::1]:22,c", [("a", None, None), ("fd00::1", "b", 22), ("c", None, None)]),
        ("none", []),
    ],
)
def test_proxy_jump_specs(spec: str, hops: list[tuple[str, str | None, int | None]]) -> None:
    assert [(h.host, h.user, h.port) for h in parse_jumps(spec, "storage")] == hops


@pytest.mark.parametrize("spec", ["", "a,,b", "a:0", "a:70000", "a b", "u@", "@a", "a:x", "*"])
def test_bad_proxy_jump_specs(spec: str) -> None:
    with pytest.raises(InvalidInput, match=r"ProxyJump .* for storage: .* is not \[user@\]host"):
        parse_jumps(spec, "storage")


def test_proxy_jump_hops_each_use_their_own_entry(home: Path) -> None:
    write(
        home / ".ssh" / "config",
        "Host storage\n  HostName 192.168.7.2\n  ProxyJump outer,inner\n"
        "  ProxyCommand never-used %h\n"
        "Host inner\n  HostName 10.1.1.1\n  User in\n  ProxyJump ignored-for-inner\n"
        "  UserKnownHostsFile ~/.ssh/kh_inner\n"
        "Host outer\n  HostName bastion.example.org\n  Port 2022\n  IdentitiesOnly yes\n"
        "  IdentityFile ~/.ssh/outer_key\n  ConnectTimeout 5\n",
    )
    target = resolve(SshConfig.load(), "storage", known_hosts="/zb/known_hosts")
    assert target.proxy_command is None  # ProxyJump wins
    outer, inner = target.hops
    assert (inner.name, inner.hostname, inner.port, inner.user) == ("inner", "10.1.1.1", 22, "in")
    assert inner.known_hosts == (str(home / ".ssh" / "kh_inner"),)
    assert (outer.hostname, outer.port, outer.identities_only) == (
        "bastion.example.org",
        2022,
        True,
    )
    assert outer.key_files == (str(home / ".ssh" / "outer_key"),)
    assert outer.connect_timeout == 5.0 and outer.known_name == "[bastion.example.org]:2022"
    # a jump host with no known_hosts of its own uses zboot's, and the system file
    assert outer.known_hosts == ("/zb/known_hosts",)
    assert outer.system_known_hosts == ("/etc/ssh/ssh_known_hosts",)
    assert target.known_hosts == ("/zb/known_hosts",)
    assert inner.via is outer and outer.via is None  # `-J outer,inner`: inner's own jump replaced


def test_a_single_jump_host_keeps_its_own_jump_and_spec_values_win(home: Path) -> None:
    write(
        home / ".ssh" / "config",
        "Host storage\n  ProxyJump ops@middle:2200\n"
        "Host middle\n  User nobody\n  Port 22\n  ProxyJump edge\n"
        "Host edge\n  ProxyCommand connect-edge %h %p\n",
    )
    target = resolve(SshConfig.load(), "storage")
    edge, middle = target.hops
    assert (middle.user, middle.port) == ("ops", 2200)
    assert edge.proxy_command == "connect-edge edge 22" and edge.via is None


def test_proxy_jump_loops_and_bad_specs_are_clear_errors(home: Path) -> None:
    path = write(home / ".ssh" / "config", "Host *\n  ProxyJump bastion\n")
    with pytest.raises(InvalidInput, match="ProxyJump loop: storage via bastion via bastion"):
        resolve(SshConfig.load(), "storage")
    path.write_text("Host bastion\n  ProxyJump none\nHost *\n  ProxyJump bastion\n")
    assert [h.name for h in resolve(SshConfig.load(), "storage").hops] == ["bastion"]
    path.write_text("Host storage\n  ProxyJump bad host\n")
    with pytest.raises(InvalidInput, match="'bad host' is not"):
        resolve(SshConfig.load(), "storage")
