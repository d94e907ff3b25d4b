"""Writes the real-PyTorch samples in this folder (run on the GPU machine: python make.py OUTDIR; the
folders bin/ and st/ it writes were renamed ssm-ln-bin/ and ssm-ln-st/, with config.json copied into the latter).

A tiny mamba_ssm-layout model with LayerNorm (nn.Module state_dict, tied head sharing the embedding's storage)
saved by torch.save and by safetensors, plus small dicts exercising what the loader must handle or refuse:
f16/bf16 storages, a view at a storage offset, an nn.Parameter, a non-contiguous tensor, protocol 4, and the
legacy (non-zip) format.
"""
import collections, json, os, sys
import torch
from torch import nn
from safetensors.torch import save_file

out = sys.argv[1]
torch.manual_seed(0)
d, L, V, E, N, K, R = 8, 2, 256, 16, 4, 4, 1


class Mixer(nn.Module):
    def __init__(self):
        super().__init__()
        self.in_proj = nn.Linear(d, 2 * E, bias=False)
        self.conv1d = nn.Conv1d(E, E, K, groups=E, padding=K - 1)
        self.x_proj = nn.Linear(E, R + 2 * N, bias=False)
        self.dt_proj = nn.Linear(R, E)
        self.A_log = nn.Parameter(torch.log(torch.arange(1, N + 1).float()).repeat(E, 1) + 0.1 * torch.randn(E, N))
        self.D = nn.Parameter(1 + 0.1 * torch.randn(E))
        self.out_proj = nn.Linear(E, d, bias=False)


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.mixer = Mixer()
        self.norm = nn.LayerNorm(d)


class Backbone(nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(V, d)
        self.layers = nn.ModuleList([Block() for _ in range(L)])
        self.norm_f = nn.LayerNorm(d)


class LM(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = Backbone()
        self.lm_head = nn.Linear(d, V, bias=False)
        self.lm_head.weight = self.backbone.embedding.weight  # tied, as MambaLMHeadModel does


m = LM()
with torch.no_grad():
    for mod in m.modules():
        if isinstance(mod, nn.LayerNorm):
            mod.weight.add_(0.1 * torch.randn(d))
            mod.bias.add_(0.1 * torch.randn(d))
config = {"d_model": d, "n_layer": L, "vocab_size": V, "ssm_cfg": {"d_state": N}, "rms_norm": True,
          "residual_in_fp32": True, "fused_add_norm": True, "pad_vocab_size_multiple": 8, "pad_id": 0,
          "tie_embeddings": True}
for sub in ("bin", "st"):
    os.makedirs(os.path.join(out, sub), exist_ok=True)
with open(os.path.join(out, "bin", "config.json"), "w") as f:
    json.dump(config, f)
torch.save(m.state_dict(), os.path.join(out, "bin", "pytorch_model.bin"))
sd = {k: v.detach().clone().contiguous() for k, v in m.state_dict().items() if k != "lm_head.weight"}
save_file(sd, os.path.join(out, "st", "model.safetensors"), metadata={"format": "pt"})

base = torch.arange(10, dtype=torch.float32) / 4
misc = collections.OrderedDict(
    half=torch.tensor([1.0, -2.5, 65504.0, 1e-5], dtype=torch.float16),
    bf16=torch.tensor([[1.0, -3.0], [0.5, 1e30]], dtype=torch.bfloat16),
    view=base[3:7],
    param=nn.Parameter(torch.arange(6, dtype=torch.float32).view(2, 3)),
    scalar=torch.tensor(2.5),
    count=7,
)
torch.save(misc, os.path.join(out, "misc_p2.bin"))
torch.save(misc, os.path.join(out, "misc_p4.bin"), pickle_protocol=4)
torch.save({"t": torch.arange(6.0).view(2, 3).t()}, os.path.join(out, "misc_legacy.bin"), _use_new_zipfile_serialization=False)
torch.save({"t": torch.arange(6.0).view(2, 3).t()}, os.path.join(out, "noncontig.bin"))
expect = {k: v.float().flatten().tolist() for k, v in misc.items() if torch.is_tensor(v)}
expect["_torch"] = torch.__version__
with open(os.path.join(out, "misc.json"), "w") as f:
    json.dump(expect, f)
print(torch.__version__, sorted(os.listdir(out)))
