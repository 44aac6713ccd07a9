"""The real zboot CLI, run as a user would against the lab, each answer checked
against the --json schema."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
from zboot_lab.costs import timed

ENVELOPE_KEYS = {"version", "command", "status", "exit_code", "data", "errors"}
SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "docs" /
                     "json-envelope.schema.json").read_text())


class Zboot:
    def __init__(self, config: Path, root: str) -> None:
        self.env = dict(os.environ, ZBOOT_CONFIG=str(config))
        self.root = root
        self.stderr = ""  # of the last call, e.g. the commands `-v` lists

    def raw(self, *args: str) -> dict[str, Any]:
        """Run zboot and return its envelope, whatever the outcome."""
        with timed("zboot command (over SSH)"):
            raw = subprocess.run([sys.executable, "-m", "zboot", "--json", *args],
                                 capture_output=True, env=self.env, timeout=600)
        try:
            out: dict[str, Any] = json.loads(raw.stdout)
        except ValueError:
            return {}
        return out

    def __call__(self, *args: str, code: int = 0, stdin: bytes = b"") -> dict[str, Any]:
        with timed("zboot command (over SSH)"):
            raw = subprocess.run([sys.executable, "-m", "zboot", "--json", *args], input=stdin,
                                 capture_output=True, env=self.env, timeout=600)
        result = subprocess.CompletedProcess(raw.args, raw.returncode, raw.stdout.decode(),
                                             raw.stderr.decode())
        self.stderr = result.stderr
        assert result.returncode == code, (args, result.stdout, result.stderr)
        out: dict[str, Any] = json.loads(result.stdout)
        jsonschema.validate(out, SCHEMA)
        assert set(out) == ENVELOPE_KEYS
        assert out["version"] == 1 and out["exit_code"] == code
        assert out["status"] == ("ok" if code == 0 else "error")
        if code:
            assert out["errors"] and {"kind", "code", "message", "hint"} <= set(out["errors"][0])
        return out
