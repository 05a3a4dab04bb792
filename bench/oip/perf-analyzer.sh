#!/usr/bin/env bash
# Installs Triton's perf_analyzer (linux x86_64) once into ~/.cache/deit-serve/perf-analyzer-<version>
# and prints the path of a wrapper that runs it; exits 1 (saying why) where it cannot.
#
# Where it comes from: PyPI's `perf-analyzer` is a 0.1.0 placeholder without a binary, and the newer
# tritonclient wheels either ship none (2.73.0) or one built for glibc 2.38 (2.53.0, 2.60.0; Debian 12
# has 2.36). tritonclient 2.47.0's manylinux wheel ships bin/perf_analyzer built for glibc <= 2.35; it
# links libb64 (Debian: libb64-0d) and the CUDA runtime, which NVIDIA's nvidia-cuda-runtime-cu12 wheel
# ships (no GPU is needed to load it). Both wheels are pinned by sha256.
set -euo pipefail

TRITONCLIENT_VERSION=2.47.0
TRITONCLIENT_SHA256=754ab373a45306be0c45afbcde06838179d04561694f6d15e138530153aee581
CUDART_VERSION=12.9.79
CUDART_SHA256=25bba2dfb01d48a9b59ca474a1ac43c6ebf7011f1b0b8cc44f54eb6ac48a96c3
dir="${DEIT_PERF_ANALYZER_DIR:-$HOME/.cache/deit-serve/perf-analyzer-$TRITONCLIENT_VERSION}"
wrapper="$dir/perf_analyzer"

fail() {
  echo "perf_analyzer: not installed: $*" >&2
  exit 1
}
works() { "$wrapper" --version >/dev/null 2>&1 || "$wrapper" 2>&1 | grep -q 'SYNOPSIS'; }

if [ -x "$wrapper" ] && works; then
  echo "$wrapper"
  exit 0
fi
[ "$(uname -s)-$(uname -m)" = Linux-x86_64 ] || fail "only linux x86_64 wheels ship it"
if ! /sbin/ldconfig -p 2>/dev/null | grep -q 'libb64.so.0d'; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libb64-0d >/dev/null 2>&1 ||
      { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libb64-0d >/dev/null 2>&1; } ||
      fail "apt-get install libb64-0d failed"
  else
    fail "libb64.so.0d missing (as root: apt-get install libb64-0d)"
  fi
fi

download=$(mktemp -d)
trap 'rm -rf "$download"' EXIT
fetch() { # package version sha256 platform
  python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary :all: \
    --platform "$4" --python-version 3.11 -d "$download" "$1==$2" >&2 || fail "pip download $1==$2 failed"
  local wheel
  wheel=$(ls "$download"/"${1//-/_}"-"$2"-*.whl 2>/dev/null || ls "$download"/"$1"-"$2"-*.whl)
  [ "$(sha256sum "$wheel" | cut -d' ' -f1)" = "$3" ] || fail "$wheel: sha256 differs from the pinned $3"
  echo "$wheel"
}
client=$(fetch tritonclient "$TRITONCLIENT_VERSION" "$TRITONCLIENT_SHA256" manylinux1_x86_64)
cudart=$(fetch nvidia-cuda-runtime-cu12 "$CUDART_VERSION" "$CUDART_SHA256" manylinux2014_x86_64)
rm -rf "$dir"
mkdir -p "$dir/bin" "$dir/lib"
python3 - "$client" "$cudart" "$dir" <<'EOF'
import os, sys, zipfile
client, cudart, out = sys.argv[1:4]
with zipfile.ZipFile(client) as z:
    name = next(n for n in z.namelist() if n.endswith('/data/bin/perf_analyzer'))
    open(f'{out}/bin/perf_analyzer', 'wb').write(z.read(name))
with zipfile.ZipFile(cudart) as z:
    name = next(n for n in z.namelist() if n.endswith('/lib/libcudart.so.12'))
    open(f'{out}/lib/libcudart.so.12', 'wb').write(z.read(name))
os.chmod(f'{out}/bin/perf_analyzer', 0o755)
EOF
cat >"$wrapper" <<EOF
#!/bin/sh
# perf_analyzer from tritonclient $TRITONCLIENT_VERSION with the CUDA runtime it links (bench/oip/perf-analyzer.sh).
LD_LIBRARY_PATH="$dir/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "$dir/bin/perf_analyzer" "\$@"
EOF
chmod +x "$wrapper"
works || fail "$wrapper does not start: $("$wrapper" 2>&1 | head -3)"
echo "$wrapper"
