"""The real zboot CLI, run as a user would against the lab, each answer checked
against the --json schema."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import jsonschema
from zboot_lab.costs import timed
from zboot_lab.layout import POOL, Layout
from zboot_lab.remote import ssh, ssh_text

from zboot.schema import envelope_schema

ENVELOPE_KEYS = {"version", "command", "status", "exit_code", "data", "errors"}
SCHEMA = envelope_schema()


class Zboot:
    def __init__(self, config: Path, root: str) -> None:
        self.env = dict(os.environ, ZBOOT_CONFIG=str(config))
        self.root = root
        self.stderr = ""  # of the last call, e.g. the commands `-v` lists

    def _run(self, args: tuple[str, ...], stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
        with timed("zboot command (over SSH)"):
            return subprocess.run(
                [sys.executable, "-m", "zboot", "--json", *args],
                input=stdin,
                capture_output=True,
                env=self.env,
                timeout=600,
            )

    def raw(self, *args: str) -> dict[str, Any]:
        """Run zboot and return its envelope, whatever the outcome."""
        raw = self._run(args)
        try:
            out: dict[str, Any] = json.loads(raw.stdout)
        except ValueError:
            return {}
        return out

    def __call__(self, *args: str, code: int = 0, stdin: bytes = b"") -> dict[str, Any]:
        raw = self._run(args, stdin)
        result = subprocess.CompletedProcess(
            raw.args, raw.returncode, raw.stdout.decode(), raw.stderr.decode()
        )
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


@contextmanager
def zboot_root(lab: Layout, work: Path) -> Iterator[Zboot]:
    """zboot with a config of its own in work and a root dataset of its own,
    removed afterwards with every host's export; for a test that needs a
    second root beside the `zboot` fixture's."""
    root = f"{POOL}/t-{uuid.uuid4().hex[:8]}"
    text = lab.config.read_text().replace(f'root = "{POOL}/zboot"', f'root = "{root}"')
    work.mkdir(parents=True, exist_ok=True)
    config = work / "zboot.toml"
    config.write_text(text)
    run = Zboot(config, root)
    try:
        yield run
    finally:
        # the hosts' disks, read straight from ZFS (cheaper than `zboot list`)
        names = ssh_text(
            lab,
            [
                "sh",
                "-c",
                'zfs list -H -o name -d 1 -t volume "$1/hosts" 2>/dev/null | sed "s|.*/||"; true',
                "sh",
                root,
            ],
        ).split()
        if names:  # one batch: one engine call takes every export down
            run.raw("destroy", *names, "--yes", "--force")
        # the root's dataset, and its (now empty) directory of secret files
        secrets = next(
            (line.split('"')[1] for line in text.splitlines() if line.startswith("secrets_dir")),
            "/etc/zboot/secrets",
        )
        ssh(
            lab,
            [
                "sh",
                "-c",
                'zfs destroy -r "$1" 2>/dev/null; rmdir "$2" 2>/dev/null; true',
                "sh",
                root,
                f"{secrets}/{root.replace('/', '_')}",
            ],
        )
