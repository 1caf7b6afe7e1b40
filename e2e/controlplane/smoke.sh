#!/usr/bin/env bash
# Smoke test of a running control plane (needs KUBECONFIG and BIN_DIR, as
# exported by STATE_DIR/env). Run it as:
#   e2e/controlplane/with-controlplane.sh e2e/controlplane/smoke.sh
# Checks: Pod Security "restricted" rejects a bare pod and admits a hardened
# one; the controller manager turns a Deployment into a ReplicaSet and a Pod
# (no scheduler/kubelet: pods stay Pending); the service-account and
# root-CA-publisher controllers work.
set -euo pipefail

: "${KUBECONFIG:?source STATE_DIR/env first}"
k() { "${BIN_DIR:?}/kubectl" --request-timeout=10s "$@"; }
ok() { printf 'ok   %s\n' "$*"; }
die() { printf 'FAIL %s\n' "$*" >&2; exit 1; }
# wait_for SECONDS DESC CMD...: poll CMD until it succeeds.
wait_for() {
  local end=$(($(date +%s) + $1)) desc=$2
  shift 2
  until "$@" >/dev/null 2>&1; do
    [[ $(date +%s) -lt $end ]] || die "timed out waiting for $desc"
    sleep 0.2
  done
}

ns=psa-restricted-$RANDOM
k create namespace "$ns" >/dev/null
k label namespace "$ns" pod-security.kubernetes.io/enforce=restricted >/dev/null
wait_for 30 "ServiceAccount default in $ns" k -n "$ns" get serviceaccount default
ok "serviceaccount controller created $ns/default"

bare='apiVersion: v1
kind: Pod
metadata: {name: bare}
spec:
  containers: [{name: c, image: registry.k8s.io/pause:3.10}]'
if out=$(k -n "$ns" create -f - <<<"$bare" 2>&1); then
  die "bare pod was admitted in a restricted namespace: $out"
fi
[[ $out == *"violates PodSecurity \"restricted:latest\""* ]] || die "unexpected rejection: $out"
ok "bare pod rejected by Pod Security: ${out:0:110}..."

hardened='apiVersion: v1
kind: Pod
metadata: {name: hardened}
spec:
  securityContext:
    runAsNonRoot: true
    seccompProfile: {type: RuntimeDefault}
  containers:
  - name: c
    image: registry.k8s.io/pause:3.10
    securityContext:
      allowPrivilegeEscalation: false
      capabilities: {drop: [ALL]}'
out=$(k -n "$ns" create -f - <<<"$hardened" 2>&1) || die "hardened pod rejected: $out"
phase=$(k -n "$ns" get pod hardened -o jsonpath='{.status.phase}')
[[ $phase == Pending ]] || die "hardened pod phase $phase, want Pending"
ok "hardened pod admitted (phase $phase: no scheduler)"

ns2=plain-$RANDOM
k create namespace "$ns2" >/dev/null
start=$(date +%s.%N)
k -n "$ns2" create deployment web --image=registry.k8s.io/pause:3.10 --replicas=2 >/dev/null
pods_created() {
  [[ $(k -n "$ns2" get pods -l app=web -o name | wc -l) -eq 2 ]]
}
wait_for 30 "ReplicaSet of deployment web" k -n "$ns2" get replicaset -l app=web -o name
wait_for 30 "2 pods of deployment web" pods_created
ok "deployment -> replicaset -> 2 pods in $(awk "BEGIN{printf \"%.1f\", $(date +%s.%N) - $start}") s"

pod=$(k -n "$ns2" get pods -l app=web -o jsonpath='{.items[0].metadata.name}')
vols=$(k -n "$ns2" get pod "$pod" -o jsonpath='{.spec.volumes[*].name}')
[[ $vols == *kube-api-access-* ]] || die "pod has no service-account token volume: $vols"
wait_for 30 "ConfigMap kube-root-ca.crt" k -n "$ns2" get configmap kube-root-ca.crt
ok "pod got the projected service-account volume ($vols); kube-root-ca.crt published"

k delete namespace "$ns" "$ns2" --wait=false >/dev/null
echo "smoke: 5 passed, 0 failed"
