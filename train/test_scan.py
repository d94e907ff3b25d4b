"""Correctness of the Triton selective scan and causal conv against the slow PyTorch references.

    python3 train/test_scan.py            # on a GPU
    TRITON_INTERPRET=1 python3 train/test_scan.py --cpu   # anywhere, with Triton's interpreter (slow)

Float32, small shapes, several segment lengths (so the cross-segment carry is exercised) and
channel counts that are not a multiple of the block. Compares the output and the gradients of
every input. Exits non-zero on a mismatch.
"""
import argparse, os, sys
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mamba_ops as ops  # noqa: E402


def make_inputs(Bsz, L, Dn, N, dev, seed=0, strided=True):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s, sc=1.0: (torch.randn(*s, generator=g) * sc)
    xz = r(Bsz, L, 2 * Dn)                     # x and z as views of one tensor, like in_proj's output
    x = r(Bsz, L, Dn)
    z = xz[..., Dn:] if strided else xz[..., Dn:].contiguous()
    dt = r(Bsz, L, Dn, sc=0.5) - 1.0
    dt_bias = r(Dn, sc=0.5)
    A_log = torch.log(torch.arange(1, N + 1, dtype=torch.float32)).repeat(Dn, 1) + r(Dn, N, sc=0.3)
    A = -torch.exp(A_log)
    xdbl = r(Bsz, L, 4 + 2 * N)
    Bm = xdbl[..., 4:4 + N] if strided else xdbl[..., 4:4 + N].contiguous()
    Cm = xdbl[..., 4 + N:] if strided else xdbl[..., 4 + N:].contiguous()
    D = r(Dn)
    ts = [x, dt, dt_bias, A, Bm, Cm, D, z]
    ts = [t.to(dev) for t in ts]
    # leaves (views keep their strides)
    out = []
    for t in ts:
        t = t.detach()
        t.requires_grad_(True)
        out.append(t)
    return out


def check_scan(Bsz, L, Dn, N, seg, BD, dev, tol=2e-4):
    ops.SCAN_CFG.update(seg=seg, BD=BD)
    ins = make_inputs(Bsz, L, Dn, N, dev, seed=L * 7 + Dn)
    names = ["x", "dt", "dt_bias", "A", "B", "C", "D", "z"]
    y = ops.selective_scan(*ins)
    g = torch.randn(y.shape, generator=torch.Generator().manual_seed(1)).to(dev)
    grads = torch.autograd.grad((y * g).sum(), ins)
    ref_ins = [t.detach().clone().requires_grad_(True) for t in ins]
    yr = ops.selective_scan_ref(*ref_ins)
    rgrads = torch.autograd.grad((yr * g).sum(), ref_ins)
    worst = 0.0
    errs = {"y": ((y - yr).abs().max() / (yr.abs().max() + 1e-6)).item()}
    for n, a, b in zip(names, grads, rgrads):
        errs["d" + n] = ((a - b).abs().max() / (b.abs().max() + 1e-6)).item()
    worst = max(errs.values())
    ok = worst < tol
    print(f"scan B={Bsz} L={L} D={Dn} N={N} seg={seg} BD={BD}: max rel err {worst:.2e} "
          f"{'OK' if ok else 'FAIL'}  " + " ".join(f"{k}={v:.1e}" for k, v in errs.items()))
    return ok


def check_nograd(Bsz, L, Dn, N, seg, dev, tol=2e-4):
    ops.SCAN_CFG.update(seg=seg)
    ins = [t.detach() for t in make_inputs(Bsz, L, Dn, N, dev, seed=3)]
    with torch.no_grad():
        y = ops.selective_scan(*ins)
        yr = ops.selective_scan_ref(*ins)
    e = ((y - yr).abs().max() / yr.abs().max()).item()
    print(f"scan no-grad L={L} seg={seg}: rel err {e:.2e} {'OK' if e < tol else 'FAIL'}")
    return e < tol


def check_conv(Bsz, L, Dn, dev, tol=1e-4):
    g = torch.Generator().manual_seed(5)
    xz = torch.randn(Bsz, L, 2 * Dn, generator=g).to(dev)
    x = xz[..., :Dn].detach().requires_grad_(True)
    w = (torch.randn(Dn, 4, generator=g) * 0.5).to(dev).requires_grad_(True)
    b = torch.randn(Dn, generator=g).to(dev).requires_grad_(True)
    y = ops.causal_conv(x, w, b)
    gy = torch.randn(y.shape, generator=g).to(dev)
    gr = torch.autograd.grad((y * gy).sum(), [x, w, b])
    x2, w2, b2 = [t.detach().clone().requires_grad_(True) for t in (x, w, b)]
    yr = ops.causal_conv_ref(x2, w2, b2)
    rr = torch.autograd.grad((yr * gy).sum(), [x2, w2, b2])
    errs = [((y - yr).abs().max() / yr.abs().max()).item()] + \
           [((a - c).abs().max() / c.abs().max()).item() for a, c in zip(gr, rr)]
    ok = max(errs) < tol
    print(f"conv B={Bsz} L={L} D={Dn}: rel errs y,dx,dw,db = {', '.join(f'{e:.1e}' for e in errs)} {'OK' if ok else 'FAIL'}")
    return ok


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--cpu", action="store_true")
    a = ap.parse_args()
    dev = "cpu" if a.cpu else "cuda"
    if dev == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    torch.set_default_dtype(torch.float32)
    ok = True
    ok &= check_conv(2, 37, 40, dev)
    ok &= check_scan(2, 37, 40, 16, seg=1000, BD=32, dev=dev)     # one segment
    ok &= check_scan(2, 37, 40, 16, seg=8, BD=32, dev=dev)        # 5 segments, last one short
    ok &= check_scan(1, 50, 24, 8, seg=7, BD=16, dev=dev)
    ok &= check_nograd(1, 64, 40, 16, seg=16, dev=dev)
    if dev == "cuda":
        ok &= check_scan(2, 300, 96, 16, seg=64, BD=32, dev=dev)
        ok &= check_conv(3, 300, 200, dev)
    print("ALL OK" if ok else "SOME FAILED")
    sys.exit(0 if ok else 1)
