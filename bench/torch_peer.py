# The PyTorch peer of bench/webgpu.ts (issue 15), run in the same GPU call by bench/gpu-run.sh --peer: the same
# MambaByte shapes with random weights (d_inner 2d, d_state 16, dt_rank ceil(d/16), d_conv 4, vocab 256), f32 or
# bf16 weights, written with plain torch ops (no mamba_ssm kernels on that machine):
#   decode   one step of every layer and the head, captured as one CUDA graph and replayed (bytes/s = steps/s)
#   prefill  1,024 bytes as 64-byte chunks; the scan of a chunk is parallel in sub-chunks of 16 (a segment sum
#            within each, then a carry across them), the whole chunk forward captured as one CUDA graph
# One JSON line per measurement, like bench/webgpu.ts.
import json, math, sys
import torch
import torch.nn.functional as F

dev = torch.device('cuda')
torch.backends.cuda.matmul.allow_tf32 = False  # f32 means f32, as the webgpu bench computes


def layers_of(d, L, dtype, seed=1):
    g = torch.Generator(device='cpu').manual_seed(seed)
    E, N, R, K = 2 * d, 16, math.ceil(d / 16), 4
    r = lambda *s, scale: (torch.randn(*s, generator=g) * scale).to(dev, dtype)
    out = []
    for _ in range(L):
        dt = torch.exp(torch.rand(E, generator=g) * (math.log(0.1) - math.log(0.001)) + math.log(0.001))
        out.append(dict(
            norm=torch.ones(d, device=dev, dtype=dtype), w_in=r(2 * E, d, scale=d ** -0.5),
            conv_w=r(E, K, scale=0.5), conv_b=r(E, scale=0.1), w_x=r(R + 2 * N, E, scale=E ** -0.5),
            w_dt=r(E, R, scale=R ** -0.5), b_dt=(dt + torch.log(-torch.expm1(-dt))).to(dev, torch.float32),
            A=-torch.arange(1, N + 1, dtype=torch.float32, device=dev).repeat(E, 1), D=torch.ones(E, device=dev),
            w_out=r(d, E, scale=E ** -0.5)))
    head = dict(norm=torch.ones(d, device=dev, dtype=dtype), emb=r(256, d, scale=1.0))
    return out, head, (E, N, R, K)


def rms(x, w, eps=1e-5):
    return (x * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + eps).to(x.dtype)) * w


def step(x, hs, convs, layers, head, dims):
    """x (d) -> logits (256); hs[l] (E, N) f32 and convs[l] (E, K-1) updated in place."""
    E, N, R, K = dims
    for l, p in enumerate(layers):
        xz = p['w_in'] @ rms(x, p['norm'])
        xi, z = xz[:E], xz[E:]
        window = torch.cat([convs[l], xi[:, None].float()], 1)
        convs[l].copy_(window[:, 1:])
        xc = F.silu((window * p['conv_w'].float()).sum(1) + p['conv_b'].float())
        dbc = p['w_x'].float() @ xc
        dt = F.softplus(p['w_dt'].float() @ dbc[:R] + p['b_dt'])
        B, C = dbc[R:R + N], dbc[R + N:]
        hs[l].mul_(torch.exp(dt[:, None] * p['A'])).add_((dt * xc)[:, None] * B[None, :])
        y = (hs[l] @ C + p['D'] * xc) * F.silu(z.float())
        x = x + p['w_out'] @ y.to(x.dtype)
    return head['emb'] @ rms(x, head['norm'])


def chunk(x, hs, convs, layers, head, dims, Q=16):
    """x (T, d) -> logits (T, 256), T a multiple of Q; the states advance by T."""
    E, N, R, K = dims
    T = x.shape[0]
    for l, p in enumerate(layers):
        xz = rms(x, p['norm']) @ p['w_in'].T
        xi, z = xz[:, :E].float(), xz[:, E:].float()
        full = torch.cat([convs[l].T, xi], 0)  # (K-1+T, E)
        convs[l].copy_(full[-(K - 1):].T)
        win = full.unfold(0, K, 1)  # (T, E, K)
        xc = F.silu((win * p['conv_w'].float()).sum(-1) + p['conv_b'].float())
        dbc = xc @ p['w_x'].float().T
        dt = F.softplus(dbc[:, :R] @ p['w_dt'].float().T + p['b_dt'])  # (T, E)
        B, C = dbc[:, R:R + N], dbc[:, R + N:]
        ys = []
        h = hs[l]
        for q in range(0, T, Q):
            a = dt[q:q + Q, :, None] * p['A']  # (Q, E, N)
            cum = a.cumsum(0)
            u = (dt[q:q + Q] * xc[q:q + Q])[:, :, None] * B[q:q + Q, None, :]  # (Q, E, N)
            seg = cum[:, None] - cum[None, :]  # (t, s, E, N)
            mask = torch.ones(Q, Q, device=dev, dtype=torch.bool).tril()[:, :, None, None]
            Lm = torch.where(mask, torch.exp(torch.where(mask, seg, torch.zeros((), device=dev))), torch.zeros((), device=dev))
            H = torch.einsum('tsen,sen->ten', Lm, u) + torch.exp(cum) * h[None]
            h = H[-1]
            ys.append(torch.einsum('ten,tn->te', H, C[q:q + Q]))
        hs[l].copy_(h)
        y = (torch.cat(ys) + p['D'] * xc) * F.silu(z)
        x = x + y.to(x.dtype) @ p['w_out'].T
    return rms(x, head['norm']) @ head['emb'].T


def graphed(fn):
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(2):
            fn()
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        out = fn()
    return g, out


def timed(g, n):
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    g.replay()
    torch.cuda.synchronize()
    a.record()
    for _ in range(n):
        g.replay()
    b.record()
    torch.cuda.synchronize()
    return a.elapsed_time(b) / 1e3 / n


def main():
    print(json.dumps({'peer': 'torch', 'version': torch.__version__, 'device': torch.cuda.get_device_name()}), flush=True)
    for d, L in [(1024, 53), (1792, 48)]:
        for dtype in [torch.float32, torch.bfloat16]:
            layers, head, dims = layers_of(d, L, dtype)
            E, N, R, K = dims
            hs = [torch.zeros(E, N, device=dev) for _ in range(L)]
            convs = [torch.zeros(E, K - 1, device=dev) for _ in range(L)]
            with torch.no_grad():
                x1 = head['emb'][65].clone()
                g, _ = graphed(lambda: step(x1, hs, convs, layers, head, dims))
                t_step = timed(g, 64)
                x64 = head['emb'][torch.arange(64, device=dev) % 256].clone()
                gc, _ = graphed(lambda: chunk(x64, hs, convs, layers, head, dims))
                t_chunk = timed(gc, 16)  # 16 chunks = 1,024 bytes
            print(json.dumps({'peer': 'torch', 'shape': f'{d}x{L}', 'weights': str(dtype).split('.')[-1],
                              'decode_bytes_per_second': 1 / t_step, 'decode_step_ms': t_step * 1e3,
                              'prefill_bytes_per_second': 64 / t_chunk, 'prefill_chunk_ms': t_chunk * 1e3}), flush=True)
            del layers, head, hs, convs, g, gc
            torch.cuda.empty_cache()


if __name__ == '__main__':
    try:
        main()
    except Exception as e:  # one clear line, not a stack trace
        print(json.dumps({'peer': 'torch', 'error': f'{type(e).__name__}: {e}'[:2000]}), flush=True)
        sys.exit(1)
