"""tgt's CHAP values go into its conf file as `incominguser U P`: every value
is checked whole, a trailing newline included (`$` let one through)."""

from __future__ import annotations

import dataclasses

import pytest

from zboot.chap import Chap
from zboot.errors import InvalidInput
from zboot.targets.base import Export
from zboot.targets.tgt import TgtEngine
from zboot.testing.recording import RecordingRunner

EXPORT = Export(
    "pc1", "iqn.2026-11.lab.zboot:pc1", "/dev/zvol/tank/zboot/hosts/pc1", "iqn.2010-04.org.ipxe:pc1"
)
GOOD = Chap(
    "iqn.2010-04.org.ipxe:pc1", "Secret0123456789", "iqn.2026-11.lab.zboot:pc1", "Mutual0123"
)


@pytest.mark.parametrize("field", ["user", "secret", "mutual_user", "mutual_secret"])
def test_a_chap_value_with_a_trailing_newline_is_refused(field: str) -> None:
    bad = dataclasses.replace(GOOD, **{field: getattr(GOOD, field) + "\n"})
    runner = RecordingRunner()
    with pytest.raises(InvalidInput, match="CHAP"):
        TgtEngine(runner).apply(create=[dataclasses.replace(EXPORT, chap=bad)])
    assert runner.commands == []
