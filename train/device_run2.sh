#!/usr/bin/env bash
# The second training run (session 3): a 19M byte model on train/ + train-extra/ shipped as Q8_0 GGUF, and the
# drafter distilled from it. Four GPU-machine calls, back to back on ONE warm machine (files under /tmp survive
# between calls only while it is held: each call must start within ~30 s of the last one's return).
#   a  (carry .carry/a: train-extra as xz)  unpack; GPU smoke test of every code path on a toy corpus; throughput
#   b  (carry .carry/b: train, valid, test) unpack; byte model, first part of the schedule; state kept in /tmp
#   c  resume the byte model to the end of its schedule, select raw/EMA on the whole valid split, write Q8_0 GGUF,
#      score it; meanwhile distil continuations from the phase-b EMA weights and fine-tune the drafter on them + books
#   d  return the byte model's F16 master copy (too large to come back with c's files)
#   y  what actually ran after b (the machine, and /tmp/byte-state.pt with it, was lost before c): c from b's EMA
#      snapshot as Q8_0 GGUF (.carry/w/init.gguf), in one call that needs no warm machine
# Usage (device tool): bash train/device_run2.sh a|b|c|d
set -o pipefail
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
B_BUDGET=500; C_BUDGET=360; TOTAL=860; DRAFT_BUDGET=180
SCAN="--scan-bd 16 --scan-warps 1 --scan-seg 128"
BYTE="--kind byte --corpus /tmp/corpus --splits train,train-extra --d-model 512 --n-layer 11 --batch 16 --ctx 4096
      --lr 1.5e-3 --warmup 300 --min-lr-ratio 0.05 --wd 0.2 --dropout 0.05 --ema 0.999 --total-budget $TOTAL
      --eval-every 60 $SCAN"
split_out() { local n=$1; shift; tar "$@" -C /tmp/ckpt -cf - "$n" | split -b 15M -d - "$OUT/$n.tar.part"; }
case "$1" in
a)
  mkdir -p /tmp/corpus && tar -xJf .carry/a/corpusA.tar.xz -C /tmp/corpus || exit 1
  nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv
  mkdir -p /tmp/toy/{train,valid,test}
  for f in $(ls /tmp/corpus/train-extra | head -6); do head -c 300000 /tmp/corpus/train-extra/$f > /tmp/toy/train/$f; done
  for f in $(ls /tmp/corpus/train-extra | tail -2); do head -c 100000 /tmp/corpus/train-extra/$f > /tmp/toy/valid/$f; cp /tmp/toy/valid/$f /tmp/toy/test/$f; done
  T="--corpus /tmp/toy --splits train --d-model 512 --n-layer 11 --batch 16 --ctx 4096 --warmup 20 --eval-every 1000 --ema 0.999 --dropout 0.05 --wd 0.2 $SCAN"
  python3 train/train.py --kind byte $T --out /tmp/toyck/byte --max-steps 40 --budget 60 --total-budget 600 \
      --save-state /tmp/toyck/st.pt --no-eval 2>&1 | tail -6 || exit 1
  python3 train/train.py --kind byte $T --out /tmp/toyck/byte --max-steps 50 --budget 60 --total-budget 600 \
      --resume /tmp/toyck/st.pt --select --gguf q8_0 2>&1 | tail -6 || exit 1
  python3 train/distill.py --state /tmp/toyck/st.pt --corpus /tmp/toy --splits train --out /tmp/toy/distill \
      --streams 1024 --prompt 64 --new 256 --d-model 512 --n-layer 11 2>&1 | tail -2 || exit 1
  python3 train/train.py --kind subword --tokenizer checkpoints/subword-drafter/tokenizer.json --corpus /tmp/toy \
      --splits train,distill --repeat distill:3 --init-from checkpoints/subword-drafter --d-model 256 --n-layer 4 \
      --batch 32 --ctx 1024 --lr 1e-3 --warmup 10 --ema 0.999 --max-steps 30 --budget 60 --select --gguf q8_0 \
      --out /tmp/toyck/drafter $SCAN 2>&1 | tail -4 || exit 1
  ls -la /tmp/toyck/byte /tmp/toyck/drafter; rm -rf /tmp/toyck /tmp/toy
  ;;
