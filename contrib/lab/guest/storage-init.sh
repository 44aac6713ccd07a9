#!/bin/bash
# Runs inside the storage VM (as root, under virtme's init) and turns the
# guest into the lab's storage server: ZFS pool, LIO, tgtd, sshd and an HTTP
# server for per-host boot files. It keeps running so the VM stays up.
#
# Settings come from guest.env beside this script (written by `lab up`).
set -euo pipefail
# virtme raises the open-file limit to a million; daemons that close every
# possible descriptor per connection (sshd's session set-up) then spend
# seconds doing it under emulation.
ulimit -n 8192
here=$(dirname -- "$(readlink -f -- "$0")")
# shellcheck source=/dev/null
. "$here/guest.env"

# Each line carries the guest's uptime, so a slow step of the boot shows.
say() { echo "zboot-lab: $* (uptime $(cut -d' ' -f1 /proc/uptime) s)"; }
say "init started"
# shellcheck source=guest-common.sh
. "$here/guest-common.sh"

# A clean home for root: the shared host root's own dot-files (a .bashrc that
# starts pyenv costs seconds per SSH command under emulation) stay outside.
mount -t tmpfs -o mode=0700 tmpfs /root

# A share of the host's, read-only and with the guest's page cache on.
mount_cached() {
    mount -t 9p -o ro,trans=virtio,version=9p2000.L,access=any,msize=512000,cache=loose \
        "$1" "$2"
}
# /usr again, cached: the root comes over 9p without a page cache, so each
# program start (python3 and its modules, zfs and its libraries) reads every
# file again through the emulated virtio queue. The host's /usr does not
# change while the lab runs (`lab up` installs packages before the VM starts).
mount_cached labusr /usr
# The checkout that started the lab (and its .venv), cached the same way: tests
# run zboot and pytest in the guest from it. `lab up` drops the guest's caches
# when it reuses this VM, so edits made since are seen.
if [ -d "$LAB_REPO" ]; then
    mount_cached labrepo "$LAB_REPO"
fi

# --- kernel facilities -----------------------------------------------------
modprobe configfs
grep -q ' /sys/kernel/config ' /proc/mounts || mount -t configfs none /sys/kernel/config
modprobe zfs
modprobe target_core_mod
modprobe target_core_iblock
modprobe iscsi_target_mod
say "modules loaded"

start_udev
bring_up_network zboot-lab

# --- the pool ----------------------------------------------------------------
disk=/dev/disk/by-id/scsi-0virtme_disk_${LAB_DISK_NAME}
if zpool list -H -o name "$LAB_POOL" >/dev/null 2>&1; then
    :
elif zpool import -f -N -d /dev/disk/by-id "$LAB_POOL" 2>/dev/null; then
    say "pool $LAB_POOL imported"
elif [ -n "$(blkid -p -o value -s PTTYPE "$disk"; blkid -p -o value -s TYPE "$disk")" ]; then
    # Only a blank disk is ever made into a pool: a disk with a partition
    # table or a filesystem on it may hold data.
    say "ERROR: $disk is not blank but pool $LAB_POOL does not import from it"
    exit 1
else
    zpool create -f -o ashift=12 -O mountpoint=none -O compression=lz4 \
        "$LAB_POOL" "$disk"
    say "pool $LAB_POOL created"
fi

# The server's own files (boot directory, target engine configuration) live
# on the pool so they survive a restart of the VM, as on a real server.
zfs list -H "$LAB_POOL/srv" >/dev/null 2>&1 ||
    zfs create -o mountpoint=/srv "$LAB_POOL/srv"
zfs mount -a
mkdir -p "$LAB_BOOT_DIR" /srv/lab/rtslib-fb-target /srv/lab/tgt-conf.d
mkdir -p /etc/rtslib-fb-target /etc/tgt/conf.d
mount --bind /srv/lab/rtslib-fb-target /etc/rtslib-fb-target
mount --bind /srv/lab/tgt-conf.d /etc/tgt/conf.d
say "pool $LAB_POOL ready"

# The boot LAN's TFTP directory: iPXE's first stages and PXELINUX, from
# Debian's packages.
mkdir -p "$LAB_TFTP_DIR"
for loader in /usr/lib/ipxe/undionly.kpxe /usr/lib/ipxe/snponly.efi /usr/lib/ipxe/ipxe.efi \
    /usr/lib/ipxe/ipxe.lkrn /usr/lib/PXELINUX/pxelinux.0 /usr/lib/syslinux/modules/bios/ldlinux.c32; do
    cp "$loader" "$LAB_TFTP_DIR/"
done

# --- LIO: restore the saved configuration, as the target service would ------
if [ -s /etc/rtslib-fb-target/saveconfig.json ]; then
    targetctl restore /etc/rtslib-fb-target/saveconfig.json ||
        say "WARNING: LIO restore failed"
fi
say "LIO ready"

# --- tgt: userspace target on its own port, configuration from conf.d ------
/usr/sbin/tgtd --iscsi "portal=0.0.0.0:$LAB_TGT_PORT"
for _ in $(seq 50); do tgtadm --lld iscsi --op show --mode sys >/dev/null 2>&1 && break; sleep 0.2; done
if ls /etc/tgt/conf.d/*.conf >/dev/null 2>&1; then
    tgt-admin --execute || say "WARNING: tgt configuration failed"
fi
say "tgtd ready on port $LAB_TGT_PORT"

# --- boot files over HTTP, the way a site serves per-host iPXE scripts -------
nohup /usr/bin/python3 -m http.server "$LAB_HTTP_PORT" --bind 0.0.0.0 \
    --directory "$LAB_BOOT_DIR" >/var/log/zboot-lab-http.log 2>&1 &
say "HTTP serving $LAB_BOOT_DIR on port $LAB_HTTP_PORT"

# --- sshd with the lab's fixed host key and client key -----------------------
mkdir -p /run/sshd
rm -f /run/nologin
# Each login under emulation cost about 5 s, most of it PAM's session modules
# (pam_motd runs update-motd.d's scripts, pam_systemd looks for logind) and
# the post-quantum key exchange: without PAM and with plain curve25519 a login
# takes about 2 s. -r keeps each connection in the forked listener instead of
# starting sshd's binary again (-R): 1 s more saved, at the cost of the
# per-connection address-space randomisation, which a lab VM on loopback
# does not need. Without PAM, sshd refuses a locked account ("!" in the
# password field of the host's /etc/shadow); "*" (no password can match) lets
# the key log in. /etc is the guest's own overlay: the host's file is untouched.
if [ "$(findmnt -n -o FSTYPE /etc)" = overlay ]; then
    shadow=$(sed 's/^root:![^:]*:/root:*:/' /etc/shadow)
    printf '%s\n' "$shadow" >/etc/shadow
fi
/usr/sbin/sshd -r -E /var/log/sshd.log \
    -h "$here/ssh_host_ed25519_key" \
    -o "AuthorizedKeysFile $here/authorized_keys" \
    -o "PermitRootLogin prohibit-password" \
    -o "PasswordAuthentication no" \
    -o "UseDNS no" \
    -o "MaxSessions 64" \
    -o "MaxStartups 64" \
    -o "UsePAM no" \
    -o "KexAlgorithms curve25519-sha256,curve25519-sha256@libssh.org"
say "sshd ready"

echo "ZBOOT-LAB-READY"
while :; do sleep 3600; done
