"""Fused Triton kernels for Mamba-1 training: the selective scan and the causal depthwise conv.

Selective scan (docs/model.md), per batch b, channel c, state n, time t:
    delta = softplus(dt[t,c] + dt_bias[c])
    h[c,n] = exp(delta*A[c,n]) * h[c,n] + delta * B[t,n] * x[t,c]          (h starts at 0)
    y[t,c] = (sum_n h[c,n] * C[t,n] + D[c] * x[t,c]) * silu(z[t,c])
Tensors are (batch, time, channel) with unit stride on the last axis (views of the projections'
outputs are fine). The scan math runs in fp32 whatever the input dtype.

Design: one Triton program owns (batch b, a block of BD channels, one time segment); the state
h (BD x N) lives in registers and the program walks its segment step by step. Long sequences are
cut into K segments that run in parallel: pass 1 computes each segment's end state from a zero
start plus its decay sum (sum of delta), a tiny carry kernel chains the segments
(h_in[s+1] = exp(A * dsum[s]) * h_in[s] + h_loc[s]), and pass 2 re-walks each segment from its
true start state writing y (and, when training, every h_t as fp32 for the backward pass).
The backward pass walks time in reverse: dh_t = dy_t C_t + exp(delta_{t+1} A) dh_{t+1}, with the
same segment/carry trick (a local reverse walk from a zero carry, a reverse carry kernel, then the
full reverse walk that emits dx, ddt, dz, dB, dC and the per-channel dA, dD, d(dt_bias)).
"""
import math
import torch
import torch.nn.functional as F

try:
    import triton
    import triton.language as tl
    HAVE_TRITON = True
except Exception:  # pragma: no cover
    HAVE_TRITON = False


# ----------------------------------------------------------------------------------------------
# Slow references (PyTorch, sequential in time) — the ground truth for tests.
# ----------------------------------------------------------------------------------------------

def selective_scan_ref(x, dt, dt_bias, A, Bm, Cm, D, z):
    """x, dt, z: (B, L, Dn); Bm, Cm: (B, L, N); A: (Dn, N); dt_bias, D: (Dn,). Returns fp32 (B, L, Dn)."""
    x, dt, z, Bm, Cm = x.float(), dt.float(), z.float(), Bm.float(), Cm.float()
    delta = F.softplus(dt + dt_bias.float())
    Bsz, L, Dn = x.shape
    h = x.new_zeros(Bsz, Dn, A.shape[1])
    ys = []
    for t in range(L):
        a = torch.exp(delta[:, t, :, None] * A[None])
        h = a * h + (delta[:, t] * x[:, t])[:, :, None] * Bm[:, t, None, :]
        ys.append((h * Cm[:, t, None, :]).sum(-1))
    y = torch.stack(ys, 1) + D.float() * x
    return y * F.silu(z)


def causal_conv_ref(x, w, b):
    """x: (B, L, Dn); w: (Dn, K); b: (Dn,). Returns silu(conv(x)) in fp32, (B, L, Dn)."""
    K = w.shape[1]
    xp = F.pad(x.float(), (0, 0, K - 1, 0))
    L = x.shape[1]
    acc = b.float().expand_as(x).clone() if b is not None else torch.zeros_like(x, dtype=torch.float32)
    for j in range(K):
        acc = acc + w[:, j].float() * xp[:, j:j + L]
    return F.silu(acc)


# ----------------------------------------------------------------------------------------------
# Triton kernels
# ----------------------------------------------------------------------------------------------

