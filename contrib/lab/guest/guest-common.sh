# Sourced by both guests' start-up scripts (storage-init.sh, the lab's
# storage server; bare-server-init.sh, docs/server-setup.md's bare server):
# udev and the network, as a server's own boot brings them up.

start_udev() {
    # udev makes the /dev/zvol/<pool>/<name> links that every tool relies on.
    pgrep -x systemd-udevd >/dev/null || /lib/systemd/systemd-udevd --daemon
    udevadm trigger --action=add
    udevadm settle --timeout=60
    say "udev settled"
}

# bring_up_network HOSTNAME: QEMU user networking (host loopback is 10.0.2.2)
# and the boot LAN.
bring_up_network() {
    local host=$1 name dev lan_nic
    # The NIC on QEMU's user network is the one that is not on the boot LAN.
    local lan_nics=() nic=
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
    hostname "$host"
    # No DNS here: the host's resolver is unreachable from the guest, and every
    # reverse lookup of a client (sshd's session set-up does one) would wait for it.
    printf '127.0.0.1 localhost\n10.0.2.15 %s\n10.0.2.2 lab-host\n' "$host" >/etc/hosts
    printf 'options timeout:1 attempts:1\n' >/etc/resolv.conf
    # The boot LAN: a bridge over the NICs the clients' QEMUs connect to, with
    # the server's own address; DHCP and TFTP on it start when a test asks.
    modprobe bridge
    ip link add lan0 type bridge forward_delay 0 stp_state 0 2>/dev/null || true
    for lan_nic in "${lan_nics[@]}"; do
        ip link set "$lan_nic" master lan0
        ip link set "$lan_nic" up
    done
    ip addr add "$LAB_LAN_SERVER" dev lan0 2>/dev/null || true
    # An IPv6 prefix too, for the router advertisements the LAN's dnsmasq sends:
    # iPXE waits about 16 s for IPv6 autoconfiguration on a LAN without them.
    ip -6 addr add "$LAB_LAN_SERVER6" dev lan0 nodad 2>/dev/null || true
    ip link set lan0 up
    say "network up on $nic; boot LAN ${LAB_LAN_SERVER} on lan0 over ${lan_nics[*]}"
}
