"""Runs the backend contract suite (tests/contract) on the storage server,
where both backends can reach the pool, and checks that every case ran."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from zboot_lab.layout import POOL, Layout
from zboot_lab.remote import ssh

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]


def test_both_backends_pass_the_contract_on_the_real_pool(lab: Layout) -> None:
    line = (
        f"cd {shlex.quote(str(REPO))} && ZBOOT_CONTRACT_POOL={POOL} "
        f"PYTHONDONTWRITEBYTECODE=1 .venv/bin/python -m pytest -p no:cacheprovider "
        "-p no:hypothesispytest -p no:xdist "
        "-q tests/contract"
    )
    result = ssh(lab, ["sh", "-c", line], check=False)
    out = result.stdout.decode(errors="replace")
    assert result.returncode == 0, out + result.stderr.decode(errors="replace")
    cases = len(
        re.findall(
            r"^def test_",
            (REPO / "tests/contract/test_backend_contract.py").read_text(),
            re.MULTILINE,
        )
    )
    assert re.search(rf"\b{2 * cases} passed\b", out), out
