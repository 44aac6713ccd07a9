"""Validation and normalisation of every name, address and size a user gives.

Everything here is pure: no I/O, no server. Each function either returns the
normalised value or raises InvalidInput naming the bad value and what is
allowed. Names end up in zfs and target-engine command lines, configfs paths
and boot file names on the server, so the rules are allow-lists of plain ASCII;
shell metacharacters, whitespace, path separators, `..`, control characters and
non-ASCII never get through (except `/` in dataset paths, and `:` and `.` in
iSCSI names, where they are part of the syntax).
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import NewType

from zboot.errors import InvalidInput

__all__ = [
    "MAX_SIZE_BYTES",
    "HostName",
    "ImageName",
    "MacAddress",
    "SnapshotName",
    "address",
    "age_seconds",
    "compression",
    "dataset_name",
    "host_name",
    "image_name",
    "iqn",
    "mac",
    "mac_hexhyp",
    "message",
    "name_pattern",
    "pattern_name",
    "size_bytes",
    "snapshot_name",
    "url",
]

# Checked values: a function below is the only way to get one, so a function
# taking a HostName knows its argument was validated (once, at the edge).
HostName = NewType("HostName", str)
ImageName = NewType("ImageName", str)
SnapshotName = NewType("SnapshotName", str)
MacAddress = NewType("MacAddress", str)

# Character classes are spelled out (never \d or \w): on str patterns those
# match non-ASCII digits and letters too.
_HOST_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_HOST_CHARS_RE = re.compile(r"[A-Za-z0-9-]*")
_COMPONENT_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_COMPONENT_CHARS_RE = re.compile(r"[A-Za-z0-9._-]*")
_MAC_SEPARATED_RE = re.compile(
    r"[0-9A-Fa-f]{2}(?P<sep>[:-])[0-9A-Fa-f]{2}(?:(?P=sep)[0-9A-Fa-f]{2}){4}"
)
_MAC_CISCO_RE = re.compile(r"[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}")
_MAC_BARE_RE = re.compile(r"[0-9A-Fa-f]{12}")
_SIZE_RE = re.compile(
    r"(?P<number>[0-9]+(?:\.[0-9]+)?)(?:(?P<unit>[KMGTP])(?:I|IB|B)?)?|(?P<bytes>[0-9]+)B",
    re.IGNORECASE | re.ASCII,  # without ASCII, KELVIN SIGN would match K
)
_IQN_RE = re.compile(
    r"iqn\.(?P<year>[0-9]{4})-(?P<month>[0-9]{2})"
    r"\.(?P<authority>[a-z0-9-]+(?:\.[a-z0-9-]+)*)"
    r"(?::(?P<identifier>[a-z0-9.:-]+))?"
)
_IQN_CHARS_RE = re.compile(r"[a-z0-9.:-]*")
_DATASET_COMPONENT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]*")
_COMPRESSION_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
_ADDRESS_RE = re.compile(r"[A-Za-z0-9:][A-Za-z0-9.:-]{0,252}")

_UNITS = {"K": 1, "M": 2, "G": 3, "T": 4, "P": 5}
MAX_SIZE_BYTES = 2**63 - 1
_MAX_SIZE_TEXT = 64  # longer size strings are rejected before any parsing
_MAX_IQN_BYTES = 223
_MAX_DATASET = 255
_MAX_MESSAGE = 1000
_SHOW_LIMIT = 80


def _show(value: str) -> str:
    """repr() of a value for a message, cut short so overlong input stays readable."""
    if len(value) > _SHOW_LIMIT:
        return f"{value[:_SHOW_LIMIT]!r}... ({len(value)} characters)"
    return repr(value)


def _require_str(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be text, not {type(value).__name__} {value!r}")
    return value


def host_name(value: str) -> HostName:
    """An RFC 1123 host label: 1-63 ASCII letters, digits and hyphens, not starting
    or ending with a hyphen. Returned lowercased."""
    value = _require_str(value, "host name")
    allowed = "1-63 ASCII letters, digits and hyphens, not starting or ending with a hyphen"
    if not value:
        raise InvalidInput("host name is empty", hint=f"use {allowed}")
    if len(value) > 63:
        raise InvalidInput(
            f"host name {_show(value)} is longer than 63 characters", hint=f"use {allowed}"
        )
    if not _HOST_CHARS_RE.fullmatch(value):
        raise InvalidInput(
            f"host name {_show(value)} contains characters other than "
            "ASCII letters, digits and hyphens",
            hint="a host name is one DNS label, e.g. web-01 (no dots)",
        )
    if not _HOST_RE.fullmatch(value):
        raise InvalidInput(
            f"host name {_show(value)} starts or ends with a hyphen", hint=f"use {allowed}"
        )
    return HostName(value.lower())


def _component(value: str, what: str, example: str) -> str:
    value = _require_str(value, what)
    allowed = (
        "1-64 characters: lowercase letters, digits, '.', '_' and '-', "
        "starting with a lowercase letter or digit"
    )
    if not value:
        raise InvalidInput(f"{what} is empty", hint=f"use {allowed}, e.g. {example}")
    if len(value) > 64:
        raise InvalidInput(
            f"{what} {_show(value)} is longer than 64 characters", hint=f"use {allowed}"
        )
    if _COMPONENT_CHARS_RE.fullmatch(value) and value.lower() != value:
        raise InvalidInput(
            f"{what} {_show(value)} contains uppercase letters; they are not allowed "
            "(names are not lowercased for you)",
            hint=f"use {value.lower()!r}",
        )
    if not _COMPONENT_CHARS_RE.fullmatch(value):
        raise InvalidInput(
            f"{what} {_show(value)} contains characters other than "
            "lowercase letters, digits, '.', '_' and '-'",
            hint=f"use {allowed}, e.g. {example}",
        )
    if not _COMPONENT_RE.fullmatch(value):
        raise InvalidInput(
            f"{what} {_show(value)} must start with a lowercase letter or digit",
            hint=f"use {allowed}, e.g. {example}",
        )
    if ".." in value:
        raise InvalidInput(
            f"{what} {_show(value)} contains '..'", hint=f"use {allowed}, without '..'"
        )
    return value


def image_name(value: str) -> ImageName:
    """A golden image name (one ZFS dataset component): 1-64 characters of
    lowercase letters, digits, '.', '_' and '-', starting with a letter or
    digit, without '..'. Returned as given; uppercase is rejected, not lowered."""
    return ImageName(_component(value, "image name", "debian-12"))


def snapshot_name(value: str) -> SnapshotName:
    """An image version or host restore point (the part after '@'): the same rules
    as image_name."""
    return SnapshotName(_component(value, "snapshot name", "v1 or 2024-06-01"))


def mac(value: str) -> MacAddress:
    """A unicast Ethernet address in any common spelling (52:54:00:AB:cd:01,
    52-54-00-ab-cd-01, 5254.00ab.cd01, 525400abcd01), returned as lowercase
    colon-separated 52:54:00:ab:cd:01. Multicast, broadcast and all-zero
    addresses are rejected."""
    value = _require_str(value, "MAC address")
    spellings = "52:54:00:ab:cd:01, 52-54-00-ab-cd-01, 5254.00ab.cd01 or 525400abcd01"
    if (
        _MAC_SEPARATED_RE.fullmatch(value)
        or _MAC_CISCO_RE.fullmatch(value)
        or _MAC_BARE_RE.fullmatch(value)
    ):
        digits = re.sub(r"[:.-]", "", value).lower()
    else:
        raise InvalidInput(
            f"{_show(value)} is not a MAC address",
            hint=f"write six two-digit hex octets, e.g. {spellings}",
        )
    octets = [digits[i : i + 2] for i in range(0, 12, 2)]
    normal = ":".join(octets)
    if int(octets[0], 16) & 1:
        raise InvalidInput(
            f"MAC address {_show(value)} is a multicast or broadcast address "
            "(low bit of the first octet is set)",
            hint="give the machine's own (unicast) network card address",
        )
    if digits == "0" * 12:
        raise InvalidInput(
            f"MAC address {_show(value)} is all zeros",
            hint="give the machine's own network card address",
        )
    return MacAddress(normal)


def mac_hexhyp(mac_value: str) -> str:
    """A MAC address in iPXE's ${mac:hexhyp} form: 52-54-00-ab-cd-01."""
    return mac(mac_value).replace(":", "-")


