"""Where a root's CHAP secret files live (audit defects 8 and 12): one
directory per root, a name no other root can have, the old shared name
taken over only when no other root could own it, and no directory zboot
did not make ever re-moded."""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zboot.chap import Chap
from zboot.config import Config
from zboot.errors import Conflict
from zboot.ops import chap
from zboot.ops.doctor import read_secret_hosts
from zboot.ops.paths import legacy_secrets_dir, secrets_dir
from zboot.remote.base import Result
from zboot.remote.local import LocalRunner
from zboot.testing.recording import RecordingRunner

COMPONENT = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,6}", fullmatch=True).filter(
    lambda c: c not in (".", "..")
)
DATASET = st.lists(COMPONENT, min_size=1, max_size=4).map("/".join)
CHAP = Chap(user="iqn.2010-04.org.ipxe:pc01", secret="Secret0123456789")  # noqa: S106


def name_of(root: str) -> str:
    return secrets_dir(Config(root=root)).rsplit("/", 1)[1]


def decode(name: str) -> str:
    """The inverse of the naming: a run of n '_' is n // 2 of the root's own,
    then a '/' if n is odd."""
    return re.sub(r"_+", lambda m: "_" * (len(m[0]) // 2) + "/" * (len(m[0]) % 2), name)


@settings(
    max_examples=500,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(a=DATASET, b=DATASET)
def test_two_roots_never_share_a_secrets_directory(a: str, b: str) -> None:
    assert decode(name_of(a)) == a
    assert (name_of(a) == name_of(b)) == (a == b)


@pytest.mark.parametrize("pair", [("tank/lab_a", "tank/lab/a"), ("tank_lab/a", "tank/lab_a")])
def test_the_roots_the_audit_found_get_directories_of_their_own(pair: tuple[str, str]) -> None:
    assert name_of(pair[0]) != name_of(pair[1])


@settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(root=DATASET.filter(lambda r: "_" not in r))
def test_a_root_without_underscore_keeps_its_directory(root: str) -> None:
    config = Config(root=root)
    assert secrets_dir(config) == legacy_secrets_dir(config)
    assert secrets_dir(Config()) == "/etc/zboot/secrets/tank_zboot"


def server(dirs: Sequence[str], datasets: Sequence[str]) -> RecordingRunner:
    """A server with these directories and ZFS filesystems."""

    def answer(argv: tuple[str, ...], data: bytes | None) -> Result:
        out = ""
        if argv[:2] == ("sh", "-c") and "for d" in argv[2]:
            out = "".join(f"{d}\n" for d in argv[4:] if d in dirs)
        elif argv[:2] == ("zfs", "list"):
            out = "".join(f"{d}\n" for d in datasets)
        return Result(argv, 0, out.encode(), b"")

    return RecordingRunner(answer)


LAB_A = Config(root="tank/lab_a")
OLD, NEW = "/etc/zboot/secrets/tank_lab_a", "/etc/zboot/secrets/tank_lab__a"


def test_the_old_directory_is_taken_over_when_no_other_root_could_own_it() -> None:
    runner = server([OLD], ["tank", "tank/lab_a", "tank/lab_a/hosts"])
    assert chap.secrets_home(runner, LAB_A) == OLD  # reads find the files where they are
    chap.store(runner, LAB_A, {"pc01": CHAP})
    assert ("mv", OLD, NEW) in runner.commands
    assert list(runner.files) == [f"{NEW}/pc01.chap"]


def test_the_old_directory_is_refused_when_another_root_could_own_it() -> None:
    runner = server(
        [OLD], ["tank", "tank/lab_a", "tank/lab_a/hosts", "tank/lab/a", "tank/lab/a/hosts"]
    )
    with pytest.raises(Conflict, match="tank/lab/a") as err:
        read_secret_hosts(runner, LAB_A)
    assert NEW in str(err.value.hint)
    with pytest.raises(Conflict):
        chap.store(runner, LAB_A, {"pc01": CHAP})
    assert not any(argv[0] in ("mv", "mkdir", "install", "rm") for argv in runner.commands)
    assert runner.files == {}


def test_the_new_directory_wins_once_it_exists() -> None:
    runner = server([OLD, NEW], ["tank/lab/a", "tank/lab/a/hosts"])
    assert chap.secrets_home(runner, LAB_A) == NEW
    chap.remove(runner, LAB_A, ["pc01"])
    assert runner.commands[-1] == ("rm", "-f", "--", f"{NEW}/pc01.chap")


def test_store_never_re_modes_a_directory_it_did_not_make(tmp_path: Path) -> None:
    """secrets_dir = /etc once re-moded /etc to 0700: an existing top directory
    keeps its mode, the root's own gets 0700."""
    top = tmp_path / "etc"
    top.mkdir(mode=0o755)
    os.chmod(top, 0o755)  # noqa: S103 (as /etc is)
    config = Config(secrets_dir=str(top))
    chap.store(LocalRunner(), config, {"pc01": CHAP})
    assert stat.S_IMODE(top.stat().st_mode) == 0o755
    assert stat.S_IMODE(Path(secrets_dir(config)).stat().st_mode) == 0o700
    assert chap.load(LocalRunner(), config, "pc01") == CHAP


def test_store_makes_a_missing_top_directory_root_only(tmp_path: Path) -> None:
    config = Config(secrets_dir=str(tmp_path / "new" / "secrets"))
    chap.store(LocalRunner(), config, {"pc01": CHAP})
    assert stat.S_IMODE(os.stat(config.secrets_dir).st_mode) == 0o700
