"""The lab's SSH keys: a client key for zboot and tests, and a fixed host key
for the storage VM, so the host is known and checked on every connection."""

from __future__ import annotations

from .layout import Layout
from .procs import run


def ensure_keys(layout: Layout) -> None:
    layout.keys.mkdir(parents=True, exist_ok=True)
    layout.keys.chmod(0o700)
    for key, comment in ((layout.client_key, "zboot-lab-client"),
                         (layout.host_key, "zboot-lab-host")):
        if not key.exists():
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(key)])
    host_pub = layout.host_key.with_suffix(".pub").read_text().split()
    entry = f"[127.0.0.1]:{layout.ssh_port} {host_pub[0]} {host_pub[1]}\n"
    if not layout.known_hosts.exists() or layout.known_hosts.read_text() != entry:
        layout.known_hosts.write_text(entry)


def ssh_argv(layout: Layout) -> list[str]:
    """An OpenSSH command line that reaches the storage VM and trusts only its key."""
    return [
        "ssh", "-F", "none",
        "-i", str(layout.client_key),
        "-p", str(layout.ssh_port),
        "-o", "IdentitiesOnly=yes",
        "-o", "BatchMode=yes",
        "-o", f"UserKnownHostsFile={layout.known_hosts}",
        "-o", "StrictHostKeyChecking=yes",
        "-o", "ConnectTimeout=60",
        "-o", "LogLevel=ERROR",
        "root@127.0.0.1",
    ]