b)
  tar -xJf .carry/b/corpusB.tar.xz -C /tmp/corpus || exit 1
  ls /tmp/corpus; du -sh /tmp/corpus/*
  python3 train/train.py $BYTE --out /tmp/ckpt/byte-model --name byte-model --budget $B_BUDGET \
      --save-state /tmp/byte-state.pt --no-eval --snap-dir "$OUT" 2>&1 | tee "$OUT/log_byte_b.txt"
  ls -la "$OUT" /tmp/byte-state.pt
  ;;
c)
  ( python3 train/distill.py --state /tmp/byte-state.pt --corpus /tmp/corpus --out /tmp/corpus/distill \
        --streams 4096 --prompt 64 --new 4096 --temps 1.0,0.7 --d-model 512 --n-layer 11 &&
    python3 train/train.py --kind subword --tokenizer checkpoints/subword-drafter/tokenizer.json --corpus /tmp/corpus \
        --splits train,train-extra,distill --repeat distill:3 --init-from checkpoints/subword-drafter \
        --d-model 256 --n-layer 4 --batch 32 --ctx 1024 --lr 1e-3 --warmup 50 --min-lr-ratio 0.05 --ema 0.999 \
        --budget $DRAFT_BUDGET --eval-every 60 --select --gguf q8_0 --out /tmp/ckpt/subword-drafter $SCAN
  ) > "$OUT/log_drafter.txt" 2>&1 &
  DPID=$!
  python3 train/train.py $BYTE --out /tmp/ckpt/byte-model --name byte-model --budget $C_BUDGET \
      --resume /tmp/byte-state.pt --save-state /tmp/byte-state.pt --select --gguf q8_0 2>&1 | tee "$OUT/log_byte_c.txt"
  echo "byte rc=$?"
  wait $DPID; echo "drafter rc=$?"; tail -4 "$OUT/log_drafter.txt"
  cp /tmp/corpus/distill-info.json /tmp/ckpt/subword-drafter/ 2>/dev/null
  split_out byte-model --exclude=model.safetensors
  split_out subword-drafter
  ls -la "$OUT" /tmp/ckpt/*
  ;;
y)  # c in ONE call (no warm machine to lose): only corpus B travels, so the rest of the schedule and the
     # drafter see train/ alone (train-extra was in the first 500 s); carry .carry/b and .carry/w
  mkdir -p /tmp/corpus && tar -xJf .carry/b/corpusB.tar.xz -C /tmp/corpus || exit 1
  cp .carry/w/init.gguf /tmp/init.gguf || exit 1
  ( python3 train/distill.py --state /tmp/init.gguf --corpus /tmp/corpus --out /tmp/corpus/distill \
        --streams 4096 --prompt 64 --new 4096 --temps 1.0,0.7 --splits train --d-model 512 --n-layer 11 &&
    python3 train/train.py --kind subword --tokenizer checkpoints/subword-drafter/tokenizer.json --corpus /tmp/corpus \
        --splits train,distill --repeat distill:3 --init-from checkpoints/subword-drafter \
        --d-model 256 --n-layer 4 --batch 32 --ctx 1024 --lr 1e-3 --warmup 50 --min-lr-ratio 0.05 --ema 0.999 \
        --budget $DRAFT_BUDGET --eval-every 60 --select --gguf q8_0 --out /tmp/ckpt/subword-drafter $SCAN
  ) > "$OUT/log_drafter.txt" 2>&1 &
  DPID=$!
  python3 train/train.py $BYTE --out /tmp/ckpt/byte-model --name byte-model --budget $C_BUDGET --splits train \
      --init-gguf /tmp/init.gguf --clock-offset 500.2 --step-offset 3527 --rewarm 100 --select --gguf q8_0 \
      2>&1 | tee "$OUT/log_byte_c.txt"
  echo "byte rc=$?"
  wait $DPID; echo "drafter rc=$?"; tail -4 "$OUT/log_drafter.txt"
  cp /tmp/corpus/distill-info.json /tmp/ckpt/subword-drafter/ 2>/dev/null
  split_out byte-model --exclude=model.safetensors
  split_out subword-drafter --exclude=model.safetensors
  split -b 15M -d /tmp/ckpt/byte-model/model.safetensors "$OUT/byte-model-f16.safetensors.part"
  ls -la "$OUT" /tmp/ckpt/*
  ;;
d)
  split -b 15M -d /tmp/ckpt/byte-model/model.safetensors "$OUT/byte-model-f16.safetensors.part"
  sha256sum /tmp/ckpt/byte-model/model.safetensors; ls -la "$OUT"
  ;;
esac
