#!/bin/busybox sh
# The golden Linux image's initramfs: take the disk over the way an operating
# system does after iPXE's SAN boot. iPXE left the iSCSI Boot Firmware Table
# (iBFT) in memory; open-iscsi's `iscsistart` reads it, brings the NIC up with
# the address iPXE used (-N) and logs in to the same target (-b). The root
# filesystem on that disk is mounted and its /init takes over.
#
# Installer mode (kernel argument zboot.install): the disk found through the
# iBFT is blank; partition it and write the OS image carried in this
# initramfs onto it, then power off.
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
say() { echo "ZBOOT-INITRAMFS: $*" >/dev/console; }
fail() {
    say "ERROR: $*"
    echo "ZBOOT-ERROR: $*" >/dev/console
    sleep 1
    poweroff -f
}
# A module for a CPU feature the machine lacks (crct10dif-pclmul under
# emulation) refuses to load; what is really missing shows up below.
while read -r module; do
    insmod "/modules/$module" 2>/dev/null || say "module $module not loaded"
done </modules/order
[ -d /sys/firmware/ibft ] || fail "no iBFT: the firmware did not describe an iSCSI disk"
mkdir -p /etc/iscsi
iscsistart -N >/dev/console 2>&1 || fail "iscsistart -N (network from the iBFT)"
iscsistart -b >/dev/console 2>&1 || fail "iscsistart -b (login from the iBFT)"
disk=
for _ in $(seq 100); do
    for block in /sys/block/sd*; do
        [ -e "$block" ] && disk=/dev/${block##*/} && break 2
    done
    sleep 0.1
done
[ -n "$disk" ] || fail "logged in, but no disk appeared"
say "iSCSI disk $disk"
if grep -qw zboot.install /proc/cmdline; then
    say "installing onto $disk"
    gunzip -c /os.img.gz | dd of="$disk" bs=1M conv=fsync 2>/dev/null || fail "writing $disk"
    blockdev --rereadpt "$disk" || fail "re-reading the partitions of $disk"
    for _ in $(seq 50); do [ -b "${disk}2" ] && break; sleep 0.1; done
    mkdir -p /newroot
    mount -t ext4 "${disk}2" /newroot || fail "mount ${disk}2 after writing it"
    echo "zboot-lab installer" >/newroot/zboot/installed-by
    umount /newroot
    sync
    echo "ZBOOT-INSTALLED $disk" >/dev/console
    sleep 1
    poweroff -f
fi
for _ in $(seq 50); do [ -b "${disk}2" ] && break; sleep 0.1; done
mkdir -p /newroot
mount -t ext4 "${disk}2" /newroot || fail "mount ${disk}2"
exec switch_root /newroot /init