if HAVE_TRITON:

    @triton.jit
    def _softplus(v):
        return tl.where(v > 20.0, v, tl.log(1.0 + tl.exp(tl.minimum(v, 20.0))))

    @triton.jit
    def _sigmoid(v):
        return 1.0 / (1.0 + tl.exp(-v))

    @triton.jit
    def _scan_fwd_local(x_ptr, dt_ptr, bias_ptr, A_ptr, B_ptr,
                        hloc_ptr, dsum_ptr,
                        L, Dn, SEG, K,
                        sxb, sxl, stb, stl, sBb, sBl,
                        N: tl.constexpr, BD: tl.constexpr, NS: tl.constexpr):
        """Pass 1: end state of each segment from a zero start, and the segment's sum of delta."""
        pid_b = tl.program_id(0)
        pid_d = tl.program_id(1)
        pid_s = tl.program_id(2)
        offs_d = pid_d * BD + tl.arange(0, BD)
        offs_n = tl.arange(0, N)
        dmask = offs_d < Dn
        A = tl.load(A_ptr + offs_d[:, None] * N + offs_n[None, :], mask=dmask[:, None], other=0.0)
        bias = tl.load(bias_ptr + offs_d, mask=dmask, other=0.0).to(tl.float32)
        b64 = pid_b.to(tl.int64)
        t0 = pid_s * SEG
        t1 = tl.minimum(t0 + SEG, L)
        t0_64 = t0.to(tl.int64)
        h = tl.zeros((BD, N), dtype=tl.float32)
        dsum = tl.zeros((BD,), dtype=tl.float32)
        for i in tl.range(0, t1 - t0, num_stages=NS):
            t = t0_64 + i
            xv = tl.load(x_ptr + b64 * sxb + t * sxl + offs_d, mask=dmask, other=0.0).to(tl.float32)
            dtv = tl.load(dt_ptr + b64 * stb + t * stl + offs_d, mask=dmask, other=0.0).to(tl.float32)
            Bv = tl.load(B_ptr + b64 * sBb + t * sBl + offs_n).to(tl.float32)
            delta = _softplus(dtv + bias)
            dsum += delta
            a = tl.exp(delta[:, None] * A)
            h = a * h + (delta * xv)[:, None] * Bv[None, :]
        base = (b64 * K + pid_s) * Dn
        tl.store(hloc_ptr + (base + offs_d[:, None]) * N + offs_n[None, :], h, mask=dmask[:, None])
        tl.store(dsum_ptr + base + offs_d, dsum, mask=dmask)

    @triton.jit
    def _scan_carry(v_ptr, dsum_ptr, A_ptr, out_ptr, Dn, K,
                    N: tl.constexpr, BD: tl.constexpr, REVERSE: tl.constexpr):
        """Chain segments. Forward: out[0]=0, out[s+1] = exp(A*dsum[s])*out[s] + v[s].
        Reverse: out[K-1]=0, out[s-1] = exp(A*dsum[s])*out[s] + v[s]."""
        pid_b = tl.program_id(0)
        pid_d = tl.program_id(1)
        offs_d = pid_d * BD + tl.arange(0, BD)
        offs_n = tl.arange(0, N)
        dmask = offs_d < Dn
        A = tl.load(A_ptr + offs_d[:, None] * N + offs_n[None, :], mask=dmask[:, None], other=0.0)
        b64 = pid_b.to(tl.int64)
        h = tl.zeros((BD, N), dtype=tl.float32)
        for i in range(0, K):
            if REVERSE:
                s = K - 1 - i
            else:
                s = i
            base = (b64 * K + s) * Dn
            ptrs = (base + offs_d[:, None]) * N + offs_n[None, :]
            tl.store(out_ptr + ptrs, h, mask=dmask[:, None])
            v = tl.load(v_ptr + ptrs, mask=dmask[:, None], other=0.0)
            ds = tl.load(dsum_ptr + base + offs_d, mask=dmask, other=0.0)
            h = tl.exp(ds[:, None] * A) * h + v

    @triton.jit
    def _scan_fwd_out(x_ptr, dt_ptr, bias_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr,
                      hin_ptr, out_ptr, H_ptr, hlast_ptr,
                      L, Dn, SEG, K,
                      sxb, sxl, stb, stl, sBb, sBl, sCb, sCl, szb, szl, sob, sol,
                      N: tl.constexpr, BD: tl.constexpr,
                      HAS_HIN: tl.constexpr, STORE_H: tl.constexpr, STORE_LAST: tl.constexpr, NS: tl.constexpr):
        """Pass 2: walk the segment from its true start state, write gated y (and h_t if STORE_H)."""
        pid_b = tl.program_id(0)
        pid_d = tl.program_id(1)
        pid_s = tl.program_id(2)
        offs_d = pid_d * BD + tl.arange(0, BD)
        offs_n = tl.arange(0, N)
        dmask = offs_d < Dn
        A = tl.load(A_ptr + offs_d[:, None] * N + offs_n[None, :], mask=dmask[:, None], other=0.0)
        bias = tl.load(bias_ptr + offs_d, mask=dmask, other=0.0).to(tl.float32)
        Dv = tl.load(D_ptr + offs_d, mask=dmask, other=0.0).to(tl.float32)
        b64 = pid_b.to(tl.int64)
        t0 = pid_s * SEG
        t1 = tl.minimum(t0 + SEG, L)
        if HAS_HIN:
            h = tl.load(hin_ptr + ((b64 * K + pid_s) * Dn + offs_d[:, None]) * N + offs_n[None, :],
                        mask=dmask[:, None], other=0.0)
        else:
            h = tl.zeros((BD, N), dtype=tl.float32)
        t0_64 = t0.to(tl.int64)
        for i in tl.range(0, t1 - t0, num_stages=NS):
            t = t0_64 + i
            xv = tl.load(x_ptr + b64 * sxb + t * sxl + offs_d, mask=dmask, other=0.0).to(tl.float32)
            dtv = tl.load(dt_ptr + b64 * stb + t * stl + offs_d, mask=dmask, other=0.0).to(tl.float32)
            zv = tl.load(z_ptr + b64 * szb + t * szl + offs_d, mask=dmask, other=0.0).to(tl.float32)
            Bv = tl.load(B_ptr + b64 * sBb + t * sBl + offs_n).to(tl.float32)
            Cv = tl.load(C_ptr + b64 * sCb + t * sCl + offs_n).to(tl.float32)
            delta = _softplus(dtv + bias)
            a = tl.exp(delta[:, None] * A)
            h = a * h + (delta * xv)[:, None] * Bv[None, :]
            y = tl.sum(h * Cv[None, :], axis=1) + Dv * xv
            y = y * zv * _sigmoid(zv)
            tl.store(out_ptr + b64 * sob + t * sol + offs_d, y.to(out_ptr.dtype.element_ty), mask=dmask)
            if STORE_H:
                tl.store(H_ptr + ((b64 * L + t) * Dn + offs_d[:, None]) * N + offs_n[None, :], h,
                         mask=dmask[:, None])
        if STORE_LAST:
            tl.store(hlast_ptr + ((b64 * K + pid_s) * Dn + offs_d[:, None]) * N + offs_n[None, :], h,
                     mask=dmask[:, None])

    @triton.jit
    def _scan_bwd_local(dt_ptr, bias_ptr, A_ptr, C_ptr, z_ptr, dout_ptr, u_ptr,
                        L, Dn, SEG, K,
                        stb, stl, sCb, sCl, szb, szl, sgb, sgl,
                        N: tl.constexpr, BD: tl.constexpr, NS: tl.constexpr):
        """Backward pass A: reverse walk of dh with a zero carry; stores u = exp(delta_t0*A) * dh_t0."""
        pid_b = tl.program_id(0)
        pid_d = tl.program_id(1)
        pid_s = tl.program_id(2)
        offs_d = pid_d * BD + tl.arange(0, BD)
        offs_n = tl.arange(0, N)
        dmask = offs_d < Dn
        A = tl.load(A_ptr + offs_d[:, None] * N + offs_n[None, :], mask=dmask[:, None], other=0.0)
        bias = tl.load(bias_ptr + offs_d, mask=dmask, other=0.0).to(tl.float32)
        b64 = pid_b.to(tl.int64)
        t0 = pid_s * SEG
        t1 = tl.minimum(t0 + SEG, L)
        carry = tl.zeros((BD, N), dtype=tl.float32)
        t0_64 = t0.to(tl.int64)
        for i in tl.range(0, t1 - t0, num_stages=NS):
            t = t0_64 + (t1 - t0 - 1 - i)
            dtv = tl.load(dt_ptr + b64 * stb + t * stl + offs_d, mask=dmask, other=0.0).to(tl.float32)
            zv = tl.load(z_ptr + b64 * szb + t * szl + offs_d, mask=dmask, other=0.0).to(tl.float32)
            gv = tl.load(dout_ptr + b64 * sgb + t * sgl + offs_d, mask=dmask, other=0.0).to(tl.float32)
            Cv = tl.load(C_ptr + b64 * sCb + t * sCl + offs_n).to(tl.float32)
            delta = _softplus(dtv + bias)
            a = tl.exp(delta[:, None] * A)
            dy = gv * zv * _sigmoid(zv)
            dh = dy[:, None] * Cv[None, :] + carry
            carry = a * dh
        tl.store(u_ptr + ((b64 * K + pid_s) * Dn + offs_d[:, None]) * N + offs_n[None, :], carry,
                 mask=dmask[:, None])

    @triton.jit
    def _scan_bwd(x_ptr, dt_ptr, bias_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, dout_ptr,
                  H_ptr, dhin_ptr,
                  dx_ptr, ddt_ptr, dz_ptr, dBp_ptr, dCp_ptr, dAp_ptr, dDp_ptr, dbp_ptr,
                  L, Dn, SEG, K, NBLK,
                  sxb, sxl, stb, stl, sBb, sBl, sCb, sCl, szb, szl, sgb, sgl,
                  N: tl.constexpr, BD: tl.constexpr, HAS_DHIN: tl.constexpr, NS: tl.constexpr):
        """Backward pass B: full reverse walk with the true carry; h_t read from H (fp32)."""
        pid_b = tl.program_id(0)
        pid_d = tl.program_id(1)
        pid_s = tl.program_id(2)
        offs_d = pid_d * BD + tl.arange(0, BD)
        offs_n = tl.arange(0, N)
        dmask = offs_d < Dn
        A = tl.load(A_ptr + offs_d[:, None] * N + offs_n[None, :], mask=dmask[:, None], other=0.0)
        bias = tl.load(bias_ptr + offs_d, mask=dmask, other=0.0).to(tl.float32)
        Dv = tl.load(D_ptr + offs_d, mask=dmask, other=0.0).to(tl.float32)
        b64 = pid_b.to(tl.int64)
        t0 = pid_s * SEG
        t1 = tl.minimum(t0 + SEG, L)
        if HAS_DHIN:
            carry = tl.load(dhin_ptr + ((b64 * K + pid_s) * Dn + offs_d[:, None]) * N + offs_n[None, :],
                            mask=dmask[:, None], other=0.0)
        else:
            carry = tl.zeros((BD, N), dtype=tl.float32)
        t0_64 = t0.to(tl.int64)
        dA_acc = tl.zeros((BD, N), dtype=tl.float32)
        dD_acc = tl.zeros((BD,), dtype=tl.float32)
        db_acc = tl.zeros((BD,), dtype=tl.float32)
        for i in tl.range(0, t1 - t0, num_stages=NS):
            t = t0_64 + (t1 - t0 - 1 - i)
            xv = tl.load(x_ptr + b64 * sxb + t * sxl + offs_d, mask=dmask, other=0.0).to(tl.float32)
            dtv = tl.load(dt_ptr + b64 * stb + t * stl + offs_d, mask=dmask, other=0.0).to(tl.float32)
            zv = tl.load(z_ptr + b64 * szb + t * szl + offs_d, mask=dmask, other=0.0).to(tl.float32)
            gv = tl.load(dout_ptr + b64 * sgb + t * sgl + offs_d, mask=dmask, other=0.0).to(tl.float32)
            Bv = tl.load(B_ptr + b64 * sBb + t * sBl + offs_n).to(tl.float32)
            Cv = tl.load(C_ptr + b64 * sCb + t * sCl + offs_n).to(tl.float32)
            h = tl.load(H_ptr + ((b64 * L + t) * Dn + offs_d[:, None]) * N + offs_n[None, :],
                        mask=dmask[:, None], other=0.0)
            hp = tl.load(H_ptr + ((b64 * L + t - 1) * Dn + offs_d[:, None]) * N + offs_n[None, :],
                         mask=dmask[:, None] & (t > 0), other=0.0)
            v = dtv + bias
            delta = _softplus(v)
            a = tl.exp(delta[:, None] * A)
            sz = _sigmoid(zv)
            y = tl.sum(h * Cv[None, :], axis=1) + Dv * xv
            dz = gv * y * sz * (1.0 + zv * (1.0 - sz))
            dy = gv * zv * sz
            dC = tl.sum(dy[:, None] * h, axis=0)
            dD_acc += dy * xv
            dh = dy[:, None] * Cv[None, :] + carry
            dBx = dh * Bv[None, :]
            dx = dy * Dv + delta * tl.sum(dBx, axis=1)
            dB = tl.sum(dh * (delta * xv)[:, None], axis=0)
            ga = dh * hp * a
            ddelta = tl.sum(ga * A, axis=1) + xv * tl.sum(dBx, axis=1)
            dA_acc += ga * delta[:, None]
            ddt = ddelta * _sigmoid(v)
            ddt = tl.where(v > 20.0, ddelta, ddt)
            db_acc += ddt
            carry = a * dh
            tl.store(dx_ptr + b64 * sxb + t * sxl + offs_d, dx.to(dx_ptr.dtype.element_ty), mask=dmask)
            tl.store(ddt_ptr + b64 * stb + t * stl + offs_d, ddt.to(ddt_ptr.dtype.element_ty), mask=dmask)
            tl.store(dz_ptr + b64 * szb + t * szl + offs_d, dz.to(dz_ptr.dtype.element_ty), mask=dmask)
            prow = ((b64 * L + t) * NBLK + pid_d) * N
            tl.store(dBp_ptr + prow + offs_n, dB)
            tl.store(dCp_ptr + prow + offs_n, dC)
        base = (b64 * K + pid_s) * Dn
        tl.store(dAp_ptr + (base + offs_d[:, None]) * N + offs_n[None, :], dA_acc, mask=dmask[:, None])
        tl.store(dDp_ptr + base + offs_d, dD_acc, mask=dmask)
        tl.store(dbp_ptr + base + offs_d, db_acc, mask=dmask)

    # ---------------- causal depthwise conv (kernel KW, with bias) + silu ----------------

    @triton.jit
    def _conv_fwd(x_ptr, w_ptr, b_ptr, out_ptr, L, Dn, sxb, sxl, sob, sol,
                  KW: tl.constexpr, BT: tl.constexpr, BD: tl.constexpr):
        pid_b = tl.program_id(0)
        pid_t = tl.program_id(1)
        pid_d = tl.program_id(2)
        offs_t = (pid_t * BT + tl.arange(0, BT)).to(tl.int64)
        offs_d = pid_d * BD + tl.arange(0, BD)
        dmask = offs_d < Dn
        b64 = pid_b.to(tl.int64)
        acc = tl.zeros((BT, BD), dtype=tl.float32) + tl.load(b_ptr + offs_d, mask=dmask, other=0.0).to(tl.float32)[None, :]
        for j in tl.static_range(KW):
            ts = offs_t - (KW - 1) + j
            m = (ts >= 0) & (ts < L)
            xv = tl.load(x_ptr + b64 * sxb + ts[:, None] * sxl + offs_d[None, :],
                         mask=m[:, None] & dmask[None, :], other=0.0).to(tl.float32)
            wj = tl.load(w_ptr + offs_d * KW + j, mask=dmask, other=0.0).to(tl.float32)
            acc += xv * wj[None, :]
        out = acc * _sigmoid(acc)
        om = (offs_t < L)[:, None] & dmask[None, :]
        tl.store(out_ptr + b64 * sob + offs_t[:, None] * sol + offs_d[None, :], out.to(out_ptr.dtype.element_ty), mask=om)

    @triton.jit
    def _conv_bwd(x_ptr, w_ptr, b_ptr, g_ptr, dx_ptr, dwp_ptr, dbp_ptr, L, Dn, NT,
                  sxb, sxl, sgb, sgl, sdb, sdl,
                  KW: tl.constexpr, BT: tl.constexpr, BD: tl.constexpr):
        """dpre[s] = g[s]*silu'(pre[s]); dx[t] = sum_j w[j]*dpre[t+KW-1-j]; dw[j] = sum_s dpre[s]*x[s-KW+1+j]."""
        pid_b = tl.program_id(0)
        pid_t = tl.program_id(1)
        pid_d = tl.program_id(2)
        offs_t = (pid_t * BT + tl.arange(0, BT)).to(tl.int64)
        offs_d = pid_d * BD + tl.arange(0, BD)
        dmask = offs_d < Dn
        b64 = pid_b.to(tl.int64)
        bias = tl.load(b_ptr + offs_d, mask=dmask, other=0.0).to(tl.float32)
        dx = tl.zeros((BT, BD), dtype=tl.float32)
        dbias = tl.zeros((BD,), dtype=tl.float32)
        # dx[t] needs dpre at s = t + k, k = 0..KW-1 (weight index j = KW-1-k)
        for k in tl.static_range(KW):
            s = offs_t + k
            sm = s < L
            pre = tl.zeros((BT, BD), dtype=tl.float32) + bias[None, :]
            for j in tl.static_range(KW):
                ts = s - (KW - 1) + j
                m = (ts >= 0) & (ts < L)
                xv = tl.load(x_ptr + b64 * sxb + ts[:, None] * sxl + offs_d[None, :],
                             mask=m[:, None] & dmask[None, :], other=0.0).to(tl.float32)
                wj = tl.load(w_ptr + offs_d * KW + j, mask=dmask, other=0.0).to(tl.float32)
                pre += xv * wj[None, :]
            gv = tl.load(g_ptr + b64 * sgb + s[:, None] * sgl + offs_d[None, :],
                         mask=sm[:, None] & dmask[None, :], other=0.0).to(tl.float32)
            sg = _sigmoid(pre)
            dpre = gv * sg * (1.0 + pre * (1.0 - sg))
            wk = tl.load(w_ptr + offs_d * KW + (KW - 1 - k), mask=dmask, other=0.0).to(tl.float32)
            dx += dpre * wk[None, :]
            if k == 0:
                # dpre at s = t (this block's own rows): dw and dbias
                dbias = tl.sum(dpre, axis=0)
                for j in tl.static_range(KW):
                    ts = offs_t - (KW - 1) + j
                    m = (ts >= 0) & (ts < L)
                    xv = tl.load(x_ptr + b64 * sxb + ts[:, None] * sxl + offs_d[None, :],
                                 mask=m[:, None] & dmask[None, :], other=0.0).to(tl.float32)
                    dwj = tl.sum(dpre * xv, axis=0)
                    tl.store(dwp_ptr + ((b64 * NT + pid_t) * Dn + offs_d) * KW + j, dwj, mask=dmask)
        tl.store(dbp_ptr + (b64 * NT + pid_t) * Dn + offs_d, dbias, mask=dmask)
        om = (offs_t < L)[:, None] & dmask[None, :]
        tl.store(dx_ptr + b64 * sdb + offs_t[:, None] * sdl + offs_d[None, :], dx.to(dx_ptr.dtype.element_ty), mask=om)


