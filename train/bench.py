"""GPU timings for planning a training run (run on the GPU machine).

    python3 train/bench.py [--quick]

1. selective scan fwd+bwd at the byte model's shape (B=32, L=2048, d_inner=768, N=16, bf16 inputs) for a few
   block/warp/segment/pipelining configs; every config's outputs and gradients are compared with the first one;
2. full training steps (AdamW, bf16 autocast) of the byte model and the subword drafter;
3. one fp32 no-grad pass over a 1.2 MB sequence (the long-pass evaluation path).
Prints one JSON line per measurement.
"""
import argparse, json, math, os, sys, time
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mamba_ops as ops  # noqa: E402
from model import MambaCfg, MambaLM  # noqa: E402


def cuda_time(fn, iters=5, warm=2):
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    t = time.time()
    for _ in range(iters):
        fn()
    torch.cuda.synchronize()
    return (time.time() - t) / iters


def scan_inputs(Bsz=32, L=2048, Dn=768, N=16, R=24, dtype=torch.bfloat16):
    dev = "cuda"
    g = torch.Generator(device=dev).manual_seed(0)
    xz = torch.randn(Bsz, L, 2 * Dn, device=dev, generator=g).to(dtype)
    x = torch.randn(Bsz, L, Dn, device=dev, generator=g).to(dtype)
    dt = (torch.randn(Bsz, L, Dn, device=dev, generator=g) * 0.5 - 2).to(dtype)
    xdbl = torch.randn(Bsz, L, R + 2 * N, device=dev, generator=g).to(dtype)
    ins = [x, dt, torch.randn(Dn, device=dev, generator=g) * 0.3,
           -torch.exp(torch.log(torch.arange(1, N + 1, device=dev, dtype=torch.float32)).repeat(Dn, 1)),
           xdbl[..., R:R + N], xdbl[..., R + N:], torch.ones(Dn, device=dev), xz[..., Dn:]]
    return [t.detach().requires_grad_(True) for t in ins]


def bench_scan(configs):
    ins = scan_inputs()
    gout = torch.randn(ins[0].shape, device="cuda").to(torch.bfloat16)
    base = None
    best = None
    for c in configs:
        ops.SCAN_CFG.clear(); ops.SCAN_CFG.update(c)
        try:
            def fwd():
                with torch.no_grad():
                    return ops.scan_forward(*[t.detach() for t in ins], store_h=True)

            def fb():
                y = ops.selective_scan(*ins)
                return torch.autograd.grad(y, ins, gout)
            t_f = cuda_time(fwd)
            t_fb = cuda_time(fb)
            y = ops.selective_scan(*ins)
            gr = torch.autograd.grad(y, ins, gout)
            outs = [y.float()] + [g.float() for g in gr]
            if base is None:
                base = outs
                err = 0.0
            else:
                err = max(((a - b).abs().max() / (b.abs().max() + 1e-9)).item() for a, b in zip(outs, base))
            ok = err < 2e-2     # bf16 outputs: compare loosely (different summation order only)
            r = {"bench": "scan", **c, "fwd_ms": t_f * 1e3, "fwd_bwd_ms": t_fb * 1e3, "rel_err_vs_first": err, "ok": ok}
            print(json.dumps(r), flush=True)
            if ok and (best is None or t_fb < best[1]):
                best = (dict(c), t_fb)
        except Exception as e:
            print(json.dumps({"bench": "scan", **c, "error": repr(e)[:400]}), flush=True)
    return best


def bench_train(name, cfg, Bsz, L, steps=6):
    torch.manual_seed(0)
    m = MambaLM(cfg)
    m.init_weights(0)
    m.cuda().train()
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3, fused=True)
    x = torch.randint(0, cfg.vocab_size, (Bsz, L + 1), device="cuda")
    torch.cuda.reset_peak_memory_stats()

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            lg = m(x[:, :-1])
        loss = F.cross_entropy(lg.float().reshape(-1, cfg.vocab_size), x[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        return loss
    t = cuda_time(step, iters=steps, warm=2)
    r = {"bench": "train_step", "model": name, "params": m.num_params(), "batch": Bsz, "ctx": L,
         "step_ms": t * 1e3, "units_per_s": Bsz * L / t, "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30}
    print(json.dumps(r), flush=True)
    # profile a split: forward only
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        tf = cuda_time(lambda: m(x[:, :-1]), iters=3, warm=1)
    print(json.dumps({"bench": "fwd_only_nograd", "model": name, "ms": tf * 1e3}), flush=True)
    del m, opt
    torch.cuda.empty_cache()


def bench_long_eval(cfg, n=1_200_000):
    from model import sum_nll
    torch.backends.cuda.matmul.allow_tf32 = False
    m = MambaLM(cfg)
    m.init_weights(0)
    m.cuda().eval()
    ids = torch.randint(0, 256, (n,), device="cuda")
    torch.cuda.reset_peak_memory_stats()
    t = time.time()
    s, k = sum_nll(m, ids)
    torch.cuda.synchronize()
    dt = time.time() - t
    # consistency: the same sequence cut at 600k and carried? (no state API) -> check vs 2 halves is not equal;
    # instead compare the first 4096 positions' loss with an independent short pass
    s2, k2 = sum_nll(m, ids[:4096])
    print(json.dumps({"bench": "long_eval_fp32", "bytes": n, "seconds": dt, "bpb": s / k / math.log(2),
                      "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30, "short_bpb": s2 / k2 / math.log(2)}), flush=True)
    torch.backends.cuda.matmul.allow_tf32 = True


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    print(json.dumps({"device": torch.cuda.get_device_name(), "torch": torch.__version__}), flush=True)
    configs = [
        {"BD": 32, "num_warps": 2, "seg": 256, "stages": 1},
        {"BD": 16, "num_warps": 1, "seg": 256, "stages": 1},
        {"BD": 32, "num_warps": 1, "seg": 256, "stages": 1},
        {"BD": 64, "num_warps": 2, "seg": 256, "stages": 1},
        {"BD": 32, "num_warps": 2, "seg": 128, "stages": 1},
        {"BD": 32, "num_warps": 2, "seg": 512, "stages": 1},
        {"BD": 32, "num_warps": 2, "seg": 256, "stages": 3},
        {"BD": 16, "num_warps": 1, "seg": 128, "stages": 1},
    ]
    if a.quick:
        configs = configs[:2]
    best = bench_scan(configs)
    print(json.dumps({"best_scan": best}), flush=True)
    if best:
        ops.SCAN_CFG.clear(); ops.SCAN_CFG.update(best[0])
    bench_train("byte", MambaCfg(vocab_size=256, d_model=384, n_layer=9), 32, 2048)
    bench_train("drafter", MambaCfg(vocab_size=4096, d_model=256, n_layer=4), 32, 1024)
    bench_long_eval(MambaCfg(vocab_size=256, d_model=384, n_layer=9))
