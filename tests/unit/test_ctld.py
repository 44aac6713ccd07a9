"""The ctld engine without a FreeBSD server: parsing ctladm's XML (samples
built from the kernel's printf formats, see their headers), the commands it
sends, the exact ctl.conf text it writes, and a checker of ctl.conf(5)'s
syntax that the generated text must pass. Nothing here ran against a real
ctld."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zboot.chap import Chap
from zboot.config import Config
from zboot.errors import InvalidInput, ServerError
from zboot.ops.exports import host_export
from zboot.remote.base import WAIT_SCRIPT, Result
from zboot.targets.base import Export, data_serial, disk_serial
from zboot.targets.ctld import (
    BEGIN,
    CANDIDATE,
    CONF,
    END,
    CtldEngine,
    CtlLun,
    parse_devlist,
    parse_islist,
    split_conf,
    stanza,
    stanza_export,
)
from zboot.testing.recording import RecordingRunner

SAMPLES = Path(__file__).parent / "samples"
ISLIST = (SAMPLES / "ctladm_islist_x.xml").read_text()
DEVLIST = (SAMPLES / "ctladm_devlist_x.xml").read_text()
ADMIN = (SAMPLES / "ctl_conf_admin.conf").read_text()
CONFIG = Config(iqn_base="iqn.2026-11.lab.zboot")
PCT1 = host_export(CONFIG, "pct1", "iqn.2010-04.org.ipxe:pct1")
PCT2 = host_export(CONFIG, "pct2", "iqn.2010-04.org.ipxe:pct2")
ONE_WAY = Chap("iqn.2010-04.org.ipxe:pct2", "Abcdefgh12345678")
MUTUAL = Chap(
    "iqn.2010-04.org.ipxe:pct2",
    "Abcdefgh12345678",
    "iqn.2026-11.lab.zboot:pct2",
    "Zyxwvuts87654321",
)
VALIDATE = ("/usr/sbin/ctld", "-t", "-f", CANDIDATE)
RELOAD = ("/usr/sbin/service", "ctld", "reload")
DEVLIST_X = ("/usr/sbin/ctladm", "devlist", "-x")


# --- a checker of ctl.conf(5) syntax ----------------------------------------
# Tokens as ctld's lexer makes them (freebsd/freebsd-src usr.sbin/ctld/token.l
# @ 6c6694865b8208bd4b8feb58929e83a49e3fab70): a quoted string has no escapes
# and no inner quote; a bare word is [a-zA-Z0-9.-@_/:[]]+; `#` to end of line is
# a comment; `{ } ;`. A bare word that is a keyword is the keyword, never a value.
LEX = re.compile(
    r'(?P<q>"[^"]+")|(?P<w>[a-zA-Z0-9.\-@_/:\[\]]+)|(?P<p>[{};])|(?P<c>#[^\n]*)'
    r"|(?P<s>\s+)|(?P<bad>.)"
)
# Keywords by context, from ctl.conf(5) @ 58e19444edfdee035e35c8bb55e42c8a77622075,
# sections "Global Context", "auth-group Context", "portal-group Context",
# "target Context" and "lun Context".
KEYWORDS = {
    "global": {
        "auth-group",
        "debug",
        "maxproc",
        "pidfile",
        "portal-group",
        "lun",
        "target",
        "timeout",
        "isns-server",
        "isns-period",
        "isns-timeout",
    },
    "auth-group": {"auth-type", "chap", "chap-mutual", "initiator-name", "initiator-portal"},
    "portal-group": {"discovery-auth-group", "discovery-filter", "listen", "offload", "redirect"},
    "target": {
        "alias",
        "auth-group",
        "auth-type",
        "chap",
        "chap-mutual",
        "initiator-name",
        "initiator-portal",
        "portal-group",
        "port",
        "redirect",
        "lun",
    },
    "lun": {"backend", "blocksize", "device-id", "option", "path", "serial", "size"},
}
ALL_KEYWORDS = set().union(*KEYWORDS.values()) | {
    "listen-iser",
    "ctl-lun",
    "device-type",
    "foreign",
    "tag",
}  # token.l has these too
ARITY = {"chap": {2}, "chap-mutual": {4}, "option": {2}, "portal-group": {1, 2}, "lun": {1, 2}}
PREDEFINED_GROUPS = {"default", "no-authentication", "no-access"}  # ctl.conf(5), target context


@dataclass
class Stmt:
    keyword: str
    args: list[tuple[str, bool]]  # (value, was quoted)
    body: list[Stmt] | None = None


@dataclass
class Checked:
    statements: list[Stmt] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def tokens(text: str) -> list[tuple[str, str]]:
    found = []
    for m in LEX.finditer(text):
        kind = m.lastgroup or "bad"
        if kind in ("q", "w", "p", "bad"):
            found.append((kind, m.group()))
    return found


def check(text: str) -> Checked:
    """Parse text by ctl.conf(5)'s grammar; collect every rule broken."""
    out = Checked()
    toks, pos = tokens(text), 0

    def block(context: str, depth: int) -> list[Stmt]:
        nonlocal pos
        body: list[Stmt] = []
        while pos < len(toks):
            kind, value = toks[pos]
            if value == "}":
                if depth == 0:
                    out.problems.append("unbalanced '}'")
                pos += 1
                return body
            pos += 1
            if value == ";":
                continue
            if kind != "w" or value not in ALL_KEYWORDS:
                out.problems.append(f"{value!r} where a keyword belongs ({context})")
                continue
            if value not in KEYWORDS[context]:
                out.problems.append(f"{value} is not allowed in {context} context")
            args: list[tuple[str, bool]] = []
            while (
                pos < len(toks)
                and toks[pos][1] not in "{};"
                and not (toks[pos][0] == "w" and toks[pos][1] in ALL_KEYWORDS)
            ):
                args.append((toks[pos][1].strip('"'), toks[pos][0] == "q"))
                pos += 1
            stmt = Stmt(value, args)
            opens = pos < len(toks) and toks[pos][1] == "{"
            if opens:
                pos += 1
                inner = "lun" if value == "lun" else value
                stmt.body = block(inner, depth + 1)
            if len(args) not in ARITY.get(value, {1}) or (opens and len(args) != 1):
                out.problems.append(
                    f"{value} takes {sorted(ARITY.get(value, {1}))} arguments, got {len(args)}"
                )
            body.append(stmt)
        if depth > 0:
            out.problems.append("unbalanced '{'")
        return body

    out.statements = block("global", 0)
    groups = {s.args[0][0] for s in out.statements if s.keyword == "auth-group" and s.args}
    for s in out.statements:
        inner = [k.keyword for k in s.body or []]
        if s.keyword == "auth-group" and "chap" in inner and "chap-mutual" in inner:
            out.problems.append(f"auth-group {s.args[0][0]} mixes chap and chap-mutual")
        if s.keyword == "target":
            numbers = [k.args[0][0] for k in s.body or [] if k.keyword == "lun" and k.args]
            if len(numbers) != len(set(numbers)):
                out.problems.append(f"target {s.args[0][0]} has a LUN number twice")
            for k in s.body or []:
                if k.keyword == "auth-group" and k.args[0][0] not in groups | PREDEFINED_GROUPS:
                    out.problems.append(f"unknown auth-group {k.args[0][0]}")
    return out


