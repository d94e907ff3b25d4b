"""Sequence-level distillation data for the drafter: the byte model's own continuations of book prompts.

    python3 train/distill.py --state /tmp/byte-state.pt --corpus /tmp/corpus --out /tmp/corpus/distill \
        --streams 4096 --prompt 64 --new 4096 --temps 1.0,0.7

A batch of `streams` prompts (random `prompt`-byte windows of the TRAIN books), each continued by `new` sampled
bytes with MambaLM.step (batched recurrence, fp32). Temperatures are assigned to streams round-robin. Bytes that
do not decode as UTF-8 are dropped (the drafter's tokenizer reads text). One file per temperature per round.
"""
import argparse, glob, json, os, sys, time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import MambaCfg, MambaLM  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--state", required=True, help="train.py --save-state file (its EMA weights are used when present)")
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--splits", default="train,train-extra")
    ap.add_argument("--out", required=True)
    ap.add_argument("--streams", type=int, default=4096)
    ap.add_argument("--prompt", type=int, default=64)
    ap.add_argument("--new", type=int, default=4096)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--temps", default="1.0,0.7")
    ap.add_argument("--d-model", type=int, required=True)
    ap.add_argument("--n-layer", type=int, required=True)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--device", default="cuda")
    a = ap.parse_args()
    t0 = time.time()
    dev = a.device
    torch.backends.cuda.matmul.allow_tf32 = True
    cfg = MambaCfg(vocab_size=256, d_model=a.d_model, n_layer=a.n_layer)
    m = MambaLM(cfg).to(dev)
    if a.state.endswith(".gguf"):
        import gguf as gg
        gsd, _ = gg.hf_state_from_gguf(a.state)
        m.load_state_dict({k: torch.from_numpy(np.array(v)).to(dev) for k, v in gsd.items()})
        st = {"step": "from " + os.path.basename(a.state)}
    else:
        st = torch.load(a.state, map_location=dev, weights_only=False)
        m.load_state_dict(st["model"])
    if st.get("ema") is not None:
        with torch.no_grad():
            for p, e in zip(m.parameters(), st["ema"]):
                p.copy_(e)
    m.eval()
    books = [np.frombuffer(open(f, "rb").read(), np.uint8) for sp in a.splits.split(",")
             for f in sorted(glob.glob(os.path.join(a.corpus, sp, "*.txt")))]
    lens = np.array([len(b) for b in books], np.float64)
    rng = np.random.default_rng(a.seed)
    gen = torch.Generator(device=dev).manual_seed(a.seed)
    temps = [float(t) for t in a.temps.split(",")]
    os.makedirs(a.out, exist_ok=True)
    B, di, N, k, L = a.streams, cfg.d_inner, cfg.d_state, cfg.d_conv, cfg.n_layer
    tstream = torch.tensor([temps[i % len(temps)] for i in range(B)], device=dev)[:, None]
    total = 0
    for r in range(a.rounds):
        bi = rng.choice(len(books), size=B, p=lens / lens.sum())
        prompts = np.stack([books[i][o:o + a.prompt] for i, o in
                            zip(bi, (rng.random(B) * (lens[bi] - a.prompt - 1)).astype(np.int64))])
        conv = torch.zeros(L, B, di, k, device=dev)
        ssm = torch.zeros(L, B, di, N, device=dev)
        p = torch.from_numpy(prompts.astype(np.int64)).to(dev)
        for t in range(a.prompt):
            logits = m.step(p[:, t], conv, ssm)
        out = torch.empty(B, a.new, dtype=torch.uint8, device=dev)
        for t in range(a.new):
            probs = torch.softmax(logits / tstream, -1)
            nxt = torch.multinomial(probs, 1, generator=gen)[:, 0]
            out[:, t] = nxt.to(torch.uint8)
            logits = m.step(nxt, conv, ssm)
        out = out.cpu().numpy()
        for ti, temp in enumerate(temps):
            texts = [bytes(prompts[i]) + bytes(out[i]) for i in range(ti, B, len(temps))]
            body = "\n\n".join(t.decode("utf-8", "ignore") for t in texts).encode("utf-8")
            with open(os.path.join(a.out, f"distill-r{r}-t{temp}.txt"), "wb") as f:
                f.write(body)
            total += len(body)
        print(f"[{time.time() - t0:6.1f}s] round {r}: {B} streams x {a.new} bytes, {total:,} bytes written", flush=True)
    with open(os.path.join(a.out, "..", "distill-info.json"), "w") as f:
        json.dump({"streams": B, "prompt": a.prompt, "new": a.new, "rounds": a.rounds, "temps": temps,
                   "bytes": total, "seconds": time.time() - t0, "teacher_step": st["step"]}, f)


if __name__ == "__main__":
    main()
