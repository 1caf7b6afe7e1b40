#!/usr/bin/env bash
# `make e2e`: the end-to-end suite against a real control plane.
#
# 1. builds kube-apiserver, kube-controller-manager, kubectl and etcd, and the
#    node (kubelet, kube-scheduler, containerd, runc, CNI plugins, crictl)
#    from Go modules, once (cached in ~/.cache/secure-defaults/{controlplane,node}/VERSIONS);
# 2. builds secure-defaults and the test crate before the control plane starts;
# 3. starts etcd, kube-apiserver, kube-controller-manager and kube-scheduler on
#    loopback and a node (containerd + kubelet on a bridge of its own), runs
#    the scenarios (e2e/tests/*.rs) against them; tears down on exit and
#    fails if anything was left behind. SD_NODE=0 leaves the node out (the
#    runtime tests then fail).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

e2e/controlplane/build.sh >/dev/null
if [[ ${SD_NODE:-1} == 1 ]]; then
  e2e/controlplane/build-node.sh >/dev/null
  # The test registry the node pulls from (cached; seconds when cold).
  e2e/registry/build.sh >/dev/null
  # The real-server images the legacy tests deploy (cached; needs root and debootstrap).
  SD_IMAGES_DIR=$(e2e/images/build.sh | tail -n 1)
  # The product image the Helm install on the node runs (static release build).
  SD_PRODUCT_IMAGE=$(make -s oci-image | tail -n 1)
  export SD_IMAGES_DIR SD_PRODUCT_IMAGE
fi

cargo build --locked --bin secure-defaults
cargo test --locked -p secure-defaults-e2e --no-run
export SECURE_DEFAULTS_BIN="$repo/target/debug/secure-defaults"

# The upstream Pod Security fixtures, from the module cache filled by build.sh.
psa_dir=$(cd e2e/controlplane/k8s && go list -m -f '{{.Dir}}' k8s.io/pod-security-admission)
export PSA_TESTDATA="$psa_dir/test/testdata"

# The install paths (kustomize, Helm, `secure-defaults certs`) on a control
# plane of their own.
bash hack/check-install.sh

# The product is built with the Kubernetes 1.36 API bindings and tested
# against a 1.37 API server, with a 1.37 alpha pod field switched on
# (spec.evictionResponders): proof that a newer cluster's fields survive.
export APISERVER_EXTRA_ARGS="${APISERVER_EXTRA_ARGS:-} --feature-gates=EvictionRequestAPI=true"

# Scenarios mostly wait on the API server: run more of them than there are cores.
export RUST_BACKTRACE=0
SD_NODE=${SD_NODE:-1} exec e2e/controlplane/with-controlplane.sh \
  cargo test --locked -p secure-defaults-e2e -- --test-threads "${E2E_THREADS:-4}" "$@"
