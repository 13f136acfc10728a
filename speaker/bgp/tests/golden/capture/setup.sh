#!/bin/sh
# Two namespaces joined by a veth: gold-frr (FRR 8.4, AS 64513) and gold-gobgp (gobgpd 3.10, AS 4200000001).
set -ex
ip netns add gold-frr
ip netns add gold-gobgp
ip link add gold-a type veth peer name gold-b
ip link set gold-a netns gold-frr
ip link set gold-b netns gold-gobgp
# Fixed MACs so IPv6 link-local next hops (fe80::...) are the same on every run.
ip -n gold-frr link set gold-a address 02:00:00:00:00:01
ip -n gold-gobgp link set gold-b address 02:00:00:00:00:02
for ns in gold-frr gold-gobgp; do ip -n $ns link set lo up; done
ip -n gold-frr addr add 198.51.100.1/24 dev gold-a
ip -n gold-frr addr add 2001:db8:1::1/64 dev gold-a nodad
ip -n gold-gobgp addr add 198.51.100.2/24 dev gold-b
ip -n gold-gobgp addr add 2001:db8:1::2/64 dev gold-b nodad
# A third address for the hand-driven feeder that replays oxelb's bytes (phase 2).
ip -n gold-gobgp addr add 198.51.100.3/24 dev gold-b
ip -n gold-gobgp addr add 2001:db8:1::3/64 dev gold-b nodad
ip -n gold-frr link set gold-a up
ip -n gold-gobgp link set gold-b up
