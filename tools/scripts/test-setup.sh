#!/usr/bin/env bash
# What `npm test` needs beyond `npm ci`, installed once and reused (each step is idempotent):
#   1. reports/.venv-test: Pillow and numpy pinned in tools/python-requirements.txt, the independent
#      references of the preprocessing and data set agreement tests, and Triton's Python client
#      tritonclient[grpc] for the Open Inference Protocol tests (PyPI);
#   2. the pinned deploy tools (kustomize, k6, grpcurl, kubernetes-validate, dockerfile-lint; Go module
#      proxy and PyPI) that the deploy/ tests and the reflection end-to-end tests use;
#   3. Fashion-MNIST from Debian (dataset-fashion-mnist), which the trainer's end-to-end tests train on;
#   4. reports/.venv-timm: timm pinned in tools/python-timm-requirements.txt on Debian's PyTorch
#      (python3-torch: PyPI's torch wheels pull in gigabytes of CUDA), the reference of the test that
#      a checkpoint loaded at another image size computes what timm computes;
#   5. Triton's perf_analyzer (bench/oip/perf-analyzer.sh: pinned wheels from PyPI, libb64 from Debian)
#      for the Open Inference Protocol's perf_analyzer test and npm run bench:oip.
# A step that cannot run here says which tests it leaves skipped, and the tests still run.
# DEIT_TEST_SETUP=0 skips this script (npm test then runs with whatever is installed).
set -uo pipefail
cd "$(dirname "$0")/../.."
mkdir -p reports

venv=reports/.venv-test
stamp="$venv/.requirements.sha256"
want="$(sha256sum tools/python-requirements.txt | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  echo "test setup: $venv up to date"
elif { [ -x "$venv/bin/python" ] || python3 -m venv "$venv"; } >/dev/null 2>&1 &&
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r tools/python-requirements.txt; then
  echo "$want" >"$stamp"
  echo "test setup: $venv ready ($(grep -v '^#' tools/python-requirements.txt | tr '\n' ' '))"
else
  echo "test setup: NOT READY: $venv (python3 -m venv + pip install -r tools/python-requirements.txt failed);" \
    "the Pillow agreement tests of libs/preprocess and libs/datasets and apps/inference's tritonclient" \
    "tests (oip.e2e) will be skipped"
fi

if ! bash tools/scripts/ci-deploy.sh --tools-only >reports/test-setup-tools.log 2>&1; then
  echo "test setup: NOT READY: deploy tools (see reports/test-setup-tools.log; needs go and python3);" \
    "the deploy/ manifest, Dockerfile and fine-tune Job tests and the grpcurl reflection tests will be skipped"
else
  echo "test setup: deploy tools ready (${DEIT_DEPLOY_TOOLS_DIR:-$HOME/.cache/deit-serve/deploy-tools})"
fi

if [ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  echo "test setup: Fashion-MNIST present (/usr/share/datasets/fashion-mnist)"
elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null &&
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; } >/dev/null 2>&1; then
  echo "test setup: Fashion-MNIST installed (apt-get install dataset-fashion-mnist)"
else
  echo "test setup: NOT READY: Fashion-MNIST (as root: apt-get install dataset-fashion-mnist);" \
    "the trainer's end-to-end fine-tune tests will fail without it"
fi

timm_venv=reports/.venv-timm
timm_stamp="$timm_venv/.requirements.sha256"
timm_want="$(sha256sum tools/python-timm-requirements.txt | cut -d' ' -f1)"
debian_torch() { /usr/bin/python3 -c 'import torch, torchvision' >/dev/null 2>&1; }
if [ "$(cat "$timm_stamp" 2>/dev/null)" = "$timm_want" ] && debian_torch; then
  echo "test setup: $timm_venv up to date"
else
  if ! debian_torch && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-torch python3-torchvision; } \
      >reports/test-setup-torch.log 2>&1
  fi
  if debian_torch && { [ -x "$timm_venv/bin/python" ] || /usr/bin/python3 -m venv --system-site-packages "$timm_venv"; } &&
    "$timm_venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
      -r tools/python-timm-requirements.txt >>reports/test-setup-torch.log 2>&1; then
    echo "$timm_want" >"$timm_stamp"
    echo "test setup: $timm_venv ready (timm on Debian's python3-torch)"
  else
    echo "test setup: NOT READY: $timm_venv (as root: apt-get install python3-torch python3-torchvision;" \
      "see reports/test-setup-torch.log); the timm-resolution reference test of libs/packaging will be skipped"
  fi
fi
if pa="$(bash bench/oip/perf-analyzer.sh 2>reports/test-setup-perf-analyzer.log)"; then
  echo "test setup: perf_analyzer ready ($pa)"
else
  echo "test setup: NOT READY: perf_analyzer (see reports/test-setup-perf-analyzer.log; linux x86_64, pip," \
    "libb64-0d); the perf_analyzer test of apps/inference (oip.e2e) will be skipped"
fi
exit 0