def zboot_problems(conf: str) -> list[str]:
    """check() plus zboot's own rules on its block: every name and value quoted
    (numbers aside), every auth-group typed (an untyped group
    denies everybody), `lun 0` and at most `lun 1` (the data disk) per target."""
    checked = check(conf)
    problems = list(checked.problems)
    _, stanzas, _ = split_conf(conf)
    for text in stanzas.values():
        for s in check(text).statements:
            for stmt in [s, *(s.body or []), *(k for b in s.body or [] for k in b.body or [])]:
                for value, quoted in stmt.args:
                    if not quoted and not value.isdigit():
                        problems.append(f"{stmt.keyword} {value} is not quoted")
            inner = [k.keyword for k in s.body or []]
            if s.keyword == "auth-group" and inner.count("auth-type") != 1:
                problems.append(f"auth-group {s.args[0][0]} has no single auth-type")
            numbers = [k.args[0][0] for k in s.body or [] if k.keyword == "lun" and k.args]
            if s.keyword == "target" and numbers not in (["0"], ["0", "1"]):
                problems.append(f"target {s.args[0][0]} has not LUN 0 and at most LUN 1 besides")
    return problems


# --- a fake FreeBSD server --------------------------------------------------
@dataclass
class FakeCtld:
    """ctld and CTL as far as zboot sees them: `ctld -t` answers rc, a reload
    makes the kernel's LUNs those of the installed ctl.conf (unless asleep),
    and a LUN can be held for a few polls after it left the file."""

    conf: str = ADMIN
    test_rc: int = 0
    asleep: bool = False
    hold_polls: int = 0
    islist: str = ISLIST
    luns: list[tuple[str, str]] = field(default_factory=list)
    held: list[tuple[str, str]] = field(default_factory=list)
    validated: list[str] = field(default_factory=list)
    runner: RecordingRunner = field(init=False)

    def __post_init__(self) -> None:
        self.runner = RecordingRunner(files={CONF: self.conf.encode()})
        self.runner.responses = self.respond
        self.luns = self.from_conf()

    def from_conf(self) -> list[tuple[str, str]]:
        luns = []
        for s in check(self.runner.files[CONF].decode()).statements:
            for k in s.body or [] if s.keyword == "target" else []:
                path = [p.args[0][0] for p in k.body or [] if p.keyword == "path"]
                if k.keyword == "lun" and path:
                    luns.append((f"{s.args[0][0]},lun,{k.args[0][0]}", path[0]))
        return luns

    def devlist(self) -> str:
        if self.hold_polls > 0:
            self.hold_polls -= 1
        else:
            self.held = []
        body = "".join(
            f'<lun id="{i}">\n\t<backend_type>block</backend_type>\n'
            f"\t<file>{path}</file>\n\t<ctld_name>{name}</ctld_name>\n</lun>\n"
            for i, (name, path) in enumerate(self.luns + self.held)
        )
        return f"<ctllunlist>\n{body}</ctllunlist>\n"

    def respond(self, argv: tuple[str, ...], _: bytes | None) -> Result:
        if argv == VALIDATE:
            self.validated.append(self.runner.files[CANDIDATE].decode())
            err = b"ctld: configuration error; exiting\n" if self.test_rc else b""
            return Result(argv, self.test_rc, b"", err)
        if argv == RELOAD and not self.asleep:
            new = self.from_conf()
            self.held = [lun for lun in self.luns if lun not in new]
            self.luns = new
        if argv == DEVLIST_X:
            return Result(argv, 0, self.devlist().encode(), b"")
        if argv[:2] == ("/usr/sbin/ctladm", "islist"):
            return Result(argv, 0, self.islist.encode(), b"")
        return Result(argv, 0, b"", b"")

    def engine(self) -> CtldEngine:
        return CtldEngine(self.runner, interval=0)

    def installed(self) -> str:
        return self.runner.files[CONF].decode()


