# shellcheck shell=bash
# The node's bridge, sourced by up.sh when SD_NODE=1 before the API server
# starts (uses its helpers log and fail, and its variable state).
#
# The bridge's own address is the node IP (the kubelet refuses a loopback
# one) and the API server's address: pods on the bridge reach it there with
# no kube-proxy and no NAT, and host clients too, since the address is local
# to this host. Nothing on the bridge routes anywhere else.
#
# Sets node_name, bridge, subnet (10.x.y) and node_ip; adds NODE_BRIDGE,
# NODE_NAME, NODE_IP and NODE_SUBNET to STATE_DIR/env. down-node.sh deletes
# the bridge (it finds it in env), also when up.sh fails later on.

# A per-run name and a /24 that no route on the host covers.
node_name=sd-e2e-$(printf '%04x' $((RANDOM % 65536)))
bridge=sdbr${node_name#sd-e2e-}
subnet=""
for ((i = 0; i < 50; i++)); do
  cand=10.$((200 + RANDOM % 50)).$((RANDOM % 256))
  if [[ -z $(ip -4 route show match "$cand.1" | grep -v '^default') ]]; then
    subnet=$cand
    break
  fi
done
[[ -n $subnet ]] || fail "no free 10.x.y.0/24 for the node bridge"
node_ip=$subnet.1
# down-node.sh runs only where STATE_DIR/n exists.
mkdir -p "$state/n"
ip link add "$bridge" type bridge || fail "cannot create bridge $bridge"
cat >>"$state/env" <<EOF
export NODE_BRIDGE=$bridge
export NODE_NAME=$node_name
export NODE_IP=$node_ip
export NODE_SUBNET=$subnet.0/24
EOF
ip addr add "$node_ip/24" dev "$bridge" || fail "cannot add $node_ip to bridge $bridge"
ip link set "$bridge" up || fail "cannot bring up bridge $bridge"
