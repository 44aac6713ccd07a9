"""Helpers for the tests of programs zboot ships to the server on stdin."""

from __future__ import annotations

import ast
import json
from typing import Any


def agent_request(stdin: bytes | None, source: str) -> dict[str, Any]:
    """The JSON request sent after the agent's source (checked to be `source`)."""
    assert stdin is not None
    sent, _, request = stdin.partition(b"\0")
    assert sent.decode() == source
    parsed: dict[str, Any] = json.loads(request)
    return parsed


def imported_modules(source: str) -> set[str]:
    """The top-level modules a program imports."""
    tree = ast.parse(source)
    modules = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    return modules | {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
    }
