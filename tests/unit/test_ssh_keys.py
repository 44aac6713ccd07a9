"""Which keys zboot offers, in which order (a real ssh-agent), and encrypted
keys: a passphrase asked for only when needed, a clear error with no terminal."""

from __future__ import annotations

import io
import os
import subprocess
from pathlib import Path

import paramiko
import pytest
from ssh_agent import running_agent

from zboot.errors import ServerError
from zboot.remote.ssh_config import Endpoint
from zboot.remote.ssh_keys import Login, _agent_keys, public_blob


def make_key(path: Path, passphrase: str = "", fmt: list[str] | None = None) -> Path:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ecdsa", "-N", passphrase, "-f", str(path), *(fmt or [])],
        check=True,
    )
    return path


def blob(path: Path) -> bytes:
    import base64

    return base64.b64decode(path.with_name(path.name + ".pub").read_text().split()[1])


def endpoint(*keys: Path, only: bool = False) -> Endpoint:
    return Endpoint(
        name="s",
        hostname="s",
        port=22,
        user="u",
        key_files=tuple(str(k) for k in keys),
        identities_only=only,
        known_hosts=("/dev/null",),
        system_known_hosts=(),
    )


def test_public_blob_without_the_passphrase(tmp_path: Path) -> None:
    new = make_key(tmp_path / "new", "secret-words")
    expected = blob(new)
    assert public_blob(str(new)) == expected
    (tmp_path / "new.pub").unlink()  # the OpenSSH format carries it in the clear
    assert public_blob(str(new)) == expected
    pem = make_key(tmp_path / "pem", "secret-words", ["-m", "PEM"])
    (tmp_path / "pem.pub").unlink()
    assert public_blob(str(pem)) is None
    assert public_blob(str(tmp_path / "missing")) is None


def test_agent_keys_first_then_files_and_identities_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    k1, k2, k3 = (make_key(tmp_path / n) for n in ("k1", "k2", "k3"))
    with running_agent(tmp_path / "agent.sock", k3, k2) as sock:
        monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
        agent, keys = _agent_keys()
        assert agent is not None
        agent.close()
    assert [k.asbytes() for k in keys] == [blob(k3), blob(k2)]

    def order(login: Login) -> list[tuple[str, bytes]]:
        out = []
        for label, offer in login.offers(keys):
            key = offer if not isinstance(offer, str) else login.load(offer)
            assert key is not None
            out.append((label, key.asbytes()))
        return out

    missing = tmp_path / "missing"
    assert order(Login(endpoint(k1, k2, missing))) == [
        ("agent key ecdsa-sha2-nistp256", blob(k3)),
        (f"{k2} (from the agent)", blob(k2)),
        (str(k1), blob(k1)),
    ]
    # IdentitiesOnly: the agent's copy of a named key, never its other keys
    assert order(Login(endpoint(k1, k2, only=True))) == [
        (f"{k2} (from the agent)", blob(k2)),
        (str(k1), blob(k1)),
    ]


def test_no_agent_is_no_keys(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    assert _agent_keys() == (None, [])
    monkeypatch.setenv("SSH_AUTH_SOCK", str(tmp_path / "nothing-listens"))
    assert _agent_keys()[1] == []


def test_passphrase_asked_until_right(tmp_path: Path) -> None:
    key = make_key(tmp_path / "locked", "right horse")
    asked: list[str] = []
    answers = iter(["wrong", "right horse"])

    def ask(prompt: str) -> str:
        asked.append(prompt)
        return next(answers)

    loaded = Login(endpoint(key), ask).load(str(key))
    assert isinstance(loaded, paramiko.PKey) and loaded.asbytes() == blob(key)
    assert asked == [f"Enter passphrase for key '{key}': "] * 2


def test_passphrase_given_up(tmp_path: Path) -> None:
    key = make_key(tmp_path / "locked", "right horse")
    answers = iter(["nope-1", "nope-2", "nope-3", "right horse"])
    with pytest.raises(ServerError, match="could not be unlocked") as caught:
        Login(endpoint(key), lambda _: next(answers)).load(str(key))
    assert next(answers) == "right horse"  # three tries, as ssh gives
    assert "nope" not in caught.value.message + str(caught.value.hint)
    with pytest.raises(ServerError, match="could not be unlocked"):
        Login(endpoint(key), lambda _: "").load(str(key))  # Enter on its own: give up


def test_no_terminal_names_the_key_and_ssh_add(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = make_key(tmp_path / "locked", "right horse")
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    with pytest.raises(ServerError) as caught:
        Login(endpoint(key)).load(str(key))
    assert str(key) in caught.value.message and "no terminal" in caught.value.message
    assert caught.value.hint == f"add it to your agent first: ssh-add {key}"


def test_an_unreadable_key_file_is_a_note_not_a_crash(tmp_path: Path) -> None:
    junk = tmp_path / "junk"
    junk.write_text("not a key\n")
    login = Login(endpoint(junk))
    assert login.load(str(junk)) is None
    assert login.notes and login.notes[0].startswith(f"{junk}: cannot be read")
    assert os.path.exists(junk)