def size_bytes(value: str) -> int:
    """A size as a whole number of bytes.

    Accepted: a plain byte count (``1073741824``, also ``512B``), or a number,
    integer or decimal (``10``, ``1.5``), directly followed by a unit K, M, G,
    T or P, optionally followed by ``i``, ``iB`` or ``B``; case-insensitive.
    Every unit is binary, as in ZFS: ``G``, ``GiB`` and ``GB`` all mean 2**30.
    No spaces, signs or exponents. Fractions of a byte are rounded down; the
    result must be at least 1 and at most 2**63-1.
    """
    value = _require_str(value, "size")
    hint = (
        "use a byte count or a number with a unit K, M, G, T or P, e.g. 10G, 512M, 1.5T "
        "(units are binary: 1G = 1024^3 bytes; GB and GiB mean the same)"
    )
    if len(value) > _MAX_SIZE_TEXT:
        raise InvalidInput(f"size {_show(value)} is too long", hint=hint)
    if not value.isascii():
        raise InvalidInput(f"size {_show(value)} contains non-ASCII characters", hint=hint)
    match = _SIZE_RE.fullmatch(value)
    if not match:
        raise InvalidInput(f"{_show(value)} is not a size", hint=hint)
    if match["bytes"] is not None:
        result = int(match["bytes"])
    else:
        power = _UNITS[match["unit"].upper()] if match["unit"] else 0
        if power == 0 and "." in match["number"]:
            raise InvalidInput(f"size {_show(value)} is a fractional number of bytes", hint=hint)
        result = int(Fraction(match["number"]) * 1024**power)
    if result <= 0:
        raise InvalidInput(
            f"size {_show(value)} is zero bytes; it must be at least 1 byte", hint=hint
        )
    if result > MAX_SIZE_BYTES:
        raise InvalidInput(
            f"size {_show(value)} is more than 2^63-1 bytes", hint="the largest size is 8191P"
        )
    return result


