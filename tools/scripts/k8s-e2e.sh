#!/usr/bin/env bash
# `npm run k8s:e2e`: the manifests and the trainer's job mode against a real Kubernetes control plane.
#
#   1. builds (once, cached by version) or reuses kube-apiserver, kube-controller-manager,
#      kube-scheduler and kubectl at KUBERNETES_E2E_VERSION (tools/scripts/k8s-e2e-build.sh); etcd is
#      Debian's etcd-server;
#   2. in a network namespace of its own (`unshare --net`: loopback only, nothing else reachable)
#      starts etcd, the API server (RBAC, token authentication, Pod Security "restricted" enforced by
#      default on every namespace but kube-system, and by the manifests' Namespace labels), the
#      controller manager and the scheduler;
#   3. simulates two nodes (one CPU, one with 4 nvidia.com/gpu and its taint) and a PersistentVolume
#      per claim: no kubelet runs here, so pods are scheduled but never start; pod phases are driven
#      through the API (the status subresource) by the job-mode test, as a kubelet would report them;
#   4. for each overlay of k8s/overlays: creates its Namespace, server-side dry-runs the whole overlay,
#      deletes the Namespace again, then `kubectl apply -k` exactly as k8s/README.md documents it on
#      the empty cluster; then waits for what the controllers make (ReplicaSets, pods admitted and
#      scheduled, the HPA scaling to its minimum, claims bound, EndpointSlices, the PDB's status) and
#      fails on any rejection (FailedCreate events, PodSecurity warnings);
#   5. negative control: the gpu overlay with a GPU limit different from its request must be refused
#      by the API server (offline schema validation accepts it);
#   6. the trainer's job mode with the trainer's own ServiceAccount token (RBAC of the gpu overlay):
#      deploy/cluster/job-mode.cluster.spec.ts (a real Job created, admitted, cancelled and cleaned
#      up; a Job that succeeds and one that fails, through simulated pod phases).
#
#   bash tools/scripts/k8s-e2e.sh            # or: npm run k8s:e2e
#   K8S_E2E_BREAK=gpu-limit bash tools/scripts/k8s-e2e.sh   # breaks the gpu overlay: the run must fail
#
# Environment: DEIT_K8S_BIN_DIR (build cache), K8S_E2E_KEEP=1 keeps the work folder (logs, kubeconfig).
set -euo pipefail
cd "$(dirname "$0")/../.."
root="$PWD"

if [ "${1:-}" != "--inside" ]; then
  started=$SECONDS
  bin="$(bash tools/scripts/k8s-e2e-build.sh | tail -n 1)"
  build_s=$((SECONDS - started))
  command -v etcd >/dev/null || {
    echo "etcd is needed: apt-get install etcd-server" >&2
    exit 1
  }
  work="$(mktemp -d "${TMPDIR:-/tmp}/deit-k8s-e2e.XXXXXX")"
  status=0
  # A network namespace of its own: every server listens on its loopback only, and ends with it.
  unshare --net --fork bash "$0" --inside "$bin" "$work" || status=$?
  if [ "$status" -ne 0 ] || [ "${K8S_E2E_KEEP:-}" = 1 ]; then
    echo "k8s-e2e: logs and kubeconfig kept in $work" >&2
  else
    rm -rf "$work"
  fi
  echo "::: k8s-e2e: $([ "$status" -eq 0 ] && echo passed || echo FAILED) in $((SECONDS - started))s (build or cache check ${build_s}s)"
  exit "$status"
fi

