"""A diskless client: QEMU with only a NIC, booting through the chain a real
site uses. Its iPXE ROM takes DHCP, which hands it a filename that resolves to
the per-MAC script (`${mac:hexhyp}.ipxe`) in the server's boot directory; the
script decides what happens. The disk's program reports through QEMU's exit
status (isa-debug-exit) and the serial console."""

from __future__ import annotations

import fcntl
import json
import re
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .costs import timed
from .golden import FAILED
from .layout import LAN_LINKS, Layout
from .procs import LabError, stop

MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
OVMF = Path("/usr/share/qemu/OVMF.fd")
EXIT_PORT = "0xf4"
# iPXE errors end with a link to their explanation: "... (http://ipxe.org/3d0c6003)".
IPXE_ERROR_RE = re.compile(r"^.*\(https?://ipxe\.org/[0-9a-f]{8}\)\s*$", re.MULTILINE)
PROGRAM_LINE_RE = re.compile(r"ZBOOT-[A-Z]+[:=].*")
COUNTER_RE = re.compile(r"ZBOOT-COUNTER=(\d+)")
DATA_RE = re.compile(r"ZBOOT-DATA=(\d+)")  # the BIOS program's count on drive 0x81
# The golden Linux image's report: what the OS took from the iBFT, and its counter.
LINUX_RE = re.compile(r"ZBOOT-LINUX (\{.*\})")
# The writer image's report: blocks written, checksums, the kernel's errors.
WRITER_RE = re.compile(r"ZBOOT-WRITER (\{.*\})")
SAN_RE = re.compile(r"Registered SAN device (0x[0-9a-f]+)")
ANSI_RE = re.compile(r"\x1b(\[[0-9;?]*[A-Za-z]|c)")
CONSOLE_WIDTH = 80  # SeaBIOS' serial mirror wraps lines at 80 columns


def overtype(line: str) -> str:
    """What a terminal shows for a line with backspaces (iPXE erases its prompts)."""
    if "\x08" not in line:
        return line
    cells: list[str] = []
    cursor = 0
    for char in line:
        if char == "\x08":
            cursor = max(0, cursor - 1)
            continue
        if cursor < len(cells):
            cells[cursor] = char
        else:
            cells.append(char)
        cursor += 1
    return "".join(cells).rstrip()


def console_text(raw: str) -> str:
    """The serial log as readable lines: no escape codes, wrapped lines joined."""
    text = ANSI_RE.sub("", raw).replace("\r", "")
    lines: list[str] = []
    joining = False
    for line in map(overtype, text.split("\n")):
        if joining:
            lines[-1] += line
        else:
            lines.append(line)
        joining = len(line) == CONSOLE_WIDTH
    return "\n".join(lines)


@dataclass
class BootResult:
    mac: str
    firmware: str
    booted: bool  # the disk's program ran and reported a value
    counter: int | None  # the value it reported (None if it did not run or failed)
    exit_status: int | None  # QEMU's; None when the lab stopped it at the timeout
    timed_out: bool
    san_devices: list[str] = field(default_factory=list)  # "Registered SAN device 0x80"
    ipxe_errors: list[str] = field(default_factory=list)
    program_output: list[str] = field(default_factory=list)
    # The Linux image's report (counter, iBFT fields), when that image booted.
    linux: dict[str, Any] | None = None
    # The writer image's report (ZBOOT-WRITER), when that image ran.
    writer: dict[str, Any] | None = None
    # The BIOS program's count on the second drive (the host's data disk).
    data_counter: int | None = None
    seconds: float = 0.0
    log: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def normalise_mac(mac: str) -> str:
    value = mac.strip().lower().replace("-", ":")
    if not MAC_RE.match(value):
        raise LabError(f"not a MAC address: {mac!r} (want six hex pairs, e.g. 52:54:00:12:34:01)")
    if int(value[:2], 16) & 1:
        raise LabError(f"{mac} is a multicast address; a NIC needs a unicast MAC")
    return value


def network(layout: Layout, mac: str, link: int | None, rom: bool) -> list[str]:
    """The client's NIC: on QEMU's user network (its DHCP hands iPXE the
    per-MAC script URL; iPXE expands ${mac:hexhyp} itself), or, given a link,
    on the boot LAN. rom=False takes the NIC's iPXE ROM away, so UEFI
    firmware boots it with its own PXE client (the two-stage chain)."""
    nic = f"virtio-net-pci,netdev=net0,mac={mac},bootindex=1" + ("" if rom else ",romfile=")
    if link is None:
        bootfile = f"{layout.boot_url()}${{mac:hexhyp}}.ipxe"
        netdev = f"user,id=net0,bootfile={bootfile}"
    else:
        netdev = f"socket,id=net0,connect=127.0.0.1:{layout.lan_port(link)}"
    return ["-netdev", netdev, "-device", nic]


