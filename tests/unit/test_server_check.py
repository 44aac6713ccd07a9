"""`zboot server check`: the probe's report read, judged per engine and OS,
with install commands; the CLI's exit code and JSON; the probe script run
for real under sh with stub tools; and nothing but reads on the server."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from unittest import mock

import jsonschema
import pytest
from typer.testing import CliRunner

from zboot.cli.app import app
from zboot.config import Config, ServerConfig
from zboot.ops import server_check
from zboot.ops.server_check import PROBE, Facts, assess, parse
from zboot.remote.base import Result
from zboot.schema import envelope_schema
from zboot.testing.recording import RecordingRunner

SCHEMA = envelope_schema()
DEBIAN = """\
uname\tLinux 6.1.0-28-amd64
id\tuid=0(root) gid=0(root) groups=0(root)
os\tPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
os\tID=debian
os\tVERSION_ID="12"
tool\t/usr/sbin/zfs
tool\t/usr/sbin/zpool
tool\t/usr/bin/targetcli
tool\t/usr/bin/targetctl
tool\t/usr/sbin/tgtadm
tool\t/usr/sbin/tgt-admin
tool\t/usr/sbin/tgtd
tool\t/usr/bin/curl
python\t3.11.2
rtslib\t2.1.74
kmod\ttarget_core_mod loaded
kmod\tiscsi_target_mod loaded
kmod\ttarget_core_iblock available
kmod\tzfs loaded
zfs-version\tzfs-2.2.7-1~bpo12+1
zfs-version\tzfs-kmod-2.2.7-1~bpo12+1
pool\ttank\tONLINE
running\ttgtd
bootdir\t3
file\t/usr/lib/ipxe/undionly.kpxe
file\t/usr/lib/ipxe/snponly.efi
listen\tudp 69
http\t52-54-00-12-34-56.ipxe 200
"""
FREEBSD = """\
uname\tFreeBSD 14.1-RELEASE
id\tuid=0(root) gid=0(root) groups=0(root)
os\tNAME=FreeBSD
os\tID=freebsd
os\tVERSION_ID=14.1
tool\t/sbin/zfs
tool\t/sbin/zpool
tool\t/usr/sbin/ctld
tool\t/usr/sbin/ctladm
python\t3.11.9
zfs-version\tzfs-2.2.4-FreeBSD_g256659204
zfs-version\tzfs-kmod-2.2.4-FreeBSD_g256659204
pool\ttank\tONLINE
running\tctld
"""
OMNIOS = """\
uname\tSunOS 5.11
id\tuid=0(root) gid=0(root) groups=0(root)
os\tNAME="OmniOS"
os\tID=omnios
os\tVERSION_ID=r151050
tool\t/usr/sbin/zfs
tool\t/usr/sbin/zpool
tool\t/usr/sbin/itadm
tool\t/usr/sbin/stmfadm
tool\t/usr/bin/svcs
python\t3.12.4
pool\ttank\tONLINE
smf\tstmf online
smf\tnetwork/iscsi/target online
"""
LAB = Config(boot_url="http://10.0.2.2:8080/", portal="10.0.2.2:3260")


def by(report: server_check.Report) -> dict[str, server_check.Item]:
    return {f"{i.area} {i.name}": i for i in report.items}


def judge(text: str, config: Config = LAB, sftp: str | None = None, remote: bool = True) -> Any:
    return assess(parse(text), config, "root@storage", sftp, remote)


def test_debian_with_lio_and_tgt_is_ready_for_both() -> None:
    facts = parse(DEBIAN)
    assert facts.os.family == "debian" and facts.pool == "ONLINE"
    assert facts.zfs == {"userland": "2.2.7-1~bpo12+1", "kmod": "2.2.7-1~bpo12+1"}
    assert facts.http == ("52-54-00-12-34-56.ipxe", "200")
    report = judge(DEBIAN)
    assert report.ready and report.engine == "lio"  # auto: LIO first, as zboot picks it
    assert report.engines == {
        "lio": True,
        "tgt": True,
        "istgt": False,
        "ctld": False,
        "comstar": False,
        "none": True,
    }
    rows = by(report)
    assert rows["boot http"].ok and "serves 52-54-00-12-34-56.ipxe" in rows["boot http"].detail
    assert rows["ctld ctld"].install == "ctld is FreeBSD's: not on this system"
    assert rows["boot tftp"].ok and not rows["boot tftp"].needed  # reported, not needed
    assert rows["access sftp"].ok


def test_a_missing_part_of_the_engine_in_use_is_named_with_its_install_command() -> None:
    no_rtslib = DEBIAN.replace("rtslib\t2.1.74\n", "")
    report = judge(no_rtslib, replace(LAB, engine="lio"))
    assert not report.ready and not report.engines["lio"] and report.engines["tgt"]
    rows = by(report)
    assert rows["lio rtslib-fb"].install == "apt install python3-rtslib-fb"
    assert rows["engine lio"].detail == "not usable (usable here: tgt)"
    assert [f"{i.area} {i.name}" for i in report.missing] == ["lio rtslib-fb", "engine lio"]
    # tgt configured: LIO's lack no longer matters
    assert judge(no_rtslib, replace(LAB, engine="tgt")).ready
    stopped = DEBIAN.replace("running\ttgtd\n", "")
    rows = by(judge(stopped, replace(LAB, engine="tgt")))
    assert rows["tgt tgtd"].install == "apt install tgt && systemctl enable --now tgt"


def test_ubuntu_gets_its_own_package_names() -> None:
    ubuntu = DEBIAN.replace("ID=debian", "ID=ubuntu\nos\tID_LIKE=debian").replace(
        "kmod\tiscsi_target_mod loaded\n", ""
    )
    rows = by(judge(ubuntu))
    assert rows["lio iscsi_target_mod"].install is not None
    assert "linux-modules-extra-$(uname -r)" in rows["lio iscsi_target_mod"].install
    assert not judge(ubuntu).ready


def test_freebsd_ctld_and_omnios_comstar() -> None:
    report = judge(FREEBSD)
    assert report.ready and report.engine == "ctld" and report.engines["ctld"]
    rows = by(report)
    assert rows["istgt istgt"].install == "pkg install istgt && sysrc istgt_enable=YES"
    assert rows["lio rtslib-fb"].install == "LIO is Linux's: not on this system"
    report = judge(OMNIOS)
    assert report.ready and report.engine == "comstar"
    offline = OMNIOS.replace("smf\tstmf online", "smf\tstmf disabled")
    rows = by(judge(offline))
    assert rows["comstar stmf"].install == "svcadm enable stmf" and not judge(offline).ready


def test_no_engine_at_all_is_not_ready() -> None:
    bare = "\n".join(
        line for line in DEBIAN.splitlines() if "/t" not in line and "rtslib" not in line
    )
    report = judge(bare)
    assert report.engine == "none" and not report.ready
    assert by(report)["engine auto"].detail == "no target engine found (auto)"
    assert judge(bare, replace(LAB, engine="none")).ready  # exports off on purpose


def test_access_sudo_root_and_sftp() -> None:
    sudo = replace(LAB, server=ServerConfig(host="storage", sudo=True))
    failed = assess(
        Facts(ran=False, error="sudo: a password is required"), sudo, "storage", None, True
    )
    assert not failed.ready and failed.items[0].name == "sudo"
    assert "a password is required" in failed.items[0].detail
    assert failed.items[0].install is not None and "NOPASSWD" in failed.items[0].install
    user = DEBIAN.replace("uid=0(root) gid=0(root)", "uid=1000(admin) gid=1000(admin)")
    rows = by(judge(user))
    assert not rows["access root"].ok and "user admin (uid 1000) without sudo" in (
        rows["access root"].detail
    )
    no_sftp = judge(DEBIAN, sftp="the server refused an SFTP session")
    assert not no_sftp.ready and "Subsystem sftp" in (by(no_sftp)["access sftp"].install or "")
    assert "access sftp" not in by(judge(DEBIAN, sudo, sftp="refused"))  # files go through sudo
    assert "access sftp" not in by(judge(DEBIAN, remote=False))  # local: no SSH


def test_the_boot_side_is_reported_never_needed() -> None:
    nothing = "\n".join(
        line for line in DEBIAN.splitlines() if not line.startswith(("bootdir", "file", "http"))
    )
    report = judge(nothing)
    rows = by(report)
    assert report.ready
    assert not rows["boot dir /srv/zboot/boot"].ok and not rows["boot undionly.kpxe"].ok
    assert rows["boot undionly.kpxe"].install == "apt install ipxe"
    assert rows["boot http"].detail == "cannot tell: no curl or wget on the server"
    gone = DEBIAN.replace("http\t52-54-00-12-34-56.ipxe 200", "http\t52-54-00-12-34-56.ipxe 404")
    assert by(judge(gone))["boot http"].install == (
        "apt install nginx (serve the boot dir at the boot URL)"
    )
    empty = DEBIAN.replace("http\t52-54-00-12-34-56.ipxe 200", "http\t 403")
    assert "no file to tell" in by(judge(empty))["boot http"].detail
    service = by(judge(DEBIAN, replace(LAB, scripts="service")))
    assert "boot http" not in service  # zboot serve answers, no web server needed


# --- the CLI, against a recorded server -------------------------------------------


class Server:
    def __init__(self, probe: str, code: int = 0, err: str = "") -> None:
        self.probe, self.code, self.err = probe, code, err
        self.runner = RecordingRunner(self.respond)

    def respond(self, argv: tuple[str, ...], _: bytes | None) -> Result:
        if argv[:3] == ("sh", "-c", PROBE):
            return Result(argv, self.code, self.probe.encode(), self.err.encode())
        raise AssertionError(f"server check ran {argv!r}")


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "zboot.toml"
    path.write_text('[server]\nhost = "local"\n[boot]\nurl = "http://10.0.2.2:8080/"\n')
    return path


def check(server: Server, config: Path, *args: str) -> Any:
    with mock.patch("zboot.cli.session.LocalRunner", lambda sudo=False: server.runner):
        return CliRunner().invoke(app, ["--config", str(config), *args, "server", "check"])


def test_cli_exit_0_when_ready_and_changes_nothing(config: Path) -> None:
    server = Server(DEBIAN)
    result = check(server, config, "--json")
    out = json.loads(result.stdout)
    jsonschema.validate(out, SCHEMA)
    assert result.exit_code == 0 and out["data"]["ready"]
    assert out["data"]["engine"] == {"configured": "auto", "used": "lio", "usable": True}
    assert out["data"]["os"]["family"] == "debian"
    assert server.runner.read_only == [True]  # one probe, a read


def test_cli_exit_5_when_not_ready_with_the_report(config: Path) -> None:
    server = Server(DEBIAN.replace("pool\ttank\tONLINE\n", ""))
    result = check(server, config, "--json")
    out = json.loads(result.stdout)
    jsonschema.validate(out, SCHEMA)
    assert result.exit_code == 5 and out["status"] == "error"
    assert out["errors"][0]["kind"] == "server-not-ready"
    assert "zfs pool tank" in out["errors"][0]["message"]
    assert out["data"]["ready"] is False
    [pool] = [c for c in out["data"]["checks"] if c["item"] == "pool tank"]
    assert pool["install"] == "create it (zpool create) or give init --pool NAME"
    text = check(server, config)
    assert text.exit_code == 5
    assert "pool tank            NO" in text.stdout
    assert "to get what is missing:" in text.stdout and "verdict: NOT ready" in text.stdout


def test_cli_a_sudo_that_asks_for_a_password(tmp_path: Path) -> None:
    path = tmp_path / "zboot.toml"
    path.write_text('[server]\nhost = "local"\nsudo = true\n')
    server = Server("", 1, "sudo: a password is required\n")
    out = json.loads(check(server, path, "--json").stdout)
    jsonschema.validate(out, SCHEMA)
    assert out["exit_code"] == 5 and out["data"]["checks"][0]["item"] == "sudo"


# --- the probe script itself, under sh ----------------------------------------------

STUBS = {
    "zfs": 'if [ "$1" = version ]; then echo zfs-2.2.7-1; echo zfs-kmod-2.2.7-1; fi',
    "zpool": 'printf "%s\\tONLINE\\n" "$6"',
    "tgtadm": "exit 0",
    "ps": 'printf "init\\n/usr/sbin/tgtd\\nsshd\\nctldx\\n"',  # a path, as illumos shows it
    "curl": "printf 200",
}


@pytest.fixture
def stubs(tmp_path: Path) -> Iterator[Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in STUBS.items():
        path = bin_dir / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    for tool in ("id", "uname", "cat", "ls", "wc", "tr", "grep", "env", "printf"):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    yield bin_dir


SHELLS = [path for name in ("sh", "dash", "bash") if (path := shutil.which(name))]


@pytest.mark.parametrize("shell", SHELLS)
def test_the_probe_runs_under_sh_and_reports_what_is_there(
    stubs: Path, tmp_path: Path, shell: str
) -> None:
    boot = tmp_path / "boot"
    boot.mkdir()
    (boot / "pc01.ipxe").write_text("#!ipxe\n")
    args = ["tank", str(boot), "http://10.0.0.1/boot/"]
    ran = subprocess.run(
        [shell, "-c", PROBE, "sh", *args],
        capture_output=True,
        text=True,
        env={"PATH": str(stubs)},
        check=True,
    )
    facts = parse(ran.stdout)
    assert facts.uid == os.geteuid()
    assert facts.os.kernel == os.uname().sysname + " " + os.uname().release
    assert set(facts.tools) == {"zfs", "zpool", "tgtadm", "curl"}
    assert facts.zfs == {"userland": "2.2.7-1", "kmod": "2.2.7-1"}
    assert facts.pool == "ONLINE" and facts.running == {"tgtd"}
    assert facts.boot_files == 1 and facts.http == ("pc01.ipxe", "200")
    assert ran.stderr == ""
