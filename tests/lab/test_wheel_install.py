"""zboot as a user installs it: the sdist is built, the wheel is built from
the sdist (so the sdist holds everything), and the wheel goes into a clean
virtualenv with no checkout on its path and no system packages. From there
`zboot --version` answers, the schema it ships loads, and a dry run against
the lab plans a real provisioning."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import jsonschema
import pytest
from zboot_cli import Zboot

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]


def built(out: Path) -> tuple[Path, Path]:
    """sdist, then the wheel from it (python -m build's default)."""
    subprocess.run(
        [sys.executable, "-m", "build", "-q", "--outdir", str(out), str(REPO)],
        check=True,
        capture_output=True,
    )
    [sdist] = out.glob("zboot-*.tar.gz")
    [wheel] = out.glob("zboot-*.whl")
    return sdist, wheel


def test_the_wheel_installs_alone_and_plans_a_clone_on_the_lab(
    zboot: Zboot, tmp_path: Path
) -> None:
    sdist, wheel = built(tmp_path / "dist")
    with zipfile.ZipFile(wheel) as whl:
        names = whl.namelist()
    assert "zboot/schema/json-envelope.schema.json" in names
    assert not [n for n in names if n.startswith(("tests/", "contrib/"))]
    with tarfile.open(sdist) as tar:
        assert any(n.endswith("/zboot/schema/json-envelope.schema.json") for n in tar.getnames())

    venv = tmp_path / "venv"
    subprocess.run(["/usr/bin/python3", "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", str(wheel)],
        check=True,
    )
    env = {k: v for k, v in zboot.env.items() if k != "PYTHONPATH"}
    version = subprocess.run(
        [str(venv / "bin" / "zboot"), "--version"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
        env=env,
    ).stdout
    ours = subprocess.run(
        [sys.executable, "-c", "import importlib.metadata as m; print(m.version('zboot'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert version.split() == ["zboot", ours]
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import zboot; print(zboot.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    ).stdout
    assert where.startswith(str(venv)), where

    # A dry run against the lab: it reads the server for real, plans, changes nothing.
    zboot("image", "create", "wheelgold", "--size", "16M")
    zboot("image", "snapshot", "wheelgold")
    dry = subprocess.run(
        [
            str(venv / "bin" / "zboot"),
            "--json",
            "--dry-run",
            "clone",
            "wheelgold",
            "wheelpc",
            "--mac",
            "52:54:00:77:00:01",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    assert dry.returncode == 0, dry.stderr
    envelope = json.loads(dry.stdout)
    schema = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import json, zboot.schema as s; print(json.dumps(s.envelope_schema()))",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    ).stdout
    jsonschema.validate(envelope, json.loads(schema))
    assert envelope["status"] == "ok"
    planned = envelope["data"]["planned"]
    assert any("zfs clone" in step and "wheelpc" in step for step in planned), planned
    assert zboot("list")["data"] == []  # the dry run made nothing
