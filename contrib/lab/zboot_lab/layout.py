"""Where the lab keeps its files and which ports it listens on."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
LAB_SRC = Path(__file__).resolve().parents[1]

POOL = "tank"
ZBOOT_ROOT = f"{POOL}/zboot"
DISK_NAME = "pool"
BOOT_DIR = "/srv/zboot/boot"
SECRETS_DIR = "/srv/zboot-secrets"  # on tank/srv, outside the HTTP server's directory
IQN_BASE = "iqn.2026-11.lab.zboot"  # fixed, as `zboot init` would store it
# Ports inside the storage VM.
GUEST_SSH_PORT = 22
GUEST_HTTP_PORT = 80
GUEST_LIO_PORT = 3260
GUEST_TGT_PORT = 3261
# How a QEMU user-network guest (a diskless client) reaches the host loopback.
HOST_FROM_GUEST = "10.0.2.2"
# The boot LAN: one L2 segment between the storage VM and the clients, with no
# QEMU DHCP on it. Each client's NIC is a QEMU socket link (127.0.0.1 only) to
# one of the storage VM's LAN NICs, which the guest bridges; DHCP and TFTP on
# it are real servers the lab starts in the storage VM.
LAN_SERVER = "192.168.150.1"  # the storage VM's address on the boot LAN
LAN_PREFIX = 24
LAN_SERVER6 = "fd5a:b007:150::1/64"  # a private IPv6 prefix, for router advertisements
LAN_RANGE = ("192.168.150.100", "192.168.150.199")
LAN_LINKS = 4  # clients on the LAN at once
LAN_MAC_PREFIX = "52:54:00:1a:b0:"  # the storage VM's LAN NICs
LAN_TFTP_DIR = "/srv/lab/tftp"
GUEST_ISTGT_PORT = 3262  # istgt in the storage VM (for boot-LAN clients)
GUEST_ISTGT_CONTROL_PORT = 3264
# Below Linux's ephemeral range (32768-60999 by default): a port in it can be
# taken for a while by any client connection's local end, even one in
# TIME_WAIT, and istgt (which does not share its ports) then fails to restart.
DEFAULT_PORT_BASE = 20000
BARE_PORT_OFFSET = 4000  # the bare server's ports: 24022, 24080, 27260, ...


@dataclass(frozen=True)
class Layout:
    """Paths under the lab's state directory and the host ports it forwards."""

    state: Path
    port_base: int
    # The guest's start-up script (contrib/lab/guest/): the lab's storage
    # server, or a bare Debian server for docs/server-setup.md's test.
    guest_script: str = "storage-init.sh"
    # Where the lab's own virtualenv is, when this is a second VM's layout.
    lab_state: Path | None = None

    @classmethod
    def from_env(cls) -> Layout:
        state = Path(os.environ.get("ZBOOT_LAB_DIR", "/var/lib/zboot-lab"))
        base = int(os.environ.get("ZBOOT_LAB_PORT_BASE", str(DEFAULT_PORT_BASE)))
        return cls(state=state, port_base=base)

    def bare_server(self) -> Layout:
        """A second VM, a bare Debian server with a blank pool disk and none
        of the lab's zboot set-up: docs/server-setup.md's steps prepare it.
        Its own state directory and ports (BARE_PORT_OFFSET above the lab's)."""
        return Layout(
            state=self.state / "bare-server",
            port_base=self.port_base + BARE_PORT_OFFSET,
            guest_script="bare-server-init.sh",
            lab_state=self.state,
        )

    # --- ports on 127.0.0.1 -------------------------------------------------
    @property
    def ssh_port(self) -> int:
        return self.port_base + 22

    @property
    def http_port(self) -> int:
        return self.port_base + 80

    @property
    def lio_port(self) -> int:
        return self.port_base + 3260

    @property
    def tgt_port(self) -> int:
        return self.port_base + 3261

    @property
    def istgt_port(self) -> int:
        """istgt runs on the host itself, not in the storage VM."""
        return self.port_base + 3262

    @property
    def istgt_control_port(self) -> int:
        return self.port_base + 3264

    def lan_port(self, link: int) -> int:
        """The 127.0.0.1 port of the storage VM's LAN NIC number link."""
        return self.port_base + 500 + link

    def host_ports(self) -> list[int]:
        """Every port the lab listens on at 127.0.0.1 on the host."""
        lan = (self.lan_port(n) for n in range(LAN_LINKS))
        return [*self.forwards(), self.istgt_port, self.istgt_control_port, *lan]

    def forwards(self) -> dict[int, int]:
        """Host port -> guest port, every one bound to 127.0.0.1."""
        return {
            self.ssh_port: GUEST_SSH_PORT,
            self.http_port: GUEST_HTTP_PORT,
            self.lio_port: GUEST_LIO_PORT,
            self.tgt_port: GUEST_TGT_PORT,
        }

    # --- files ----------------------------------------------------------------
    @property
    def keys(self) -> Path:
        return self.state / "keys"

    @property
    def client_key(self) -> Path:
        return self.keys / "id_ed25519"

    @property
    def host_key(self) -> Path:
        return self.keys / "ssh_host_ed25519_key"

    @property
    def known_hosts(self) -> Path:
        return self.keys / "known_hosts"

    @property
    def pool_disk(self) -> Path:
        return self.state / "disks" / "pool.img"

    @property
    def run(self) -> Path:
        """Files of the running VM: pid, console log, guest script and settings."""
        return self.state / "run"

    @property
    def vm_pid(self) -> Path:
        return self.run / "vm.pid"

    @property
    def console_log(self) -> Path:
        return self.run / "console.log"

    @property
    def venv(self) -> Path:
        """The lab's own virtualenv (virtme-ng)."""
        return (self.lab_state or self.state) / "venv"

    @property
    def golden(self) -> Path:
        return self.state / "golden"

    @property
    def clients(self) -> Path:
        return self.state / "clients"

    @property
    def config(self) -> Path:
        return self.state / "zboot.toml"

    def boot_url(self) -> str:
        return f"http://{HOST_FROM_GUEST}:{self.http_port}/"

    def lan_boot_url(self) -> str:
        return f"http://{LAN_SERVER}/"

    def lan_portal(self, engine: str = "lio") -> str:
        """The iSCSI portal as a client on the boot LAN sees it."""
        port = {"lio": GUEST_LIO_PORT, "tgt": GUEST_TGT_PORT}.get(engine, GUEST_ISTGT_PORT)
        return f"{LAN_SERVER}:{port}"

    def portal(self, engine: str = "lio") -> str:
        """The iSCSI portal as a diskless client sees it."""
        port = self.lio_port if engine == "lio" else self.tgt_port
        return f"{HOST_FROM_GUEST}:{port}"
