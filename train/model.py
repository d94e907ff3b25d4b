"""Mamba-1 language model exactly as docs/model.md, with HF `MambaForCausalLM` parameter names.

    backbone.embeddings.weight
    backbone.layers.{i}.norm.weight                 (RMSNorm; LayerNorm adds .norm.bias, see norm="ln")
    backbone.layers.{i}.mixer.{in_proj.weight, conv1d.weight (d_inner,1,k), conv1d.bias, x_proj.weight,
                               dt_proj.weight, dt_proj.bias, A_log, D, out_proj.weight}
    backbone.norm_f.weight
    (lm_head tied to the embedding)

impl="triton": the fused Triton conv and selective scan (train/mamba_ops.py), for training and fast eval.
impl="ref":    plain PyTorch, sequential in time — slow, the obviously-correct reference.
"""
import json, math, os
from dataclasses import dataclass, asdict

import torch
import torch.nn as nn
import torch.nn.functional as F

import mamba_ops as ops


@dataclass
class MambaCfg:
    vocab_size: int = 256
    d_model: int = 384
    n_layer: int = 9
    d_state: int = 16
    expand: int = 2
    d_conv: int = 4
    dt_rank: int = 0          # 0 = ceil(d_model / 16)
    eps: float = 1e-5
    norm: str = "rms"         # "rms" or "ln" (LayerNorm with bias, the published MambaByte quirk)

    def __post_init__(self):
        if not self.dt_rank:
            self.dt_rank = math.ceil(self.d_model / 16)

    @property
    def d_inner(self):
        return self.expand * self.d_model


class RMSNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        x = x.float()
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight.float()


def make_norm(cfg):
    if cfg.norm == "ln":
        return nn.LayerNorm(cfg.d_model, eps=cfg.eps)
    return RMSNorm(cfg.d_model, cfg.eps)


class Mixer(nn.Module):
    def __init__(self, cfg: MambaCfg):
        super().__init__()
        self.cfg = cfg
        d, di, N, R, k = cfg.d_model, cfg.d_inner, cfg.d_state, cfg.dt_rank, cfg.d_conv
        self.in_proj = nn.Linear(d, 2 * di, bias=False)
        self.conv1d = nn.Conv1d(di, di, k, groups=di, padding=k - 1, bias=True)
        self.x_proj = nn.Linear(di, R + 2 * N, bias=False)
        self.dt_proj = nn.Linear(R, di, bias=True)
        self.A_log = nn.Parameter(torch.empty(di, N))
        self.D = nn.Parameter(torch.empty(di))
        self.out_proj = nn.Linear(di, d, bias=False)

    @torch.no_grad()
    def mamba_init(self, n_layer, dt_min=1e-3, dt_max=1e-1, dt_floor=1e-4, gen=None):
        di, N, R = self.cfg.d_inner, self.cfg.d_state, self.cfg.dt_rank
        self.A_log.copy_(torch.log(torch.arange(1, N + 1, dtype=torch.float32)).repeat(di, 1))
        self.D.fill_(1.0)
        std = R ** -0.5
        self.dt_proj.weight.uniform_(-std, std, generator=gen)
        dt = torch.exp(torch.rand(di, generator=gen) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        dt = dt.clamp(min=dt_floor)
        self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))   # inverse softplus
        # GPT-2 style rescale of the residual output projection (as mamba_ssm does)
        nn.init.kaiming_uniform_(self.out_proj.weight, a=math.sqrt(5), generator=gen)
        self.out_proj.weight /= math.sqrt(n_layer)

    def forward(self, u, impl="triton"):
        cfg = self.cfg
        di, N, R = cfg.d_inner, cfg.d_state, cfg.dt_rank
        xz = self.in_proj(u)                                    # (B, L, 2di)
        x, z = xz[..., :di], xz[..., di:]
        w = self.conv1d.weight.view(di, cfg.d_conv)
        if impl == "triton":
            x = ops.causal_conv(x, w, self.conv1d.bias)
        else:
            x = ops.causal_conv_ref(x, w, self.conv1d.bias).to(xz.dtype)
        xdbl = self.x_proj(x)                                   # (B, L, R+2N)
        dt = F.linear(xdbl[..., :R], self.dt_proj.weight)       # bias is applied inside the scan
        Bm, Cm = xdbl[..., R:R + N], xdbl[..., R + N:]
        A = -torch.exp(self.A_log.float())
        args = (x, dt, self.dt_proj.bias.float(), A, Bm, Cm, self.D.float(), z)
        y = ops.selective_scan(*args) if impl == "triton" else ops.selective_scan_ref(*args).to(xz.dtype)
        return self.out_proj(y)


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.norm = make_norm(cfg)
        self.mixer = Mixer(cfg)
        self.dropout = 0.0   # on the mixer's output before the residual add; training only

    def forward(self, h, impl):
        y = self.mixer(self.norm(h), impl).float()
        if self.training and self.dropout > 0:
            y = F.dropout(y, self.dropout, True)
        return h + y