def with_chap(export: Export, chap: Chap) -> Export:
    return replace(export, chap=chap)


# --- parsers on the samples -------------------------------------------------
def test_islist_sample_is_parsed() -> None:
    conns = parse_islist(ISLIST)
    assert [(c.id, c.initiator, c.target) for c in conns] == [
        (3, "iqn.2010-04.org.ipxe:pct1", "iqn.2026-11.lab.zboot:pct1"),
        (4, "iqn.1994-05.com.redhat:admin-box", "iqn.2012-06.com.example:target0"),
        (7, "iqn.2010-04.org.ipxe:pct1", "iqn.2026-11.lab.zboot:pct1"),
    ]


def test_devlist_sample_is_parsed() -> None:
    assert parse_devlist(DEVLIST) == [
        CtlLun(0, "/dev/zvol/tank/example_0", "iqn.2012-06.com.example:target0,lun,0"),
        CtlLun(1, PCT1.device, f"{PCT1.target},lun,0"),
    ]


def test_an_unescaped_ampersand_from_the_kernel_is_read() -> None:
    text = ISLIST.replace("<initiator_alias>admin-box<", "<initiator_alias>Tom & Jerry<")
    assert [c.id for c in parse_islist(text)] == [3, 4, 7]
    with pytest.raises(ServerError, match="islist"):
        parse_islist("ctladm: CTL_ISCSI ioctl failed")


