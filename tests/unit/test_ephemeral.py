"""Ephemeral hosts: the record's flags and what they mean at boot."""

from __future__ import annotations

from zboot.ops.state import HostRecord


def test_an_ephemeral_host_resets_at_boot_unless_told_to_keep() -> None:
    assert HostRecord.of({"ephemeral": "on"}).resets_at_boot
    assert not HostRecord.of({"ephemeral": "on", "keep": "on"}).resets_at_boot
    assert not HostRecord.of({}).resets_at_boot
    assert not HostRecord.of({"keep": "on"}).resets_at_boot
    assert HostRecord.of({"ephemeral": "on", "keep": "on"}).keep == "on"