# ---- inside the network namespace -------------------------------------------------------------------
bin="$2"
work="$3"
export PATH="$bin:$PATH"
pids=()
cleanup() {
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill -TERM "${pids[$i]}" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
say() { echo "::: k8s-e2e: $*"; }
die() {
  echo "k8s-e2e: $*" >&2
  exit 1
}
ip link set lo up

# ---- credentials: an admin token, the service-account signing key, Pod Security defaults ------------
pki="$work/pki"
mkdir -p "$pki" "$work/etcd" "$work/logs" "$work/volumes"
admin_token="$(openssl rand -hex 24)"
echo "$admin_token,e2e-admin,e2e-admin,system:masters" >"$pki/tokens.csv"
openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
cat >"$work/admission.yaml" <<EOF
apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
  - name: PodSecurity
    configuration:
      apiVersion: pod-security.admission.config.k8s.io/v1
      kind: PodSecurityConfiguration
      defaults: {enforce: restricted, enforce-version: latest, warn: restricted, warn-version: latest}
      exemptions: {namespaces: [kube-system]}
EOF

# ---- control plane ----------------------------------------------------------------------------------
start() { # name command...
  local name=$1
  shift
  "$@" >"$work/logs/$name.log" 2>&1 &
  pids+=($!)
}
start etcd etcd --name e2e --data-dir "$work/etcd" \
  --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
  --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
  --initial-cluster e2e=http://127.0.0.1:2380
start kube-apiserver kube-apiserver --etcd-servers http://127.0.0.1:2379 \
  --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port 6443 --cert-dir "$pki" \
  --token-auth-file "$pki/tokens.csv" --authorization-mode RBAC \
  --service-account-issuer https://kubernetes.default.svc --api-audiences https://kubernetes.default.svc \
  --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
  --service-cluster-ip-range 10.96.0.0/16 --admission-control-config-file "$work/admission.yaml"

kubeconfig="$work/admin.kubeconfig"
export KUBECONFIG="$kubeconfig"
for i in $(seq 1 120); do
  [ -f "$pki/apiserver.crt" ] && break
  sleep 0.5
done
kubectl config set-cluster e2e --server https://127.0.0.1:6443 --certificate-authority "$pki/apiserver.crt" --embed-certs >/dev/null
kubectl config set-credentials admin --token "$admin_token" >/dev/null
kubectl config set-context e2e --cluster e2e --user admin >/dev/null
kubectl config use-context e2e >/dev/null
t=$SECONDS
until kubectl get --raw /readyz >/dev/null 2>&1; do
  [ $((SECONDS - t)) -lt 120 ] || {
    tail -n 30 "$work/logs/kube-apiserver.log" >&2
    die "the API server is not ready after 120 s"
  }
  sleep 1
done
say "kube-apiserver $(kubectl version -o json | sed -n 's/.*"gitVersion": "\(v[^"]*\)".*/\1/p' | tail -n 1) ready in $((SECONDS - t))s"
# No kubelet: the node lifecycle controller would mark the simulated nodes unreachable and evict.
start kube-controller-manager kube-controller-manager --kubeconfig "$kubeconfig" --secure-port 0 \
  --leader-elect=false --use-service-account-credentials \
  --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/apiserver.crt" \
  --controllers '*,-node-lifecycle-controller' --horizontal-pod-autoscaler-sync-period 2s
start kube-scheduler kube-scheduler --kubeconfig "$kubeconfig" --secure-port 0 --leader-elect=false
sleep 3
names=(etcd kube-apiserver kube-controller-manager kube-scheduler)
for i in "${!names[@]}"; do
  kill -0 "${pids[$i]}" 2>/dev/null || {
    tail -n 20 "$work/logs/${names[$i]}.log" >&2
    die "${names[$i]} exited"
  }
done

# ---- simulated nodes --------------------------------------------------------------------------------
node() { # name gpus labels-json taints-json
  kubectl create -f - >/dev/null <<EOF
{"apiVersion": "v1", "kind": "Node",
 "metadata": {"name": "$1", "labels": $3},
 "spec": {"taints": $4}}
EOF
  local gpu=''
  [ "$2" -gt 0 ] && gpu=", \"nvidia.com/gpu\": \"$2\""
  local resources="{\"cpu\": \"32\", \"memory\": \"128Gi\", \"pods\": \"110\", \"ephemeral-storage\": \"200Gi\"$gpu}"
  kubectl patch node "$1" --subresource status --type merge -p "{\"status\": {
    \"capacity\": $resources, \"allocatable\": $resources,
    \"conditions\": [{\"type\": \"Ready\", \"status\": \"True\", \"reason\": \"Simulated\",
      \"lastHeartbeatTime\": \"$(date -u +%FT%TZ)\", \"lastTransitionTime\": \"$(date -u +%FT%TZ)\"}]}}" >/dev/null
  # The TaintNodesByCondition admission plugin taints a new node not-ready; the node lifecycle
  # controller (off here) would lift it once the node reports Ready.
  kubectl taint node "$1" node.kubernetes.io/not-ready:NoSchedule- >/dev/null
}
node e2e-cpu 0 '{"kubernetes.io/hostname": "e2e-cpu", "topology.kubernetes.io/zone": "a"}' '[]'
node e2e-gpu 4 '{"kubernetes.io/hostname": "e2e-gpu", "topology.kubernetes.io/zone": "b", "nvidia.com/gpu.present": "true"}' \
  '[{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]'
say "simulated nodes: e2e-cpu, e2e-gpu (4 nvidia.com/gpu, tainted)"

# One PersistentVolume per claim of the overlay, bound to that claim only (no provisioner here).
volumes_for() { # namespace claims...
  local ns=$1
  shift
  for claim in "$@"; do
    local name="e2e-$ns-$claim-$RANDOM"
    mkdir -p "$work/volumes/$name"
    kubectl create -f - >/dev/null <<EOF
{"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "$name"},
 "spec": {"capacity": {"storage": "100Gi"}, "accessModes": ["ReadWriteOnce", "ReadWriteMany"],
  "persistentVolumeReclaimPolicy": "Retain", "hostPath": {"path": "$work/volumes/$name"},
  "claimRef": {"namespace": "$ns", "name": "$claim"}}}
EOF
  done
}

# ---- the overlays -----------------------------------------------------------------------------------
wait_for() { # what seconds command...
  local what=$1 limit=$2
  shift 2
  local t=$SECONDS
  until "$@" >/dev/null 2>&1; do
    if [ $((SECONDS - t)) -ge "$limit" ]; then
      echo "k8s-e2e: timed out after ${limit}s waiting for $what" >&2
      return 1
    fi
    sleep 1
  done
}

ns_gone() { ! kubectl get namespace "$1" >/dev/null 2>&1; }
# Deleting a namespace waits for its pods' kubelets to confirm they stopped; there is none here, so
# this plays the kubelet and removes each terminating pod at once.
ns_gone_as_kubelet() {
  kubectl -n "$1" delete pods --all --grace-period 0 --force >/dev/null 2>&1 || true
  ns_gone "$1"
}

# kubectl's warnings (PodSecurity "would violate", deprecated APIs) count as rejections.
checked_kubectl() { # log args...
  local log=$1
  shift
  local status=0
  kubectl "$@" >"$log" 2>&1 || status=$?
  sed 's/^/    /' "$log"
  if [ "$status" -ne 0 ] || grep -qi 'warning' "$log"; then return 1; fi
}

# Server-side dry run of the whole overlay, then the documented apply on an empty cluster.
apply_overlay() { # dir namespace
  local dir=$1 ns=$2 log="$work/logs/apply-$(basename "$1")-$RANDOM"
  kubectl kustomize "$dir" >"$log.yaml"
  [ "$(sed -n 's/^kind: Namespace$/x/p' "$log.yaml" | wc -l)" -eq 1 ] || {
    echo "$dir renders no Namespace" >&2
    return 1
  }
  # The dry run needs the namespace to exist: create it (from the overlay), dry-run, delete it again.
  kubectl create namespace "$ns" >/dev/null
  checked_kubectl "$log.dry-run" apply --server-side --dry-run=server -k "$dir" || return 1
  kubectl delete namespace "$ns" --wait=false >/dev/null
  wait_for "namespace $ns deleted" 120 ns_gone "$ns" || return 1
  checked_kubectl "$log.apply" apply -k "$dir" || return 1
}

pods_of() { kubectl -n "$1" get pods -l "app.kubernetes.io/name=$2" -o name; }
has_pods() { [ -n "$(pods_of "$1" "$2")" ]; }
all_scheduled() { # namespace
  local out
  out="$(kubectl -n "$1" get pods -o jsonpath='{range .items[*]}{.metadata.name}={.spec.nodeName};{end}')"
  [ -n "$out" ] && ! echo "$out" | grep -q '=;'
}
hpa_scaled() { # namespace
  local min replicas
  min="$(kubectl -n "$1" get hpa deit-inference -o jsonpath='{.spec.minReplicas}')"
  replicas="$(kubectl -n "$1" get deployment deit-inference -o jsonpath='{.spec.replicas}')"
  [ "$replicas" = "$min" ] && [ "$(pods_of "$1" deit-inference | wc -l)" -ge "$min" ]
}
claims_bound() { [ -z "$(kubectl -n "$1" get pvc -o jsonpath='{range .items[?(@.status.phase!="Bound")]}{.metadata.name} {end}')" ]; }
endpointslices() { [ -n "$(kubectl -n "$1" get endpointslices -l kubernetes.io/service-name=deit-inference-grpc -o name)" ]; }
pdb_observed() { [ -n "$(kubectl -n "$1" get pdb deit-inference -o jsonpath='{.status.observedGeneration}')" ]; }

check_overlay() { # dir namespace
  local dir=$1 ns=$2 t=$SECONDS
  # shellcheck disable=SC2046 # one claim name per word
  volumes_for "$ns" $(kubectl kustomize "$dir" | awk '/^kind: PersistentVolumeClaim$/ { c = 1 } c && /^  name: / { print $2; c = 0 }')
  apply_overlay "$dir" "$ns" || return 1
  [ "$(kubectl get namespace "$ns" -o jsonpath='{.metadata.labels.pod-security\.kubernetes\.io/enforce}')" = restricted ] ||
    die "namespace $ns: Pod Security restricted not enforced"
  wait_for "$ns: inference pods" 60 has_pods "$ns" deit-inference || return 1
  wait_for "$ns: the HPA scaling inference to its minimum" 90 hpa_scaled "$ns" || return 1
  wait_for "$ns: trainer pod" 60 has_pods "$ns" deit-trainer || return 1
  wait_for "$ns: claims bound" 60 claims_bound "$ns" || return 1
  wait_for "$ns: every pod scheduled" 90 all_scheduled "$ns" || {
    kubectl -n "$ns" get events --field-selector reason=FailedScheduling >&2
    return 1
  }
  wait_for "$ns: EndpointSlices of the gRPC Service" 60 endpointslices "$ns" || return 1
  wait_for "$ns: the PDB's status" 60 pdb_observed "$ns" || return 1
  local failed
  failed="$(kubectl -n "$ns" get events --field-selector reason=FailedCreate -o jsonpath='{range .items[*]}{.message}{"\n"}{end}')"
  [ -z "$failed" ] || {
    echo "$ns: rejected: $failed" >&2
    return 1
  }
  say "$(basename "$dir"): applied, $(kubectl -n "$ns" get pods --no-headers | wc -l) pods admitted under restricted and scheduled ($(kubectl -n "$ns" get pods -o jsonpath='{range .items[*]}{.metadata.labels.app\.kubernetes\.io/name}@{.spec.nodeName} {end}')), 0 rejections, in $((SECONDS - t))s"
}

overlays_dir="$root/k8s/overlays"
if [ -n "${K8S_E2E_BREAK:-}" ]; then
  # The same breakage as the negative control below, in the overlays the run applies.
  cp -r "$root/k8s" "$work/k8s-broken"
  overlays_dir="$work/k8s-broken/overlays"
  case "$K8S_E2E_BREAK" in
    gpu-limit) sed -i "0,/nvidia.com\/gpu: '1'/! s/nvidia.com\/gpu: '1'/nvidia.com\/gpu: '2'/" "$overlays_dir/gpu/inference-gpu-patch.yaml" ;;
    *) die "K8S_E2E_BREAK=$K8S_E2E_BREAK: gpu-limit" ;;
  esac
  say "K8S_E2E_BREAK=$K8S_E2E_BREAK: the gpu overlay's GPU limit differs from its request; this run must fail"
fi

declare -A namespace_of=([cpu]=deit-serve [gpu]=deit-serve [dev]=deit-serve-dev)
for overlay in dev cpu gpu; do
  say "overlay $overlay"
  check_overlay "$overlays_dir/$overlay" "${namespace_of[$overlay]}" || die "overlay $overlay failed"
  if [ "$overlay" = cpu ]; then
    # cpu and gpu share the namespace: the gpu overlay is applied on an empty cluster too.
    kubectl delete namespace deit-serve --wait=false >/dev/null
    wait_for "namespace deit-serve deleted" 180 ns_gone_as_kubelet deit-serve || die "namespace deit-serve not deleted"
  fi
done

# ---- negative control: a GPU limit that differs from its request ------------------------------------
say "negative control: the gpu overlay with nvidia.com/gpu limit 2, request 1"
cp -r "$root/k8s" "$work/k8s-gpu-mismatch"
patch="$work/k8s-gpu-mismatch/overlays/gpu/inference-gpu-patch.yaml"
# The second occurrence is the limit.
sed -i "0,/nvidia.com\/gpu: '1'/! s/nvidia.com\/gpu: '1'/nvidia.com\/gpu: '2'/" "$patch"
grep -q "nvidia.com/gpu: '2'" "$patch" || die "negative control: could not break $patch"
if checked_kubectl "$work/logs/negative.log" apply --server-side --dry-run=server -k "$work/k8s-gpu-mismatch/overlays/gpu"; then
  die "negative control: the API server accepted a GPU limit different from its request"
fi
grep -q 'must be equal to nvidia.com/gpu request\|must be equal to' "$work/logs/negative.log" ||
  die "negative control: refused, but not for the GPU request/limit: $(cat "$work/logs/negative.log")"
say "negative control: refused as expected"

# ---- the trainer's job mode, with the trainer's own ServiceAccount token ----------------------------
say "job mode: the trainer's runner against the API server (gpu overlay's RBAC)"
trainer_token="$(kubectl -n deit-serve create token deit-trainer --duration 1h)"
trainer_kubeconfig="$work/trainer.kubeconfig"
KUBECONFIG="$trainer_kubeconfig" kubectl config set-cluster e2e --server https://127.0.0.1:6443 \
  --certificate-authority "$pki/apiserver.crt" --embed-certs >/dev/null
KUBECONFIG="$trainer_kubeconfig" kubectl config set-credentials deit-trainer --token "$trainer_token" >/dev/null
KUBECONFIG="$trainer_kubeconfig" kubectl config set-context e2e --cluster e2e --user deit-trainer >/dev/null
KUBECONFIG="$trainer_kubeconfig" kubectl config use-context e2e >/dev/null
# The least privilege the overlay grants: jobs create/list/delete, nothing on pods or secrets.
[ "$(KUBECONFIG="$trainer_kubeconfig" kubectl auth can-i create jobs.batch -n deit-serve)" = yes ] || die "trainer cannot create Jobs"
[ "$(KUBECONFIG="$trainer_kubeconfig" kubectl auth can-i get secrets -n deit-serve 2>/dev/null)" = no ] || die "trainer can read Secrets"
K8S_E2E_ADMIN_KUBECONFIG="$kubeconfig" K8S_E2E_TRAINER_KUBECONFIG="$trainer_kubeconfig" K8S_E2E_NAMESPACE=deit-serve \
  npx vitest run --config deploy/cluster/vitest.config.mts
say "all passed"
