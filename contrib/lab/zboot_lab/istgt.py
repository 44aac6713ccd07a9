"""istgt on this machine (it runs on the host, not in the storage VM): the
admin's part of its config, with portals on 127.0.0.1 only, started and
stopped through Debian's own service script."""

from __future__ import annotations

import subprocess
from pathlib import Path

from .layout import GUEST_ISTGT_CONTROL_PORT, GUEST_ISTGT_PORT, IQN_BASE, Layout
from .remote import ssh

CONF = Path("/etc/istgt/istgt.conf")
AUTH = Path("/etc/istgt/auth.conf")


def base_config(layout: Layout) -> str:
    """What an admin writes before zboot adds its hosts: the global settings,
    the control portal zboot asks, and the portal group clients log in to."""
    return f"""# The zboot lab's istgt: every portal on 127.0.0.1.
[Global]
  NodeBase "{IQN_BASE}"
  PidFile /var/run/istgt.pid
  AuthFile {AUTH}
  MediaDirectory /var/istgt
  Timeout 30
  NopInInterval 20
  DiscoveryAuthMethod Auto
  MaxSessions 64
  MaxConnections 4
[UnitControl]
  AuthMethod None
  Portal UC1 127.0.0.1:{layout.istgt_control_port}
  Netmask 127.0.0.1
[PortalGroup1]
  Portal DA1 127.0.0.1:{layout.istgt_port}
"""


def lan_base_config(layout: Layout) -> str:
    """The same admin's config for istgt in the storage VM serving clients on
    the boot LAN: its portal on every address of the VM, its control portal
    on the VM's loopback."""
    return (
        base_config(layout)
        .replace(f"127.0.0.1:{layout.istgt_port}", f"0.0.0.0:{GUEST_ISTGT_PORT}")
        .replace(f"127.0.0.1:{layout.istgt_control_port}", f"127.0.0.1:{GUEST_ISTGT_CONTROL_PORT}")
    )


# istgt in the VM: the config given, and Debian's service script with its one
# bug fixed (it calls pidofproc with an extra argument, so every start waits
# 5 s and says "failed"), bind-mounted over the guest's copy for the module
# only. zboot runs `service istgt restart` as on any Debian server.
GUEST_UP = r"""
mkdir -p /etc/istgt /var/istgt && cat >"$1" && : >"$2" && chmod 600 "$2" || exit 1
mountpoint -q /etc/init.d/istgt && exit 0
sed 's/pidofproc -p $PIDFILE "$DAEMON" "$NAME"/pidofproc -p $PIDFILE "$DAEMON"/' \
    /etc/init.d/istgt >/run/zboot-lab-istgt.init && chmod 755 /run/zboot-lab-istgt.init &&
    mount --bind /run/zboot-lab-istgt.init /etc/init.d/istgt
"""


def configure_in_guest(layout: Layout, config: str) -> None:
    """Give the storage VM's istgt config (no targets yet), not started."""
    ssh(layout, ["sh", "-c", GUEST_UP, "sh", str(CONF), str(AUTH)], stdin=config.encode())


def configure(layout: Layout) -> None:
    """Stop istgt and give it the lab's base config (no targets)."""
    stop()
    CONF.write_text(base_config(layout))
    AUTH.write_text("")
    AUTH.chmod(0o600)


def stop() -> None:
    subprocess.run(["service", "istgt", "stop"], check=False, capture_output=True)