def iqn(value: str) -> str:
    """An iSCSI qualified name (RFC 3720/3722): iqn.YYYY-MM.reversed.domain[:identifier].

    Returned lowercased. After lowercasing only a-z, 0-9, '-', '.' and ':' are
    allowed, at most 223 bytes; the month must be 01-12; the naming authority is
    one or more dot-separated labels of a-z, 0-9 and '-'. '..' is rejected
    anywhere. eui. and naa. names are not supported.
    """
    value = _require_str(value, "iSCSI name")
    example = "iqn.2003-01.org.example:host-01"
    if not value.isascii():
        # Checked before lowercasing: some non-ASCII letters lowercase to ASCII
        # (KELVIN SIGN -> 'k').
        raise InvalidInput(
            f"iSCSI name {_show(value)} contains non-ASCII characters",
            hint=f"use lowercase letters, digits, '-', '.' and ':', e.g. {example}",
        )
    lowered = value.lower()
    if lowered.startswith(("eui.", "naa.")):
        raise InvalidInput(
            f"iSCSI name {_show(value)} is an {lowered[:3]}. name; only iqn. names are supported",
            hint=f"use an iqn. name, e.g. {example}",
        )
    if not lowered:
        raise InvalidInput("iSCSI name is empty", hint=f"use e.g. {example}")
    if len(lowered.encode("ascii")) > _MAX_IQN_BYTES:
        raise InvalidInput(
            f"iSCSI name {_show(value)} is longer than {_MAX_IQN_BYTES} bytes",
            hint=f"use a shorter name, e.g. {example}",
        )
    if not _IQN_CHARS_RE.fullmatch(lowered):
        raise InvalidInput(
            f"iSCSI name {_show(value)} contains characters other than "
            "letters, digits, '-', '.' and ':'",
            hint=f"use e.g. {example}",
        )
    if ".." in lowered:
        raise InvalidInput(f"iSCSI name {_show(value)} contains '..'", hint=f"use e.g. {example}")
    match = _IQN_RE.fullmatch(lowered)
    if not match:
        raise InvalidInput(
            f"{_show(value)} is not an iSCSI qualified name "
            "(iqn.YYYY-MM.reversed.domain[:identifier])",
            hint=f"use e.g. {example}",
        )
    year, month = int(match["year"]), int(match["month"])
    if year == 0 or not 1 <= month <= 12:
        raise InvalidInput(
            f"iSCSI name {_show(value)} has an invalid date {match['year']}-{match['month']}",
            hint="the date is the year and month (01-12) the naming "
            "authority got its domain, e.g. 2003-01",
        )
    return lowered


