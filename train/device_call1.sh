#!/usr/bin/env bash
# Call 1 on the GPU machine: correctness of the Triton kernels (forward AND gradients) against the slow
# references, the model against transformers, timings, and a re-check of the golden fixtures with the
# machine's own torch. Usage (device tool): bash train/device_call1.sh   (writes $OUT/log.txt)
set -o pipefail
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
{
  nvidia-smi --query-gpu=name,memory.used,memory.total,clocks.sm --format=csv
  python3 -c "import torch,triton,transformers,tokenizers;print('versions',torch.__version__,triton.__version__,transformers.__version__,tokenizers.__version__)"
  timeout 100 python3 train/test_scan.py; echo "test_scan rc=$?"
  timeout 60 python3 train/test_model.py 2>&1 | grep -v "Loading weights"; echo "test_model rc=$?"
  mkdir -p /tmp/fx && timeout 40 python3 test/fixtures/make_fixtures.py --out /tmp/fx --skip-drafter 2>&1 | grep -v "Loading weights\|Writing model\|falling back"
  python3 - <<'PY'
import numpy as np, os
for n in ["tiny-hf","tiny-hf-f16","tiny-hf-bf16","tiny-hf-untied","tiny-ssm-ln","tiny-ssm-ln-bin"]:
    a=np.fromfile(f"/tmp/fx/{n}/logits.bin","<f4"); b=np.fromfile(f"test/fixtures/{n}/logits.bin","<f4")
    print("fixture recheck", n, "max abs diff vs committed", float(np.abs(a-b).max()) if a.shape==b.shape else "SHAPE MISMATCH")
PY
  timeout 170 python3 train/bench.py; echo "bench rc=$?"
} 2>&1 | tee "$OUT/log.txt"
