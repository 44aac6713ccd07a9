"""istgt on this machine (it runs on the host, not in the storage VM): the
admin's part of its config, with portals on 127.0.0.1 only, started and
stopped through Debian's own service script."""

from __future__ import annotations

import subprocess
from pathlib import Path

from .layout import IQN_BASE, Layout

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


def configure(layout: Layout) -> None:
    """Stop istgt and give it the lab's base config (no targets)."""
    stop()
    CONF.write_text(base_config(layout))
    AUTH.write_text("")
    AUTH.chmod(0o600)


def stop() -> None:
    subprocess.run(["service", "istgt", "stop"], check=False, capture_output=True)