def dataset_name(value: str) -> str:
    """A ZFS dataset path such as tank or tank/zboot: '/'-separated components of
    A-Z, a-z, 0-9, '_', '.', ':' and '-', each starting with a letter or digit,
    no empty or '..' components, at most 255 characters in all. Returned as given."""
    value = _require_str(value, "dataset name")
    allowed = (
        "'/'-separated components of letters, digits, '_', '.', ':' and '-', "
        "each starting with a letter or digit, e.g. tank/zboot"
    )
    if not value:
        raise InvalidInput("dataset name is empty", hint=f"use {allowed}")
    if len(value) > _MAX_DATASET:
        raise InvalidInput(
            f"dataset name {_show(value)} is longer than {_MAX_DATASET} characters",
            hint=f"use {allowed}",
        )
    if "@" in value or "#" in value:
        raise InvalidInput(
            f"dataset name {_show(value)} contains '@' or '#'; "
            "give a dataset, not a snapshot or bookmark",
            hint=f"use {allowed}",
        )
    for component in value.split("/"):
        if not component:
            raise InvalidInput(
                f"dataset name {_show(value)} has an empty component "
                "(leading, trailing or doubled '/')",
                hint=f"use {allowed}",
            )
        if component in (".", ".."):
            raise InvalidInput(
                f"dataset name {_show(value)} has a {component!r} component", hint=f"use {allowed}"
            )
        if not _DATASET_COMPONENT_RE.fullmatch(component):
            raise InvalidInput(
                f"dataset name {_show(value)} has an invalid component {_show(component)}",
                hint=f"use {allowed}",
            )
    return value


def compression(value: str) -> str:
    """A ZFS compression value such as lz4, zstd-3 or off: 1-32 lowercase ASCII
    letters, digits and '-', starting with a letter or digit. Whether ZFS knows
    the algorithm is for zfs to say; this keeps anything else off its command line."""
    value = _require_str(value, "compression")
    if not _COMPRESSION_RE.fullmatch(value):
        raise InvalidInput(
            f"compression {_show(value)} is not a ZFS compression value",
            hint="e.g. lz4, zstd, zstd-3, gzip-9 or off",
        )
    return value


def address(value: str, what: str = "address") -> str:
    """A host name or IP address other machines are told to use (a DHCP config's
    TFTP server or router): 1-253 ASCII letters, digits, '.', '-' and ':',
    starting with a letter, digit or ':'. Returned as given."""
    value = _require_str(value, what)
    if not _ADDRESS_RE.fullmatch(value):
        raise InvalidInput(
            f"{what} {_show(value)} is not a host name or IP address",
            hint="e.g. 10.0.0.1, fd00::1 or boot.example.org",
        )
    return value