class Backbone(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.embeddings = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.layers = nn.ModuleList([Block(cfg) for _ in range(cfg.n_layer)])
        self.norm_f = make_norm(cfg)


class MambaLM(nn.Module):
    def __init__(self, cfg: MambaCfg):
        super().__init__()
        self.cfg = cfg
        self.backbone = Backbone(cfg)

    @torch.no_grad()
    def init_weights(self, seed=0):
        gen = torch.Generator().manual_seed(seed)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=gen)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Conv1d):
                nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=gen)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.backbone.embeddings.weight, std=0.02, generator=gen)
        for blk in self.backbone.layers:
            blk.mixer.mamba_init(self.cfg.n_layer, gen=gen)

    impl = "triton"

    def hidden(self, ids, impl=None):
        impl = impl or self.impl
        h = self.backbone.embeddings(ids).float()
        for blk in self.backbone.layers:
            h = blk(h, impl)
        return self.backbone.norm_f(h)

    def forward(self, ids, impl=None):
        h = self.hidden(ids, impl)
        return F.linear(h, self.backbone.embeddings.weight)

    def set_dropout(self, p):
        for blk in self.backbone.layers:
            blk.dropout = p

    @torch.no_grad()
    def step(self, tok, conv, ssm):
        """One recurrent step for a batch (generation): tok (B,) long; conv (L, B, di, k) and ssm (L, B, di, N) fp32,
        updated in place. Returns fp32 logits (B, V). The same math as forward() with T = 1 (docs/model.md)."""
        cfg = self.cfg
        di, N, R = cfg.d_inner, cfg.d_state, cfg.dt_rank
        h = self.backbone.embeddings.weight[tok].float()                     # (B, d)
        for l, blk in enumerate(self.backbone.layers):
            mx = blk.mixer
            xz = F.linear(blk.norm(h), mx.in_proj.weight.float())           # (B, 2di)
            x, z = xz[:, :di], xz[:, di:]
            conv[l] = torch.roll(conv[l], -1, dims=2)
            conv[l][:, :, -1] = x                                           # window x[t-3..t], oldest first
            x = F.silu((conv[l] * mx.conv1d.weight.float().view(di, -1)).sum(-1) + mx.conv1d.bias.float())
            xdbl = F.linear(x, mx.x_proj.weight.float())                    # (B, R+2N)
            dt = F.softplus(F.linear(xdbl[:, :R], mx.dt_proj.weight.float(), mx.dt_proj.bias.float()))
            Bm, Cm = xdbl[:, R:R + N], xdbl[:, R + N:]
            A = -torch.exp(mx.A_log.float())                                # (di, N)
            dA = torch.exp(dt[:, :, None] * A)                              # (B, di, N)
            dBx = (dt * x)[:, :, None] * Bm[:, None, :]
            ssm[l] = dA * ssm[l] + dBx
            y = (ssm[l] * Cm[:, None, :]).sum(-1) + mx.D.float() * x
            h = h + F.linear(y * F.silu(z), mx.out_proj.weight.float())
        return F.linear(self.backbone.norm_f(h), self.backbone.embeddings.weight.float())

    def num_params(self):
        return sum(p.numel() for p in self.parameters())


