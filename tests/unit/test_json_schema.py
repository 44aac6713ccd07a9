"""The --json schema: every command has a data shape, and the shapes bite."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
import typer

from zboot.cli.app import app
from zboot.cli.output import envelope
from zboot.schema import envelope_schema

SCHEMA = envelope_schema()


def command_names(group: typer.Typer, prefix: str = "") -> set[str]:
    names = {prefix + (c.name or "") for c in group.registered_commands}
    for sub in group.registered_groups:
        if sub.typer_instance is not None:
            names |= command_names(sub.typer_instance, f"{prefix}{sub.name} ")
    return names


def valid(doc: dict[str, Any]) -> bool:
    return jsonschema.Draft202012Validator(SCHEMA).is_valid(doc)


def test_every_command_has_a_data_shape() -> None:
    assert command_names(app) == set(SCHEMA["$defs"])


IMAGE_ROW = {
    "name": "win11",
    "state": "ready",
    "size": 68719476736,
    "used": 4096,
    "versions": 2,
    "latest": "v2",
    "hosts": 3,
}


def test_a_well_formed_result_passes() -> None:
    assert valid(envelope("image list", [IMAGE_ROW]))
    assert valid(envelope("image list", [IMAGE_ROW | {"latest": None, "versions": 0}]))
    assert valid(
        envelope(
            "prune",
            {
                "dry_run": True,
                "planned": ["zfs destroy x"],
                "result": {"pruned": ["pc1-20261121-101010"]},
            },
        )
    )
    assert valid(
        envelope(
            "destroy",
            None,
            [{"kind": "not-found", "code": 3, "message": "no host", "hint": None}],
            3,
        )
    )


@pytest.mark.parametrize(
    "doc",
    [
        envelope("image list", [IMAGE_ROW | {"size": "64.0G"}]),  # sizes are numbers
        envelope("image list", {"name": "win11"}),  # a list, not one object
        envelope("prune", {"dry_run": True, "planned": "zfs destroy x", "result": {"pruned": []}}),
        envelope("prune", {"dry_run": True, "planned": [], "result": {"gone": []}}),
        envelope("clone", {"host": "pc1", "mac": "52:54:00:00:00:01"}),  # record incomplete
        envelope("no such command", {}),
        envelope(
            "destroy",
            {"destroyed": []},
            [{"kind": "not-found", "code": 3, "message": "no host", "hint": None}],
            3,
        ),
    ],
    ids=[
        "size-as-text",
        "object-for-list",
        "planned-as-text",
        "dry-run-result",
        "clone-record",
        "unknown-command",
        "data-on-failure",
    ],
)
def test_a_malformed_result_fails(doc: dict[str, Any]) -> None:
    assert not valid(doc)


RECORD = {
    "mac": "52:54:00:00:00:01",
    "image": "win11",
    "version": "v1",
    "origin": "tank/zboot/images/win11@v1",
    "created": "2026-11-21T10:00:00Z",
    "mode": "normal",
    "initiator": "iqn.2010-04.org.ipxe:pc1",
    "state": "ready",
}
FAILED = {"kind": "conflict", "code": 4, "message": "host pc2: exists", "hint": None}


def test_a_batch_with_a_failed_host_carries_data_and_errors() -> None:
    hosts = [
        {"host": "pc1", "ok": True, "record": RECORD, "chap_credentials": None, "error": None},
        {"host": "pc2", "ok": False, "record": None, "chap_credentials": None, "error": FAILED},
    ]
    batch = {"image": "win11", "cloned": 1, "failed": 1, "hosts": hosts}
    assert valid(envelope("clone", batch, [FAILED], 4))
    assert valid(envelope("clone", batch | {"failed": 0}))
    assert not valid(envelope("clone", batch | {"hosts": [hosts[0] | {"record": {}}]}))
    assert not valid(envelope("list", batch, [FAILED], 4))  # data on failure: batches only


def test_a_destroy_batch_with_a_failed_host() -> None:
    hosts = [
        {"host": "pc1", "ok": True, "destroyed": ["tank/zboot/hosts/pc1"], "error": None},
        {"host": "pc2", "ok": False, "destroyed": [], "error": FAILED},
    ]
    data = {"destroyed": ["tank/zboot/hosts/pc1"], "hosts": hosts}
    assert valid(envelope("destroy", data, [FAILED], 4))
    assert not valid(envelope("destroy", {"destroyed": []}, [FAILED], 4))  # says who failed
