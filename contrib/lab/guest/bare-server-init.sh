#!/bin/bash
# Runs inside the second lab VM, the bare server of docs/server-setup.md's
# test (tests/e2e/test_server_setup.py). It does what a freshly installed
# Debian server does by itself when it boots, and nothing of zboot's: no
# pool, no target configuration, no zboot user or key, no boot files, no
# DHCP. The page's own steps, run by the test, do all of that.
#
# What stands in for the parts a real server has and this VM lacks:
# - systemd: the steps below are what its units do at boot (configfs,
#   udev, the zfs module, the network, sshd). The page's `systemctl` lines
#   are run by the test as the package's own /etc/init.d script.
# - a writable root disk: the root is the host's, read-only over 9p, with
#   /etc, /var and /tmp as the VM's own overlays; /root, /home and /srv get
#   a tmpfs here, so the page can write where a server's disk would be.
# - the admin's own SSH access: root logs in with the test's key, as an
#   admin with a key on a new server does. Settings come from guest.env.
set -euo pipefail
ulimit -n 8192
here=$(dirname -- "$(readlink -f -- "$0")")
# shellcheck source=/dev/null
. "$here/guest.env"
say() { echo "zboot-lab: $* (uptime $(cut -d' ' -f1 /proc/uptime) s)"; }
say "bare server init started"
# shellcheck source=guest-common.sh
. "$here/guest-common.sh"

for dir in /root /home /srv; do
    mount -t tmpfs -o mode=0755 tmpfs "$dir"
done
chmod 0700 /root
# The host's /usr with the guest's page cache on (see storage-init.sh).
mount -t 9p -o ro,trans=virtio,version=9p2000.L,access=any,msize=512000,cache=loose \
    labusr /usr

# virtme's own files over the real ones, which a server does not have: a
# shadow file mounted on /etc/shadow (useradd cannot rename onto a mount
# point) and a sudoers rule of its own. The host's files show through again.
for file in /etc/shadow /etc/sudoers.d/99-virtme; do
    if mountpoint -q "$file"; then umount "$file"; fi
done
rm -f /etc/sudoers.d/99-virtme

# virtme starts /var/log empty; make the log directories the host's
# packages made (nginx's, for one), as they are on the host.
mkdir -p /run/host-root
mount --bind / /run/host-root # the root alone, without the overlays on it
(cd /run/host-root/var/log && find . -mindepth 1 -type d -printf '%P\n') |
    while read -r dir; do
        [ -d "/var/log/$dir" ] || install -d -m "$(stat -c %a "/run/host-root/var/log/$dir")" \
            -o "$(stat -c %u "/run/host-root/var/log/$dir")" \
            -g "$(stat -c %g "/run/host-root/var/log/$dir")" "/var/log/$dir"
    done
umount /run/host-root

# --- what systemd's units do at boot -----------------------------------------
modprobe configfs
grep -q ' /sys/kernel/config ' /proc/mounts || mount -t configfs none /sys/kernel/config
modprobe zfs # zfs-load-module.service
start_udev

# --- the network, as the installer configured it -------------------------------
bring_up_network storage

# --- sshd, with Debian's own configuration (PAM on) ----------------------------
install -d -m 0700 /root/.ssh
install -m 0600 "$here/authorized_keys" /root/.ssh/authorized_keys
mkdir -p /run/sshd
rm -f /run/nologin
/usr/sbin/sshd -E /var/log/sshd.log \
    -h "$here/ssh_host_ed25519_key" \
    -o "UseDNS no" \
    -o "KexAlgorithms curve25519-sha256,curve25519-sha256@libssh.org"
say "sshd ready"

echo "ZBOOT-LAB-READY"
while :; do sleep 3600; done
