#!/usr/bin/env bash
# oxelb on a real cluster with Docker: kind (3 nodes, kube-proxy IPVS with strictARP) plus a
# containerlab topology (an FRR router, a client behind it), running the demo's scenarios with the
# real images: allocation, layer2 and BGP reachability, ECMP at the router, controller restart
# without IP changes, layer2 failover.
#
# Needs Docker, kind, kubectl, containerlab and internet access (it pulls kindest/node, FRR,
# netshoot and agnhost images); oxelb's own images it builds with images/build.sh (musl-tools,
# buildah, the Rust musl target) and loads as archives, no registry and no docker build. It is NOT
# run by the test command (tests/run.sh): CI and the project's machines have no Docker engine and
# no internet access for those images (the test command runs oxelb's images with podman instead,
# tests/tests/images.rs). Usage: sudo tests/kind/run.sh [--keep]
set -euo pipefail
cd "$(dirname "$0")/../.."

keep=false
[[ ${1:-} == --keep ]] && keep=true
for tool in docker kind kubectl containerlab buildah; do
  command -v "$tool" >/dev/null || { echo "$tool is required (see docs/install.md, 'Container images and kind')" >&2; exit 1; }
done

cluster=oxelb
topology=tests/kind/oxelb.clab.yml
log() { printf '\n==> %s\n' "$*"; }

teardown() {
  if $keep; then
    echo "kept: kind cluster $cluster and containerlab $topology (remove: kind delete cluster --name $cluster; containerlab destroy -t $topology)"
    return
  fi
  containerlab destroy -t "$topology" --cleanup >/dev/null 2>&1 || true
  ip link delete br-oxelb 2>/dev/null || true
  kind delete cluster --name "$cluster" >/dev/null 2>&1 || true
}
trap teardown EXIT

wait_for() { # wait_for <what> <seconds> <command...>
  local what=$1 seconds=$2 i
  shift 2
  for ((i = 0; i < seconds; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  echo "timed out after ${seconds}s waiting for $what" >&2
  return 1
}

log "kind cluster"
kind create cluster --config tests/kind/kind-config.yaml --wait 120s
kubectl get configmap kube-proxy -n kube-system -o yaml | sed 's/strictARP: false/strictARP: true/' |
  kubectl apply -f - >/dev/null
kubectl -n kube-system rollout restart daemonset kube-proxy >/dev/null

log "images (images/build.sh, OCI archives) loaded into kind"
images=$(mktemp -d)
./images/build.sh images "$images"
for archive in "$images"/oxelb-controller.oci.tar "$images"/oxelb-speaker.oci.tar; do
  kind load image-archive --name "$cluster" "$archive"
done
rm -rf "$images"

log "router and client (containerlab)"
ip link add br-oxelb type bridge 2>/dev/null || true
ip link set br-oxelb up
containerlab deploy -t "$topology" --reconfigure
i=11
for node in oxelb-control-plane oxelb-worker oxelb-worker2; do
  docker exec "$node" ip addr replace "192.0.2.$i/24" dev eth1
  i=$((i + 1))
done

log "oxelb"
kubectl apply -f config/oxelb.yaml
kubectl -n oxelb-system rollout status deployment/oxelb-controller --timeout 180s
kubectl -n oxelb-system rollout status daemonset/oxelb-speaker --timeout 180s
kubectl apply -f tests/kind/objects.yaml
kubectl rollout status deployment/web --timeout 180s

ip_of() { kubectl get service "$1" -o jsonpath='{.status.loadBalancer.ingress[0].ip}'; }
wait_for "web-layer2's IP" 60 test -n "$(ip_of web-layer2)"
wait_for "web-bgp's IP" 60 test -n "$(ip_of web-bgp)"
l2=$(ip_of web-layer2)
bgp=$(ip_of web-bgp)
echo "web-layer2 -> $l2, web-bgp -> $bgp"

client() { docker exec clab-oxelb-client "$@"; }
router() { docker exec clab-oxelb-router "$@"; }

log "layer2: reachable through one node"
wait_for "$l2 from the client" 60 client curl -s -m 2 "http://$l2/hostname"
echo "GET http://$l2/hostname -> $(client curl -s -m 2 "http://$l2/hostname")"

log "BGP: three paths at the router, reachable from the client"
paths() { router vtysh -c "show ip bgp $bgp/32 json" | grep -o '"ip":"192.0.2.1[1-3]"' | sort -u | wc -l; }
wait_for "three BGP paths for $bgp" 90 test "$(paths)" -eq 3
router ip route show "$bgp"
echo "GET http://$bgp/hostname -> $(client curl -s -m 2 "http://$bgp/hostname")"

log "controller restart: no IP moves"
kubectl -n oxelb-system rollout restart deployment/oxelb-controller
kubectl -n oxelb-system rollout status deployment/oxelb-controller --timeout 180s
sleep 5
[[ $(ip_of web-layer2) == "$l2" && $(ip_of web-bgp) == "$bgp" ]] || { echo "an IP moved across the restart" >&2; exit 1; }
echo "unchanged: $l2, $bgp"

log "layer2 failover: the answering node's speaker is lost"
mac=$(router sh -c "ip neigh flush dev eth1; ping -c1 -W1 $l2 >/dev/null; ip neigh show $l2" | awk '{print $5}')
node=""
for n in oxelb-control-plane oxelb-worker oxelb-worker2; do
  [[ $(docker exec "$n" cat /sys/class/net/eth1/address) == "$mac" ]] && node=$n
done
[[ -n $node ]] || { echo "no node owns $mac for $l2" >&2; exit 1; }
echo "$l2 is answered by $node; pausing it"
docker pause "$node"
start=$(date +%s%N)
wait_for "$l2 answered again" 30 client curl -s -m 1 "http://$l2/hostname"
echo "answered again after $((($(date +%s%N) - start) / 1000000)) ms (includes curl's own timeouts)"
docker unpause "$node"

log "all scenarios passed"
