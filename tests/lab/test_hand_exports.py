"""A zvol exported by hand through LIO and through tgt: the allowed initiator
logs in with libiscsi and reads the zvol's bytes; any other name is refused."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from zboot_lab import exports, iscsi, zvols
from zboot_lab.layout import POOL, Layout

pytestmark = pytest.mark.lab

ALLOWED = "iqn.2026-11.lab.zboot:allowed"
INTRUDER = "iqn.2026-11.lab.zboot:intruder"
SIZE = 4 * 1024 * 1024
# How each engine turns a login from a name it does not know away: LIO says
# so; tgt does not even admit the target exists for that initiator.
REFUSAL = {"lio": "Authorization failure(514)", "tgt": "Target not found(515)"}


@pytest.fixture(scope="module")
def zvol(
    lab_session: Layout,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, bytes]]:
    """One zvol of random bytes, shared by the module's tests (each export of
    it is read-only for them)."""
    name = f"{POOL}/export-{uuid.uuid4().hex[:8]}"
    data = os.urandom(SIZE)
    image = tmp_path_factory.mktemp("export") / "data.img"
    image.write_bytes(data)
    zvols.import_image(lab_session, image, name)
    yield name, data
    zvols.destroy(lab_session, name)


Export = tuple[str, str, int, bytes, str]


@pytest.fixture(scope="module", params=["lio", "tgt"])
def exported(
    request: pytest.FixtureRequest, lab_session: Layout, zvol: tuple[str, bytes]
) -> Iterator[Export]:
    """(host-side portal, target IQN, LUN, expected bytes, engine) for one engine."""
    name, data = zvol
    engine = request.param
    iqn = f"iqn.2026-11.lab.zboot:{engine}-{name.rsplit('-', 1)[1]}"
    lab = lab_session
    if engine == "lio":
        exports.lio_export(lab, name, iqn, ALLOWED)
        yield f"127.0.0.1:{lab.lio_port}", iqn, 0, data, engine
        exports.lio_unexport(lab, name, iqn)
    else:
        tid = 100 + int(name.rsplit("-", 1)[1], 16) % 800
        exports.tgt_export(lab, tid, name, iqn, ALLOWED)
        yield f"127.0.0.1:{lab.tgt_port}", iqn, 1, data, engine
        exports.tgt_unexport(lab, tid)


def test_allowed_initiator_reads_the_zvol(lab: Layout, exported: Export, tmp_path: Path) -> None:
    portal, iqn, lun, data, _ = exported
    out = tmp_path / "read.img"
    iscsi.read_lun(portal, iqn, lun, ALLOWED, out)
    assert out.read_bytes() == data


def test_other_initiator_is_refused(lab: Layout, exported: Export) -> None:
    portal, iqn, lun, _, engine = exported
    allowed = iscsi.inquiry(portal, iqn, lun, ALLOWED)
    assert allowed.returncode == 0, allowed.stderr
    refused = iscsi.inquiry(portal, iqn, lun, INTRUDER)
    assert refused.returncode != 0
    assert "Login Failed" in refused.stderr
    assert REFUSAL[engine] in refused.stderr
