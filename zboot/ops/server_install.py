"""How to get what `zboot server check` found missing, per operating system:
Debian and Ubuntu (apt), FreeBSD (pkg, base system), OmniOS and other
illumos (pkg(5), SMF). Read from the server's /etc/os-release. These are
suggestions printed for an admin; zboot runs none of them."""

from __future__ import annotations

from dataclasses import dataclass

DEBIAN, UBUNTU, FREEBSD, ILLUMOS = "debian", "ubuntu", "freebsd", "illumos"
SUDOERS = "a NOPASSWD rule for the login user in /etc/sudoers.d (docs/config.md)"
SFTP = "enable SSH's SFTP subsystem in sshd_config: Subsystem sftp internal-sftp"
ROOT = "log in as root, or set [server] sudo = true (init --sudo) with " + SUDOERS
LIO_MODULES = "modprobe target_core_mod iscsi_target_mod target_core_iblock"


@dataclass(frozen=True)
class OsRelease:
    id: str = ""
    like: str = ""
    version: str = ""
    name: str = ""
    kernel: str = ""  # uname -sr

    @property
    def family(self) -> str | None:
        ids = {self.id, *self.like.split()}
        if UBUNTU in ids:
            return UBUNTU
        if DEBIAN in ids:
            return DEBIAN
        if FREEBSD in ids or self.kernel.startswith("FreeBSD"):
            return FREEBSD
        if ids & {"omnios", "openindiana", "illumos", "smartos"} or self.kernel.startswith("SunOS"):
            return ILLUMOS
        return None


def parse_os_release(text: str, kernel: str = "") -> OsRelease:
    """os-release(5): KEY=value lines, values maybe quoted."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key.isidentifier():
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
                value = value[1:-1]
            fields[key] = value
    return OsRelease(
        id=fields.get("ID", "").lower(),
        like=fields.get("ID_LIKE", "").lower(),
        version=fields.get("VERSION_ID", ""),
        name=fields.get("PRETTY_NAME", ""),
        kernel=kernel,
    )


APT = {
    "zfs": "apt install zfsutils-linux zfs-dkms",
    "zfs-kmod": "apt install zfs-dkms && modprobe zfs",
    "python3": "apt install python3",
    "rtslib-fb": "apt install python3-rtslib-fb",
    "targetcli": "apt install targetcli-fb",
    "targetctl": "apt install python3-rtslib-fb && systemctl enable rtslib-fb-targetctl",
    "target_core_mod": LIO_MODULES,
    "iscsi_target_mod": LIO_MODULES,
    "target_core_iblock": LIO_MODULES,
    "tgtadm": "apt install tgt",
    "tgt-admin": "apt install tgt",
    "tgtd": "apt install tgt && systemctl enable --now tgt",
    "istgt": "apt install istgt (packaged up to Debian 10)",
    "istgtcontrol": "apt install istgt (packaged up to Debian 10)",
    "ipxe": "apt install ipxe",
    "http": "apt install nginx (serve the boot dir at the boot URL)",
    "tftp": "apt install tftpd-hpa (or dnsmasq with enable-tftp)",
    "qemu-img": "apt install qemu-utils",
}
UBUNTU_ONLY = {
    "zfs": "apt install zfsutils-linux",
    "zfs-kmod": "apt install zfsutils-linux && modprobe zfs",
    "target_core_mod": f"apt install linux-modules-extra-$(uname -r) && {LIO_MODULES}",
    "iscsi_target_mod": f"apt install linux-modules-extra-$(uname -r) && {LIO_MODULES}",
    "target_core_iblock": f"apt install linux-modules-extra-$(uname -r) && {LIO_MODULES}",
    "istgt": "not packaged: use lio or tgt",
    "istgtcontrol": "not packaged: use lio or tgt",
}
PKG = {
    "zfs": "ZFS is in the base system: sysrc zfs_enable=YES && service zfs start",
    "zfs-kmod": "kldload zfs && sysrc zfs_enable=YES",
    "python3": "pkg install python3 (zboot runs /usr/bin/python3: link it to /usr/local/bin's)",
    "ctld": "ctld is in the base system: sysrc ctld_enable=YES && service ctld start",
    "ctladm": "ctladm is in the base system: kldload ctl",
    "istgt": "pkg install istgt && sysrc istgt_enable=YES",
    "istgtcontrol": "pkg install istgt",
    "ipxe": "pkg install ipxe",
    "http": "pkg install nginx (serve the boot dir at the boot URL)",
    "tftp": "enable tftpd in /etc/inetd.conf && sysrc inetd_enable=YES",
    "qemu-img": "pkg install qemu",
}
IPS = {
    "zfs": "ZFS is part of illumos",
    "zfs-kmod": "ZFS is part of illumos",
    "python3": "pkg install the release's runtime/python-3XX (zboot runs /usr/bin/python3)",
    "itadm": "pkg install network/iscsi/target && svcadm enable -r svc:/network/iscsi/target",
    "stmfadm": "pkg install storage/stmf && svcadm enable stmf",
    "stmf": "svcadm enable stmf",
    "iscsi/target": "svcadm enable -r svc:/network/iscsi/target:default",
    "ipxe": "not packaged: get undionly.kpxe and snponly.efi from ipxe.org",
    "http": "pkg install a web server, e.g. from the extra.omnios publisher",
    "tftp": "pkg install service/network/tftp && svcadm enable tftp/udp6",
}
COMMANDS = {DEBIAN: APT, UBUNTU: APT | UBUNTU_ONLY, FREEBSD: PKG, ILLUMOS: IPS}
NOT_HERE = {
    "lio": "LIO is Linux's: not on this system",
    "tgt": "tgt is Linux's: not on this system",
    "ctld": "ctld is FreeBSD's: not on this system",
    "comstar": "COMSTAR is illumos': not on this system",
}
HOME = {"lio": "linux", "tgt": "linux", "ctld": FREEBSD, "comstar": ILLUMOS, "istgt": ""}
ANYWHERE = {"sudo": SUDOERS, "sftp": SFTP, "root": ROOT}


def install(item: str, family: str | None, engine: str = "") -> str:
    """What to run (or do) on a system of this family to get item."""
    if item in ANYWHERE:
        return ANYWHERE[item]
    home = HOME.get(engine, "")
    kind = "linux" if family in (DEBIAN, UBUNTU) else family
    if home and family is not None and kind != home:
        return NOT_HERE[engine]
    if family is None:
        return f"install {item} with the system's package manager"
    return COMMANDS[family].get(item, f"install {item} with the system's package manager")
