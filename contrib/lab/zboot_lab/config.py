"""The zboot configuration file that points at the lab, and `lab env`'s lines."""

from __future__ import annotations

import json
from pathlib import Path

from . import layout as L
from .layout import Layout


def config_text(layout: Layout) -> str:
    return f"""\
# zboot configuration for the built-in lab, written by `contrib/lab/lab up`.
# The storage server is the lab's VM, reached over SSH on 127.0.0.1.

[server]
host = "127.0.0.1"
port = {layout.ssh_port}
user = "root"
key = {json.dumps(str(layout.client_key))}
known_hosts = {json.dumps(str(layout.known_hosts))}

[zfs]
pool = "{L.POOL}"
root = "{L.ZBOOT_ROOT}"

[target]
engine = "lio"
# the portal as the diskless clients see it (QEMU user networking)
portal = "{layout.portal("lio")}"
iqn_base = "{L.IQN_BASE}"
# CHAP secrets on the pool, so they survive a VM restart like LIO's saved setup
secrets_dir = "{L.SECRETS_DIR}"

[boot]
dir = "{L.BOOT_DIR}"
url = "{layout.boot_url()}"
"""


def write_config(layout: Layout) -> Path:
    layout.state.mkdir(parents=True, exist_ok=True)
    text = config_text(layout)
    if not layout.config.exists() or layout.config.read_text() != text:
        tmp = layout.config.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(layout.config)
    return layout.config


def env_vars(layout: Layout) -> dict[str, str]:
    """What tests and people need to reach the lab, as environment variables."""
    return {
        "ZBOOT_CONFIG": str(layout.config),
        "ZBOOT_LAB_DIR": str(layout.state),
        "ZBOOT_LAB_SSH": f"root@127.0.0.1:{layout.ssh_port}",
        "ZBOOT_LAB_SSH_KEY": str(layout.client_key),
        "ZBOOT_LAB_KNOWN_HOSTS": str(layout.known_hosts),
        "ZBOOT_LAB_POOL": L.POOL,
        "ZBOOT_LAB_BOOT_DIR": L.BOOT_DIR,
        "ZBOOT_LAB_BOOT_URL": layout.boot_url(),
        # iSCSI portals as this host reaches them, and as the clients do
        "ZBOOT_LAB_LIO_PORTAL": f"127.0.0.1:{layout.lio_port}",
        "ZBOOT_LAB_TGT_PORTAL": f"127.0.0.1:{layout.tgt_port}",
        "ZBOOT_LAB_CLIENT_LIO_PORTAL": layout.portal("lio"),
        "ZBOOT_LAB_CLIENT_TGT_PORTAL": layout.portal("tgt"),
    }
