# shellcheck shell=bash
# The registry part of up-node.sh (sourced by it once the busybox archive
# exists and before containerd_config, which keeps the hosts.toml written
# here; uses up.sh's helpers: log, fail, start, alive, in_time, and its
# variables state, node, logs, pids, NODE_TEST_IMAGE).
#
# Starts e2e/registry on 127.0.0.1 (and 127.0.0.2, the other host of
# faults/redirect, and 127.0.0.3, the metadata realm), on ports the kernel picks, and adds to STATE_DIR/env:
#   SD_REGISTRY           127.0.0.1:PORT
#   SD_REGISTRY_OTHER     127.0.0.2:PORT (where faults/redirect points)
#   SD_REGISTRY_REALM     127.0.0.3:PORT (every request: a Bearer challenge
#                         whose realm is the cloud metadata address)
#   SD_REGISTRY_USER, SD_REGISTRY_PASSWORD  the basic-auth account of private/
#   REGISTRY_PID
# Seeds: e2e/busybox:1, private/busybox:1, faults/slow:1, faults/redirect:1
# (busybox), and e2e/NAME:TAG for every image of e2e/images' catalog
# (SD_IMAGES_DIR, or the cached build of this checkout), plus
# private/nonroot-owner:1.

registry_bin=$("$here/../registry/build.sh" | tail -n 1) || fail "cannot build the e2e registry"
registry_dir=$node/registry
mkdir -p "$registry_dir"
busybox_tar=$node/images/busybox.tar
registry_seeds=(
  --seed "e2e/busybox:1=$busybox_tar" --seed "private/busybox:1=$busybox_tar"
  --seed "faults/slow:1=$busybox_tar" --seed "faults/redirect:1=$busybox_tar"
)
images_dir=${SD_IMAGES_DIR:-$("$here/../images/build.sh" --print-dir)}
if [[ -f $images_dir/catalog.json ]]; then
  # localhost/e2e/nginx:1.22-bookworm -> e2e/nginx:1.22-bookworm
  while read -r ref archive; do
    registry_seeds+=(--seed "$ref=$archive")
  done < <(python3 - "$images_dir/catalog.json" <<'EOF'
import json, sys
images = json.load(open(sys.argv[1]))["images"]
for name, img in sorted(images.items()):
    print(img["image"].removeprefix("localhost/"), img["archive"])
    if name == "nonroot-owner":
        print("private/" + img["image"].split("/")[-1], img["archive"])
EOF
  )
else
  log "no image catalog in $images_dir: the registry holds busybox only (run e2e/images/build.sh)"
fi
registry_password=$(openssl rand -hex 12)
SD_REGISTRY_PASSWORD=$registry_password start registry "$registry_bin" \
  --addr-file "$registry_dir/addr" --user e2e "${registry_seeds[@]}"
registry_pid=$last_pid
pids+=("$registry_pid")
echo "export REGISTRY_PID=$registry_pid" >>"$state/env"
until [[ -f $registry_dir/addr ]]; do
  alive "$registry_pid" registry
  in_time "the registry"
  sleep 0.1
done
{ read -r registry_addr; read -r registry_other; read -r registry_realm; } <"$registry_dir/addr"
mkdir -p "$node/etc/certs.d/$registry_addr"
cat >"$node/etc/certs.d/$registry_addr/hosts.toml" <<EOF
server = "http://$registry_addr"
[host."http://$registry_addr"]
  capabilities = ["pull", "resolve"]
EOF
cat >>"$state/env" <<EOF
export SD_REGISTRY=$registry_addr
export SD_REGISTRY_OTHER=$registry_other
export SD_REGISTRY_REALM=$registry_realm
export SD_REGISTRY_USER=e2e
export SD_REGISTRY_PASSWORD=$registry_password
EOF
