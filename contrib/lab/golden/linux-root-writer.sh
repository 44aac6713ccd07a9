# The writer image's program, sourced by /init (as /zboot/writer) once iscsid
# runs: it writes to its iSCSI root in a loop while the test changes things
# on the server, then checks what it wrote and powers off.
#
# Block n is 64 KiB: a 16-byte header "zboot-blk%06d\n" and the same 65520
# random bytes (chosen at boot); it goes to slot n % SLOTS of
# /zboot/writer.bin, with fsync. The loop ends when the server has the stop
# file http://<the target's address>/zboot-writer-stop-<mac as aa-bb-..>, or
# after CAP seconds. Then the page cache is dropped, the file read back and
# its sha256 compared with the one of what the last writes put there.
#
# Console lines: ZBOOT-WRITER-START; ZBOOT-WRITER-AT <blocks> every 16
# blocks; ZBOOT-WRITER-STALL <json> when a block took more than a second;
# at the end one ZBOOT-WRITER <json>.
SLOTS=32
CAP=300
data=/zboot/writer.bin
mac=$(field ethernet0/mac | tr ':' '-')
server=$(field target0/ip-addr)
# Asked with a bare HTTP request through nc: the static busybox's wget
# crashes (glibc's resolver, linked statically), nc does not.
stop_asked() {
    printf 'HEAD /zboot-writer-stop-%s HTTP/1.0\r\n\r\n' "$mac" |
        nc -w 3 "$server" 80 2>/dev/null | head -n 1 | grep -q ' 200 '
}
centis() { read -r up _ </proc/uptime; echo "${up%.*}${up#*.}"; }
head -c 65520 /dev/urandom >/run/seed
block() { printf 'zboot-blk%06d\n' "$1"; cat /run/seed; }
rm -f "$data"
sync
# iscsid takes the boot session over by logging in again on it: wait for
# that, then start its log afresh, so what it logs from here on is about
# what the server did (iscsid appends to it: truncating is safe).
for _ in $(seq 150); do
    grep -q operational /run/iscsid.log && break
    sleep 0.1
done
echo "ZBOOT-WRITER-TAKEOVER $(tr -d '\n' </run/iscsid.log)" >/dev/console
: >/run/iscsid.log
# what iscsid does from here on, on the console as it happens
tail -f /run/iscsid.log >/dev/console 2>&1 &
echo "ZBOOT-WRITER-START" >/dev/kmsg
echo "ZBOOT-WRITER-START" >/dev/console
n=0
failures=0
stalls=
start=$(centis)
last=$start
while :; do
    block "$n" >/run/block
    if ! dd if=/run/block of="$data" bs=65536 count=1 seek=$((n % SLOTS)) \
        conv=notrunc,fsync 2>/dev/null; then
        failures=$((failures + 1))
        [ "$failures" -ge 3 ] && break
        continue
    fi
    n=$((n + 1))
    now=$(centis)
    gap=$((now - last))
    last=$now
    if [ "$gap" -gt 100 ]; then
        stall="{\"block\": $n, \"at\": $((now - start)), \"centiseconds\": $gap}"
        echo "ZBOOT-WRITER-STALL $stall" >/dev/console
        stalls="${stalls:+$stalls, }$stall"
    fi
    if [ $((n % 16)) -eq 0 ]; then
        echo "ZBOOT-WRITER-AT $n" >/dev/console
        stop_asked && break
    fi
    [ $((now - start)) -ge $((CAP * 100)) ] && break
done
seconds=$(( ($(centis) - start) / 100 ))
# What the file must hold: in each slot, the last block written to it.
used=$n
[ "$used" -gt "$SLOTS" ] && used=$SLOTS
expected() {
    slot=0
    while [ "$slot" -lt "$used" ]; do
        block $((slot + (n - 1 - slot) / SLOTS * SLOTS))
        slot=$((slot + 1))
    done
}
sha_written=$(expected | sha256sum | cut -d' ' -f1)
sync
echo 3 >/proc/sys/vm/drop_caches
sha_read=$(sha256sum "$data" 2>/dev/null | cut -d' ' -f1)
# The kernel's lines since the start (JSON strings: no quotes, no backslashes).
dmesg | sed -n '/ZBOOT-WRITER-START/,$p' | tr -d '"\\' >/run/kernel.log
lines() { grep -E "$1" "$2" | sed 's/.*/"&"/' | tr '\n' ',' | sed 's/,$//'; }
io_errors=$(lines 'I/O error|EXT4-fs error|recovery timed out|Remounting filesystem|Aborting journal|rejecting I/O|blk_update_request|critical' /run/kernel.log)
conn_errors=$(lines 'conn error|connection.*error' /run/kernel.log)
tr -d '"\\' </run/iscsid.log >/run/iscsid.clean 2>/dev/null
recovered=$(lines 'operational after recovery|operational now|reopen|Login' /run/iscsid.clean)
echo "ZBOOT-WRITER {\"blocks\": $n, \"seconds\": $seconds, \"write_failures\": $failures, \"sha_written\": \"$sha_written\", \"sha_read\": \"$sha_read\", \"stalls\": [$stalls], \"io_errors\": [$io_errors], \"conn_errors\": [$conn_errors], \"recovered\": [$recovered]}" >/dev/console
sleep 1
poweroff -f
