"""Logging in with keys, in OpenSSH's order: the agent's keys (those that
match an IdentityFile first; the others only without IdentitiesOnly), then the
identity files the agent does not hold. An encrypted file is opened only when
its turn comes: with a passphrase typed at the terminal (getpass, never shown
or logged), or, with no terminal, a clear error that names the key and
suggests ssh-add."""

from __future__ import annotations

import base64
import contextlib
import getpass
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import paramiko

from ..errors import ServerError
from .ssh_config import Endpoint

ATTEMPTS = 3  # passphrase tries per key, as ssh allows
OPENSSH_MAGIC = b"openssh-key-v1\0"

Ask = Callable[[str], str]  # prompt -> passphrase


def _terminal_ask(prompt: str) -> str:
    return getpass.getpass(prompt)


def _from_path(path: str, password: bytes | None) -> paramiko.PKey:
    """paramiko's loader (3.2+; its second argument was renamed in 5.0, and
    cryptography under it wants bytes whatever its stubs say)."""
    loader: Any = paramiko.PKey.from_path
    return cast(paramiko.PKey, loader(path, password))


def _openssh_body(path: str) -> paramiko.Message | None:
    """An OpenSSH-format private key file's body, read past its magic."""
    with contextlib.suppress(OSError, ValueError):
        with open(path, encoding="ascii") as handle:
            lines = handle.read().strip().splitlines()
        body = base64.b64decode("".join(line for line in lines if not line.startswith("-----")))
        if body.startswith(OPENSSH_MAGIC):
            return paramiko.Message(body[len(OPENSSH_MAGIC) :])
    return None


def encrypted(path: str) -> bool:
    """Whether the private key in path needs a passphrase (OpenSSH or PEM format)."""
    body = _openssh_body(path)
    if body is not None:
        with contextlib.suppress(paramiko.SSHException, IndexError, ValueError):
            return body.get_text() != "none"
        return False
    with contextlib.suppress(OSError, ValueError):
        with open(path, encoding="ascii", errors="replace") as handle:
            head = handle.read(4096)
        return "ENCRYPTED" in head
    return False


def public_blob(path: str) -> bytes | None:
    """The public key of a private key file, without its passphrase: from
    path.pub, or from the clear header of an OpenSSH-format file."""
    with (
        contextlib.suppress(OSError, ValueError, IndexError),
        open(path + ".pub", encoding="ascii") as handle,
    ):
        return base64.b64decode(handle.read().split()[1], validate=True)
    body = _openssh_body(path)
    with contextlib.suppress(paramiko.SSHException, IndexError, ValueError):
        if body is not None:
            for _ in range(3):  # cipher, kdf, kdf options
                body.get_string()
            if body.get_int() >= 1:
                return body.get_binary()
    return None


@dataclass
class Login:
    """One endpoint's login: the keys to offer, in order, and what went wrong."""

    endpoint: Endpoint
    ask: Ask | None = None  # None: ask on the terminal if stdin is one
    notes: list[str] = field(default_factory=list)

    def load(self, path: str) -> paramiko.PKey | None:
        """The private key in path; None (with a note) if it cannot be used."""
        if encrypted(path):
            return self._unlock(path)
        try:
            return _from_path(path, None)
        except (OSError, paramiko.SSHException, ValueError, TypeError) as exc:
            self.notes.append(f"{path}: cannot be read ({exc})")
            return None

    def _unlock(self, path: str) -> paramiko.PKey:
        ask = self.ask
        if ask is None:
            if not sys.stdin.isatty():
                raise ServerError(
                    f"the SSH key {path} is encrypted, no SSH agent holds it "
                    "and there is no terminal to ask for its passphrase",
                    hint=f"add it to your agent first: ssh-add {path}",
                )
            ask = _terminal_ask
        for _ in range(ATTEMPTS):
            try:
                secret = ask(f"Enter passphrase for key '{path}': ")
            except EOFError:
                break
            if not secret:
                break
            try:
                return _from_path(path, secret.encode())
            except (paramiko.SSHException, ValueError, TypeError):
                continue  # a wrong passphrase; the message says no more
        raise ServerError(
            f"the SSH key {path} could not be unlocked",
            hint=f"check its passphrase (ssh-keygen -y -f {path}), or add it with ssh-add",
        )

    def offers(self, agent_keys: list[paramiko.AgentKey]) -> list[tuple[str, paramiko.PKey | str]]:
        """What to offer, in order: (label, key) for an agent key, (label, path)
        for a file to open when its turn comes. Missing files are left out."""
        files = [p for p in self.endpoint.key_files if os.path.isfile(p)]
        blobs = {p: public_blob(p) for p in files}
        offers: list[tuple[str, paramiko.PKey | str]] = []
        for key in agent_keys:
            match = next((p for p in files if blobs[p] == key.asbytes()), None)
            if match is not None:
                files.remove(match)
                offers.append((f"{match} (from the agent)", key))
            elif not self.endpoint.identities_only:
                offers.append((f"agent key {key.get_name()}", key))
        offers.extend((p, p) for p in files)
        return offers


def _agent_keys() -> tuple[paramiko.Agent | None, list[paramiko.AgentKey]]:
    if not os.environ.get("SSH_AUTH_SOCK"):
        return None, []
    try:
        agent = paramiko.Agent()
        return agent, list(agent.get_keys())
    except (paramiko.SSHException, OSError):
        return None, []


def authenticate(transport: paramiko.Transport, login: Login, role: str = "") -> None:
    """Log in on transport with the first key the server accepts."""
    endpoint = login.endpoint
    user = endpoint.user or getpass.getuser()
    where = f"{role}{user}@{endpoint.hostname}:{endpoint.port}"
    agent, agent_keys = _agent_keys()
    tried: list[str] = []
    try:
        for label, offer in login.offers(agent_keys):
            key = login.load(offer) if isinstance(offer, str) else offer
            if key is None:
                continue
            tried.append(label)
            try:
                rest = transport.auth_publickey(user, key)
            except paramiko.BadAuthenticationType as exc:
                raise ServerError(
                    f"SSH authentication to {where} failed: the server does not take keys "
                    f"(it allows {', '.join(exc.allowed_types) or 'nothing'})"
                ) from None
            except paramiko.AuthenticationException:
                continue
            if transport.is_authenticated():
                return
            raise ServerError(
                f"SSH authentication to {where}: the server wants more than a key "
                f"({', '.join(rest)}), which zboot cannot give"
            )
    finally:
        if agent is not None:
            agent.close()
    if not transport.is_active():
        login.notes.append("the server closed the connection (too many keys offered?)")
    offered = ", ".join(tried) if tried else "no key"
    raise ServerError(
        f"SSH authentication to {where} failed: offered {offered}"
        + "".join(f"; {note}" for note in login.notes),
        hint="check the user, the key (zboot's [server] key, or IdentityFile in "
        "~/.ssh/config) and the agent (ssh-add -l); IdentitiesOnly yes limits "
        "what is offered to the named keys",
    )
