#!/usr/bin/env bash
# Call 2 on the GPU machine: train BOTH shipped models concurrently (two processes on the one GPU),
# export, evaluate; everything lands in $OUT as it goes (tar parts of each checkpoint folder + logs).
# Needs .carry/corpus.tar.xz (tar of ../shared/corpus: train/ valid/ test/, made with `xz -9`).
# Usage (device tool, carry [".carry"]): bash train/device_call2.sh [BYTE_BUDGET_S] [DRAFTER_BUDGET_S]
set -o pipefail
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
BYTE_BUDGET=${1:-470}
DRAFT_BUDGET=${2:-80}
SCAN="--scan-bd 16 --scan-warps 1 --scan-seg 128"
mkdir -p /tmp/corpus && tar -xJf .carry/corpus.tar.xz -C /tmp/corpus || exit 1
ls /tmp/corpus/train | wc -l
python3 train/train.py --kind subword --tokenizer checkpoints/subword-drafter/tokenizer.json \
    --corpus /tmp/corpus --out /tmp/ckpt/subword-drafter --name subword-drafter --snap-dir "$OUT" \
    --d-model 256 --n-layer 4 --batch 32 --ctx 1024 --lr 3e-3 --warmup 200 --budget "$DRAFT_BUDGET" \
    --eval-every 30 --snap-every 60 $SCAN > "$OUT/log_drafter.txt" 2>&1 &
DPID=$!
python3 train/train.py --kind byte --corpus /tmp/corpus --out /tmp/ckpt/byte-model --name byte-model \
    --snap-dir "$OUT" --d-model 384 --n-layer 9 --batch 32 --ctx 2048 --lr 2e-3 --warmup 300 \
    --budget "$BYTE_BUDGET" --eval-every 60 --snap-every 100 --hf-check $SCAN 2>&1 | tee "$OUT/log_byte.txt"
echo "byte rc=$?"
wait $DPID; echo "drafter rc=$?"
tail -5 "$OUT/log_drafter.txt"
ls -la "$OUT"
