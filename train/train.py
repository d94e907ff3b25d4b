"""Train one shipped model (the byte model or the subword drafter) on the GPU machine, export it, evaluate it.

    python3 train/train.py --kind byte    --corpus /tmp/corpus --out /tmp/ckpt/byte-model     --budget 420
    python3 train/train.py --kind subword --corpus /tmp/corpus --out /tmp/ckpt/subword-drafter --budget 75 \
        --tokenizer checkpoints/subword-drafter/tokenizer.json

Training: random windows of the TRAIN books only (a book drawn with probability proportional to its length,
then a uniform offset inside it), AdamW, linear warmup then a cosine schedule over the wall-clock budget
(so the run ends on time whatever the throughput), bf16 autocast for the matmuls (scan math in fp32),
grad clip 1.0, valid bits-per-byte on fixed valid windows every --eval-every seconds.
After training: export to the HF layout (F16), reload the ROUNDED weights into an fp32 model (TF32 off)
and score the whole valid and test splits (one pass per book), the first 65536 bytes of each test book
(byte model), and optionally transformers' MambaForCausalLM on one 64 KB test window (--hf-check).
--snap-dir: every --snap-every seconds and at the end, a tar of the output folder is written there in
parts of at most 15 MiB (name.tar.partNN), so a run cut short still returns a checkpoint.
"""
import argparse, glob, io, json, math, os, sys, tarfile, time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mamba_ops as ops  # noqa: E402
from model import MambaCfg, MambaLM, export_hf, load_hf, sum_nll  # noqa: E402

T_START = time.time()


def log(*a):
    print(f"[{time.time() - T_START:7.1f}s]", *a, flush=True)


def book_files(corpus, split):
    fs = sorted(glob.glob(os.path.join(corpus, split, "*.txt")))
    assert fs, f"no books in {corpus}/{split}"
    return fs


class EpochWindows:
    """Every epoch: each book cut into non-overlapping windows of L+1 units at a random phase, all windows of all
    books shuffled, then served in order — each unit seen once per epoch (with `reps`, some books several times)."""

    def __init__(self, arrays, reps, L, seed, dev):
        lens = np.array([len(a) for a in arrays], dtype=np.int64)
        self.data = torch.from_numpy(np.concatenate(arrays).astype(np.int64 if arrays[0].dtype != np.uint8 else np.uint8)).to(dev)
        self.starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
        self.lens, self.reps, self.L, self.dev = lens, reps, L, dev
        self.total = int((lens * np.array(reps)).sum())
        self.rng = np.random.default_rng(seed)
        self.epoch, self.cursor, self.order = 0, 0, None

    def _new_epoch(self):
        L, st = self.L, []
        for s0, n, r in zip(self.starts, self.lens, self.reps):
            for _ in range(r):
                o = int(self.rng.integers(0, L)) if n > 2 * L + 1 else 0
                k = (n - 1 - o) // L
                if k > 0:
                    st.append(s0 + o + L * np.arange(k))
        order = np.concatenate(st)
        self.rng.shuffle(order)
        self.order, self.cursor = torch.from_numpy(order).to(self.dev), 0
        self.epoch += 1

    def batch(self, B, L):
        assert L == self.L
        if self.order is None or self.cursor + B > len(self.order):
            self._new_epoch()
        s = self.order[self.cursor:self.cursor + B]
        self.cursor += B
        w = self.data[s[:, None] + torch.arange(L + 1, device=self.dev)[None]].long()
        return w[:, :-1], w[:, 1:]

    def epochs_done(self):
        return self.epoch - 1 + (self.cursor / len(self.order) if self.order is not None else 0)

    def state(self):
        return {"epoch": self.epoch, "cursor": self.cursor, "rng": self.rng.bit_generator.state,
                "order": None if self.order is None else self.order.cpu()}

    def load(self, st):
        self.epoch, self.cursor = st["epoch"], st["cursor"]
        self.rng.bit_generator.state = st["rng"]
        self.order = None if st["order"] is None else st["order"].to(self.dev)


def lr_at(step, frac, a):
    warm = min(1.0, (step + 1) / a.warmup)
    cos = 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))
    return a.lr * warm * (a.min_lr_ratio + (1 - a.min_lr_ratio) * cos)


