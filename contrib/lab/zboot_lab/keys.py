"""The lab's SSH keys: a client key for zboot and tests, and a fixed host key
for the storage VM, so the host is known and checked on every connection."""

from __future__ import annotations

from pathlib import Path

from .layout import Layout
from .procs import run


def ensure_keys(layout: Layout) -> None:
    layout.keys.mkdir(parents=True, exist_ok=True)
    layout.keys.chmod(0o700)
    for key, comment in (
        (layout.client_key, "zboot-lab-client"),
        (layout.host_key, "zboot-lab-host"),
    ):
        if not key.exists():
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(key)])
    host_pub = layout.host_key.with_suffix(".pub").read_text().split()
    entry = f"[127.0.0.1]:{layout.ssh_port} {host_pub[0]} {host_pub[1]}\n"
    if not layout.known_hosts.exists() or layout.known_hosts.read_text() != entry:
        layout.known_hosts.write_text(entry)


def control_path(layout: Layout) -> Path:
    """The socket of the lab's one shared SSH connection (see vm.ensure_master)."""
    return layout.run / "ssh-master.sock"


def master_pidfile(layout: Layout) -> Path:
    """Where the shared connection's PID is recorded, to stop it by that PID."""
    return layout.run / "ssh-master.pid"


def ssh_argv(layout: Layout, *, shared: bool = True) -> list[str]:
    """An OpenSSH command line that reaches the storage VM and trusts only its key.

    shared: ride on the lab's master connection when one is up (a session on
    it costs a fraction of a new login under emulation; with none, ssh logs in
    on its own). Tests that count logins or hold a connection open on purpose
    pass shared=False."""
    return _argv(
        layout,
        [
            "-o",
            f"ControlPath={control_path(layout) if shared else 'none'}",
            "-o",
            "ControlMaster=no",
        ],
    )


def master_argv(layout: Layout) -> list[str]:
    """Opens the shared connection and stays in the background until told to exit."""
    return _argv(
        layout,
        [
            "-o",
            f"ControlPath={control_path(layout)}",
            "-o",
            "ControlMaster=yes",
            "-o",
            "ControlPersist=yes",
            "-N",
            "-f",
        ],
    )


def control_argv(layout: Layout, command: str) -> list[str]:
    """`ssh -O check|exit` for the shared connection."""
    return _argv(layout, ["-o", f"ControlPath={control_path(layout)}", "-O", command])


def _argv(layout: Layout, extra: list[str]) -> list[str]:
    return [
        "ssh",
        "-F",
        "none",
        *extra,
        "-i",
        str(layout.client_key),
        "-p",
        str(layout.ssh_port),
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        f"UserKnownHostsFile={layout.known_hosts}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "ConnectTimeout=60",
        "-o",
        "LogLevel=ERROR",
        "root@127.0.0.1",
    ]
