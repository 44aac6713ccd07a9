"""The JSON envelope's schema, shipped inside the package so a user of a
wheel install can validate `--json` output against the exact version they run."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

FILE = "json-envelope.schema.json"


def envelope_schema() -> dict[str, Any]:
    """The schema every `--json` envelope is valid against."""
    text = resources.files(__package__).joinpath(FILE).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema
