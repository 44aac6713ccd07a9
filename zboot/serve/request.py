"""A boot request, checked before anything is looked up: GET of
`<prefix><mac-hexhyp>.ipxe`, optionally with the facts an unknown machine
reports (`?uuid=...&product=...`). Anything else is an HttpError with a 4xx
status, so a hostile request never reaches the workflows."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote

from ..boot.ipxe import FACTS
from ..errors import InvalidInput
from ..names import MacAddress, mac

MAX_URI = 2048  # bytes of path and query
MAX_FACT = 64  # characters of one fact (SMBIOS strings are short)
_SCRIPT_RE = re.compile(r"(?P<mac>[0-9A-Fa-f]{2}(?:-[0-9A-Fa-f]{2}){5})\.ipxe")
METHODS = ("GET",)  # what iPXE sends; HEAD too would reset an ephemeral host


class HttpError(Exception):
    """A request answered with status and reason, and nothing else done."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class BootRequest:
    mac: MacAddress
    address: str  # the client's IP address, as the connection shows it
    facts: dict[str, str] = field(default_factory=dict)


def prefix_of(path: str) -> str:
    """The boot URL's path as a prefix ending in '/' ("/boot" -> "/boot/")."""
    return "/" + path.strip("/") + "/" if path.strip("/") else "/"


def parse(method: str, path: str, query: str, address: str, prefix: str = "/") -> BootRequest:
    """The request, checked; HttpError for anything that is not a boot request."""
    if method not in METHODS:
        raise HttpError(405, f"method {method[:16]!r} not allowed; GET only")
    if len(path) + len(query) > MAX_URI:
        raise HttpError(414, "URI too long")
    if ".." in path or "//" in path or "\\" in path:
        raise HttpError(400, "bad path")
    if not path.startswith(prefix):
        raise HttpError(404, "not found")
    match = _SCRIPT_RE.fullmatch(path[len(prefix) :])
    if match is None:
        raise HttpError(404, "not found")
    try:
        machine = mac(match["mac"])
    except InvalidInput as err:
        raise HttpError(400, err.message) from None
    return BootRequest(machine, address, facts(query))


def facts(query: str) -> dict[str, str]:
    """The facts of a query string: known keys, each once, each printable
    ASCII up to MAX_FACT characters once decoded (an empty one is left out).
    '+' stays '+': iPXE's uristring leaves it as it is (a product name such
    as "i440FX + PIIX" must not lose it)."""
    if not query:
        return {}
    found: dict[str, str] = {}
    pairs = query.split("&")
    if len(pairs) > len(FACTS):
        raise HttpError(400, "bad query")
    for pair in pairs:
        key, equals, raw = pair.partition("=")
        if not equals or key not in FACTS or key in found:
            raise HttpError(400, "bad query")
        try:
            value = unquote(raw, errors="strict")
        except UnicodeDecodeError:
            raise HttpError(400, f"bad value for {key}") from None
        if len(value) > MAX_FACT or not all(" " <= c <= "~" for c in value):
            raise HttpError(400, f"bad value for {key}")
        found[key] = value
    return {k: v for k, v in found.items() if v}
