#!/bin/busybox sh
# The golden Linux image's /init, on its iSCSI root disk. It reports what
# the OS took from the iBFT and how often this disk has booted, in one
# machine-readable line on the console, then syncs and powers off.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
ibft=/sys/firmware/ibft
field() { [ -r "$ibft/$1" ] && tr -d '\n' <"$ibft/$1"; }
count=$(( $(cat /zboot/counter) + 1 ))
echo "$count" >/zboot/counter
sync
[ -e /zboot/installed-by ] && installed=$(cat /zboot/installed-by)
echo "ZBOOT-LINUX {\"counter\": $count, \"initiator\": \"$(field initiator/initiator-name)\", \"target\": \"$(field target0/target-name)\", \"portal\": \"$(field target0/ip-addr):$(field target0/port)\", \"lun\": \"$(field target0/lun)\", \"chap_user\": \"$(field target0/chap-name)\", \"reverse_chap_user\": \"$(field target0/rev-chap-name)\", \"mac\": \"$(field ethernet0/mac)\", \"ip\": \"$(field ethernet0/ip-addr)\", \"gateway\": \"$(field ethernet0/gateway)\", \"dhcp\": \"$(field ethernet0/dhcp)\", \"installed\": \"${installed:-}\"}" >/dev/console
sleep 1
poweroff -f
