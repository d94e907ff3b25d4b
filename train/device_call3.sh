#!/usr/bin/env bash
# Call 3 on the GPU machine: continue the byte model from checkpoints/byte-model (its exported F16 weights,
# a fresh AdamW, warmup then cosine from a lower peak), alone on the GPU; then export, evaluate, HF check.
# Usage (device tool, carry [".carry"]): bash train/device_call3.sh [BUDGET_S]
set -o pipefail
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
BUDGET=${1:-430}
mkdir -p /tmp/corpus && tar -xJf .carry/corpus.tar.xz -C /tmp/corpus || exit 1
python3 train/train.py --kind byte --corpus /tmp/corpus --out /tmp/ckpt/byte-model --name byte-model \
    --init-from checkpoints/byte-model --snap-dir "$OUT" --d-model 384 --n-layer 9 --batch 32 --ctx 2048 \
    --lr 1e-3 --warmup 100 --min-lr-ratio 0.05 --seed 1 --budget "$BUDGET" --eval-every 60 --snap-every 100 \
    --hf-check --scan-bd 16 --scan-warps 1 --scan-seg 128 2>&1 | tee "$OUT/log_byte2.txt"
echo "byte rc=$?"
ls -la "$OUT"
