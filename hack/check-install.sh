#!/usr/bin/env bash
# Check the install paths: the kustomize manifests, the Helm chart and the
# `secure-defaults certs` output, offline and against a real control plane
# (kube-apiserver, etcd, kube-controller-manager from e2e/controlplane).
#
# Usage: hack/check-install.sh            everything (about 1-2 minutes when
#                                         helm and the control plane are cached)
#        hack/check-install.sh --offline  lint and render only, no control plane
# SD_CHECK_KEEP=1 keeps the renderings (a temp dir, printed) for a look.
#
# Offline: helm lint (both certificate modes), helm template (both modes, mode=policy, and
# the values that must be refused), kubectl kustomize of the base and both
# overlays, tests/manifests.rs comparing the Helm renderings with the
# kustomize overlays object by object (rendered_helm_matches_kustomize), and
# tests/chart.rs: helm template of every configuration example in the README
# and docs/, and of each chart toggle.
#
# On the control plane (see cluster_checks below): server-side dry-run of every
# rendering (cert-manager objects excepted: their CRDs are not installed), then
# a real install of overlays/plain and of the chart with `helm install`, and
# what the API server then does with pods: the webhook's own pods are created
# under Pod Security "restricted" and a ResourceQuota admission that limits
# system-cluster-critical; pods elsewhere are refused while the webhook is
# unreachable (failurePolicy Fail), admitted with Ignore, admitted in excluded
# namespaces, in namespaces labelled secure-defaults.io/ignore=true only where
# namespacePolicy.allowOptOut is true, and again once the registration is deleted.
#
# No webhook pod runs (there is no kubelet): these checks cover the install,
# not the webhook's answers, which the e2e suite covers.
#
# Tools: helm from hack/tools/helm.sh, kubectl from e2e/controlplane/build.sh
# (both built once and cached in ~/.cache/secure-defaults), hadolint from
# hack/tools/hadolint.sh (PyPI); the Dockerfile is also linted here.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
log() { printf 'check-install: %s\n' "$*" >&2; }
fail() {
  printf 'check-install: FAIL: %s\n' "$*" >&2
  exit 1
}