def qemu_argv(
    layout: Layout,
    mac: str,
    firmware: str,
    log: Path,
    pidfile: Path,
    link: int | None = None,
    rom: bool = True,
    disk: Path | None = None,
    cdrom: Path | None = None,
) -> list[str]:
    argv = [
        "qemu-system-x86_64",
        "-accel",
        "tcg",
        "-m",
        "512" if firmware == "uefi" else "256",
        # graphics=off makes SeaBIOS mirror the text console (iPXE) to serial
        "-machine",
        "graphics=off",
        "-display",
        "none",
        "-vga",
        "none",
        "-monitor",
        "none",
        "-serial",
        f"file:{log}",
        "-no-reboot",  # a client that gives up and reboots ends the run
        # the network first (and without a local disk, only); when booting
        # fails, reboot (and so exit) at once
        "-boot",
        "reboot-timeout=0" + (",strict=on" if disk is None and cdrom is None else ""),
        *network(layout, mac, link, rom),
        "-device",
        f"isa-debug-exit,iobase={EXIT_PORT},iosize=0x04",
        "-pidfile",
        str(pidfile),
    ]
    if firmware == "uefi":
        # OVMF's own PXE over IPv6 has nothing to answer it on the lab's LANs:
        # off, as on a site without DHCPv6, so a fall-through reaches the disk.
        argv += ["-bios", str(OVMF), "-fw_cfg", "name=opt/org.tianocore/IPv6PXESupport,string=n"]
    if disk is not None:  # a local disk, the firmware's second boot entry
        argv += [
            "-drive",
            f"file={disk},format=raw,if=none,id=local",
            "-device",
            "virtio-blk-pci,drive=local,bootindex=2",
        ]
    if cdrom is not None:  # an installer CD, the same way
        argv += [
            "-drive",
            f"file={cdrom},format=raw,if=none,id=cd,media=cdrom,readonly=on",
            "-device",
            "ide-cd,drive=cd,bootindex=3",
        ]
    return argv


def boot(
    layout: Layout,
    mac: str,
    firmware: str = "bios",
    timeout: float = 120,
    *,
    lan: bool = False,
    rom: bool = True,
    disk: Path | None = None,
    cdrom: Path | None = None,
    log: Path | None = None,
) -> BootResult:
    """Power on a diskless client and wait until it exits or the timeout ends
    it; lan: on the boot LAN (real DHCP and TFTP) instead of QEMU's network;
    disk, cdrom: a local disk (raw image) and a CD (ISO image) after the
    network in its boot order; log: its serial console's file (one of its own
    under the lab's clients directory by default)."""
    where = "boot LAN" if lan else "QEMU network"
    log = log or console_log(layout, mac, firmware)
    with timed(f"client boot ({firmware}, {where})"):
        if not lan:
            return _boot(layout, mac, firmware, timeout, None, rom, disk, cdrom, log)
        with lan_link(layout) as link:
            return _boot(layout, mac, firmware, timeout, link, rom, disk, cdrom, log)


def console_log(layout: Layout, mac: str, firmware: str) -> Path:
    """A new file for a client's serial console."""
    mac = normalise_mac(mac)
    layout.clients.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    unique = f"{stamp}-{time.time_ns() % 10**6:06d}"
    return layout.clients / f"{mac.replace(':', '-')}-{firmware}-{unique}.log"


class Background:
    """A client booting (client.boot on the boot LAN) in a thread of its own,
    while the caller acts on the server; its console can be read meanwhile."""

    def __init__(self, layout: Layout, mac: str, firmware: str = "bios", timeout: float = 300):
        self.log = console_log(layout, mac, firmware)
        self._future: Future[BootResult] = Future()

        def run() -> None:
            try:
                self._future.set_result(
                    boot(layout, mac, firmware, timeout, lan=True, log=self.log)
                )
            except BaseException as error:  # handed to whoever waits for the result
                self._future.set_exception(error)

        threading.Thread(target=run, name=f"client {mac}", daemon=True).start()

    def console(self) -> str:
        """The console so far, as readable lines."""
        return console_text(self.log.read_text(errors="replace")) if self.log.exists() else ""

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        """The last match of pattern on the console, once there is one; a
        LabError if the client ends or the timeout passes first."""
        deadline = time.monotonic() + timeout
        while True:
            found = list(re.finditer(pattern, self.console()))
            if found:
                return found[-1]
            if self._future.done():
                raise LabError(f"the client ended before {pattern!r}: {self.result()}")
            if time.monotonic() > deadline:
                raise LabError(f"no {pattern!r} on {self.log} after {timeout:.0f}s")
            time.sleep(0.5)

    def stop(self) -> None:
        """Power the client off now, if it still runs (by its QEMU's PID)."""
        pidfile = self.log.with_suffix(".pid")
        try:
            pid = int(pidfile.read_text())
        except (OSError, ValueError):
            return
        if not self._future.done():
            stop(pid)

    def done(self) -> bool:
        """Whether the client has ended."""
        return self._future.done()

    def result(self, timeout: float | None = None) -> BootResult:
        """Wait for the client to end (it powers off, or boot's timeout stops it)."""
        return self._future.result(timeout)


