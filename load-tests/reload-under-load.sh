#!/usr/bin/env bash
# Runs reload-under-load.js and, PROMOTE_AFTER seconds in (default 15), the promotion PROMOTE_CMD
# (required; run with bash -c from the repository root), e.g. for a copy of this repository's registry
# (load-tests/README.md, "Reload under load"):
#   EXPECT_VERSION=3 PROMOTE_CMD='npx deit models promote fmnist-deit:3 --alias production --registry /tmp/deit-reload' \
#     bash load-tests/reload-under-load.sh
# or against a cluster:
#   PROMOTE_CMD='kubectl -n deit-serve exec deploy/deit-trainer -- node dist/apps/cli/src/main.js models promote fmnist-deit:3 --alias production --registry /registry'
# Exit status: k6's (thresholds: zero failed requests), or the promotion's when that failed.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${PROMOTE_CMD:?set PROMOTE_CMD to the command that promotes the new version}"
K6="${K6:-k6}"
after="${PROMOTE_AFTER:-15}"

"$K6" run "$@" load-tests/reload-under-load.js &
k6_pid=$!
trap 'kill "$k6_pid" 2>/dev/null || true' INT TERM
sleep "$after"
echo "reload-under-load: promoting after ${after}s: $PROMOTE_CMD"
promote_status=0
bash -c "$PROMOTE_CMD" || promote_status=$?
k6_status=0
wait "$k6_pid" || k6_status=$?
if [ "$promote_status" -ne 0 ]; then
  echo "reload-under-load: the promotion failed (exit $promote_status)" >&2
  exit "$promote_status"
fi
exit "$k6_status"
