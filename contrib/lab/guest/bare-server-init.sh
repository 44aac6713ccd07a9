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

for dir in /root /home /srv; do
    mount -t tmpfs -o mode=0755 tmpfs "$dir"
done
chmod 0700 /root
# The host's /usr with the guest's page cache on (see storage-init.sh).
mount -t 9p -o ro,trans=virtio,version=9p2000.L,access=any,msize=512000,cache=loose \
    labusr /usr

# --- what systemd's units do at boot -----------------------------------------
modprobe configfs
grep -q ' /sys/kernel/config ' /proc/mounts || mount -t configfs none /sys/kernel/config
modprobe zfs # zfs-load-module.service
pgrep -x systemd-udevd >/dev/null || /lib/systemd/systemd-udevd --daemon
udevadm trigger --action=add
udevadm settle --timeout=60
say "udev settled"

# --- the network, as the installer configured it -------------------------------
lan_nics=()
nic=
for dev in /sys/class/net/*; do
    name=${dev##*/}
    [ "$name" = lo ] && continue
    case "$(cat "$dev/address")" in
    "$LAB_LAN_MAC_PREFIX"*) lan_nics+=("$name") ;;
    *) [ -n "$nic" ] || nic=$name ;;
    esac
done
ip link set lo up
ip link set "$nic" up
ip addr add 10.0.2.15/24 dev "$nic" 2>/dev/null || true
ip route add default via 10.0.2.2 2>/dev/null || true
hostname storage
printf '127.0.0.1 localhost\n10.0.2.15 storage\n' >/etc/hosts
printf 'options timeout:1 attempts:1\n' >/etc/resolv.conf
# The boot LAN: the server's second port, here a bridge over the NICs the
# clients' QEMUs connect to (one switch), with the server's address on it.
modprobe bridge
ip link add lan0 type bridge forward_delay 0 stp_state 0 2>/dev/null || true
for lan_nic in "${lan_nics[@]}"; do
    ip link set "$lan_nic" master lan0
    ip link set "$lan_nic" up
done
ip addr add "$LAB_LAN_SERVER" dev lan0 2>/dev/null || true
ip -6 addr add "$LAB_LAN_SERVER6" dev lan0 nodad 2>/dev/null || true
ip link set lan0 up
say "network up on $nic; boot LAN ${LAB_LAN_SERVER} on lan0"

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