def test_sessions_are_initiators_by_target_once_each() -> None:
    engine = FakeCtld().engine()
    assert engine.sessions([PCT1.target, PCT2.target]) == {
        PCT1.target: ["iqn.2010-04.org.ipxe:pct1"]
    }  # connections 3 and 7: one initiator
    assert engine.sessions([]) == {}


# --- the exact text ---------------------------------------------------------
def test_a_host_without_chap_is_let_in_by_name_only() -> None:
    serial = disk_serial("pct1")
    assert stanza(PCT1) == (
        "# zboot export iqn.2026-11.lab.zboot:pct1\n"
        'auth-group "zboot-iqn.2026-11.lab.zboot:pct1" {\n'
        '\tinitiator-name "iqn.2010-04.org.ipxe:pct1"\n'
        '\tauth-type "none"\n'
        "}\n"
        'target "iqn.2026-11.lab.zboot:pct1" {\n'
        '\tauth-group "zboot-iqn.2026-11.lab.zboot:pct1"\n'
        '\tportal-group "default"\n'
        "\tlun 0 {\n"
        '\t\tpath "/dev/zvol/tank/zboot/hosts/pct1"\n'
        f'\t\tserial "{serial}"\n'
        f'\t\tdevice-id "{serial}"\n'
        "\t\tblocksize 512\n"
        "\t}\n"
        "}\n"
    )


@pytest.mark.parametrize(
    ("chap", "lines"),
    [
        (
            ONE_WAY,
            ['\tauth-type "chap"\n', '\tchap "iqn.2010-04.org.ipxe:pct2" "Abcdefgh12345678"\n'],
        ),
        (
            MUTUAL,
            [
                '\tauth-type "chap-mutual"\n',
                '\tchap-mutual "iqn.2010-04.org.ipxe:pct2" "Abcdefgh12345678" '
                '"iqn.2026-11.lab.zboot:pct2" "Zyxwvuts87654321"\n',
            ],
        ),
    ],
)
def test_chap_goes_into_the_auth_group(chap: Chap, lines: list[str]) -> None:
    text = stanza(with_chap(PCT2, chap))
    group = text[text.index("auth-group") : text.index("}\n") + 2]
    assert group == (
        'auth-group "zboot-iqn.2026-11.lab.zboot:pct2" {\n'
        '\tinitiator-name "iqn.2010-04.org.ipxe:pct2"\n' + "".join(lines) + "}\n"
    )


@pytest.mark.parametrize(
    "exports",
    [
        [PCT1],
        [PCT1, with_chap(PCT2, ONE_WAY)],
        [with_chap(PCT1, MUTUAL), PCT2],
        [replace(PCT1, data_device="/dev/zvol/tank/zboot/data/pct1"), with_chap(PCT2, MUTUAL)],
    ],
)
def test_generated_config_obeys_ctl_conf_syntax(exports: list[Export]) -> None:
    server = FakeCtld()
    server.engine().apply(create=exports)
    conf = server.installed()
    assert zboot_problems(conf) == []
    assert check(ADMIN).problems == []  # the checker takes the man page's own example


