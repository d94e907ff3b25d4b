"""Model-level checks: Triton path == reference path, and the HF export loads in transformers'
MambaForCausalLM with the same logits (fp32, no TF32).

    python3 train/test_model.py                               # GPU
    TRITON_INTERPRET=1 python3 train/test_model.py --cpu      # CPU, Triton interpreter
"""
import argparse, os, sys, tempfile
import torch
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import MambaCfg, MambaLM, export_hf, load_hf, sum_nll  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--cpu", action="store_true")
a = ap.parse_args()
dev = "cpu" if a.cpu else "cuda"
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
ok = True
cfg = MambaCfg(vocab_size=256, d_model=48, n_layer=2, dt_rank=5)
m = MambaLM(cfg)
m.init_weights(seed=1)
with torch.no_grad():   # perturb so nothing sits at its init value
    for n, p in m.named_parameters():
        p.add_(torch.randn_like(p) * 0.05)
m = m.to(dev).eval()
ids = torch.randint(0, 256, (1, 80), generator=torch.Generator().manual_seed(0)).to(dev)
with torch.no_grad():
    lt = m(ids, impl="triton")
    lr = m(ids, impl="ref")
e = (lt - lr).abs().max().item()
print(f"triton vs ref logits max abs diff {e:.2e}", "OK" if e < 1e-4 else "FAIL"); ok &= e < 1e-4
with tempfile.TemporaryDirectory() as d:
    info = export_hf(m, d, 2048, dtype=torch.float32)
    m2, _ = load_hf(d, dev)
    from transformers import MambaForCausalLM
    hf = MambaForCausalLM.from_pretrained(d, dtype=torch.float32).to(dev).eval()
    with torch.no_grad():
        lh = hf(ids).logits
        l2 = m2(ids, impl="triton")
    e = (lh - l2).abs().max().item()
    print(f"HF transformers vs ours logits max abs diff {e:.2e}", "OK" if e < 1e-4 else "FAIL"); ok &= e < 1e-4
    s, n = sum_nll(m2, ids[0], chunk=17)
    ref = torch.nn.functional.cross_entropy(lh[0, :-1], ids[0, 1:], reduction="sum").item()
    print(f"sum_nll {s:.6f} vs HF {ref:.6f}", "OK" if abs(s - ref) < 1e-3 else "FAIL"); ok &= abs(s - ref) < 1e-3
# training-mode gradient through the whole model (triton vs ref)
m.train()
g1 = torch.autograd.grad(m(ids, impl="triton").logsumexp(-1).sum(), list(m.parameters()))
g2 = torch.autograd.grad(m(ids, impl="ref").logsumexp(-1).sum(), list(m.parameters()))
e = max(((x - y).abs().max() / (y.abs().max() + 1e-9)).item() for x, y in zip(g1, g2))
print(f"model grads triton vs ref max rel diff {e:.2e}", "OK" if e < 1e-3 else "FAIL"); ok &= e < 1e-3
print("MODEL OK" if ok else "MODEL FAILED")
sys.exit(0 if ok else 1)