@contextmanager
def lan_link(layout: Layout, wait: float = 600) -> Iterator[int]:
    """A free link to the boot LAN, held (by a lock file) while a client uses it."""
    layout.run.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait
    while True:
        for link in range(LAN_LINKS):
            with (layout.run / f"lan{link}.lock").open("a") as held:
                try:
                    fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue
                yield link
                return
        if time.monotonic() > deadline:
            raise LabError(f"no free link to the boot LAN after {wait:.0f}s")
        time.sleep(1)


def _boot(
    layout: Layout,
    mac: str,
    firmware: str,
    timeout: float,
    link: int | None,
    rom: bool,
    disk: Path | None,
    cdrom: Path | None,
    log: Path,
) -> BootResult:
    mac = normalise_mac(mac)
    if firmware not in ("bios", "uefi"):
        raise LabError(f"unknown firmware {firmware!r}: use bios or uefi")
    pidfile = log.with_suffix(".pid")
    start = time.monotonic()
    with tempfile.TemporaryFile() as stderr:
        proc = subprocess.Popen(
            qemu_argv(layout, mac, firmware, log, pidfile, link, rom, disk, cdrom),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )
        try:
            timed_out = wait_for_power_off(proc, log, start + timeout)
        finally:
            pidfile.unlink(missing_ok=True)
        stderr.seek(0)
        err = stderr.read()
    seconds = time.monotonic() - start
    if err:
        with log.open("ab") as out:
            out.write(b"\n--- qemu stderr ---\n" + err)
    status = None if timed_out else proc.returncode
    return interpret(mac, firmware, status, timed_out, log, seconds)


# The Linux image's last line before it powers off: the counter and the
# data were synced before it, and all it does after is `sleep 1; poweroff
# -f`, seconds under emulation (and once hung: a kernel worker stuck after
# the report, seen in CI on UEFI with iscsid running). So once the whole
# line is out, the machine gets POWER_OFF_GRACE seconds, then the lab
# switches it off.
FINAL_REPORTS = ("ZBOOT-LINUX {", "ZBOOT-WRITER {")
POWER_OFF_GRACE = 0.5


def wait_for_power_off(proc: subprocess.Popen[bytes], log: Path, deadline: float) -> bool:
    """Wait for the client's QEMU to end; stop it at the deadline (True:
    timed out) or POWER_OFF_GRACE seconds after its final report (False)."""
    reported_at: float | None = None
    while proc.poll() is None:
        now = time.monotonic()
        if reported_at is None and final_report_in(log):
            reported_at = now
        late = reported_at is not None and now - reported_at > POWER_OFF_GRACE
        if now > deadline or late:
            stop(proc.pid)
            proc.wait()
            return not late
        time.sleep(0.25)
    return False


def final_report_in(log: Path) -> bool:
    """Is a final report line in the console log, whole (its newline out)?"""
    try:
        with log.open("rb") as console:
            console.seek(max(0, console.seek(0, 2) - 65536))
            tail = console.read().decode(errors="replace")
    except OSError:
        return False
    return any("\n" in tail[at:] for line in FINAL_REPORTS if (at := tail.rfind(line)) >= 0)


def interpret(
    mac: str, firmware: str, status: int | None, timed_out: bool, log: Path, seconds: float
) -> BootResult:
    text = console_text(log.read_text(errors="replace")) if log.exists() else ""
    # isa-debug-exit makes QEMU exit with (value << 1) | 1; the programs never
    # report 0, so 1 is QEMU's own error status.
    reported = status // 2 if status is not None and status % 2 == 1 and status > 1 else None
    counter = reported if reported is not None and reported != FAILED else None
    linux = linux_report(text)
    if linux is not None:
        counter = linux["counter"] if isinstance(linux.get("counter"), int) else None
    return BootResult(
        mac=mac,
        firmware=firmware,
        booted=reported is not None or counter is not None,
        counter=counter,
        exit_status=status,
        timed_out=timed_out,
        san_devices=SAN_RE.findall(text),
        ipxe_errors=[m.strip() for m in IPXE_ERROR_RE.findall(text)],
        program_output=PROGRAM_LINE_RE.findall(text),
        linux=linux,
        writer=writer_report(text),
        data_counter=int(found[-1]) if (found := DATA_RE.findall(text)) else None,
        seconds=round(seconds, 1),
        log=str(log),
    )


def linux_report(text: str) -> dict[str, Any] | None:
    """The Linux image's last report line, parsed (None if there is none)."""
    return last_json(LINUX_RE, text)


def writer_report(text: str) -> dict[str, Any] | None:
    """The writer image's report line (ZBOOT-WRITER {...}), parsed (None if
    there is none): blocks, seconds, write_failures, sha_written, sha_read,
    stalls, io_errors, conn_errors, recovered."""
    return last_json(WRITER_RE, text)


def last_json(pattern: re.Pattern[str], text: str) -> dict[str, Any] | None:
    """The JSON object of pattern's last line in text; {"unreadable": line}
    when it is not one (kernel lines may carry control characters: allowed)."""
    found = pattern.findall(text)
    if not found:
        return None
    try:
        value = json.loads(found[-1], strict=False)
    except json.JSONDecodeError:
        return {"unreadable": found[-1]}
    return value if isinstance(value, dict) else {"unreadable": found[-1]}