# ------------------------------------------------------------------ cluster
# Runs inside with-controlplane.sh: KUBECONFIG and PATH (kubectl) are set.
cluster_checks() {
  local r=$1 # rendered dir
  local k=(kubectl --request-timeout=20s)
  local ns=secure-defaults

  wait_default_sa default
  wait_default_sa kube-system
  wait_default_sa kube-node-lease
  # Dry-run needs the namespace to exist for the namespaced objects.
  "${k[@]}" apply -f "$root/manifests/base/namespace.yaml" >/dev/null

  local f
  for f in kustomize-base kustomize-plain kustomize-cert-manager helm-secret helm-cert-manager \
    kustomize-native-policy helm-native-policy; do
    # cert-manager's CRDs are not available here: its objects are rendered
    # (above) and compared, not sent.
    awk 'BEGIN{RS="\n---\n"} !/(^|\n)apiVersion: cert-manager\.io\// {printf "%s\n---\n", $0}' \
      "$r/$f.yaml" >"$r/$f.no-cm.yaml"
    if ! "${k[@]}" apply --dry-run=server -f "$r/$f.no-cm.yaml" >"$r/$f.dry-run.out" 2>&1; then
      cat "$r/$f.dry-run.out" >&2
      fail "server-side dry-run of $f"
    fi
    # A Pod Security warning here means the Deployment would not run in its
    # own restricted namespace.
    if grep -i 'warning' "$r/$f.dry-run.out" >&2; then
      fail "server-side dry-run of $f printed warnings"
    fi
    log "dry-run=server ok: $f ($(grep -c . "$r/$f.dry-run.out") objects)"
  done

  # ---------------------------------------------- real install: overlays/plain
  "${k[@]}" apply -k "$r/manifests/overlays/plain" >/dev/null
  local bundle
  bundle=$("${k[@]}" get mutatingwebhookconfiguration secure-defaults \
    -o jsonpath='{.webhooks[0].clientConfig.caBundle}')
  [[ $bundle == "$(cat "$r/tls/ca-bundle.b64")" ]] ||
    fail "the installed caBundle is not the one secure-defaults certs wrote"
  [[ $("${k[@]}" get mutatingwebhookconfiguration secure-defaults \
    -o jsonpath='{.webhooks[1].clientConfig.caBundle}') == "$bundle" ]] ||
    fail "the workload-preview webhook did not get the caBundle"
  log "kubectl apply -k overlays/plain: installed, caBundle from certs"

  expect_pods "$ns" secure-defaults 2
  # The shipped configuration: allowOptOut false, so the ignore label exempts nothing.
  expect_webhook_gates pods.secure-defaults.io "$ns" refused

  # The uninstall order of docs/install.md: registration first.
  "${k[@]}" delete mutatingwebhookconfiguration secure-defaults >/dev/null
  run_pod default >/dev/null || fail "pods are still refused after the registration is deleted"
  "${k[@]}" delete -k "$r/manifests/overlays/plain" --ignore-not-found --wait=false >/dev/null
  log "uninstall: registration deleted first, pods admitted again; objects deleted"

  # ------------------------------------ real install: overlays/native-policy
  # No server: the API server itself hardens pods once the policy is active.
  "${k[@]}" apply -k "$r/manifests/overlays/native-policy" >/dev/null
  local i hardened=false
  for ((i = 0; i < 30; i++)); do
    if run_pod default -o jsonpath='{.spec.containers[0].securityContext.runAsNonRoot}' | grep -qx true; then
      hardened=true
      break
    fi
    sleep 1
  done
  $hardened || fail "overlays/native-policy: a pod in namespace default was not hardened within 30 s"
  [[ $(run_pod kube-system -o jsonpath='{.spec.containers[0].securityContext.runAsNonRoot}') == "" ]] ||
    fail "overlays/native-policy: a pod in the excluded kube-system was hardened"
  "${k[@]}" delete -k "$r/manifests/overlays/native-policy" >/dev/null
  log "kubectl apply -k overlays/native-policy: pods hardened by the API server, excluded namespaces untouched; deleted"

  # ----------------------------------------------------- real install: helm
  # Another release name and namespace than the defaults, so the names the
  # chart derives (Service, DNS names, excluded namespace) are exercised.
  local hns=sd-helm rel=sd full=sd-secure-defaults
  "${k[@]}" create namespace "$hns" >/dev/null
  "${k[@]}" label namespace "$hns" pod-security.kubernetes.io/enforce=restricted >/dev/null
  "$sd" certs --service "$full" --namespace "$hns" --secret-name "$full-tls" \
    --webhook-configuration "$full" --out-dir "$r/tls-helm" 2>/dev/null
  "${k[@]}" apply -f "$r/tls-helm/secret.yaml" >/dev/null
  "$helm" install "$rel" "$root/charts/secure-defaults" -n "$hns" --timeout 60s \
    --set certificates.mode=secret --set-file certificates.caBundle="$r/tls-helm/ca-bundle.pem" \
    --set config.namespacePolicy.allowOptOut=true >/dev/null
  log "helm install $rel -n $hns: installed (namespacePolicy.allowOptOut=true)"
  expect_pods "$hns" "$full" 2
  expect_webhook_gates pods.secure-defaults.io "$hns" honoured

  "$helm" upgrade "$rel" "$root/charts/secure-defaults" -n "$hns" --timeout 60s --reuse-values \
    --set webhook.failurePolicy=Ignore >/dev/null
  [[ $("${k[@]}" get mutatingwebhookconfiguration "$full" -o jsonpath='{.webhooks[0].failurePolicy}') == Ignore ]] ||
    fail "helm upgrade did not change failurePolicy"
  run_pod default >/dev/null || fail "with failurePolicy Ignore a pod is still refused while the webhook is down"
  log "helm upgrade --set webhook.failurePolicy=Ignore: pods admitted (unhardened) while the webhook is down"

  "$helm" uninstall "$rel" -n "$hns" --timeout 60s >/dev/null
  ! "${k[@]}" get mutatingwebhookconfiguration "$full" >/dev/null 2>&1 ||
    fail "helm uninstall left the MutatingWebhookConfiguration"
  log "helm uninstall: registration gone"
}

