"""The lab as a user meets it: ports on loopback only, `lab env`, `lab status`."""

from __future__ import annotations

import json
import subprocess
import tomllib
from pathlib import Path

import pytest
from zboot_lab import vm
from zboot_lab.layout import LAN_LINKS, Layout

pytestmark = pytest.mark.lab

LAB = Path(__file__).resolve().parents[2] / "contrib" / "lab" / "lab"


def test_every_port_the_vm_listens_on_is_on_loopback(lab: Layout) -> None:
    pid = vm.running_pid(lab)
    assert pid is not None
    listening = subprocess.run(
        ["ss", "-ltnpH"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    mine = [line.split()[3] for line in listening if f"pid={pid}," in line]
    lan_links = [lab.lan_port(link) for link in range(LAN_LINKS)]  # the boot LAN's
    assert sorted(int(a.rsplit(":", 1)[1]) for a in mine) == sorted([*lab.forwards(), *lan_links])
    assert all(address.startswith("127.0.0.1:") for address in mine), mine


def test_env_exports_a_config_that_points_at_the_running_lab(lab: Layout) -> None:
    out = subprocess.run([str(LAB), "env"], capture_output=True, text=True, check=True).stdout
    exports = dict(line.removeprefix("export ").split("=", 1) for line in out.splitlines())
    config = tomllib.loads(Path(exports["ZBOOT_CONFIG"]).read_text())
    assert config["server"]["port"] == lab.ssh_port
    assert Path(config["server"]["key"]).is_file()
    assert config["boot"]["url"] == f"http://10.0.2.2:{lab.http_port}/"


def test_status_reports_a_reachable_vm(lab: Layout) -> None:
    result = subprocess.run([str(LAB), "status", "--json"], capture_output=True, text=True)
    status = json.loads(result.stdout)
    assert result.returncode == 0
    assert status["running"] and status["ssh"]
    assert status["pid"] == vm.running_pid(lab)
