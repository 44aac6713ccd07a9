"""Each host's iPXE script, named by MAC (`<mac-hexhyp>.ipxe`, what iPXE's
`${mac:hexhyp}` expands to), for the mode the host is in.

normal: set the initiator name (and CHAP), `sanboot` the host's disk; on a
failure say why and retry, then reboot. install: keep the disk attached
(`keep-san`, `sanhook --drive 0x80`) and boot WinPE through wimboot, or
`exit` to the firmware's next boot device. local: boot the local disk (BIOS:
`sanboot --drive 0x80`; UEFI: `exit`, back to the firmware's boot order).
maintenance: like normal, with the golden image's own target."""

from __future__ import annotations

from dataclasses import dataclass

from ..chap import Chap
from ..errors import InvalidInput
from ..names import mac_hexhyp, url

MODES = ("normal", "install", "local", "maintenance")
RETRIES = 3


def root_path(portal: str, lun: int, target: str) -> str:
    """iPXE's iscsi: URI (RFC 4173 order; iPXE wants the LUN in hex)."""
    address, _, port = portal.rpartition(":") if ":" in portal else (portal, "", "")
    return f"iscsi:{address}::{port}:{lun:x}:{target}"


def script_name(mac: str) -> str:
    return f"{mac_hexhyp(mac)}.ipxe"


@dataclass(frozen=True)
class BootTarget:
    """What a host's script attaches: the disk's portal, LUN, target and the
    host's own initiator name and CHAP."""

    host: str
    portal: str
    lun: int
    target: str
    initiator: str
    chap: Chap | None = None
    root: str = ""  # the zboot root that wrote it (doctor tells its scripts by it)
    data: bool = False  # the host has a data disk: the LUN after lun, as drive 0x81

    @property
    def uri(self) -> str:
        return root_path(self.portal, self.lun, self.target)

    @property
    def data_uri(self) -> str:
        return root_path(self.portal, self.lun + 1, self.target)


def _setting(value: str) -> str:
    """A value iPXE's `set` takes as one word: zboot's names and secrets are
    [A-Za-z0-9.:-], so anything else is refused rather than quoted."""
    if not value or any(not (c.isalnum() or c in ".:-_") for c in value):
        raise InvalidInput(f"{value!r} cannot go into an iPXE script")
    return value


SECRET_LINES = ("set password ", "set reverse-password ")  # as _identity writes them


def has_secret(script: str) -> bool:
    """Whether a script sets a CHAP secret (it then must not be world-readable)."""
    return any(line.startswith(SECRET_LINES) for line in script.splitlines())


def _identity(t: BootTarget) -> list[str]:
    lines = [f"set initiator-iqn {_setting(t.initiator)}"]
    if t.chap is not None:
        lines += [
            f"set username {_setting(t.chap.user)}",
            f"set password {_setting(t.chap.secret)}",
        ]
        if t.chap.mutual_user and t.chap.mutual_secret:
            lines += [
                f"set reverse-username {_setting(t.chap.mutual_user)}",
                f"set reverse-password {_setting(t.chap.mutual_secret)}",
            ]
    return lines


DATA_DRIVE = "0x81"  # the data disk's BIOS drive number; the OS disk is 0x80


def _sanboot(t: BootTarget, label: str, data: bool = False) -> list[str]:
    """sanboot with a few retries, then a reboot: a machine left at a prompt
    in a LAN room helps nobody. data: the OS disk is hooked as 0x80 and the
    data disk as 0x81, in that order (each takes the BIOS's next drive
    number, so iPXE remaps nothing), then 0x80 is booted; an attempt that
    failed half way lets go of both before the next."""
    if data:
        attempt = [
            f"sanunhook --drive {DATA_DRIVE} ||",
            "sanunhook --drive 0x80 ||",
            f"sanhook --drive 0x80 {t.uri} && sanhook --drive {DATA_DRIVE} {t.data_uri} "
            "&& sanboot --drive 0x80 && goto booted ||",
        ]
    else:
        attempt = [f"sanboot {t.uri} && goto booted ||"]
    return [
        "set attempt:int32 0",
        ":retry",
        *attempt,
        f"echo zboot: {label}: cannot boot {t.target} from {t.portal}",
        "inc attempt",
        f"iseq ${{attempt}} {RETRIES} && goto reboot ||",
        "echo zboot: trying again in 5 seconds",
        "sleep 5",
        "goto retry",
        ":reboot",
        "echo zboot: giving up; rebooting in 10 seconds",
        "sleep 10",
        "reboot",
        ":booted",
    ]


