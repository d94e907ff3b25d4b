"""GGUF for the shipped checkpoints: llama.cpp's `mamba` layout, Q8_0 matrices, written and read with NumPy only.

    python3 train/gguf.py check ../shared/fixtures/gguf     # our Q8_0 quantizer == llama-quantize's bytes

Layout (GGUF v3, ggml's own conventions; see ../shared/fixtures/gguf/README.md for the tensor names):
  header:  "GGUF", u32 version, u64 n_tensors, u64 n_kv, then n_kv (key, type, value), then n_tensors
           (name, u32 n_dims, u64 dims[n_dims] innermost first, u32 ggml type, u64 offset into the data section)
  data:    starts at the next multiple of general.alignment (32); each tensor aligned to 32 too.
Q8_0 (ggml type 8): blocks of 32 values, f16 scale d = max|x| / 127 then 32 int8 q = roundf(x / d), exactly as
llama.cpp's quantize_row_q8_0_ref (id = 1/d in float32, round half away from zero, d rounded to f16 last).
Matrices (embedding, in/x/dt/out projections) are stored Q8_0; vectors, the conv weight and A stay F32, as
llama-quantize leaves them. `ssm_a` holds A = -exp(A_log) (llama.cpp's convention), not A_log.
"""
import json, os, struct, sys

import numpy as np

GGML_F32, GGML_F16, GGML_Q8_0 = 0, 1, 8
T_UINT32, T_INT32, T_FLOAT32, T_BOOL, T_STRING, T_ARRAY, T_UINT64 = 4, 5, 6, 7, 8, 9, 10
ALIGN = 32


