#!/usr/bin/env bash
# CI for the deployment side (issue 8), offline but for the package registries:
#   1. installs the pinned tools (deploy/versions.env) into a cache folder, once:
#      kustomize, k6, grpcurl and kubeconform with `go install`, kubernetes-validate (bundled Kubernetes
#      JSON schemas) from PyPI into a virtual environment, and kubeconform's schemas written from those;
#      and deploy/dockerfile-lint (BuildKit's Dockerfile checks) with `go build`;
#   2. renders every overlay in k8s/overlays/ and validates every object against the strict Kubernetes
#      schemas, offline, with kubernetes-validate and with kubeconform (reports/k8s/<overlay>.yaml);
#      lints docker/Dockerfile with BuildKit's checks (images are not built here: no base images can be
#      pulled);
#   3. runs the deploy/ tests: policies on the rendered manifests, the fine-tune Job spec against the
#      batch/v1 schema, the Dockerfile and the registry seeding;
#   4. builds, starts the inference service on the repository's registry/ (default model), waits for
#      grpc.health.v1 SERVING, runs load-tests/smoke.js with k6 (a crossed threshold fails), stops it.
#
#   bash tools/scripts/ci-deploy.sh               # everything
#   bash tools/scripts/ci-deploy.sh --tools-only  # step 1 (what the deploy/ tests need locally)
#
# Idempotent: cached tools are reused when their version matches. Environment: DEIT_DEPLOY_TOOLS_DIR
# (default ~/.cache/deit-serve/deploy-tools), DEIT_CI_GRPC_PORT / DEIT_CI_METRICS_PORT (50151 / 9564).
set -euo pipefail
cd "$(dirname "$0")/../.."
root="$PWD"

tools_only=false
case "${1:-}" in
  --tools-only) tools_only=true ;;
  "") ;;
  *) echo "usage: $0 [--tools-only]" >&2; exit 2 ;;
esac

# shellcheck source=SCRIPTDIR/../../deploy/versions.env
source deploy/versions.env
tools="${DEIT_DEPLOY_TOOLS_DIR:-$HOME/.cache/deit-serve/deploy-tools}"
export DEIT_DEPLOY_TOOLS_DIR="$tools"
bin="$tools/bin"
venv="$tools/venv"
reports="$root/reports/deploy"
mkdir -p "$bin" "$reports" "$root/reports/k8s"

started=$SECONDS
step_started=$SECONDS
timings=()
step() {
  echo "::: deploy: $*"
  step_started=$SECONDS
}
done_step() {
  local took=$((SECONDS - step_started))
  timings+=("$1: ${took}s")
  echo "::: deploy: $1 took ${took}s"
}

# ---- 1. tools ---------------------------------------------------------------------------------------
go_tool() { # name module version
  local name=$1 module=$2 version=$3
  if [ -x "$bin/$name" ] && "$bin/$name" version 2>/dev/null | grep -qF "$version"; then
    echo "$name $version: cached in $bin"
    return
  fi
  command -v go >/dev/null || { echo "go is needed to install $name ($module@$version)" >&2; exit 1; }
  echo "$name: go install $module@$version ($(go version | cut -d' ' -f3))"
  local t=$SECONDS
  GOBIN="$bin" GOTOOLCHAIN=local go install "$module@$version"
  echo "$name: built in $((SECONDS - t))s"
  "$bin/$name" version | grep -qF "$version" || { echo "$name: built, but not $version" >&2; exit 1; }
}