def message(value: str) -> str:
    """A note kept with an image version: one line of at most 1000 characters,
    without control characters (tab, newline, NUL, ESC, DEL, ...: it is stored
    as a ZFS property and shown in tables). Returned as given."""
    value = _require_str(value, "message")
    if any(ord(c) < 32 or ord(c) == 127 for c in value) or len(value) > _MAX_MESSAGE:
        raise InvalidInput(
            f"message {_show(value)} is not one line of at most "
            f"{_MAX_MESSAGE} characters without control characters",
            hint="give a one-line note, e.g. -m 'monthly updates'",
        )
    return value


_URL_RE = re.compile(r"(?:https?|tftp)://[A-Za-z0-9._~:/%@+=,-]{1,2000}")


def url(value: str, what: str = "URL") -> str:
    """A URL that goes into an iPXE script as one word (WinPE's directory):
    http, https or tftp, then letters, digits and . _ ~ : / % @ + = , -
    only (no spaces, quotes, or $ that iPXE would expand). Returned as given."""
    value = _require_str(value, what)
    if not _URL_RE.fullmatch(value):
        raise InvalidInput(
            f"{what} {_show(value)} is not a plain http, https or tftp URL",
            hint="e.g. http://10.0.0.1/winpe (percent-encode anything else)",
        )
    return value


_PATTERN_RE = re.compile(
    r"(?P<head>[A-Za-z0-9-]*)\{n(?::0?(?P<width>[1-6])d?)?\}(?P<tail>[A-Za-z0-9-]*)"
)
PATTERN_FIRST = 1  # the number the first name of a pattern gets


def name_pattern(value: str) -> str:
    """A pattern for host names: letters, digits and '-' around one `{n}` or
    `{n:0W}` (W 1-6: the number padded with zeros to W digits), as in pc{n:02}
    -> pc01, pc02. Each name it makes is a valid host name. Returned as given."""
    value = _require_str(value, "name pattern")
    match = _PATTERN_RE.fullmatch(value)
    if match is None:
        raise InvalidInput(
            f"name pattern {_show(value)} is not letters, digits and '-' around one {{n}} "
            "or {n:0W}",
            hint="e.g. pc{n:02} (pc01, pc02, ...) or lab-{n}",
        )
    host_name(pattern_name(value, 10 ** int(match["width"] or 1) - 1))
    host_name(pattern_name(value, PATTERN_FIRST))
    return value


def pattern_name(pattern: str, n: int) -> HostName:
    """The pattern's n-th name (the pattern checked by name_pattern)."""
    match = _PATTERN_RE.fullmatch(pattern)
    if match is None:
        raise InvalidInput(f"name pattern {_show(pattern)} is not valid")
    width = int(match["width"] or 1)
    return host_name(f"{match['head']}{n:0{width}d}{match['tail']}")


_AGE_RE = re.compile(r"([0-9]{1,6})([mhdw])")
_AGE_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def age_seconds(value: str) -> int:
    """An age such as 90m, 12h, 30d or 2w, in seconds (at least one minute)."""
    value = _require_str(value, "age")
    match = _AGE_RE.fullmatch(value)
    if not match or int(match[1]) == 0:
        raise InvalidInput(
            f"{_show(value)} is not an age",
            hint="a whole number and a unit: m (minutes), h, d or w, e.g. 30d",
        )
    return int(match[1]) * _AGE_UNITS[match[2]]


def human_size(value: int | None) -> str:
    """Bytes as people read them (binary units, as ZFS prints them): 8.0K, 1.5G."""
    if value is None:
        return "-"
    size = float(value)
    for unit in ("B", "K", "M", "G", "T"):
        if size < 1024 or unit == "T":
            return f"{size:.0f}{unit}" if unit == "B" else f"{size:.1f}{unit}"
        size /= 1024
    return str(value)
