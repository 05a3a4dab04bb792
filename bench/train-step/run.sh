#!/bin/sh
# Training-step benchmark: tfjs (one process with micro-batches, and data-parallel workers) against
# the same step in PyTorch when Debian's python3-torch is installed. Options: see train-step.ts.
set -e
cd "$(dirname "$0")/../.."
exec node bench/train-step/run.js "$@"