# The ServiceAccount controller creates "default" in a new namespace
# asynchronously; a pod that uses it is refused until then.
wait_default_sa() {
  local i
  for ((i = 0; i < 30; i++)); do
    kubectl --request-timeout=10s -n "$1" get serviceaccount default >/dev/null 2>&1 && return 0
    sleep 1
  done
  fail "no ServiceAccount default in namespace $1 after 30 s"
}

# `kubectl run --dry-run=server` of a plain pod in namespace $1 (extra args
# after it). Admission webhooks are called for dry-run requests (sideEffects None).
run_pod() {
  local ns=$1
  shift
  kubectl --request-timeout=20s -n "$ns" run "probe-$RANDOM" --image=registry.k8s.io/pause:3.10 \
    --restart=Never --dry-run=server -o name "$@" 2>&1
}

# The ReplicaSet controller creates $3 pods of Deployment $2 in namespace $1
# within 60 s: proof they pass Pod Security "restricted", the ServiceAccount
# admission and the ResourceQuota for their priority class.
expect_pods() {
  local ns=$1 deploy=$2 want=$3 n=0 i
  for ((i = 0; i < 60; i++)); do
    n=$(kubectl --request-timeout=10s -n "$ns" get pods -l "app.kubernetes.io/instance" -o name | grep -c . || true)
    [[ $n -ge $want ]] && break
    sleep 1
  done
  if [[ $n -lt $want ]]; then
    kubectl -n "$ns" get events --sort-by=.lastTimestamp >&2 || true
    fail "$ns/$deploy: $n of $want pods created in 60 s"
  fi
  local pc
  pc=$(kubectl -n "$ns" get pods -l app.kubernetes.io/instance -o jsonpath='{.items[0].spec.priorityClassName}')
  [[ $pc == system-cluster-critical ]] || fail "$ns/$deploy pods have priorityClassName '$pc'"
  log "$ns/$deploy: $n pods created (restricted, system-cluster-critical under quota)"
}

# With the webhook registered and no webhook pod reachable (failurePolicy Fail):
# pods in an ordinary namespace are refused, ephemeral containers too; pods in
# kube-system and in the webhook's namespace $2 are admitted. $3: whether the
# label secure-defaults.io/ignore=true takes a namespace out ("honoured", with
# namespacePolicy.allowOptOut) or not ("refused", the default).
expect_webhook_gates() {
  local hook=$1 own_ns=$2 ignore_label=$3 out
  out=$(run_pod default) && fail "a pod in default was admitted with the webhook down: $out"
  [[ $out == *"failed calling webhook \"$hook\""* ]] || fail "unexpected refusal: $out"
  out=$(run_pod kube-system) || fail "a pod in kube-system was refused: $out"
  out=$(run_pod "$own_ns" --overrides='{"spec":{"securityContext":{"runAsNonRoot":true,"runAsUser":65532,"seccompProfile":{"type":"RuntimeDefault"}},"containers":[{"name":"p","image":"registry.k8s.io/pause:3.10","securityContext":{"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]}}}]}}') ||
    fail "a (restricted) pod in the webhook's namespace $own_ns was refused: $out"
  local ign=sd-ignored-$RANDOM
  kubectl create namespace "$ign" >/dev/null
  kubectl label namespace "$ign" secure-defaults.io/ignore=true >/dev/null
  wait_default_sa "$ign"
  if [[ $ignore_label == refused ]]; then
    out=$(run_pod "$ign") && fail "a pod in a namespace labelled secure-defaults.io/ignore=true was admitted (allowOptOut is false): $out"
    [[ $out == *"failed calling webhook \"$hook\""* ]] || fail "unexpected refusal in the labelled namespace: $out"
  else
    out=$(run_pod "$ign") || fail "a pod in a namespace labelled secure-defaults.io/ignore=true was refused: $out"
    # An ephemeral container (pods/ephemeralcontainers UPDATE) once the namespace
    # is no longer ignored: the pod exists (created while ignored), the update is gated.
    kubectl -n "$ign" run target --image=registry.k8s.io/pause:3.10 --restart=Never >/dev/null
    kubectl label namespace "$ign" secure-defaults.io/ignore- >/dev/null
    out=$(kubectl --request-timeout=20s -n "$ign" debug target --image=busybox -c debugger --attach=false 2>&1) &&
      fail "an ephemeral container was admitted with the webhook down: $out"
    [[ $out == *"failed calling webhook \"$hook\""* ]] || fail "unexpected refusal of the ephemeral container: $out"
  fi
  # A system-cluster-critical pod where no quota covers it: the API server of
  # this check limits that priority class (as GKE does), so the quota is needed.
  out=$(run_pod kube-node-lease --overrides='{"spec":{"priorityClassName":"system-cluster-critical"}}') &&
    fail "system-cluster-critical was admitted without a quota; the limitedResources config is not active"
  [[ $out == *"insufficient quota"* ]] || fail "unexpected refusal: $out"
  kubectl delete namespace "$ign" --wait=false >/dev/null
  # Workload previews are failurePolicy Ignore: a Deployment is still admitted.
  out=$(kubectl --request-timeout=20s -n default create deployment sd-preview \
    --image=registry.k8s.io/pause:3.10 --dry-run=server 2>&1) ||
    fail "a Deployment was refused while the webhook is down (previews must not block): $out"
  log "webhook $hook (Fail, unreachable): default refused (ephemeral containers too where tested);" \
    "kube-system, $own_ns and Deployments (previews) admitted; ignore label $ignore_label"
}