# ---------------------------------------------------------------- Q8_0 ----------------------------------------
def quantize_q8_0(w):
    """w: float32 (rows, cols), cols % 32 == 0 -> bytes of rows * cols/32 blocks (f16 d, int8 qs[32])."""
    w = np.ascontiguousarray(w, dtype=np.float32)
    rows, cols = w.shape
    assert cols % 32 == 0, f"Q8_0 needs cols % 32 == 0, got {cols}"
    x = w.reshape(rows, cols // 32, 32)
    amax = np.abs(x).max(axis=2)                                   # float32
    d = (amax / np.float32(127)).astype(np.float32)
    with np.errstate(divide="ignore"):
        idv = np.where(d != 0, np.float32(1) / d, np.float32(0)).astype(np.float32)
    x0 = (x * idv[..., None]).astype(np.float32)                   # float32 product, as in C
    x64 = x0.astype(np.float64)                                    # exact widening: +0.5 cannot round here
    q = np.trunc(x64 + np.copysign(0.5, x64)).astype(np.int8)      # roundf: half away from zero
    blocks = np.empty((rows, cols // 32), dtype=[("d", "<f2"), ("qs", "i1", (32,))])
    blocks["d"] = d.astype(np.float16)
    blocks["qs"] = q
    return blocks.tobytes()


def dequantize_q8_0(data, rows, cols):
    blocks = np.frombuffer(data, dtype=[("d", "<f2"), ("qs", "i1", (32,))], count=rows * cols // 32)
    blocks = blocks.reshape(rows, cols // 32)
    return (blocks["d"].astype(np.float32)[..., None] * blocks["qs"].astype(np.float32)).reshape(rows, cols)


# ---------------------------------------------------------------- writer --------------------------------------
def _s(b, s):
    s = s.encode("utf-8")
    b += struct.pack("<Q", len(s)) + s


def _kv(b, key, typ, val):
    _s(b, key)
    b += struct.pack("<I", typ)
    if typ == T_STRING:
        _s(b, val)
    elif typ == T_UINT32:
        b += struct.pack("<I", val)
    elif typ == T_FLOAT32:
        b += struct.pack("<f", val)
    elif typ == T_BOOL:
        b += struct.pack("<B", 1 if val else 0)
    elif typ == T_ARRAY:
        etyp, items = val
        b += struct.pack("<IQ", etyp, len(items))
        for it in items:
            if etyp == T_STRING:
                _s(b, it)
            elif etyp == T_INT32:
                b += struct.pack("<i", it)
            elif etyp == T_FLOAT32:
                b += struct.pack("<f", it)
            else:
                raise ValueError(etyp)
    else:
        raise ValueError(typ)


def byte_vocab():
    """The fixtures' 256-token byte vocabulary: token id = byte value, printed as GPT-2's byte-to-unicode."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b); cs.append(256 + n); n += 1
    table = dict(zip(bs, cs))
    return [chr(table[b]) for b in range(256)]


def write_gguf(path, sd, cfg, context_length, quant="q8_0", name="mambabyte", vocab_tokens=None):
    """sd: HF-layout state dict of float32 numpy arrays (tied embedding, no lm_head). Writes atomically."""
    L = cfg["n_layer"]
    tensors = []  # (gguf name, array float32, ggml type)

    def mat(n, a):
        a = np.asarray(a, dtype=np.float32)
        t = GGML_Q8_0 if quant == "q8_0" and a.shape[1] % 32 == 0 else GGML_F16 if quant == "f16" else GGML_F32
        tensors.append((n, a, t))

    def vec(n, a):
        tensors.append((n, np.asarray(a, dtype=np.float32), GGML_F32))

    mat("token_embd.weight", sd["backbone.embeddings.weight"])
    vec("output_norm.weight", sd["backbone.norm_f.weight"])
    for i in range(L):
        p = f"backbone.layers.{i}."
        m = p + "mixer."
        vec(f"blk.{i}.attn_norm.weight", sd[p + "norm.weight"])
        mat(f"blk.{i}.ssm_in.weight", sd[m + "in_proj.weight"])
        vec(f"blk.{i}.ssm_conv1d.weight", sd[m + "conv1d.weight"].reshape(sd[m + "conv1d.weight"].shape[0], -1))
        vec(f"blk.{i}.ssm_conv1d.bias", sd[m + "conv1d.bias"])
        mat(f"blk.{i}.ssm_x.weight", sd[m + "x_proj.weight"])
        mat(f"blk.{i}.ssm_dt.weight", sd[m + "dt_proj.weight"])
        vec(f"blk.{i}.ssm_dt.bias", sd[m + "dt_proj.bias"])
        vec(f"blk.{i}.ssm_a", (-np.exp(sd[m + "A_log"].astype(np.float64))).astype(np.float32))  # as convert_hf_to_gguf.py
        vec(f"blk.{i}.ssm_d", sd[m + "D"])
        mat(f"blk.{i}.ssm_out.weight", sd[m + "out_proj.weight"])

    vocab = vocab_tokens or byte_vocab()
    kv = bytearray()
    n_kv = 0

    def add(k, t, v):
        nonlocal n_kv
        _kv(kv, k, t, v); n_kv += 1

    add("general.architecture", T_STRING, "mamba")
    add("general.name", T_STRING, name)
    add("general.alignment", T_UINT32, ALIGN)
    add("general.file_type", T_UINT32, {"q8_0": 7, "f16": 1, "f32": 0}[quant])
    add("mamba.context_length", T_UINT32, int(context_length))
    add("mamba.embedding_length", T_UINT32, cfg["d_model"])
    add("mamba.feed_forward_length", T_UINT32, 0)
    add("mamba.attention.head_count", T_UINT32, 0)
    add("mamba.block_count", T_UINT32, L)
    add("mamba.ssm.conv_kernel", T_UINT32, cfg["d_conv"])
    add("mamba.ssm.inner_size", T_UINT32, cfg["d_model"] * cfg["expand"])
    add("mamba.ssm.state_size", T_UINT32, cfg["d_state"])
    add("mamba.ssm.time_step_rank", T_UINT32, cfg["dt_rank"])
    add("mamba.attention.layer_norm_rms_epsilon", T_FLOAT32, cfg["eps"])
    add("mamba.ssm.dt_b_c_rms", T_BOOL, False)
    add("general.quantization_version", T_UINT32, 2)
    # the fixtures' byte vocabulary, so that llama.cpp itself loads the file (bench side by side)
    add("tokenizer.ggml.model", T_STRING, "gpt2")
    add("tokenizer.ggml.pre", T_STRING, "default")
    add("tokenizer.ggml.tokens", T_ARRAY, (T_STRING, vocab))
    add("tokenizer.ggml.token_type", T_ARRAY, (T_INT32, [1] * len(vocab)))
    add("tokenizer.ggml.merges", T_ARRAY, (T_STRING, [vocab[0] + " " + vocab[1]]))
    add("tokenizer.ggml.bos_token_id", T_UINT32, 2)
    add("tokenizer.ggml.eos_token_id", T_UINT32, 3)
    add("tokenizer.ggml.add_bos_token", T_BOOL, False)
    add("tokenizer.ggml.add_eos_token", T_BOOL, False)

    infos, blobs, off = bytearray(), [], 0
    for n, a, t in tensors:
        data = quantize_q8_0(a) if t == GGML_Q8_0 else a.astype(np.float16).tobytes() if t == GGML_F16 else a.tobytes()
        _s(infos, n)
        dims = a.shape[::-1]
        infos += struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        infos += struct.pack("<IQ", t, off)
        pad = (-len(data)) % ALIGN
        blobs.append(data + b"\0" * pad)
        off += len(data) + pad
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), n_kv) + bytes(kv) + bytes(infos)
    head += b"\0" * ((-len(head)) % ALIGN)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(head)
        for b in blobs:
            f.write(b)
        f.flush(); os.fsync(f.fileno())
    os.replace(tmp, path)
    return {"tensors": len(tensors), "bytes": os.path.getsize(path),
            "types": {n: {0: "F32", 1: "F16", 8: "Q8_0"}[t] for n, _, t in tensors}}


# ---------------------------------------------------------------- reader (for checks) -------------------------
def read_gguf(path):
    buf = open(path, "rb").read()
    pos = 0

    def rd(fmt):
        nonlocal pos
        v = struct.unpack_from(fmt, buf, pos); pos += struct.calcsize(fmt)
        return v[0] if len(v) == 1 else v

    def rs():
        n = rd("<Q"); nonlocal pos
        s = buf[pos:pos + n].decode("utf-8"); pos += n
        return s

    scal = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<B", 10: "<Q", 11: "<q", 12: "<d"}

    def rv(t):
        if t == T_STRING:
            return rs()
        if t == T_ARRAY:
            et, n = rd("<I"), rd("<Q")
            return [rv(et) for _ in range(n)]
        return rd(scal[t])

    assert buf[:4] == b"GGUF"; pos = 4
    ver, nt, nkv = rd("<I"), rd("<Q"), rd("<Q")
    meta = {}
    for _ in range(nkv):
        k = rs(); t = rd("<I"); meta[k] = rv(t)
    infos = []
    for _ in range(nt):
        n = rs(); nd = rd("<I"); dims = [rd("<Q") for _ in range(nd)]; t = rd("<I"); off = rd("<Q")
        infos.append((n, dims, t, off))
    align = meta.get("general.alignment", 32)
    start = pos + (-pos) % align
    tensors = {}
    for n, dims, t, off in infos:
        shape = dims[::-1]
        cnt = int(np.prod(shape))
        o = start + off
        if t == GGML_F32:
            a = np.frombuffer(buf, np.float32, cnt, o).reshape(shape)
            raw = buf[o:o + 4 * cnt]
        elif t == GGML_F16:
            a = np.frombuffer(buf, np.float16, cnt, o).astype(np.float32).reshape(shape)
            raw = buf[o:o + 2 * cnt]
        elif t == GGML_Q8_0:
            rows, cols = (int(np.prod(shape[:-1])), shape[-1])
            raw = buf[o:o + rows * cols // 32 * 34]
            a = dequantize_q8_0(raw, rows, cols).reshape(shape)
        else:
            a, raw = None, buf[o:o + 1]
        tensors[n] = (t, shape, a, raw)
    return ver, meta, tensors


def hf_state_from_gguf(path):
    """Dequantized float32 HF-layout state dict (A_log = log(-A)) and config, for scoring in PyTorch."""
    _, meta, T = read_gguf(path)
    L = meta["mamba.block_count"]
    sd = {"backbone.embeddings.weight": T["token_embd.weight"][2], "backbone.norm_f.weight": T["output_norm.weight"][2]}
    for i in range(L):
        p, m, b = f"backbone.layers.{i}.", f"backbone.layers.{i}.mixer.", f"blk.{i}."
        sd[p + "norm.weight"] = T[b + "attn_norm.weight"][2]
        sd[m + "in_proj.weight"] = T[b + "ssm_in.weight"][2]
        cw = T[b + "ssm_conv1d.weight"][2]
        sd[m + "conv1d.weight"] = cw.reshape(cw.shape[0], 1, cw.shape[1])
        sd[m + "conv1d.bias"] = T[b + "ssm_conv1d.bias"][2]
        sd[m + "x_proj.weight"] = T[b + "ssm_x.weight"][2]
        sd[m + "dt_proj.weight"] = T[b + "ssm_dt.weight"][2]
        sd[m + "dt_proj.bias"] = T[b + "ssm_dt.bias"][2]
        sd[m + "A_log"] = np.log(-T[b + "ssm_a"][2].astype(np.float64)).astype(np.float32)
        sd[m + "D"] = T[b + "ssm_d"][2]
        sd[m + "out_proj.weight"] = T[b + "ssm_out.weight"][2]
    return sd, meta


def _load_safetensors(path):
    buf = open(path, "rb").read()
    n = struct.unpack_from("<Q", buf, 0)[0]
    hdr = json.loads(buf[8:8 + n])
    out = {}
    for k, v in hdr.items():
        if k == "__metadata__":
            continue
        s, e = v["data_offsets"]
        dt = {"F32": np.float32, "F16": np.float16}[v["dtype"]]
        out[k] = np.frombuffer(buf, dt, (e - s) // np.dtype(dt).itemsize, 8 + n + s).reshape(v["shape"]).astype(np.float32)
    return out


def check_fixtures(d):
    """Our Q8_0 bytes must equal llama-quantize's for every Q8_0 tensor of tiny-q8_0.gguf."""
    src = _load_safetensors(os.path.join(d, "source", "model.safetensors"))
    _, meta, T = read_gguf(os.path.join(d, "tiny-q8_0.gguf"))
    names = {"token_embd.weight": "backbone.embeddings.weight"}
    for i in range(meta["mamba.block_count"]):
        for g, h in (("ssm_in", "in_proj"), ("ssm_x", "x_proj"), ("ssm_dt", "dt_proj"), ("ssm_out", "out_proj")):
            names[f"blk.{i}.{g}.weight"] = f"backbone.layers.{i}.mixer.{h}.weight"
    checked = 0
    for g, h in names.items():
        t, shape, _, raw = T[g]
        if t != GGML_Q8_0:
            continue
        mine = quantize_q8_0(src[h].reshape(shape))
        assert mine == raw, f"{g}: our Q8_0 bytes differ from llama-quantize's"
        checked += 1
    print(f"{checked} Q8_0 tensors byte-identical to llama-quantize; metadata keys: {sorted(meta)}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "check":
        check_fixtures(sys.argv[2])
    else:
        print(__doc__)