def snapshot(src_dir, snap_dir, name, part_bytes=15 * 1024 * 1024):
    if not snap_dir:
        return
    os.makedirs(snap_dir, exist_ok=True)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        tf.add(src_dir, arcname=name)
    data = buf.getvalue()
    for old in glob.glob(os.path.join(snap_dir, f"{name}.tar.part*")):
        os.remove(old)
    for i in range(0, max(1, -(-len(data) // part_bytes))):
        p = os.path.join(snap_dir, f"{name}.tar.part{i:02d}")
        with open(p + ".tmp", "wb") as f:
            f.write(data[i * part_bytes:(i + 1) * part_bytes])
        os.replace(p + ".tmp", p)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kind", choices=["byte", "subword"], required=True)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--tokenizer", default=None)
    ap.add_argument("--budget", type=float, default=420, help="training wall-clock seconds")
    ap.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (0 = budget only)")
    ap.add_argument("--d-model", type=int, default=384)
    ap.add_argument("--n-layer", type=int, default=9)
    ap.add_argument("--d-state", type=int, default=16)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--ctx", type=int, default=2048)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--min-lr-ratio", type=float, default=0.05)
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--wd", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eval-every", type=float, default=60)
    ap.add_argument("--snap-every", type=float, default=120)
    ap.add_argument("--snap-dir", default=None)
    ap.add_argument("--name", default=None)
    ap.add_argument("--scan-bd", type=int, default=32)
    ap.add_argument("--scan-warps", type=int, default=2)
    ap.add_argument("--scan-seg", type=int, default=256)
    ap.add_argument("--hf-check", action="store_true")
    ap.add_argument("--no-eval", action="store_true")
    ap.add_argument("--vocab-pad", type=int, default=8)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--init-from", default=None, help="continue from an exported HF folder (its weights; fresh optimizer)")
    ap.add_argument("--splits", default="train", help="comma-separated corpus folders to train on (never valid/test)")
    ap.add_argument("--repeat", default="", help="split:n,... windows of that split n times per epoch (distilled text)")
    ap.add_argument("--dropout", type=float, default=0.0, help="on each block's output before the residual add")
    ap.add_argument("--ema", type=float, default=0.0, help="EMA decay of the weights (0 = off)")
    ap.add_argument("--total-budget", type=float, default=0, help="schedule length in training seconds over all calls")
    ap.add_argument("--init-gguf", default=None, help="start from these weights (a model.gguf, dequantized) with a fresh AdamW")
    ap.add_argument("--clock-offset", type=float, default=0, help="with --init-gguf: training seconds already spent on the schedule")
    ap.add_argument("--step-offset", type=int, default=0, help="with --init-gguf: steps already taken")
    ap.add_argument("--rewarm", type=int, default=0, help="steps of linear lr warmup for a fresh AdamW mid-schedule")
    ap.add_argument("--resume", default=None, help="state file of an earlier call: weights, AdamW, EMA, step, clock, data order")
    ap.add_argument("--save-state", default=None, help="write the state file at the end of this call")
    ap.add_argument("--select", action="store_true", help="export raw or EMA weights, whichever scores the whole valid split better")
    ap.add_argument("--gguf", default=None, help="also write model.gguf with matrices in this type (q8_0) and evaluate THAT file")
    ap.add_argument("--impl", default="triton", help="triton, or ref (slow PyTorch; for CPU smoke tests)")
    a = ap.parse_args()
    name = a.name or os.path.basename(a.out.rstrip("/"))
    dev = a.device
    torch.manual_seed(a.seed)
    ops.SCAN_CFG.update(BD=a.scan_bd, num_warps=a.scan_warps, seg=a.scan_seg)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True

    # ---------------- data ----------------
    tok = None
    if a.kind == "byte":
        enc = lambda text_bytes: np.frombuffer(text_bytes, dtype=np.uint8)
        vocab = 256
    else:
        from tokenizers import Tokenizer
        tok = Tokenizer.from_file(a.tokenizer)
        vocab = tok.get_vocab_size()
        enc = None
    vocab_padded = -(-vocab // a.vocab_pad) * a.vocab_pad

    def load_split(split):
        fs = book_files(a.corpus, split)
        raw = [open(f, "rb").read() for f in fs]
        if a.kind == "byte":
            arrs = [enc(r) for r in raw]
        else:
            encs = tok.encode_batch([r.decode("utf-8") for r in raw])
            arrs = [np.array(e.ids, dtype=np.int32) for e in encs]
        return fs, raw, arrs

    t0 = time.time()
    splits = [x for x in a.splits.split(",") if x]
    assert not {"valid", "test"} & set(splits), "never train on valid/ or test/"
    rep = {k: int(v) for k, v in (x.split(":") for x in a.repeat.split(",") if x)}
    tr_files, tr_raw, tr_arrs, tr_reps = [], [], [], []
    for sp in splits:
        f_, r_, a_ = load_split(sp)
        tr_files += f_; tr_raw += r_; tr_arrs += a_; tr_reps += [rep.get(sp, 1)] * len(f_)
    n_train_bytes = sum(len(r) * k for r, k in zip(tr_raw, tr_reps))
    n_train_units = sum(len(x) * k for x, k in zip(tr_arrs, tr_reps))
    log(f"train ({a.splits}, repeats {rep}): {len(tr_files)} books, {n_train_bytes} bytes per epoch, {n_train_units} units ({time.time() - t0:.1f}s)")
    data = EpochWindows(tr_arrs, tr_reps, a.ctx, a.seed, dev)
    del tr_raw
    va_files, va_raw, va_arrs = load_split("valid")
    te_files, te_raw, te_arrs = load_split("test")
    # fixed valid windows for periodic eval
    g = np.random.default_rng(1234)
    vw = []
    for _ in range(16):
        i = int(g.integers(len(va_arrs)))
        arr = va_arrs[i]
        s = int(g.integers(0, len(arr) - a.ctx - 1))
        vw.append(arr[s:s + a.ctx + 1].astype(np.int64))
    vwin = torch.from_numpy(np.stack(vw)).to(dev)
    # bytes per unit in the valid windows (for subword: bytes of the scored tokens)
    if a.kind == "byte":
        v_bytes = vwin[:, 1:].numel()
    else:
        v_bytes = sum(len(tok.decode(list(map(int, w[1:]))).encode("utf-8")) for w in vw)

    # ---------------- model ----------------
    cfg = MambaCfg(vocab_size=vocab_padded, d_model=a.d_model, n_layer=a.n_layer, d_state=a.d_state)
    model = MambaLM(cfg)
    model.init_weights(seed=a.seed)
    model.impl = a.impl
    prev = None
    if a.init_from:
        from safetensors.torch import load_file
        sd = {k: v.float() for k, v in load_file(os.path.join(a.init_from, "model.safetensors")).items()}
        model.load_state_dict(sd, strict=True)
        for fn in ("training_results.json", "results.json"):
            p = os.path.join(a.init_from, fn)
            if os.path.exists(p):
                with open(p) as f:
                    prev = json.load(f)
                break
        log(f"initialised from {a.init_from}")
    if a.init_gguf:
        import gguf as gg
        gsd, _ = gg.hf_state_from_gguf(a.init_gguf)
        model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in gsd.items()}, strict=True)
        log(f"initialised from {a.init_gguf}")
    model.set_dropout(a.dropout)
    model.to(dev)
    nparams = model.num_params()
    log(f"model: {cfg}  params {nparams:,}")
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        (decay if p.dim() >= 2 and not n.endswith("A_log") else no_decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.wd}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.95), eps=1e-8, fused=True)

    params = [p for p in model.parameters()]
    ema = [p.detach().clone().float() for p in params] if a.ema > 0 else None
    step, units_seen, elapsed0, history = 0, 0, 0.0, []
    if a.resume:
        st = torch.load(a.resume, map_location=dev, weights_only=False)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        if ema is not None and st.get("ema") is not None:
            for e, v in zip(ema, st["ema"]):
                e.copy_(v)
        step, units_seen, elapsed0, history = st["step"], st["units_seen"], st["elapsed"], st["history"]
        data.load(st["data"])
        torch.set_rng_state(st["torch_rng"].cpu())
        log(f"resumed from {a.resume}: step {step}, {elapsed0:.1f}s of training, epoch {data.epochs_done():.2f}")
    total_budget = a.total_budget or a.budget
    if a.init_gguf:
        step, elapsed0 = a.step_offset, a.clock_offset
    step0 = step

    def swap_ema():  # exchange the live weights with the EMA (call twice to undo)
        with torch.no_grad():
            for p, e in zip(params, ema):
                tmp = p.detach().float().clone(); p.copy_(e); e.copy_(tmp)

    def valid_bpb():
        model.eval()
        with torch.no_grad(), torch.autocast(dev.split(":")[0], dtype=torch.bfloat16):
            logits = model(vwin[:, :-1])
            nll = F.cross_entropy(logits.float().reshape(-1, vocab_padded), vwin[:, 1:].reshape(-1), reduction="sum")
        model.train()
        return nll.item() / math.log(2) / v_bytes

    extra = {"training_context_length": a.ctx}
    if a.kind == "subword":
        extra.update({"tokenizer": "tokenizer.json", "tokenizer_vocab_size": vocab, "vocab_padded_to_multiple_of": a.vocab_pad})

    def export(path):
        return export_hf(model, path, a.ctx, dtype=torch.float16, extra=extra)

    # ---------------- train ----------------
    model.train()
    t_train = time.time()
    last_eval = last_snap = t_train
    losses = []
    while True:
        el = time.time() - t_train
        if el >= a.budget or elapsed0 + el >= total_budget or (a.max_steps and step >= a.max_steps):
            break
        lr = lr_at(step, (elapsed0 + el) / total_budget, a)
        if a.rewarm:
            lr *= min(1.0, (step - step0 + 1) / a.rewarm)
        for gr in opt.param_groups:
            gr["lr"] = lr
        x, y = data.batch(a.batch, a.ctx)
        with torch.autocast(dev.split(":")[0], dtype=torch.bfloat16):
            logits = model(x)
        loss = F.cross_entropy(logits.float().reshape(-1, vocab_padded), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if ema is not None:
            torch._foreach_lerp_(ema, [p.detach().float() for p in params], 1 - min(a.ema, (1 + step) / (10 + step)))
        step += 1
        units_seen += x.numel()
        losses.append(loss.detach())
        if step % 100 == 0 or step == 10:
            l = torch.stack(losses).mean().item(); losses = []
            el = time.time() - t_train
            rate = units_seen / el
            log(f"step {step} lr {lr:.2e} loss {l:.4f} nats/unit ({l / math.log(2):.4f} bits) gnorm {gn.item():.2f} "
                f"{rate:,.0f} units/s  mem {(torch.cuda.max_memory_allocated() if dev.startswith('cuda') else 0) / 2**30:.1f} GiB")
            if not math.isfinite(l):
                raise SystemExit("loss is not finite")
        now = time.time()
        if now - last_eval >= a.eval_every:
            vb = valid_bpb()
            history.append({"step": step, "seconds": round(elapsed0 + now - t_train, 1), "valid_window_bpb": vb,
                            "epoch": round(data.epochs_done(), 3)})
            log(f"step {step} valid-window bpb {vb:.4f}")
            last_eval = now
        if a.snap_dir and now - last_snap >= a.snap_every:
            export(a.out)
            snapshot(a.out, a.snap_dir, name)
            last_snap = now
    if dev.startswith("cuda"):
        torch.cuda.synchronize()
    train_secs = time.time() - t_train
    vb = valid_bpb()
    history.append({"step": step, "seconds": round(elapsed0 + train_secs, 1), "valid_window_bpb": vb,
                    "epoch": round(data.epochs_done(), 3)})
    if ema is not None:
        swap_ema(); history[-1]["valid_window_bpb_ema"] = valid_bpb(); swap_ema()
    log(f"call done: step {step}, {elapsed0 + train_secs:.1f}s of {total_budget:.0f}s, epoch {data.epochs_done():.3f}, "
        f"valid-window bpb {vb:.4f} (EMA {history[-1].get('valid_window_bpb_ema', float('nan')):.4f})")
    if a.save_state:
        os.makedirs(os.path.dirname(os.path.abspath(a.save_state)), exist_ok=True)
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "ema": ema, "step": step,
                    "units_seen": units_seen, "elapsed": elapsed0 + train_secs, "history": history,
                    "data": data.state(), "torch_rng": torch.get_rng_state()}, a.save_state + ".tmp")
        os.replace(a.save_state + ".tmp", a.save_state)
        log(f"state saved to {a.save_state}")
    train_secs_total = elapsed0 + train_secs
    bytes_per_unit = n_train_bytes / n_train_units
    res = {
        "kind": a.kind, "params": nparams, "config": cfg.__dict__, "tokenizer_vocab_size": vocab,
        "steps": step, "batch": a.batch, "context": a.ctx, "train_units": units_seen,
        "train_bytes_equiv": units_seen * bytes_per_unit, "train_seconds": train_secs,
        "units_per_second": units_seen / train_secs, "bytes_per_second": units_seen * bytes_per_unit / train_secs,
        "epochs": units_seen / n_train_units, "lr": a.lr, "warmup": a.warmup, "wd": a.wd,
        "train_split_bytes": n_train_bytes, "train_split_units": n_train_units,
        "scan_cfg": dict(ops.SCAN_CFG), "history": history, "device": torch.cuda.get_device_name() if dev.startswith("cuda") else dev,
        "torch": torch.__version__,
    }
    if prev is not None:
        res["init_from"] = {k: prev.get(k) for k in ("steps", "train_units", "train_bytes_equiv", "train_seconds",
                                                     "bytes_per_second", "epochs", "lr", "valid_bpb", "test_bpb",
                                                     "batch", "context", "warmup")}
        res["init_from"]["history"] = prev.get("history")
    log(f"trained {step} steps this call in {train_secs:.1f}s, {res['bytes_per_second']:,.0f} bytes/s")
    if tok is not None:
        os.makedirs(a.out, exist_ok=True)
        tok.save(os.path.join(a.out, "tokenizer.json"))
    if a.no_eval:  # a middle call: snapshot the EMA (else raw) weights as a fallback, keep the state for the next call
        if ema is not None:
            swap_ema()
        res["export"] = export(a.out)
        with open(os.path.join(a.out, "results.json"), "w") as f:
            json.dump(res, f, indent=2)
        snapshot(a.out, a.snap_dir, name)
        log("exported (fallback snapshot)", res["export"])
        return

    # ---------------- choose the weights, export, evaluate THE FILE THAT SHIPS (fp32, no TF32) ----------------
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    ln2 = math.log(2)

    def score_split(m, files, raws, arrs):
        m.eval()
        per, tot_bits, tot_bytes = {}, 0.0, 0
        for f, r, arr in zip(files, raws, arrs):
            ids = torch.from_numpy(arr.astype(np.int64)).to(dev)
            nll, n = sum_nll(m, ids)
            if a.kind == "byte":
                nb = n                               # bytes scored: N - 1
            else:
                nb = len(r) - len(tok.decode([int(arr[0])]).encode("utf-8"))
            per[os.path.basename(f)] = nll / ln2 / nb
            tot_bits += nll / ln2
            tot_bytes += nb
        return tot_bits / tot_bytes, per

    t_ev = time.time()
    if a.select and ema is not None:
        raw_v = score_split(model, va_files, va_raw, va_arrs)[0]
        swap_ema()
        ema_v = score_split(model, va_files, va_raw, va_arrs)[0]
        use_ema = ema_v <= raw_v
        if not use_ema:
            swap_ema()
        res["selection"] = {"whole_valid_bpb_raw": raw_v, "whole_valid_bpb_ema": ema_v, "chosen": "ema" if use_ema else "raw",
                            "precision": "fp32, TF32 off, unrounded weights"}
        log("selection on the whole valid split:", res["selection"], f"({time.time() - t_ev:.1f}s)")
    elif ema is not None:
        swap_ema()
    res["export"] = export(a.out)                    # F16 safetensors: the master copy for later conversions
    log("exported", res["export"])
    evals = {}
    if a.gguf:
        import gguf as gg
        sd = {k: v.detach().float().cpu().numpy() for k, v in model.state_dict().items()}
        ccfg = dict(n_layer=cfg.n_layer, d_model=cfg.d_model, expand=cfg.expand, d_state=cfg.d_state, d_conv=cfg.d_conv,
                    dt_rank=cfg.dt_rank, eps=cfg.eps)
        vt = None
        if tok is not None:
            vocab_map = tok.get_vocab()
            vt = [None] * vocab_padded
            for t_, i_ in vocab_map.items():
                vt[i_] = t_
            vt = [t_ if t_ is not None else f"<pad{i_}>" for i_, t_ in enumerate(vt)]
        gpath = os.path.join(a.out, "model.gguf")
        res["gguf"] = gg.write_gguf(gpath, sd, ccfg, a.ctx, quant=a.gguf, name=name, vocab_tokens=vt)
        res["gguf"]["types"] = sorted(set(res["gguf"]["types"].values()))
        log("wrote", gpath, res["gguf"])
        gsd, _ = gg.hf_state_from_gguf(gpath)
        mq = MambaLM(cfg)
        mq.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in gsd.items()}, strict=True)
        mq.impl = a.impl
        evals[a.gguf] = mq.to(dev)
    del opt
    mf, _ = load_hf(a.out, dev)
    mf.impl = a.impl
    evals["f16"] = mf
    del model
    if dev.startswith("cuda"):
        torch.cuda.empty_cache()
    shipped = a.gguf or "f16"
    m = evals[shipped]
    res["shipped_weights"] = "model.gguf (" + a.gguf + ")" if a.gguf else "model.safetensors (f16)"
    res["valid_bpb"], res["valid_per_book"] = score_split(m, va_files, va_raw, va_arrs)
    res["test_bpb"], res["test_per_book"] = score_split(m, te_files, te_raw, te_arrs)
    if a.gguf:
        res["f16_valid_bpb"] = score_split(mf, va_files, va_raw, va_arrs)[0]
        res["f16_test_bpb"], res["f16_test_per_book"] = score_split(mf, te_files, te_raw, te_arrs)
    res["eval_method"] = ("each book scored in one pass over the whole book (first unit context only), fp32, TF32 off, "
                          "weights as shipped (dequantized exactly); split bpb = total bits / total scored bytes")
    log(f"{shipped}: valid bpb {res['valid_bpb']:.4f}  test bpb {res['test_bpb']:.4f}" +
        (f"  (f16: valid {res['f16_valid_bpb']:.4f} test {res['f16_test_bpb']:.4f})" if a.gguf else "") +
        f"  ({time.time() - t_ev:.1f}s)")
    if a.kind == "byte":
        first = {}
        for f, r in zip(te_files, te_raw):
            ids = torch.from_numpy(np.frombuffer(r[:65536], dtype=np.uint8).astype(np.int64)).to(dev)
            nll, n = sum_nll(m, ids)
            first[os.path.basename(f)] = nll / ln2 / n
        res["test_first64k_bpb"] = first
        with open(os.path.join(a.out, "eval_first64k.json"), "w") as f:
            json.dump(first, f, indent=2)
            f.write("\n")
        log("first 64 KB per test book:", json.dumps(first))
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump(res, f, indent=2)
    snapshot(a.out, a.snap_dir, name)
    if a.kind == "byte" and a.hf_check:
        try:
            from transformers import MambaForCausalLM
            t_hf = time.time()
            hf = MambaForCausalLM.from_pretrained(a.out, dtype=torch.float32).to(dev).eval()
            m = mf
            book = os.path.basename(te_files[0])
            ids = torch.from_numpy(np.frombuffer(te_raw[0][:65536], dtype=np.uint8).astype(np.int64)).to(dev)
            with torch.no_grad():
                lg = hf(ids[None], use_cache=False).logits[0]
                nll = F.cross_entropy(lg[:-1].double(), ids[1:], reduction="sum").item()
                ours = m(ids[None])[0]
                maxdiff = (ours - lg).abs().max().item()
            res["hf_check"] = {"book": book, "window": "first 65536 bytes", "transformers_bpb": nll / ln2 / (len(ids) - 1),
                               "ours_bpb_f16": sum_nll(mf, ids)[0] / ln2 / (len(ids) - 1), "max_abs_logit_diff": maxdiff,
                               "seconds": time.time() - t_hf, "path": "transformers slow path (torch), fp32, TF32 off"}
            log("HF check:", res["hf_check"])
        except Exception as e:  # report, don't lose the run
            res["hf_check"] = {"error": repr(e)}
            log("HF check failed:", repr(e))
        with open(os.path.join(a.out, "results.json"), "w") as f:
            json.dump(res, f, indent=2)
        snapshot(a.out, a.snap_dir, name)
    log("done")


if __name__ == "__main__":
    main()
