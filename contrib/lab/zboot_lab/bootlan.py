"""DHCP and TFTP on the lab's boot LAN, run in the storage VM the way a site
runs them beside its storage server: a real dnsmasq or ISC dhcpd whose
boot lines are `zboot dhcp`'s output, and TFTP (dnsmasq's) serving Debian's
iPXE first stages and PXELINUX. No QEMU DHCP is on that LAN: a client that
boots there got its address and its boot file from these servers.

Each server runs in the foreground under nohup with its PID recorded in the
guest, is stopped by that PID, and logs to a file the tests read."""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from contextlib import contextmanager

from . import layout as L
from .layout import Layout
from .procs import LabError
from .remote import ssh, ssh_text

KINDS = ("dnsmasq", "isc")
RUN = "/run/zboot-lab-lan"  # in the storage VM
# Router advertisements for a private IPv6 prefix, and nothing else for IPv6:
# without them iPXE waits about 16 s for IPv6 autoconfiguration at every boot.
RA_LINES = ("enable-ra", "dhcp-range=::,constructor:lan0,ra-only")


def netmask() -> str:
    bits = (0xFFFFFFFF << (32 - L.LAN_PREFIX)) & 0xFFFFFFFF
    return ".".join(str((bits >> shift) & 0xFF) for shift in (24, 16, 8, 0))


def subnet() -> str:
    parts = L.LAN_SERVER.split(".")
    return ".".join([*parts[:3], "0"])


def dnsmasq_config(zboot_lines: str) -> str:
    """The site's part (interface, address range, TFTP), then zboot's lines."""
    first, last = L.LAN_RANGE
    return (
        "# The lab's boot LAN: DHCP and TFTP, no DNS\n"
        "port=0\n"
        "interface=lan0\n"
        "bind-interfaces\n"
        f"dhcp-range={first},{last},{netmask()},10m\n"
        f"dhcp-leasefile={RUN}/dnsmasq.leases\n"
        "dhcp-authoritative\n"
        "log-dhcp\n"
        "enable-tftp\n"
        f"tftp-root={L.LAN_TFTP_DIR}\n"
        "user=root\n" + "".join(f"{line}\n" for line in RA_LINES) + zboot_lines
    )


def isc_config(zboot_lines: str) -> str:
    """dhcpd.conf: the subnet with no `option routers` (iPXE must not get one),
    then zboot's lines."""
    first, last = L.LAN_RANGE
    return (
        "# The lab's boot LAN\n"
        "authoritative;\n"
        "default-lease-time 600;\n"
        "max-lease-time 600;\n"
        f"subnet {subnet()} netmask {netmask()} {{\n"
        f"  range {first} {last};\n"
        f"  next-server {L.LAN_SERVER};\n"
        "}\n" + zboot_lines
    )


def tftp_only_argv() -> list[str]:
    """dnsmasq as a TFTP server only (no DHCP range, no DNS), for ISC sites."""
    return [
        "dnsmasq",
        "--keep-in-foreground",
        "--port=0",
        "--interface=lan0",
        "--bind-interfaces",
        "--enable-tftp",
        f"--tftp-root={L.LAN_TFTP_DIR}",
        "--user=root",
        f"--log-facility={RUN}/tftp.log",
        *(f"--{line}" for line in RA_LINES),
    ]


def start(layout: Layout, kind: str, zboot_lines: str) -> None:
    """Start the DHCP server of kind (and TFTP) on the boot LAN, with zboot's
    lines in its configuration; any server the lab ran there before is stopped."""
    if kind not in KINDS:
        raise LabError(f"unknown DHCP server {kind!r}: use one of {', '.join(KINDS)}")
    stop(layout)
    ssh(layout, ["mkdir", "-p", RUN])
    if kind == "dnsmasq":
        conf = f"{RUN}/dnsmasq.conf"
        write(layout, conf, dnsmasq_config(zboot_lines))
        ssh(layout, ["dnsmasq", "--test", f"--conf-file={conf}"])
        background(
            layout,
            "dhcp",
            [
                "dnsmasq",
                "--keep-in-foreground",
                f"--conf-file={conf}",
                f"--log-facility={RUN}/dhcp.log",
            ],
        )
    else:
        conf = f"{RUN}/dhcpd.conf"
        write(layout, conf, isc_config(zboot_lines))
        ssh(layout, ["touch", f"{RUN}/dhcpd.leases"])
        ssh(layout, ["dhcpd", "-t", "-4", "-cf", conf])
        background(
            layout,
            "dhcp",
            ["dhcpd", "-f", "-d", "-4", "-cf", conf, "-lf", f"{RUN}/dhcpd.leases", "lan0"],
        )
        background(layout, "tftp", tftp_only_argv())


def write(layout: Layout, path: str, text: str) -> None:
    ssh(layout, ["sh", "-c", 'cat > "$1"', "sh", path], stdin=text.encode())


def background(layout: Layout, name: str, argv: list[str]) -> None:
    """Run argv in the storage VM beyond this SSH call; record its PID."""
    log = f"{RUN}/{name}.out"
    command = (
        f"nohup {shlex.join(argv)} </dev/null >{log} 2>&1 & "
        f"echo $! >{RUN}/{name}.pid; sleep 0.5; kill -0 $! || {{ cat {log} >&2; exit 1; }}"
    )
    ssh(layout, ["sh", "-c", command])


def stop(layout: Layout) -> None:
    """Stop, by their recorded PIDs, the servers the lab started on the LAN."""
    script = (
        'for f in "$1"/*.pid; do [ -e "$f" ] || continue; '
        'kill "$(cat "$f")" 2>/dev/null; rm -f "$f"; done; true'
    )
    ssh(layout, ["sh", "-c", script, "sh", RUN])


def log(layout: Layout) -> str:
    """What the DHCP and TFTP servers logged since they started."""
    return ssh_text(layout, ["sh", "-c", f"cat {RUN}/*.log {RUN}/*.out 2>/dev/null; true"])


@contextmanager
def serving(layout: Layout, kind: str, zboot_lines: str) -> Iterator[None]:
    start(layout, kind, zboot_lines)
    try:
        yield
    finally:
        stop(layout)