@pytest.mark.parametrize(
    ("broken", "problem"),
    [
        ('target "t" {\n\tlun 0 {\n\t\tpath "/dev/x"\n\t}\n', "unbalanced '{'"),
        ('auth-group "g" {\n\tchap "u" "s"\n\tchap-mutual "u" "s" "m" "t"\n}\n', "mixes"),
        (
            'target "t" {\n\tlun 0 {\n\t\tpath "/a"\n\t}\n\tlun 0 {\n\t\tpath "/b"\n\t}\n}\n',
            "LUN number twice",
        ),
        ('target "t" {\n\tlun 0 {\n\t\tlisten "/a"\n\t}\n}\n', "not allowed in lun context"),
        ('target "t" {\n\tauth-group "nope"\n}\n', "unknown auth-group"),
        ('auth-group "g" {\n\tchap "u"\n}\n', "chap takes [2]"),
        ('auth-group "g" {\n\tauth-type chap\n}\n', "auth-type takes [1]"),  # a bare keyword
        (
            f"{BEGIN}\n# zboot export t\ntarget t {{\n\tlun 0 {{\n\t\tpath /a\n\t}}\n}}\n{END}\n",
            "not quoted",
        ),
        (
            f'{BEGIN}\n# zboot export t\nauth-group "g" {{\n\tinitiator-name "i"\n}}\n{END}\n',
            "no single auth-type",
        ),
    ],
)
def test_the_checker_catches_broken_configs(broken: str, problem: str) -> None:
    assert any(problem in p for p in zboot_problems(broken))


# --- apply ------------------------------------------------------------------
def test_apply_validates_installs_reloads_and_polls() -> None:
    server = FakeCtld()
    server.engine().apply(create=[PCT1])
    assert server.runner.commands == [
        ("sh", "-c", WAIT_SCRIPT, "sh", PCT1.device, "600"),
        VALIDATE,
        RELOAD,
        DEVLIST_X,
    ]
    conf = server.installed()
    assert server.validated == [conf]  # the very text installed was checked first
    assert conf == f"{ADMIN}{BEGIN}\n{stanza(PCT1)}{END}\n"
    assert server.runner.modes[CONF] == 0o600
    assert CANDIDATE not in server.runner.files
    assert (f"{PCT1.target},lun,0", PCT1.device) in server.luns


def test_secrets_are_only_in_the_0600_file() -> None:
    server = FakeCtld()
    server.engine().apply(create=[with_chap(PCT2, MUTUAL)])
    sent = [
        *(a for argv in server.runner.commands for a in argv),
        *(i.decode() for i in server.runner.inputs if i),
    ]
    assert not any(s in arg for s in ("Abcdefgh12345678", "Zyxwvuts87654321") for arg in sent)
    assert "Zyxwvuts87654321" in server.installed()
    assert server.runner.modes[CONF] == 0o600


def test_the_admins_text_survives_byte_for_byte() -> None:
    tail = "# the admin's last words\ntimeout 30\n"
    server = FakeCtld(conf=ADMIN)
    engine = server.engine()
    engine.apply(create=[PCT1, with_chap(PCT2, ONE_WAY)])
    server.runner.files[CONF] += tail.encode()  # the admin adds a line after the block
    engine.apply(delete=[PCT1.target])
    before, stanzas, after = split_conf(server.installed())
    assert (before, list(stanzas), after) == (ADMIN, [PCT2.target], tail)
    engine.apply(delete=[PCT2.target])
    assert server.installed() == ADMIN + tail


def test_rewriting_the_block_is_stable() -> None:
    server = FakeCtld()
    engine = server.engine()
    engine.apply(create=[PCT1, PCT2])
    first = server.installed()
    assert first == f"{ADMIN}{BEGIN}\n{stanza(PCT1)}\n{stanza(PCT2)}{END}\n"
    engine.apply(create=[PCT2])  # re-created: the same bytes, no blank lines piling up
    assert server.installed() == first