# ----------------------------------------------------------------------------------------------
# Python wrappers
# ----------------------------------------------------------------------------------------------

SCAN_CFG = {"BD": 32, "num_warps": 2, "seg": 256, "stages": 1}


def _nseg(L, Bsz, nblk, seg):
    # segments: at least `seg` long, enough programs to fill the GPU
    K = max(1, -(-L // seg))
    return K, -(-L // K)


def _check(t):
    assert t.stride(-1) == 1, "last axis must have unit stride"
    return t


def scan_forward(x, dt, dt_bias, A, Bm, Cm, D, z, store_h=False, out_dtype=None, cfg=None):
    cfg = cfg or SCAN_CFG
    BD, nw, ns = cfg["BD"], cfg["num_warps"], cfg.get("stages", 1)
    Bsz, L, Dn = x.shape
    N = A.shape[1]
    for t in (x, dt, Bm, Cm, z):
        _check(t)
    A = A.float().contiguous()
    nblk = -(-Dn // BD)
    K, SEG = _nseg(L, Bsz, nblk, cfg["seg"])
    dev = x.device
    out = torch.empty(Bsz, L, Dn, device=dev, dtype=out_dtype or x.dtype)
    H = torch.empty(Bsz, L, Dn, N, device=dev, dtype=torch.float32) if store_h else out
    dsum = None
    if K > 1:
        hloc = torch.empty(Bsz, K, Dn, N, device=dev, dtype=torch.float32)
        dsum = torch.empty(Bsz, K, Dn, device=dev, dtype=torch.float32)
        _scan_fwd_local[(Bsz, nblk, K)](x, dt, dt_bias, A, Bm, hloc, dsum, L, Dn, SEG, K,
                                        x.stride(0), x.stride(1), dt.stride(0), dt.stride(1),
                                        Bm.stride(0), Bm.stride(1), N=N, BD=BD, NS=ns, num_warps=nw)
        hin = torch.empty_like(hloc)
        _scan_carry[(Bsz, nblk)](hloc, dsum, A, hin, Dn, K, N=N, BD=BD, REVERSE=False, num_warps=nw)
    else:
        hin = out
    _scan_fwd_out[(Bsz, nblk, K)](x, dt, dt_bias, A, Bm, Cm, D, z, hin, out, H, out,
                                  L, Dn, SEG, K,
                                  x.stride(0), x.stride(1), dt.stride(0), dt.stride(1),
                                  Bm.stride(0), Bm.stride(1), Cm.stride(0), Cm.stride(1),
                                  z.stride(0), z.stride(1), out.stride(0), out.stride(1),
                                  N=N, BD=BD, HAS_HIN=K > 1, STORE_H=store_h, STORE_LAST=False, NS=ns,
                                  num_warps=nw)
    return out, (H if store_h else None), dsum, K, SEG


def scan_backward(dout, x, dt, dt_bias, A, Bm, Cm, D, z, H, dsum, K, SEG, cfg=None):
    cfg = cfg or SCAN_CFG
    BD, nw, ns = cfg["BD"], cfg["num_warps"], cfg.get("stages", 1)
    Bsz, L, Dn = x.shape
    N = A.shape[1]
    A = A.float().contiguous()
    dout = dout.contiguous()
    nblk = -(-Dn // BD)
    dev = x.device
    if K > 1:
        u = torch.empty(Bsz, K, Dn, N, device=dev, dtype=torch.float32)
        _scan_bwd_local[(Bsz, nblk, K)](dt, dt_bias, A, Cm, z, dout, u, L, Dn, SEG, K,
                                        dt.stride(0), dt.stride(1), Cm.stride(0), Cm.stride(1),
                                        z.stride(0), z.stride(1), dout.stride(0), dout.stride(1),
                                        N=N, BD=BD, NS=ns, num_warps=nw)
        dhin = torch.empty_like(u)
        _scan_carry[(Bsz, nblk)](u, dsum, A, dhin, Dn, K, N=N, BD=BD, REVERSE=True, num_warps=nw)
    else:
        dhin = dout
    # gradients in the inputs' layout (contiguous, same dtype)
    dx = torch.empty(Bsz, L, Dn, device=dev, dtype=x.dtype)
    ddt = torch.empty(Bsz, L, Dn, device=dev, dtype=dt.dtype)
    dz = torch.empty(Bsz, L, Dn, device=dev, dtype=z.dtype)
    dBp = torch.empty(Bsz, L, nblk, N, device=dev, dtype=torch.float32)
    dCp = torch.empty(Bsz, L, nblk, N, device=dev, dtype=torch.float32)
    dAp = torch.empty(Bsz, K, Dn, N, device=dev, dtype=torch.float32)
    dDp = torch.empty(Bsz, K, Dn, device=dev, dtype=torch.float32)
    dbp = torch.empty(Bsz, K, Dn, device=dev, dtype=torch.float32)
    # dx/ddt/dz share strides with x/dt/z's *contiguous* copies: pass strides of the new buffers
    assert dx.stride() == ddt.stride() == dz.stride()
    _scan_bwd[(Bsz, nblk, K)](x, dt, dt_bias, A, Bm, Cm, D, z, dout, H, dhin,
                              dx, ddt, dz, dBp, dCp, dAp, dDp, dbp,
                              L, Dn, SEG, K, nblk,
                              x.stride(0), x.stride(1), dt.stride(0), dt.stride(1),
                              Bm.stride(0), Bm.stride(1), Cm.stride(0), Cm.stride(1),
                              z.stride(0), z.stride(1), dout.stride(0), dout.stride(1),
                              N=N, BD=BD, HAS_DHIN=K > 1, NS=ns, num_warps=nw)
    return dx, ddt, dz, dBp.sum(2), dCp.sum(2), dAp.sum((0, 1)), dDp.sum((0, 1)), dbp.sum((0, 1))


class SelectiveScanFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, dt, dt_bias, A, Bm, Cm, D, z):
        out, H, dsum, K, SEG = scan_forward(x, dt, dt_bias, A, Bm, Cm, D, z, store_h=True)
        ctx.save_for_backward(x, dt, dt_bias, A, Bm, Cm, D, z, H, dsum if dsum is not None else H)
        ctx.K, ctx.SEG, ctx.has_dsum = K, SEG, dsum is not None
        return out

    @staticmethod
    def backward(ctx, dout):
        x, dt, dt_bias, A, Bm, Cm, D, z, H, dsum = ctx.saved_tensors
        # the backward kernel writes dx/ddt/dz with x/dt/z strides: use the inputs' strides only
        # when they are contiguous; otherwise pass contiguous copies
        xc, dtc, zc = x.contiguous(), dt.contiguous(), z.contiguous()
        dx, ddt, dz, dB, dC, dA, dD, db = scan_backward(dout, xc, dtc, dt_bias, A, Bm, Cm, D, zc, H,
                                                        dsum if ctx.has_dsum else None, ctx.K, ctx.SEG)
        return (dx, ddt, db.to(dt_bias.dtype), dA.to(A.dtype), dB.to(Bm.dtype), dC.to(Cm.dtype),
                dD.to(D.dtype), dz)


def selective_scan(x, dt, dt_bias, A, Bm, Cm, D, z):
    """Training/inference entry point (Triton). A = -exp(A_log) in fp32."""
    if torch.is_grad_enabled() and any(t.requires_grad for t in (x, dt, dt_bias, A, Bm, Cm, D, z)):
        return SelectiveScanFn.apply(x, dt, dt_bias, A, Bm, Cm, D, z)
    return scan_forward(x, dt, dt_bias, A, Bm, Cm, D, z, store_h=False)[0]


CONV_CFG = {"BT": 32, "BD": 64, "num_warps": 4}


def conv_forward(x, w, b, out_dtype=None):
    _check(x)
    Bsz, L, Dn = x.shape
    KW = w.shape[1]
    BT, BD = CONV_CFG["BT"], CONV_CFG["BD"]
    out = torch.empty(Bsz, L, Dn, device=x.device, dtype=out_dtype or x.dtype)
    grid = (Bsz, -(-L // BT), -(-Dn // BD))
    _conv_fwd[grid](x, w.contiguous(), b, out, L, Dn, x.stride(0), x.stride(1), out.stride(0), out.stride(1),
                    KW=KW, BT=BT, BD=BD, num_warps=CONV_CFG["num_warps"])
    return out


class CausalConvFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, b):
        ctx.save_for_backward(x, w, b)
        return conv_forward(x, w, b)

    @staticmethod
    def backward(ctx, g):
        x, w, b = ctx.saved_tensors
        g = g.contiguous()
        Bsz, L, Dn = x.shape
        KW = w.shape[1]
        BT, BD = CONV_CFG["BT"], CONV_CFG["BD"]
        NT = -(-L // BT)
        dx = torch.empty(Bsz, L, Dn, device=x.device, dtype=x.dtype)
        dwp = torch.empty(Bsz, NT, Dn, KW, device=x.device, dtype=torch.float32)
        dbp = torch.empty(Bsz, NT, Dn, device=x.device, dtype=torch.float32)
        _conv_bwd[(Bsz, NT, -(-Dn // BD))](x, w.contiguous(), b, g, dx, dwp, dbp, L, Dn, NT,
                                           x.stride(0), x.stride(1), g.stride(0), g.stride(1),
                                           dx.stride(0), dx.stride(1),
                                           KW=KW, BT=BT, BD=BD, num_warps=CONV_CFG["num_warps"])
        return dx, dwp.sum((0, 1)).to(w.dtype), dbp.sum((0, 1)).to(b.dtype)


def causal_conv(x, w, b):
    """silu(causal depthwise conv(x)) over (B, L, Dn); w: (Dn, KW), b: (Dn,)."""
    if torch.is_grad_enabled() and any(t.requires_grad for t in (x, w, b)):
        return CausalConvFn.apply(x, w, b)
    return conv_forward(x, w, b)