step "install tools into $tools"
go_tool kustomize sigs.k8s.io/kustomize/kustomize/v5 "$KUSTOMIZE_VERSION"
go_tool k6 go.k6.io/k6 "$K6_VERSION"
# Tools whose `go install` build reports no release version ("dev build", "development"): the module
# version recorded in the binary's build info is checked instead.
go_module_tool() { # name module version
  local name=$1 module=$2 version=$3
  built_version() { go version -m "$bin/$name" 2>/dev/null | awk '$1 == "mod" { print $3 }'; }
  if [ -x "$bin/$name" ] && [ "$(built_version)" = "$version" ]; then
    echo "$name $version: cached in $bin"
    return
  fi
  echo "$name: go install $module@$version"
  local t=$SECONDS
  GOBIN="$bin" GOTOOLCHAIN=local go install "$module@$version"
  echo "$name: built in $((SECONDS - t))s"
  [ "$(built_version)" = "$version" ] || { echo "$name: built, but not $version" >&2; exit 1; }
}
go_module_tool grpcurl github.com/fullstorydev/grpcurl/cmd/grpcurl "$GRPCURL_VERSION"
go_module_tool kubeconform github.com/yannh/kubeconform/cmd/kubeconform "$KUBECONFORM_VERSION"
lint_sources="$(cat deploy/dockerfile-lint/go.mod deploy/dockerfile-lint/go.sum deploy/dockerfile-lint/*.go | sha256sum | cut -d' ' -f1)"
if [ -x "$bin/dockerfile-lint" ] && [ "$(cat "$bin/.dockerfile-lint.sha256" 2>/dev/null)" = "$lint_sources" ]; then
  echo "dockerfile-lint: cached in $bin"
else
  echo "dockerfile-lint: go build deploy/dockerfile-lint (BuildKit's Dockerfile checks; version in its go.mod)"
  t=$SECONDS
  (cd deploy/dockerfile-lint && GOTOOLCHAIN=local GOFLAGS=-buildvcs=false go build -o "$bin/dockerfile-lint" .)
  echo "$lint_sources" >"$bin/.dockerfile-lint.sha256"
  echo "dockerfile-lint: built in $((SECONDS - t))s"