def test_deleting_the_last_export_removes_the_block() -> None:
    server = FakeCtld(conf=ADMIN)
    server.engine().apply(create=[PCT1])
    server.engine().apply(delete=[PCT1.target])
    assert server.installed() == ADMIN
    assert "zboot" not in server.installed()
    assert all(path != PCT1.device for _, path in server.luns)


def test_other_hosts_keep_their_secrets_when_one_is_added() -> None:
    server = FakeCtld()
    engine = server.engine()
    engine.apply(create=[with_chap(PCT1, MUTUAL)])
    engine.apply(create=[PCT2])  # what exports() knows of PCT1 has no secrets
    assert stanza(with_chap(PCT1, MUTUAL)) in server.installed()


def test_exports_come_back_from_the_block_without_secrets() -> None:
    server = FakeCtld()
    engine = server.engine()
    engine.apply(create=[with_chap(PCT1, MUTUAL), PCT2])
    found = engine.exports()
    assert found == {PCT1.target: PCT1, PCT2.target: PCT2}
    assert all(e.chap is None for e in found.values())
    assert FakeCtld().engine().exports() == {}  # the admin's targets are not zboot's


def test_a_refused_config_changes_nothing() -> None:
    server = FakeCtld(test_rc=1)
    with pytest.raises(ServerError, match=r"ctld refused.*configuration error"):
        server.engine().apply(create=[PCT1])
    assert server.runner.files == {CONF: ADMIN.encode()}
    assert RELOAD not in server.runner.commands


def test_deleting_waits_until_the_zvol_is_let_go() -> None:
    server = FakeCtld()
    engine = server.engine()
    engine.apply(create=[PCT1])
    server.hold_polls = 2
    engine.apply(delete=[PCT1.target])
    assert server.runner.commands.count(DEVLIST_X) == 1 + 3


def test_polling_gives_up_with_a_clear_error() -> None:
    server = FakeCtld(asleep=True)  # reload "succeeds", ctld never applies it
    engine = CtldEngine(server.runner, polls=4, interval=0)
    with pytest.raises(ServerError, match=rf"no LUN {re.escape(PCT1.target)},lun,0") as err:
        engine.apply(create=[PCT1])
    assert err.value.hint is not None and "/var/log/messages" in err.value.hint
    assert server.runner.commands.count(DEVLIST_X) == 4


def test_a_held_zvol_is_named_when_polling_gives_up() -> None:
    server = FakeCtld()
    server.engine().apply(create=[PCT1])
    server.asleep = True
    with pytest.raises(ServerError, match=f"{PCT1.device} still backs a LUN"):
        CtldEngine(server.runner, polls=2, interval=0).apply(delete=[PCT1.target])


def test_a_failed_reload_is_reported() -> None:
    server = FakeCtld()

    def respond(argv: tuple[str, ...], data: bytes | None) -> Result:
        if argv == RELOAD:
            return Result(argv, 1, b"", b"ctld not running? (check /var/run/ctld.pid).\n")
        return server.respond(argv, data)

    server.runner.responses = respond
    with pytest.raises(ServerError, match="did not reload: ctld not running"):
        server.engine().apply(create=[PCT1])


def test_deleting_what_is_not_zbootss_does_nothing() -> None:
    server = FakeCtld()
    server.engine().apply(delete=["iqn.2012-06.com.example:target0"])
    assert server.runner.commands == []
    assert server.installed() == ADMIN


@pytest.mark.parametrize(
    ("export", "message"),
    [
        (with_chap(PCT2, Chap("u", "short1234")), "12 to 16"),
        (with_chap(PCT2, Chap("u", "Abcdefgh1234567!")), "12 to 16"),
        (with_chap(PCT2, Chap("u", "Abcdefgh12345678", "m", "Abcdefgh12345678")), "must differ"),
        (with_chap(PCT2, Chap("u", "Abcdefgh12345678", "m", None)), "both"),
        (replace(PCT2, initiator='iqn.2010-04.org.ipxe:"x'), "cannot be written"),
        (replace(PCT2, initiator="iqn.2010-04.org.ipxe:PC"), "lowercase"),
    ],
)
def test_bad_input_is_refused_before_anything_runs(export: Export, message: str) -> None:
    server = FakeCtld()
    with pytest.raises(InvalidInput, match=message):
        server.engine().apply(create=[export])
    assert server.runner.commands == []
    assert server.installed() == ADMIN


