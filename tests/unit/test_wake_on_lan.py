"""`zboot power on`: the magic packet, the one command that sends every
host's packet from the server, the refusals, the dry run, and the server
side's own checks of its arguments (run here, where it never reaches a
socket: nothing is broadcast from this machine)."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any
from unittest import mock

import jsonschema
import pytest
from test_ops import CONFIG, world
from typer.testing import CliRunner
from zfs_samples import GET as ONE_HOST_GET
from zfs_samples import LIST as ONE_HOST_LIST

from zboot.cli.app import app
from zboot.config import ServeConfig
from zboot.errors import InvalidInput, NotFound, ServerError
from zboot.names import HostName
from zboot.ops.context import Context
from zboot.ops.power import BOOTSTRAP, SENDER, magic_packet, power_on
from zboot.remote.base import Result
from zboot.remote.local import LocalRunner
from zboot.remote.plan import PlanRunner
from zboot.remote.python import python_argv
from zboot.schema import envelope_schema
from zboot.testing.recording import RecordingRunner
from zboot.zfs.cli import ZfsCli

SCHEMA = envelope_schema()
PC01 = "52:54:00:aa:00:01"  # zfs_samples' pc01
PC02 = "52:54:00:aa:00:02"
# zfs_samples' state with a second host, pc02
LIST = (
    ONE_HOST_LIST
    + "tank/zboot/hosts/pc02\tvolume\t8192\t69632\t4194304\ttank/zboot/images/golden@v1"
    "\t1795239247\t1.33\n"
)
GET = ONE_HOST_GET + "".join(
    f"tank/zboot/hosts/pc02\torg.zboot:{k}\t{v}\n"
    for k, v in [("kind", "host"), ("mac", PC02), ("image", "golden"), ("state", "ready")]
)
LAN = replace(CONFIG, serve=ServeConfig(interface="eth1"))


def context(runner: Any, config: Any = LAN) -> Context:
    def no_engine() -> Any:
        raise AssertionError("power on needs no target engine")

    return Context(config, runner, ZfsCli(runner), no_engine)


def sends(runner: RecordingRunner) -> list[tuple[str, ...]]:
    return [c for c in runner.commands if c[0] == "env"]


def test_a_magic_packet_is_six_ff_bytes_then_the_mac_sixteen_times() -> None:
    packet = magic_packet("52:54:00:ab:cd:01")
    assert len(packet) == 102
    assert packet[:6] == b"\xff" * 6
    assert packet[6:] == bytes([0x52, 0x54, 0x00, 0xAB, 0xCD, 0x01]) * 16


def test_every_hosts_packet_goes_with_one_command_and_an_unknown_host_fails_alone() -> None:
    runner = world(LIST, GET)
    wakes = power_on(context(runner), [HostName("pc01"), HostName("nope"), HostName("pc02")])
    assert [(w.host, w.mac) for w in wakes] == [("pc01", PC01), ("nope", ""), ("pc02", PC02)]
    assert wakes[0].error is None and wakes[2].error is None
    assert isinstance(wakes[1].error, NotFound)
    [send] = sends(runner)
    assert send == tuple(python_argv(BOOTSTRAP, "eth1", PC01, PC02, site=False))
    assert runner.inputs[runner.commands.index(send)] == SENDER
    assert runner.read_only[runner.commands.index(send)] is False  # a change


def test_without_a_boot_lan_interface_nothing_reaches_the_server() -> None:
    runner = world()
    with pytest.raises(InvalidInput, match=r"\[serve\] interface") as refused:
        power_on(context(runner, CONFIG), [HostName("pc01")])
    assert "boot LAN" in (refused.value.hint or "")
    assert runner.commands == []


def test_a_dry_run_lists_the_send_and_sends_nothing() -> None:
    inner = world()
    plan = PlanRunner(inner, execute=False)
    [wake] = power_on(context(plan), [HostName("pc01")])
    assert wake.error is None
    assert sends(inner) == []  # the state was read, nothing was sent
    [planned] = plan.changes
    assert planned.endswith(f" -c import os; os.chdir('/'); {BOOTSTRAP} eth1 {PC01}")


def test_when_the_server_cannot_send_every_host_sent_for_fails() -> None:
    def respond(argv: tuple[str, ...], data: bytes | None) -> Result:
        if argv[0] == "env":
            return Result(argv, 1, b"", b"wake-on-lan: interface eth1: No such device\n")
        return state.run(argv, input=data, check=False)

    state = world(LIST, GET)
    wakes = power_on(context(RecordingRunner(respond)), [HostName("pc01"), HostName("pc02")])
    for wake in wakes:
        assert isinstance(wake.error, ServerError)
        assert "eth1: No such device" in wake.error.message


def run_sender(*args: str) -> Result:
    """The server side, run on this machine exactly as zboot runs it there."""
    return LocalRunner().run(python_argv(BOOTSTRAP, *args, site=False), input=SENDER, check=False)


@pytest.mark.parametrize(
    "args",
    [
        ("eth1",),  # no MAC
        ("eth1;reboot", PC01),
        ("-eth1", PC01),
        ("a" * 16, PC01),
        ("eth1", "ff:ff:ff:ff:ff:ff"),  # broadcast
        ("eth1", "01:00:5e:00:00:01"),  # multicast
        ("eth1", "00:00:00:00:00:00"),
        ("eth1", "52:54:00:AA:00:01"),  # zboot sends the lowercase form only
        ("eth1", "52-54-00-aa-00-01"),
        ("eth1", PC01, "52:54:00:aa:00:0"),  # one bad MAC: none is sent
        ("eth1", PC01 + "\n"),
    ],
)
def test_the_server_side_refuses_bad_arguments_before_any_socket(args: tuple[str, ...]) -> None:
    result = run_sender(*args)
    assert result.returncode == 2, result
    assert result.stderr.startswith(b"wake-on-lan: ")


def test_the_server_side_reports_an_interface_it_cannot_bind() -> None:
    result = run_sender("zbnope0", PC01)  # no such interface: nothing leaves
    assert result.returncode == 1, result
    assert b"interface zbnope0: " in result.stderr


def test_a_batch_reports_a_row_per_host_and_exits_with_the_first_failure(tmp_path: Path) -> None:
    config = tmp_path / "zboot.toml"
    config.write_text('[zfs]\npool = "tank"\n[serve]\ninterface = "eth1"\n')
    runner = world(LIST, GET)
    with (
        mock.patch("zboot.cli.session.LocalRunner", lambda **_: runner),
        mock.patch("zboot.zfs.lzc.lzc_available", lambda: False),
    ):
        text = CliRunner().invoke(app, ["--config", str(config), "power", "on", "pc01", "nope"])
        out = CliRunner().invoke(
            app, ["--config", str(config), "--json", "power", "on", "pc02", "nope"]
        )
    assert text.exit_code == 3, text.output
    assert re.search(rf"(?m)^pc01 +sent +{PC01} on eth1$", text.stdout), text.stdout
    assert re.search(r"(?m)^nope +failed +no host named 'nope'$", text.stdout), text.stdout
    assert "1 sent, 1 failed" in text.stdout
    envelope = json.loads(out.stdout)
    jsonschema.validate(envelope, SCHEMA)
    assert envelope["data"]["interface"] == "eth1"
    assert [(h["host"], h["ok"], h["mac"]) for h in envelope["data"]["hosts"]] == [
        ("pc02", True, PC02),
        ("nope", False, None),
    ]
    assert len(sends(runner)) == 2  # one command per run