def render(mode: str, t: BootTarget, winpe: str | None = None) -> str:
    """The host's script for mode (winpe: the URL of a directory holding
    wimboot, BCD, boot.sdi and boot.wim, for install mode)."""
    root = f", root {t.root}" if t.root else ""
    head = ["#!ipxe", f"# zboot: host {t.host}, mode {mode}{root}; rewritten by `zboot mode`"]
    if mode == "normal":
        body = _identity(t) + _sanboot(t, t.host, t.data)
    elif mode == "maintenance":
        body = [
            *_identity(t),
            f"echo zboot: {t.host} boots the golden image {t.target}",
            *_sanboot(t, f"{t.host} (maintenance)"),
        ]
    elif mode == "install":
        body = [
            *_identity(t),
            "set keep-san 1",
            f"sanhook --drive 0x80 {t.uri} || goto failed",
            f"echo zboot: {t.host}: disk {t.target} attached as 0x80",
        ]
        if t.data:
            body += [
                f"sanhook --drive {DATA_DRIVE} {t.data_uri} || goto failed",
                f"echo zboot: {t.host}: data disk attached as {DATA_DRIVE}",
            ]
        if winpe:
            base = url(winpe, "the WinPE URL").rstrip("/")
            body += [
                f"kernel {base}/wimboot",
                f"initrd {base}/BCD BCD",
                f"initrd {base}/boot.sdi boot.sdi",
                f"initrd {base}/boot.wim boot.wim",
                "boot || goto failed",
            ]
        else:
            body += ["echo zboot: falling through to the next boot device", "exit 0"]
        body += [":failed", f"echo zboot: {t.host}: install boot failed", "sleep 30", "reboot"]
    elif mode == "local":
        body = [
            f"echo zboot: {t.host} boots its local disk",
            # EFI builds of iPXE (QEMU's, Debian 12's) cannot boot a local
            # drive: hand back to the firmware. With a failure status, for
            # EDK2-based firmware ends its boot list at an entry that succeeds
            # and would stop in its setup menu instead of the next entry.
            "iseq ${platform} efi && exit 1 ||",
            "sanboot --no-describe --drive 0x80 || exit 0",
        ]
    else:
        raise InvalidInput(f"unknown mode {mode!r}", hint=f"one of {', '.join(MODES)}")
    return "\n".join(head + body) + "\n"


CHAIN_SCRIPT = "zboot-chain.ipxe"  # next to pxelinux.cfg/, for every host


def chain_script(boot_url: str) -> str:
    """The one iPXE script PXELINUX hands over (as the initrd of ipxe.lkrn):
    get an address, then the host's own script by MAC."""
    return (
        "#!ipxe\n# zboot: PXELINUX -> iPXE -> the host's own script\n"
        "dhcp || goto failed\n"
        f"chain {boot_url.rstrip('/')}/${{mac:hexhyp}}.ipxe || goto failed\n"
        ":failed\necho zboot: no script for ${mac:hexhyp}\nsleep 10\nreboot\n"
    )


def pxelinux_config(host: str) -> str:
    """pxelinux.cfg/01-<mac>: chain into iPXE (ipxe.lkrn from Debian's ipxe
    package) with the chain script."""
    return (
        f"# zboot: host {host} boots through iPXE into its own disk\n"
        "DEFAULT zboot\nPROMPT 0\nLABEL zboot\n"
        f"  KERNEL ipxe.lkrn\n  INITRD {CHAIN_SCRIPT}\n"
    )


def pxelinux_name(mac: str) -> str:
    """PXELINUX looks for 01-<mac, lowercase, dashes> (01 = Ethernet)."""
    return f"01-{mac_hexhyp(mac)}"


# --- what `zboot serve` answers besides a host's own script --------------------

# The facts a machine reports about itself when its MAC is unknown: iPXE's
# settings, each URI-encoded by the `uristring` type.
FACTS = ("uuid", "manufacturer", "product", "serial", "platform", "buildarch")
RETRY_SECONDS = 30


def _own_url(base: str) -> str:
    """The URL the machine's script came from, as iPXE expands it for itself."""
    return f"{base.rstrip('/')}/${{mac:hexhyp}}.ipxe"


def report_script(base: str) -> str:
    """For a MAC zboot does not know: fetch the same script again with what
    iPXE knows about the machine, so the service can record it."""
    # uuid as its text form: its uristring is the raw 16 bytes, %00s and all,
    # which iPXE decodes and cuts the URL at
    query = "&".join(
        f"{fact}=${{{fact}}}" if fact == "uuid" else f"{fact}=${{{fact}:uristring}}"
        for fact in FACTS
    )
    return (
        "#!ipxe\n# zboot serve: an unknown machine reports itself\n"
        f"chain --replace --autofree {_own_url(base)}?{query}\n"
    )


def waiting_script(base: str, why: str) -> str:
    """For a machine no host has yet: say why, wait, ask again (its next
    request finds its host once `zboot adopt` made one)."""
    return (
        "#!ipxe\n# zboot serve: no host for this machine yet\n"
        f"echo zboot: ${{mac}}: {_plain(why)}\n"
        f"echo zboot: asking again in {RETRY_SECONDS} seconds\n"
        f"sleep {RETRY_SECONDS}\n"
        f"chain --replace --autofree {_own_url(base)}\n"
    )


def _plain(text: str) -> str:
    """A message iPXE's echo prints as it is: no $ expansion, one line."""
    return "".join(c if c.isprintable() and c not in "$\\" else "?" for c in text)[:200]