def test_a_damaged_block_is_not_guessed_at() -> None:
    server = FakeCtld(conf=f"{ADMIN}{BEGIN}\n")
    with pytest.raises(ServerError, match="damaged zboot block"):
        server.engine().apply(create=[PCT1])
    assert server.runner.commands == []


# --- the data disk: lun 1 of the host's target --------------------------------
DATA = "/dev/zvol/tank/zboot/data/pct1"
PCT1_DATA = replace(PCT1, data_device=DATA)


def test_a_data_disk_is_lun_1_of_the_same_target() -> None:
    serial, data = disk_serial("pct1"), data_serial("pct1")
    assert stanza(PCT1_DATA) == stanza(PCT1).replace(
        "\t}\n}\n",
        "\t}\n"
        "\tlun 1 {\n"
        f'\t\tpath "{DATA}"\n'
        f'\t\tserial "{data}"\n'
        f'\t\tdevice-id "{data}"\n'
        "\t\tblocksize 512\n"
        "\t}\n"
        "}\n",
    )
    assert serial != data
    assert zboot_problems(f"{BEGIN}\n{stanza(PCT1_DATA)}{END}\n") == []


def test_a_data_disk_is_applied_polled_for_and_read_back() -> None:
    server = FakeCtld()
    engine = server.engine()
    engine.apply(create=[PCT1_DATA, PCT2])
    waits = [c[-2] for c in server.runner.commands if c[0] == "sh"]
    assert waits == [PCT1.device, DATA, PCT2.device]
    assert (f"{PCT1.target},lun,1", DATA) in server.luns
    assert engine.exports() == {PCT1.target: PCT1_DATA, PCT2.target: PCT2}
    assert engine.exports()[PCT2.target].data_device == ""


def test_polling_waits_for_the_data_lun_too() -> None:
    server = FakeCtld(asleep=True)
    with pytest.raises(ServerError, match=rf"no LUN {re.escape(PCT1.target)},lun,1"):
        CtldEngine(server.runner, polls=2, interval=0).apply(create=[PCT1_DATA])


@pytest.mark.parametrize(
    ("create", "delete"),
    [([], [PCT1.target]), ([PCT1], [])],  # destroyed; made again without it
    ids=["delete", "recreate-without-data"],
)
def test_the_data_zvol_is_let_go_before_apply_returns(
    create: list[Export], delete: list[str]
) -> None:
    server = FakeCtld()
    server.engine().apply(create=[PCT1_DATA])
    server.asleep = True  # ctld keeps the old LUNs
    with pytest.raises(ServerError, match=f"{DATA} still backs a LUN"):
        CtldEngine(server.runner, polls=2, interval=0).apply(create, delete)
    assert DATA not in server.installed()
    server.asleep = False  # again from the start, ctld awake
    server.runner.files[CONF] = ADMIN.encode()
    server.engine().apply(create=[PCT1_DATA])
    server.hold_polls = 1  # it lets go of the old LUNs a poll after the reload
    server.engine().apply(create, delete)
    assert all(path != DATA for _, path in server.luns + server.held)


@settings(max_examples=60, database=None, deadline=None)
@given(
    host=st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True),
    with_data=st.booleans(),
    lun=st.integers(0, 5),
)
def test_a_stanza_reads_back_as_its_export(host: str, with_data: bool, lun: int) -> None:
    export = replace(
        host_export(CONFIG, host, f"iqn.2010-04.org.ipxe:{host}"),
        data_device=f"/dev/zvol/tank/zboot/data/{host}" if with_data else "",
    )
    assert stanza_export(stanza(export, lun=lun), lun) == export
