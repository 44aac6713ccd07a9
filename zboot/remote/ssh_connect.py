"""Open the SSH connections that lead to a server: each jump host in turn
(ProxyJump; the next one reached through a direct-tcpip channel of the one
before), or a ProxyCommand, or a plain TCP connection. Each server's host key
is checked against its known_hosts before any key is offered to it."""

from __future__ import annotations

import contextlib
import socket
from typing import Any

import paramiko

from ..errors import ServerError
from .ssh_config import Endpoint
from .ssh_hostkeys import KnownHosts, check_host_key, prefer_known_types
from .ssh_keys import Ask, Login, authenticate


def _role(endpoint: Endpoint, target: Endpoint) -> str:
    return "" if endpoint is target else "jump host "


def _socket(
    endpoint: Endpoint, before: paramiko.Transport | None, role: str, timeout: float
) -> Any:
    """The byte stream to endpoint's sshd."""
    if before is not None:
        via = endpoint.via.where if endpoint.via else "the jump host"
        try:
            return before.open_channel(
                "direct-tcpip",
                (endpoint.hostname, endpoint.port),
                ("127.0.0.1", 0),
                timeout=timeout,
            )
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise ServerError(
                f"the jump host {via} cannot reach {endpoint.hostname}:{endpoint.port}: {exc}",
                hint="check HostName and Port of the server's entry as the jump host sees them",
            ) from None
    if endpoint.proxy_command:
        try:
            return paramiko.ProxyCommand(endpoint.proxy_command)
        except (paramiko.SSHException, OSError) as exc:
            raise ServerError(
                f"ProxyCommand {endpoint.proxy_command!r} for {role}{endpoint.name} failed: {exc}"
            ) from None
    try:
        return socket.create_connection((endpoint.hostname, endpoint.port), timeout)
    except OSError as exc:
        raise ServerError(f"cannot connect to {role}{endpoint.where} over SSH: {exc}") from None


def _open_one(
    endpoint: Endpoint,
    before: paramiko.Transport | None,
    role: str,
    trust: bool,
    timeout: float,
    ask: Ask | None,
) -> paramiko.Transport:
    known = KnownHosts.of(endpoint)
    transport = paramiko.Transport(_socket(endpoint, before, role, timeout))
    try:
        prefer_known_types(transport, known.keys_for(endpoint.known_name))
        transport.banner_timeout = timeout
        transport.auth_timeout = timeout
        try:
            transport.start_client(timeout=timeout)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise ServerError(
                f"cannot connect to {role}{endpoint.where} over SSH: {exc or type(exc).__name__}"
            ) from None
        check_host_key(transport, endpoint, known, trust, role)
        authenticate(transport, Login(endpoint, ask), role)
    except (paramiko.SSHException, OSError, EOFError) as exc:
        transport.close()
        raise ServerError(f"SSH to {role}{endpoint.where} failed: {exc}") from None
    except BaseException:
        transport.close()
        raise
    return transport


def open_route(
    target: Endpoint, trust: bool, timeout: float, ask: Ask | None = None
) -> list[paramiko.Transport]:
    """The live transports from the first jump host to target (target's last).
    timeout: for each connection whose entry sets no ConnectTimeout."""
    opened: list[paramiko.Transport] = []
    try:
        for endpoint in [*target.hops, target]:
            before = opened[-1] if opened else None
            wait = endpoint.connect_timeout or timeout
            role = _role(endpoint, target)
            opened.append(_open_one(endpoint, before, role, trust, wait, ask))
    except BaseException:
        close_route(opened)
        raise
    return opened


def close_route(transports: list[paramiko.Transport]) -> None:
    """Close the target's connection first, then each jump host's."""
    for transport in reversed(transports):
        with contextlib.suppress(Exception):
            transport.close()
