#!/usr/bin/env bash
# The third training run (session 4): more training for the shipped 18.8M byte model, then a drafter distilled
# from THAT model. Two self-contained GPU-machine calls (nothing depends on /tmp surviving between them):
#   p  (carry .carry/p: train-extra, valid, test as xz)  continue the byte model from checkpoints/byte-model/model.gguf
#      on train-extra with a fresh AdamW and a new warmup + cosine; select raw/EMA on the whole valid split; Q8_0
#      GGUF; score valid/test and the first 64 KB of each test book. Returns byte-model.tar.part*.
#   q  (carry .carry/q: train, valid, test as xz; checkpoints/byte-model holds p's result)  distil continuations from
#      the shipped byte model at three temperatures, fine-tune the drafter from checkpoints/subword-drafter/model.gguf
#      on them + train/; F16 master + Q8_0 GGUF; score. Returns subword-drafter.tar.part00.
# Usage (device tool): bash train/device_run3.sh p|q
set -o pipefail
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
SCAN="--scan-bd 16 --scan-warps 1 --scan-seg 128"
BYTE_BUDGET=${BYTE_BUDGET:-450}; DRAFT_BUDGET=${DRAFT_BUDGET:-250}
split_out() { local n=$1; shift; tar "$@" -C /tmp/ckpt -cf - "$n" | split -b 15M -d - "$OUT/$n.tar.part"; }
mkdir -p /tmp/corpus
case "$1" in
p)
  tar -xJf .carry/p/corpusP.tar.xz -C /tmp/corpus || exit 1
  du -sh /tmp/corpus/*
  python3 train/train.py --kind byte --corpus /tmp/corpus --splits train-extra --d-model 512 --n-layer 11 \
      --batch 16 --ctx 4096 --lr 4e-4 --warmup 1 --rewarm 100 --min-lr-ratio 0.05 --wd 0.2 --dropout 0 --ema 0.999 \
      --budget $BYTE_BUDGET --eval-every 90 $SCAN --init-gguf checkpoints/byte-model/model.gguf \
      --select --gguf q8_0 --out /tmp/ckpt/byte-model --name byte-model 2>&1 | tee "$OUT/log_byte_p.txt"
  echo "byte rc=$?"
  split_out byte-model --exclude=model.safetensors
  ls -la "$OUT" /tmp/ckpt/*
  ;;
q)
  tar -xJf .carry/q/corpusQ.tar.xz -C /tmp/corpus || exit 1
  python3 train/distill.py --state checkpoints/byte-model/model.gguf --corpus /tmp/corpus --splits train \
      --out /tmp/corpus/distill --streams 6144 --prompt 64 --new 3072 --temps 0.5,0.8,1.0 --d-model 512 --n-layer 11 \
      2>&1 | tee "$OUT/log_distill.txt" || exit 1
  python3 train/train.py --kind subword --tokenizer checkpoints/subword-drafter/tokenizer.json --corpus /tmp/corpus \
      --splits train,distill --repeat distill:3 --init-gguf checkpoints/subword-drafter/model.gguf \
      --d-model 256 --n-layer 4 --batch 32 --ctx 1024 --lr 8e-4 --warmup 1 --rewarm 50 --min-lr-ratio 0.05 \
      --ema 0.999 --budget $DRAFT_BUDGET --eval-every 60 --select --gguf q8_0 --out /tmp/ckpt/subword-drafter $SCAN \
      2>&1 | tee "$OUT/log_drafter_q.txt"
  echo "drafter rc=$?"
  cp /tmp/corpus/distill-info.json /tmp/ckpt/subword-drafter/ 2>/dev/null
  split_out subword-drafter
  ls -la "$OUT" /tmp/ckpt/*
  ;;
esac
