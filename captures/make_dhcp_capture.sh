#!/bin/sh
# Record captures/dhcp-dnsmasq-udhcpc.pcap: one real DHCP exchange between dnsmasq (the
# server, in namespace S) and busybox udhcpc (the client, in namespace C), over one veth,
# as the client's eth0 saw it. Needs root, dnsmasq and busybox.
#
#     sh captures/make_dhcp_capture.sh [OUT.pcap]
#
# What it holds, in order: DISCOVER (broadcast), dnsmasq's ARP requests for the address
# it means to offer (its ping check), OFFER, REQUEST (selecting), ACK; then a renewal
# (udhcpc's SIGUSR1: a unicast REQUEST from the leased address, ciaddr set) and its ACK;
# then a RELEASE (SIGUSR2). MACs are pinned (client 02:00:00:00:01:00, server
# 02:00:00:00:00:01); the server is 192.168.10.1, serving 192.168.10.100-192.168.10.199
# with router and DNS 192.168.10.1. tcpdump runs in --immediate-mode: otherwise the
# frames of its last buffer timeout are lost when it is stopped.
# tests/unit/test_traffic_dhcp.py parses it.
set -eu
OUT=${1:-$(dirname "$0")/dhcp-dnsmasq-udhcpc.pcap}
P=dhcap$$
DIR=$(mktemp -d)
cleanup() {
    [ -f "$DIR/dnsmasq.pid" ] && kill "$(cat "$DIR/dnsmasq.pid")" 2>/dev/null || true
    [ -n "${CLIENT:-}" ] && kill "$CLIENT" 2>/dev/null || true
    [ -n "${DUMP:-}" ] && kill "$DUMP" 2>/dev/null || true
    ip netns del "$P-s" 2>/dev/null || true
    ip netns del "$P-c" 2>/dev/null || true
    rm -rf "$DIR"
}
trap cleanup EXIT
trap "exit 1" INT TERM
ip netns add "$P-s"
ip netns add "$P-c"
ip link add eth0 netns "$P-s" type veth peer name eth0 netns "$P-c"
ip -n "$P-c" link set eth0 address 02:00:00:00:01:00
ip -n "$P-s" link set eth0 address 02:00:00:00:00:01
ip -n "$P-s" link set eth0 up
ip -n "$P-c" link set eth0 up
ip -n "$P-s" addr add 192.168.10.1/24 dev eth0
ip netns exec "$P-s" dnsmasq --conf-file=/dev/null --no-hosts --no-resolv --port=0 \
    --interface=eth0 --bind-interfaces --dhcp-range=192.168.10.100,192.168.10.199,3600 \
    --dhcp-option=3,192.168.10.1 --dhcp-option=6,192.168.10.1 \
    --dhcp-leasefile="$DIR/leases" --pid-file="$DIR/dnsmasq.pid"
ip netns exec "$P-c" tcpdump -q --immediate-mode -i eth0 -U -w "$DIR/out.pcap" 'udp port 67 or udp port 68 or arp' \
    2>"$DIR/tcpdump.log" &
DUMP=$!
until grep -q listening "$DIR/tcpdump.log"; do sleep 0.1; done
cat >"$DIR/script" <<EOF
#!/bin/sh
[ "\$1" = bound ] && ip addr add "\$ip/\$mask" dev "\$interface"
echo "\$1" >>"$DIR/events"
exit 0
EOF
chmod +x "$DIR/script"
ip netns exec "$P-c" busybox udhcpc -f -i eth0 -s "$DIR/script" >"$DIR/udhcpc.log" 2>&1 &
CLIENT=$!
wait_for() { until grep -q "^$1\$" "$DIR/events" 2>/dev/null; do sleep 0.1; done; }
wait_for bound
kill -USR1 "$CLIENT"          # renew: unicast REQUEST from the leased address
wait_for renew
kill -USR2 "$CLIENT"          # release
until grep -qi "unicasting a release" "$DIR/udhcpc.log"; do sleep 0.1; done
sleep 0.2                      # the RELEASE crosses the veth into the capture
kill "$DUMP"; wait "$DUMP" || true; DUMP=
cp "$DIR/out.pcap" "$OUT"
tcpdump -nr "$OUT" 2>/dev/null