# ----------------------------------------------------------------------------------------------
# Export / import in the HF transformers layout
# ----------------------------------------------------------------------------------------------

def hf_config(cfg: MambaCfg, dtype_name, training_context_length, extra=None):
    c = {
        "architectures": ["MambaForCausalLM"],
        "model_type": "mamba",
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.d_model,
        "num_hidden_layers": cfg.n_layer,
        "state_size": cfg.d_state,
        "expand": cfg.expand,
        "intermediate_size": cfg.d_inner,
        "conv_kernel": cfg.d_conv,
        "time_step_rank": cfg.dt_rank,
        "layer_norm_epsilon": cfg.eps,
        "tie_word_embeddings": True,
        "use_bias": False,
        "use_conv_bias": True,
        "hidden_act": "silu",
        "residual_in_fp32": True,
        "dtype": dtype_name,
        "training_context_length": training_context_length,
    }
    if extra:
        c.update(extra)
    return c


def export_hf(model: MambaLM, out_dir, training_context_length, dtype=torch.float16, extra=None):
    """Writes config.json + model.safetensors (tied: no lm_head.weight). Returns (path, info)."""
    from safetensors.torch import save_file
    os.makedirs(out_dir, exist_ok=True)
    sd = {k: v.detach().float().cpu() for k, v in model.state_dict().items()}
    maxabs = max(v.abs().max().item() for v in sd.values())
    if dtype == torch.float16 and maxabs > 60000:
        dtype = torch.bfloat16
    q = {k: v.to(dtype).contiguous() for k, v in sd.items()}
    rel = max(((q[k].float() - sd[k]).abs().max() / (sd[k].abs().max() + 1e-30)).item() for k in sd)
    name = {torch.float16: "float16", torch.bfloat16: "bfloat16", torch.float32: "float32"}[dtype]
    save_file(q, os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(hf_config(model.cfg, name, training_context_length, extra), f, indent=2)
        f.write("\n")
    return {"dtype": name, "max_abs_weight": maxabs, "max_rel_rounding_err": rel}


def load_hf(path, device="cpu"):
    """Loads an exported folder into an fp32 MambaLM (the weights as stored, i.e. rounded)."""
    from safetensors.torch import load_file
    with open(os.path.join(path, "config.json")) as f:
        c = json.load(f)
    cfg = MambaCfg(vocab_size=c["vocab_size"], d_model=c["hidden_size"], n_layer=c["num_hidden_layers"],
                   d_state=c["state_size"], expand=c["expand"], d_conv=c["conv_kernel"],
                   dt_rank=c["time_step_rank"], eps=c["layer_norm_epsilon"])
    m = MambaLM(cfg)
    sd = {k: v.float() for k, v in load_file(os.path.join(path, "model.safetensors")).items()}
    m.load_state_dict(sd, strict=True)
    return m.to(device), c


# ----------------------------------------------------------------------------------------------
# Scoring: one long pass over a whole sequence, logits in chunks
# ----------------------------------------------------------------------------------------------

@torch.no_grad()
def sum_nll(model: MambaLM, ids: torch.Tensor, impl=None, chunk=65536):
    """ids: 1-D LongTensor. Returns (sum over t=1..n-1 of -ln p(ids[t] | ids[<t]), n-1), in one pass."""
    h = model.hidden(ids[None], impl)[0]                        # (n, d) fp32
    E = model.backbone.embeddings.weight.float()
    tot = torch.zeros((), dtype=torch.float64, device=ids.device)
    n = ids.numel()
    for s in range(0, n - 1, chunk):
        e = min(s + chunk, n - 1)
        logits = F.linear(h[s:e].float(), E)
        tot += F.cross_entropy(logits, ids[s + 1:e + 1], reduction="sum").double()
    return tot.item(), n - 1
