#!/bin/busybox sh
# The golden Linux image's /init, on its iSCSI root disk. It starts open-iscsi's
# iscsid first, which takes over the session `iscsistart -b` made in the
# initramfs (it finds it in sysfs and logs in again on it), so the disk keeps
# working when the target restarts. Then it reports what the OS took from the
# iBFT and how often this disk has booted, in one machine-readable line on
# the console, then syncs and powers off. With /zboot/writer on the root (the
# writer image) it runs that instead of the report: see linux-root-writer.sh.
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
# iscsid's lock and log live in memory: nothing it needs during a recovery
# may wait for the disk it is recovering.
mount -t tmpfs tmpfs /run
mkdir -p /run/lock/iscsi
ibft=/sys/firmware/ibft
field() { [ -r "$ibft/$1" ] && tr -d '\n' <"$ibft/$1"; }
echo "InitiatorName=$(field initiator/initiator-name)" >/etc/iscsi/initiatorname.iscsi
/sbin/iscsid -f -n >>/run/iscsid.log 2>&1 &
[ -e /zboot/writer ] && . /zboot/writer
count=$(( $(cat /zboot/counter) + 1 ))
echo "$count" >/zboot/counter
sync
[ -e /zboot/installed-by ] && installed=$(cat /zboot/installed-by)
echo "ZBOOT-LINUX {\"counter\": $count, \"initiator\": \"$(field initiator/initiator-name)\", \"target\": \"$(field target0/target-name)\", \"portal\": \"$(field target0/ip-addr):$(field target0/port)\", \"lun\": \"$(field target0/lun)\", \"chap_user\": \"$(field target0/chap-name)\", \"reverse_chap_user\": \"$(field target0/rev-chap-name)\", \"mac\": \"$(field ethernet0/mac)\", \"ip\": \"$(field ethernet0/ip-addr)\", \"gateway\": \"$(field ethernet0/gateway)\", \"dhcp\": \"$(field ethernet0/dhcp)\", \"installed\": \"${installed:-}\"}" >/dev/console
sleep 1
poweroff -f