if [[ ${1:-} == --cluster ]]; then
  helm=$2 sd=$3
  cluster_checks "$4"
  log "cluster checks passed"
  exit 0
fi

# ------------------------------------------------------------------ offline
offline_only=false
case ${1:-} in
  --offline) offline_only=true ;;
  "") ;;
  *)
    echo "usage: $0 [--offline]" >&2
    exit 2
    ;;
esac

start=$(date +%s)
helm=$("$root/hack/tools/helm.sh" --print-path)
bin_dir=$("$root/e2e/controlplane/build.sh" | tail -n 1)
kubectl=$bin_dir/kubectl
log "helm $("$helm" version --short), kubectl $("$kubectl" version --client -o json | sed -n 's/.*"gitVersion": "\([^"]*\)".*/\1/p' | head -n 1)"

(cd "$root" && cargo build --locked --quiet --bin secure-defaults)
sd=$root/target/debug/secure-defaults

r=$(mktemp -d "${TMPDIR:-/tmp}/sd-check-install.XXXXXX")
if [[ ${SD_CHECK_KEEP:-0} == 1 ]]; then
  log "renderings kept in $r"
else
  trap 'rm -rf "$r"' EXIT
fi

# Certificates and a copy of the manifests with overlays/plain/tls filled in,
# as docs/install.md does it (the repo's own tls/ is left alone).
"$sd" certs --out-dir "$r/tls" 2>/dev/null
cp -r "$root/manifests" "$r/manifests"
rm -rf "$r/manifests/overlays/plain/tls"
cp -r "$r/tls" "$r/manifests/overlays/plain/tls"

chart=$root/charts/secure-defaults
"$helm" lint --strict "$chart" >/dev/null || fail "helm lint (certManager)"
"$helm" lint --strict "$chart" --set certificates.mode=secret \
  --set-file certificates.caBundle="$r/tls/ca-bundle.pem" >/dev/null || fail "helm lint (secret)"
log "helm lint --strict: both certificate modes"

tmpl=("$helm" template secure-defaults "$chart" --namespace secure-defaults --set createNamespace=true)
"${tmpl[@]}" >"$r/helm-cert-manager.yaml"
"${tmpl[@]}" --set certificates.mode=secret --set-file certificates.caBundle="$r/tls/ca-bundle.pem" \
  >"$r/helm-secret.yaml"
"${tmpl[@]}" --set mode=policy >"$r/helm-native-policy.yaml"
[[ $(grep -c '^kind: ' "$r/helm-native-policy.yaml") == 4 ]] ||
  fail "mode=policy should render the two policies and their bindings only"
# Values the chart must refuse, with the reason.
expect_refused() {
  local why=$1
  shift
  local out
  out=$("${tmpl[@]}" "$@" 2>&1) && fail "helm template $* was accepted"
  [[ $out == *"$why"* ]] || fail "helm template $*: expected '$why' in: $out"
}
expect_refused "needs certificates.caBundle" --set certificates.mode=secret
expect_refused "must be PEM" --set certificates.mode=secret --set certificates.caBundle=TFMwdA==
expect_refused "certificates/mode" --set certificates.mode=selfSigned
expect_refused "failurePolicy" --set webhook.failurePolicy=Never
expect_refused "timeoutSeconds" --set webhook.timeoutSeconds=31
expect_refused "/config/mode" --set config.mode=warn
expect_refused "workloadPreviews" --set workloadPreviews.timeoutSeconds=0
expect_refused "largeBodyMemoryMiB" --set largeBodyMemoryMiB=4
expect_refused "secure-defaults policy --config" --set mode=policy --set config.baseline.runAsUser=1000
expect_refused "mode" --set mode=both
"${tmpl[@]}" --set largeBodyMemoryMiB=48 | grep -A1 -- '- --large-body-memory-mib$' | grep -q '"48"' ||
  fail "largeBodyMemoryMiB=48 should pass --large-body-memory-mib 48"
# Previews off: the pods webhook alone.
[[ $("${tmpl[@]}" --set workloadPreviews.enabled=false | grep -E '^  - name: [a-z]+\.secure-defaults\.io$') == "  - name: pods.secure-defaults.io" ]] ||
  fail "workloadPreviews.enabled=false should leave only pods.secure-defaults.io"
log "helm template: both certificate modes rendered; previews can be turned off; the large-body budget passed; invalid values refused"

for o in base overlays/plain overlays/cert-manager overlays/native-policy; do
  name=kustomize-$(basename "$o")
  "$kubectl" kustomize "$r/manifests/$o" >"$r/$name.yaml" || fail "kubectl kustomize manifests/$o"
done
grep -q 'cert-manager.io/inject-ca-from: secure-defaults/secure-defaults-serving' "$r/kustomize-cert-manager.yaml" ||
  fail "overlays/cert-manager: no inject-ca-from annotation"
log "kubectl kustomize: base, overlays/plain, overlays/cert-manager, overlays/native-policy"

(cd "$root" && SD_RENDERED_DIR=$r cargo test --locked --quiet --test manifests -- --include-ignored) ||
  fail "tests/manifests.rs (Helm vs kustomize)"
log "tests/manifests.rs: Helm renderings equal the kustomize overlays"

# The values schema against every documented configuration, and each chart toggle.
(cd "$root" && SD_HELM=$helm cargo test --locked --quiet --test chart -- --include-ignored) ||
  fail "tests/chart.rs (helm template of the documented examples and the chart's toggles)"
log "tests/chart.rs: documented configurations and chart toggles render"

# hadolint comes from PyPI (hack/tools/hadolint.sh); where it cannot be
# installed the Dockerfile is not linted, and that is said.
if hadolint=$("$root/hack/tools/hadolint.sh" --print-path); then
  "$hadolint" "$root/Dockerfile" || fail "hadolint Dockerfile"
  log "hadolint: Dockerfile"
else
  log "SKIP: hadolint could not be installed; Dockerfile not linted"
fi

if $offline_only; then
  log "offline checks passed in $(($(date +%s) - start)) s"
  exit 0
fi

# The API server of these checks limits the system priority classes the way
# GKE does, so the chart's ResourceQuota is what lets the webhook pods in.
cat >"$r/admission.yaml" <<'EOF'
apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
  - name: ResourceQuota
    configuration:
      apiVersion: apiserver.config.k8s.io/v1
      kind: ResourceQuotaConfiguration
      limitedResources:
        - resource: pods
          matchScopes:
            - scopeName: PriorityClass
              operator: In
              values: ["system-cluster-critical", "system-node-critical"]
EOF
APISERVER_EXTRA_ARGS="${APISERVER_EXTRA_ARGS:-} --admission-control-config-file=$r/admission.yaml" \
  timeout 600 "$root/e2e/controlplane/with-controlplane.sh" \
  "$root/hack/check-install.sh" --cluster "$helm" "$sd" "$r"
log "all install checks passed in $(($(date +%s) - start)) s"
