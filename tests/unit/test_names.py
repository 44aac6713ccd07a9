"""Names, MAC addresses, sizes and iSCSI names: what is accepted, how it is
normalised, and that hostile input never gets through."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zboot import names
from zboot.errors import ExitCode, InvalidInput

# 200 examples for the hostile-character property of each function; 100 (the
# Hypothesis default) for the rest. No example database: nothing is written.
HOSTILE = settings(max_examples=200, database=None, deadline=None)
PROPERTY = settings(max_examples=100, database=None, deadline=None)

HOSTILE_ASCII = ";$`|&<>(){}[]*?!'\"\\ \t\n/@#%"
HOSTILE_SPECIAL = [
    "\x00",
    "\u212a",
    "\u0131",
    "\u0130",
    "\u00e9",
    "\u0663",
    "\uff21",
    "\u200b",
    "\U0001f600",
]


def _hostile_chars(allowed: str = "") -> st.SearchStrategy[str]:
    ascii_ = [c for c in HOSTILE_ASCII if c not in allowed]
    return st.one_of(
        st.sampled_from(ascii_ + HOSTILE_SPECIAL),
        st.characters(min_codepoint=0x80),
    )


# Strategies for valid input, per function. Inserting one hostile character
# into a valid value must turn it invalid; starting from valid values makes
# sure the rejection is due to that character and not something else.
_LOWER_DIGITS = "abcdefghijklmnopqrstuvwxyz0123456789"


@st.composite
def valid_hosts(draw: st.DrawFn) -> str:
    first = draw(st.sampled_from(_LOWER_DIGITS + "ABCXYZ"))
    middle = draw(st.text(alphabet=_LOWER_DIGITS + "ABZ-", max_size=24))
    if not middle:
        return first
    return first + middle + draw(st.sampled_from(_LOWER_DIGITS + "QR"))


@st.composite
def valid_components(draw: st.DrawFn) -> str:
    first = draw(st.sampled_from(_LOWER_DIGITS))
    rest = draw(st.text(alphabet=_LOWER_DIGITS + "._-", max_size=24))
    return first + re.sub(r"\.\.+", ".", rest)


def _spell(digits: str, style: str) -> str:
    pairs = [digits[i : i + 2] for i in range(0, 12, 2)]
    quads = [digits[i : i + 4] for i in range(0, 12, 4)]
    return {
        "colon": ":".join(pairs),
        "hyphen": "-".join(pairs),
        "cisco": ".".join(quads),
        "bare": digits,
    }[style]


UNICAST = st.binary(min_size=6, max_size=6).filter(lambda b: not b[0] & 1 and any(b))
MAC_STYLES = st.sampled_from(["colon", "hyphen", "cisco", "bare"])


@st.composite
def valid_macs(draw: st.DrawFn) -> str:
    digits = draw(UNICAST).hex()
    case = draw(st.sampled_from([str.lower, str.upper, str.swapcase]))
    return _spell(case(digits[:6]) + digits[6:], draw(MAC_STYLES))


@st.composite
def valid_sizes(draw: st.DrawFn) -> str:
    number = str(draw(st.integers(min_value=1, max_value=4096)))
    unit = draw(st.sampled_from(["", "k", "M", "g", "T", "p"]))
    if unit:
        unit += draw(st.sampled_from(["", "i", "iB", "B", "IB", "b"]))
        if draw(st.booleans()):
            number += "." + str(draw(st.integers(min_value=0, max_value=999)))
    return number + unit


@st.composite
def valid_iqns(draw: st.DrawFn) -> str:
    year = draw(st.integers(min_value=1985, max_value=2099))
    month = draw(st.integers(min_value=1, max_value=12))
    labels = draw(
        st.lists(
            st.text(alphabet=_LOWER_DIGITS + "-", min_size=1, max_size=8), min_size=1, max_size=3
        )
    )
    name = f"iqn.{year:04d}-{month:02d}.{'.'.join(labels)}"
    if draw(st.booleans()):
        name += ":" + draw(st.text(alphabet=_LOWER_DIGITS + "-:", min_size=1, max_size=16))
    return name


@st.composite
def valid_datasets(draw: st.DrawFn) -> str:
    raw = draw(st.text(alphabet=_LOWER_DIGITS + "XY_.:-/", min_size=1, max_size=40))
    parts = [p if p[0].isalnum() else "a" + p for p in raw.split("/") if p]
    return "/".join(parts) or "tank"


NameFn = Callable[[str], object]

CASES: list[tuple[str, NameFn, st.SearchStrategy[str], str]] = [
    ("host_name", names.host_name, valid_hosts(), ""),
    ("image_name", names.image_name, valid_components(), ""),
    ("snapshot_name", names.snapshot_name, valid_components(), ""),
    ("mac", names.mac, valid_macs(), ""),
    ("mac_hexhyp", names.mac_hexhyp, valid_macs(), ""),
    ("size_bytes", names.size_bytes, valid_sizes(), ""),
    ("iqn", names.iqn, valid_iqns(), ":"),
    ("dataset_name", names.dataset_name, valid_datasets(), "/"),
]
CASE_IDS = [c[0] for c in CASES]


def _rejects(fn: NameFn, value: str) -> InvalidInput:
    with pytest.raises(InvalidInput) as info:
        fn(value)
    error = info.value
    assert error.exit_code == ExitCode.BAD_INPUT
    assert error.message
    return error


# --- properties shared by every function ----------------------------------------------


@pytest.mark.parametrize(("name", "fn", "valid", "allowed"), CASES, ids=CASE_IDS)
def test_one_hostile_character_makes_a_valid_value_invalid(
    name: str, fn: NameFn, valid: st.SearchStrategy[str], allowed: str
) -> None:
    @HOSTILE
    @given(base=valid, bad=_hostile_chars(allowed), where=st.integers(0, 64))
    def check(base: str, bad: str, where: int) -> None:
        fn(base)  # the base really is valid, so the rejection is the hostile character's
        position = min(where, len(base))
        _rejects(fn, base[:position] + bad + base[position:])

    check()


@pytest.mark.parametrize(("name", "fn", "valid", "allowed"), CASES, ids=CASE_IDS)
def test_arbitrary_text_with_a_hostile_character_is_rejected(
    name: str, fn: NameFn, valid: st.SearchStrategy[str], allowed: str
) -> None:
    @settings(PROPERTY, max_examples=50)
    @given(before=st.text(max_size=10), bad=_hostile_chars(allowed), after=st.text(max_size=10))
    def check(before: str, bad: str, after: str) -> None:
        _rejects(fn, before + bad + after)

    check()


@pytest.mark.parametrize(("name", "fn", "valid", "allowed"), CASES, ids=CASE_IDS)
@pytest.mark.parametrize(
    "value",
    [
        "",
        " ",
        "\n",
        "\x00",
        "-",
        "..",
        "../etc",
        "a;b",
        "$(reboot)",
        "`id`",
        "a b",
        "a\nb",
        "a\x00b",
        "x" * 10_000,
        "-rf",
        "--help",
        "name@snap",
        "a#b",
        "50%",
    ],
)
def test_hostile_examples_are_rejected_by_every_function(
    name: str, fn: NameFn, valid: st.SearchStrategy[str], allowed: str, value: str
) -> None:
    _rejects(fn, value)


@pytest.mark.parametrize(("name", "fn", "valid", "allowed"), CASES, ids=CASE_IDS)
def test_non_text_is_rejected(
    name: str, fn: NameFn, valid: st.SearchStrategy[str], allowed: str
) -> None:
    for value in (None, 5, b"abc", ["a"]):
        _rejects(fn, value)  # type: ignore[arg-type]


def test_overlong_values_are_shown_shortened_in_messages() -> None:
    error = _rejects(names.image_name, "a" * 100_000)
    assert "100000 characters" in error.message
    assert len(error.message) < 300


# --- host_name -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("web01", "web01"),
        ("Web-01", "web-01"),
        ("A", "a"),
        ("7", "7"),
        ("0a", "0a"),
        ("x" * 63, "x" * 63),
        ("a-b-c-9", "a-b-c-9"),
        ("MYHOST", "myhost"),
    ],
)
def test_host_name_accepts(value: str, expected: str) -> None:
    assert names.host_name(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "-web",
        "web-",
        "-",
        "x" * 64,
        "web.example",
        "web_01",
        "wéb",
        "web\u212a",
        "web 01",
        "web01\n",
        "\nweb01",
        "web/01",
        "web;reboot",
        "$(id)",
        "web@1",
        "web#1",
    ],
)
def test_host_name_rejects(value: str) -> None:
    error = _rejects(names.host_name, value)
    if value:
        assert repr(value)[:20] in error.message


@PROPERTY
@given(st.text(alphabet="abcXYZ019-._ /;\u212a", max_size=70))
def test_host_name_output_matches_allow_list(value: str) -> None:
    try:
        result = names.host_name(value)
    except InvalidInput:
        return
    assert re.fullmatch(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?", result)


# --- image_name / snapshot_name --------------------------------------------------------

COMPONENT_FNS = [names.image_name, names.snapshot_name]


@pytest.mark.parametrize("fn", COMPONENT_FNS, ids=["image", "snapshot"])
@pytest.mark.parametrize(
    "value",
    [
        "debian-12",
        "win11_base",
        "v1",
        "2024-06-01",
        "ubuntu-24.04",
        "a",
        "0",
        "a" * 64,
        "x.y_z-1",
        "a.",
        "a-",
        "a_",
    ],
)
def test_components_accept_and_keep(fn: NameFn, value: str) -> None:
    assert fn(value) == value


@pytest.mark.parametrize("fn", COMPONENT_FNS, ids=["image", "snapshot"])
@pytest.mark.parametrize(
    "value",
    [
        "",
        ".hidden",
        "-rf",
        "_x",
        "a" * 65,
        "a..b",
        "..",
        "a/b",
        "a@b",
        "a#b",
        "a%b",
        "a b",
        "a:b",
        "a;b",
        "a\nb",
        "a\x00b",
        "débian",
        "a\u212a",
        "$(x)",
    ],
)
def test_components_reject(fn: NameFn, value: str) -> None:
    _rejects(fn, value)


@pytest.mark.parametrize("fn", COMPONENT_FNS, ids=["image", "snapshot"])
def test_components_reject_uppercase_and_say_why(fn: NameFn) -> None:
    error = _rejects(fn, "Debian-12")
    assert "'Debian-12'" in error.message
    assert "uppercase" in error.message
    assert error.hint is not None and "debian-12" in error.hint


@PROPERTY
@given(
    value=st.text(alphabet="abAB09._-/@ ;\u0131", max_size=70), fn=st.sampled_from(COMPONENT_FNS)
)
def test_component_output_matches_allow_list(value: str, fn: NameFn) -> None:
    try:
        result = fn(value)
    except InvalidInput:
        return
    assert isinstance(result, str)
    assert re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,63}", result)
    assert ".." not in result
    assert result == value


# --- mac / mac_hexhyp ------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "52:54:00:AB:cd:01",
        "52:54:00:ab:cd:01",
        "52-54-00-ab-cd-01",
        "52-54-00-AB-CD-01",
        "5254.00ab.cd01",
        "5254.00AB.CD01",
        "525400abcd01",
        "525400ABCD01",
    ],
)
def test_mac_spellings(value: str) -> None:
    assert names.mac(value) == "52:54:00:ab:cd:01"
    assert names.mac_hexhyp(value) == "52-54-00-ab-cd-01"


def test_mac_locally_administered_unicast_is_fine() -> None:
    assert names.mac("02:00:00:00:00:00") == "02:00:00:00:00:00"
    assert names.mac("00:00:00:00:00:01") == "00:00:00:00:00:01"


@pytest.mark.parametrize(
    "value",
    [
        "ff:ff:ff:ff:ff:ff",
        "FF-FF-FF-FF-FF-FF",
        "01:00:5e:00:00:01",
        "33:33:00:00:00:01",
        "03:00:00:00:00:00",
    ],
)
def test_mac_rejects_multicast_and_broadcast(value: str) -> None:
    error = _rejects(names.mac, value)
    assert "multicast" in error.message


@pytest.mark.parametrize("value", ["00:00:00:00:00:00", "000000000000", "0000.0000.0000"])
def test_mac_rejects_all_zero(value: str) -> None:
    error = _rejects(names.mac, value)
    assert "zero" in error.message


@pytest.mark.parametrize(
    "value",
    [
        "",
        "52:54:00:ab:cd",
        "52:54:00:ab:cd:01:02",
        "52:54:00-ab-cd-01",
        "52:54:00:ab:cd:0g",
        "5:54:0:ab:cd:1",
        "52:54:00:ab:cd:01:",
        " 52:54:00:ab:cd:01",
        "52:54:00:ab:cd:01\n",
        "525400abcd0",
        "525400abcd012",
        "5254:00ab:cd01",
        "52.54.00.ab.cd.01",
        "52 54 00 ab cd 01",
        "0x525400abcd01",
        "52:54:00:ab:cd:\u0661\u0662",
        "\uff15\uff12:54:00:ab:cd:01",
        "52:54:00:ab:cd:01;reboot",
        "$(id)",
    ],
)
def test_mac_rejects_garbage(value: str) -> None:
    _rejects(names.mac, value)
    _rejects(names.mac_hexhyp, value)


@PROPERTY
@given(octets=UNICAST, upper=st.booleans())
def test_mac_spellings_round_trip(octets: bytes, upper: bool) -> None:
    expected = ":".join(f"{b:02x}" for b in octets)
    digits = octets.hex().upper() if upper else octets.hex()
    for style in ("colon", "hyphen", "cisco", "bare"):
        assert names.mac(_spell(digits, style)) == expected
    assert names.mac_hexhyp(_spell(digits, "cisco")) == expected.replace(":", "-")
    assert names.mac(expected) == expected  # idempotent


@PROPERTY
@given(octets=st.binary(min_size=6, max_size=6).filter(lambda b: bool(b[0] & 1)))
def test_mac_multicast_always_rejected(octets: bytes) -> None:
    _rejects(names.mac, octets.hex(":"))


# --- size_bytes ------------------------------------------------------------------------

KIB, MIB, GIB, TIB, PIB = (1024**i for i in range(1, 6))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1", 1),
        ("4096", 4096),
        ("512B", 512),
        ("512b", 512),
        ("007", 7),
        ("10G", 10 * GIB),
        ("10g", 10 * GIB),
        ("10Gi", 10 * GIB),
        ("10GiB", 10 * GIB),
        ("10gib", 10 * GIB),
        ("10GB", 10 * GIB),
        ("10gb", 10 * GIB),
        ("1K", KIB),
        ("1KiB", KIB),
        ("64M", 64 * MIB),
        ("2T", 2 * TIB),
        ("1P", PIB),
        ("1.5G", 3 * GIB // 2),
        ("0.5K", 512),
        ("1.0001K", 1024),  # 1024.1024 bytes, rounded down
        ("0.001K", 1),  # 1.024 bytes, rounded down
        ("8191P", 8191 * PIB),
        (str(2**63 - 1), 2**63 - 1),
        (f"{2**63 - 1}B", 2**63 - 1),
    ],
)
def test_size_bytes_accepts(value: str, expected: int) -> None:
    assert names.size_bytes(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "0",
        "0G",
        "0.0G",
        "0.0001K",
        "-1",
        "-10G",
        "+10G",
        "10 G",
        " 10G",
        "10G ",
        "10G\n",
        "G",
        "GiB",
        "1.5",
        "1.5B",
        "10X",
        "10E",
        "10Z",
        "10GiBB",
        "10Gb ",
        "10iB",
        "10BiB",
        "1e9",
        "1_000",
        "1,5G",
        "1.G",
        ".5G",
        "0x10",
        "inf",
        "nan",
        "ten",
        "10\u212a",
        "\uff11\uff10G",
        "\u0661\u0660G",
        str(2**63),
        "8192P",
        "8191.9999999P0",
        "9" * 70,
        "1" * 5000,
        "10G;reboot",
        "$(echo 1)G",
    ],
)
def test_size_bytes_rejects(value: str) -> None:
    _rejects(names.size_bytes, value)


def test_size_bytes_messages() -> None:
    assert "zero" in _rejects(names.size_bytes, "0").message
    assert "2^63-1" in _rejects(names.size_bytes, "8192P").message
    error = _rejects(names.size_bytes, "10 G")
    assert "'10 G'" in error.message
    assert error.hint is not None and "binary" in error.hint


@PROPERTY
@given(st.integers(min_value=1, max_value=2**32))
def test_size_bytes_integers_and_gigabytes(n: int) -> None:
    assert names.size_bytes(f"{n}") == n
    assert names.size_bytes(f"{n}G") == n * 2**30
    assert names.size_bytes(f"{n}GiB") == n * 2**30
    assert names.size_bytes(f"{n}gb") == n * 2**30


@PROPERTY
@given(
    whole=st.integers(min_value=0, max_value=10_000),
    frac=st.integers(min_value=0, max_value=999),
    unit=st.sampled_from(["K", "M", "G", "T"]),
)
def test_size_bytes_decimals_round_down(whole: int, frac: int, unit: str) -> None:
    scale = {"K": KIB, "M": MIB, "G": GIB, "T": TIB}[unit]
    exact = (whole * 1000 + frac) * scale  # in thousandths of a byte
    value = f"{whole}.{frac:03d}{unit}"
    if exact < 1000:
        _rejects(names.size_bytes, value)
    else:
        assert names.size_bytes(value) == exact // 1000


# --- iqn -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            "iqn.2003-01.org.linux-iscsi.storage:sn.123",
            "iqn.2003-01.org.linux-iscsi.storage:sn.123",
        ),
        ("IQN.2024-06.Lab.Example:Host-01", "iqn.2024-06.lab.example:host-01"),
        ("iqn.1991-05.com.microsoft:web01", "iqn.1991-05.com.microsoft:web01"),
        ("iqn.2024-12.zboot", "iqn.2024-12.zboot"),
        ("iqn.2024-01.lab:a:b:c", "iqn.2024-01.lab:a:b:c"),
        ("iqn.2024-01.x-y.z:0", "iqn.2024-01.x-y.z:0"),
    ],
)
def test_iqn_accepts(value: str, expected: str) -> None:
    assert names.iqn(value) == expected


def test_iqn_length_limit_is_223_bytes() -> None:
    prefix = "iqn.2024-01.lab:"
    longest = prefix + "a" * (223 - len(prefix))
    assert names.iqn(longest) == longest
    assert "223" in _rejects(names.iqn, longest + "a").message


@pytest.mark.parametrize(
    "value",
    [
        "",
        "iqn",
        "iqn.",
        "iqn.2024-01",
        "iqn.2024-01.",
        "iqn.2024-01.:x",
        "iqn.2024-01..lab",
        "iqn.2024-01.lab.",
        "iqn.2024-01.lab:",
        "iqn.2024-13.lab",
        "iqn.2024-00.lab",
        "iqn.0000-01.lab",
        "iqn.24-01.lab",
        "iqn.2024-1.lab",
        "iqn.2024/01.lab",
        "iqn.2024-01-lab",
        "iqn:2024-01.lab",
        "iqx.2024-01.lab",
        "2024-01.lab",
        "iqn.2024-01.lab_x",
        "iqn.2024-01.lab:a_b",
        "iqn.2024-01.lab:a..b",
        "iqn.2024-01.lab:a/b",
        "iqn.2024-01.lab:a b",
        "iqn.2024-01.lab:a;b",
        "iqn.2024-01.lab:$(id)",
        "iqn.2024-01.lab:a@b",
        "iqn.2024-01.lab:a\nb",
        "iqn.2024-01.lab:a\x00b",
        "iqn.2024-01.la\u212a",
        "iqn.2024-01.lab:caf\u00e9",
        " iqn.2024-01.lab",
        "iqn.2024-01.lab ",
    ],
)
def test_iqn_rejects(value: str) -> None:
    _rejects(names.iqn, value)


@pytest.mark.parametrize(
    "value", ["eui.02004567A425678D", "naa.52004567BA64678D", "EUI.02004567A425678D"]
)
def test_iqn_rejects_eui_and_naa_saying_why(value: str) -> None:
    assert "only iqn. names are supported" in _rejects(names.iqn, value).message


@PROPERTY
@given(valid_iqns())
def test_iqn_output_is_lowercase_allow_listed(value: str) -> None:
    result = names.iqn(value.upper())
    assert result == value.lower()
    assert re.fullmatch(r"[a-z0-9.:-]{1,223}", result)


# --- dataset_name ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "tank",
        "tank/zboot",
        "Tank/ZBoot",
        "rpool/data/zboot-1",
        "t/a_b.c:d-e",
        "0/1",
        "a" * 255,
        "tank/" + "b" * 250,
    ],
)
def test_dataset_name_accepts_and_keeps(value: str) -> None:
    assert names.dataset_name(value) == value


@pytest.mark.parametrize(
    "value",
    [
        "",
        "/",
        "/tank",
        "tank/",
        "tank//zboot",
        "tank/../etc",
        "tank/..",
        "..",
        ".",
        "tank/.",
        "tank/.zboot",
        "tank/-rf",
        "-tank",
        "_tank",
        "tank@snap",
        "tank/zboot@v1",
        "tank#bm",
        "tank/zb oot",
        "tank/zb%oot",
        "tank/zb;oot",
        "tank/$(id)",
        "tank/zboot\n",
        "tank/\x00",
        "tank/z\u00e9",
        "tank/\u212a",
        "a" * 256,
        "tank/" + "b" * 251,
    ],
)
def test_dataset_name_rejects(value: str) -> None:
    _rejects(names.dataset_name, value)


def test_dataset_name_messages() -> None:
    assert "snapshot" in _rejects(names.dataset_name, "tank@v1").message
    assert "empty component" in _rejects(names.dataset_name, "tank//x").message
    assert "'..'" in _rejects(names.dataset_name, "tank/..").message
