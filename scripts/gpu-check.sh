#!/usr/bin/env bash
# The GPU part of pytest-convcheck, on a machine with CUDA, in under 5 minutes:
#   1. the GPU-marked tests (device parity against the float64 reference, TF32-aware
#      and strict; compile and deterministic parity on CUDA), required to run
#      (CONVCHECK_REQUIRE_GPU=1 turns a missing GPU into a failure, not a skip);
#   2. the conformance suite on CUDA (one GPU per xdist worker with -n);
#   3. the parity and reference tests, whose device lists include CUDA there.
# Usage: bash scripts/gpu-check.sh [extra pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
python - <<'PY'
import torch
assert torch.cuda.is_available(), f"torch {torch.__version__} sees no CUDA device"
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, "
      f"{torch.cuda.device_count()} × {torch.cuda.get_device_name(0)}, "
      f"TF32 conv {torch.backends.cudnn.allow_tf32}, TF32 matmul {torch.backends.cuda.matmul.allow_tf32}")
PY
start=$(date +%s)
export CONVCHECK_REQUIRE_GPU=1
python -m pytest -p no:cacheprovider -q -m gpu tests "$@"
# scripts/ holds no tests: only the conformance items run
python -m pytest -p no:cacheprovider -q -n 4 --convcheck-conformance --convcheck-device cuda \
    --convcheck-conformance-examples 100 "$@" scripts
python -m pytest -p no:cacheprovider -q tests/test_parity.py tests/test_reference.py "$@"
echo "gpu-check: $(( $(date +%s) - start )) s"