fi
want_requirements="$(sha256sum deploy/requirements.txt | cut -d' ' -f1)"
if [ -x "$venv/bin/python" ] && [ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" = "$want_requirements" ]; then
  echo "kubernetes-validate $KUBERNETES_VALIDATE_VERSION: cached in $venv"
else
  echo "kubernetes-validate: python3 -m venv + pip install -r deploy/requirements.txt"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-input -r deploy/requirements.txt
  echo "$want_requirements" >"$venv/.requirements.sha256"
fi
"$venv/bin/python" -c "import kubernetes_validate.version as v, sys; sys.exit(v.__version__ != '$KUBERNETES_VALIDATE_VERSION')" ||
  { echo "kubernetes-validate is not $KUBERNETES_VALIDATE_VERSION" >&2; exit 1; }
# kubeconform's schemas: kubernetes-validate's, with their $refs inlined (kubeconform cannot follow them).
schemas="$tools/kubeconform-schemas"
schemas_key="$KUBERNETES_VALIDATE_VERSION $KUBERNETES_VERSIONS $(sha256sum deploy/scripts/kubeconform_schemas.py | cut -d' ' -f1)"
if [ "$(cat "$schemas/.key" 2>/dev/null)" = "$schemas_key" ]; then
  echo "kubeconform schemas: cached in $schemas"
else
  rm -rf "$schemas"
  "$venv/bin/python" deploy/scripts/kubeconform_schemas.py "$schemas" "$KUBERNETES_VERSIONS"
  echo "$schemas_key" >"$schemas/.key"
fi
done_step tools
if $tools_only; then
  echo "tools ready: $bin/kustomize, $bin/k6, $bin/kubeconform, $bin/dockerfile-lint, $venv (kubernetes-validate), $schemas"
  exit 0
fi

# ---- 2. render and validate every overlay -----------------------------------------------------------
step "render k8s/overlays/* with kustomize $KUSTOMIZE_VERSION; validate against Kubernetes $KUBERNETES_VERSIONS (strict, offline)"
for dir in k8s/overlays/*/; do
  overlay="$(basename "$dir")"
  out="reports/k8s/$overlay.yaml"
  "$bin/kustomize" build "$dir" >"$out"
  echo "$overlay: $(grep -c '^kind:' "$out") objects → $out"
  "$venv/bin/python" deploy/scripts/k8s_validate.py --quiet --kubernetes "$KUBERNETES_VERSIONS" "$out"
  for version in ${KUBERNETES_VERSIONS//,/ }; do
    "$bin/kubeconform" -strict -summary -kubernetes-version "$version" \
      -schema-location "$schemas/{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json" "$out"
  done
done
done_step render+validate

# ---- 2b. Dockerfile: Docker's own parser and build checks, offline (images are built elsewhere) -------
step "lint docker/Dockerfile (BuildKit checks, as docker build --check)"
"$bin/dockerfile-lint" docker/Dockerfile
done_step dockerfile-lint

# ---- 3. deploy tests --------------------------------------------------------------------------------
step "deploy/ tests (manifest policies, fine-tune Job schema, Dockerfile, registry seeding)"
CI="${CI:-true}" npx vitest run --config deploy/vitest.config.mts
done_step deploy-tests

# ---- 4. smoke test the service with k6 --------------------------------------------------------------
step "build, start inference on registry/, k6 smoke"
npm run build
port="${DEIT_CI_GRPC_PORT:-50151}"
metrics_port="${DEIT_CI_METRICS_PORT:-9564}"
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if port_open "$port"; then
  echo "port $port is in use already: set DEIT_CI_GRPC_PORT" >&2
  exit 1
fi
log="$reports/inference.log"
DEIT_REGISTRY_DIR=registry DEIT_GRPC_HOST=127.0.0.1 DEIT_GRPC_PORT="$port" DEIT_METRICS_PORT="$metrics_port" \
  DEIT_INTRA_OP_THREADS=1 node --enable-source-maps dist/apps/inference/src/main.js >"$log" 2>&1 &
service_pid=$!
stop_service() {
  if kill -0 "$service_pid" 2>/dev/null; then
    kill -TERM "$service_pid" 2>/dev/null || true
    for _ in $(seq 1 30); do kill -0 "$service_pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$service_pid" 2>/dev/null || true
  fi
}
trap stop_service EXIT
echo "inference: pid $service_pid on 127.0.0.1:$port (metrics :$metrics_port), log $log"
for i in $(seq 1 120); do
  if ! kill -0 "$service_pid" 2>/dev/null; then
    echo "inference exited before listening:" >&2
    tail -n 40 "$log" >&2
    exit 1
  fi
  port_open "$port" && break
  [ "$i" -eq 120 ] && { echo "inference not listening after 60 s" >&2; tail -n 40 "$log" >&2; exit 1; }
  sleep 0.5
done
# setup() waits (WAIT_READY) for grpc.health.v1 SERVING: the default model loaded and self-checked.
k6_status=0
ADDR="127.0.0.1:$port" WAIT_READY=60 "$bin/k6" run --no-color \
  --summary-export "$reports/k6-smoke-summary.json" load-tests/smoke.js || k6_status=$?
if [ "$k6_status" -ne 0 ]; then
  echo "k6 smoke failed (exit $k6_status: 99 = a threshold was crossed); service log:" >&2
  tail -n 40 "$log" >&2
  exit "$k6_status"
fi
# shellcheck disable=SC2016 # JavaScript, not shell
node -e '
  fetch(process.argv[1]).then((r) => r.text()).then((t) => {
    const m = /^deit_requests_total\{[^}]*method="Classify"[^}]*code="OK"[^}]*\} (\d+)/m.exec(t);
    if (!m) { console.error("metrics: no successful Classify counted"); process.exit(1); }
    console.log(`metrics: deit_requests_total{method="Classify",code="OK"} ${m[1]}`);
  });
' "http://127.0.0.1:$metrics_port/metrics"
kill -TERM "$service_pid"
stop_status=0
wait "$service_pid" || stop_status=$?
trap - EXIT
# NestJS re-raises the signal once its shutdown hooks ran: 143 (128 + SIGTERM) is a clean stop.
if [ "$stop_status" -ne 0 ] && [ "$stop_status" -ne 143 ]; then
  echo "inference: exit $stop_status on SIGTERM (not a clean shutdown); log $log" >&2
  exit 1
fi
echo "inference: stopped cleanly on SIGTERM"
done_step smoke

echo "::: deploy: all passed in $((SECONDS - started))s (${timings[*]})"
