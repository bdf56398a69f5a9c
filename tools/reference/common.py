"""Shared pieces of the PyTorch reference: checkpoint I/O and the LLaMA-style decoder skeleton.

Numerics follow the Hugging Face eager code that each family ships (see moepp-spec.md §1.4 and
checkpoint-formats.md §1.4-§1.7): RMSNorm normalises in fp32, casts back, then multiplies the
weight; RoPE cos/sin are computed in fp32 and cast; scores are divided by sqrt(hd) as a separate
op; the attention softmax runs in fp32 and is cast back; masks add finfo(dtype).min.
Everything runs with batch size 1; shapes are noted as [n_tokens, ...].
"""
import json
import math
import os
import struct
from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F

# ----------------------------------------------------------------------------------------------
# dtypes

DTYPES = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}
ST_NAME = {torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16",
           torch.int64: "I64", torch.int32: "I32", torch.int8: "I8", torch.uint8: "U8"}
ST_DTYPE = {v: k for k, v in ST_NAME.items()}
TORCH_DTYPE_NAME = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}


def _to_bytes(t):
    t = t.detach().contiguous().cpu()
    if t.dtype == torch.bfloat16:  # numpy has no bf16: reinterpret the bits
        return t.view(torch.int16).numpy().tobytes()
    return t.numpy().tobytes()


# ----------------------------------------------------------------------------------------------
# safetensors (checkpoint-formats.md §8)

def save_safetensors(path, tensors, metadata=None):
    """Writes like the reference writer: compact JSON header padded with spaces so that 8+N is a
    multiple of 8, tensors ordered by descending element size, then name."""
    meta = {"format": "pt"} if metadata is None else metadata
    names = sorted(tensors, key=lambda n: (-tensors[n].element_size(), n))
    header = {"__metadata__": meta}
    blobs, off = [], 0
    for n in names:
        t = tensors[n]
        b = _to_bytes(t)
        header[n] = {"dtype": ST_NAME[t.dtype], "shape": list(t.shape),
                     "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hb += b" " * ((8 - len(hb) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for b in blobs:
            f.write(b)


def load_safetensors(path):
    """Returns OrderedDict name -> tensor (file dtype). Checks coverage and offsets."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n].decode("utf-8"))
    header.pop("__metadata__", None)
    buf = memoryview(data)[8 + n:]
    out, end = OrderedDict(), 0
    for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        b, e = info["data_offsets"]
        assert b == end, f"{path}: hole/overlap at {name}"
        end = e
        dt = ST_DTYPE[info["dtype"]]
        if dt == torch.bfloat16:
            arr = np.frombuffer(buf[b:e], dtype=np.int16).copy()
            t = torch.from_numpy(arr).view(torch.bfloat16)
        else:
            arr = np.frombuffer(buf[b:e], dtype=torch.empty(0, dtype=dt).numpy().dtype).copy()
            t = torch.from_numpy(arr)
        out[name] = t.reshape(info["shape"])
    assert end == len(buf), f"{path}: file not fully covered"
    return out


def _torch_load(path):
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except TypeError:  # older torch without weights_only
        return torch.load(path, map_location="cpu")


def load_checkpoint(model_dir):
    """Returns (config dict, OrderedDict name -> tensor in file dtype), preferring the order of
    checkpoint-formats.md §1.1: sharded safetensors, single safetensors, sharded .bin, .bin."""
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    sd = OrderedDict()
    for index, single, loader in (("model.safetensors.index.json", "model.safetensors", load_safetensors),
                                  ("pytorch_model.bin.index.json", "pytorch_model.bin", _torch_load)):
        ip = os.path.join(model_dir, index)
        if os.path.exists(ip):
            with open(ip) as f:
                wmap = json.load(f)["weight_map"]
            for shard in sorted(set(wmap.values())):
                part = loader(os.path.join(model_dir, shard))
                for k, v in part.items():
                    assert wmap.get(k) == shard, f"{k} in {shard} but index says {wmap.get(k)}"
                    sd[k] = v
            missing = set(wmap) - set(sd)
            assert not missing, f"index lists tensors absent from shards: {sorted(missing)[:5]}"
            return cfg, sd
        sp = os.path.join(model_dir, single)
        if os.path.exists(sp):
            sd.update(loader(sp))
            return cfg, sd
    raise FileNotFoundError(f"no weights in {model_dir}")


# ----------------------------------------------------------------------------------------------
# layers

def rmsnorm(x, w, eps):
    """HF LlamaRMSNorm: normalise in fp32, cast back to the activation dtype, then * weight."""
    dt = x.dtype
    x32 = x.to(torch.float32)
    var = x32.pow(2).mean(-1, keepdim=True)
    x32 = x32 * torch.rsqrt(var + eps)
    return w * x32.to(dt)


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def rope_tables(head_dim, base, n_pos, dtype):
    """cos/sin [n_pos, head_dim]: computed in fp32 for the whole cache (as HF does at init), then
    cast to the activation dtype. The 'rotate-half' layout repeats the hd/2 frequencies."""
    inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2).float() / head_dim))  # [hd/2]
    t = torch.arange(n_pos, dtype=inv_freq.dtype)
    freqs = torch.einsum("i,j->ij", t, inv_freq)  # [n_pos, hd/2]
    emb = torch.cat((freqs, freqs), dim=-1)  # [n_pos, hd]
    return emb.cos().to(dtype), emb.sin().to(dtype)


def repeat_kv(x, n_rep):
    """[1, nkv, S, hd] -> [1, nkv*n_rep, S, hd]; each kv head repeated n_rep times consecutively."""
    if n_rep == 1:
        return x
    b, nkv, s, hd = x.shape
    return x[:, :, None, :, :].expand(b, nkv, n_rep, s, hd).reshape(b, nkv * n_rep, s, hd)


def causal_mask(q_len, past, dtype, sliding_window=None):
    """Additive mask [q_len, past+q_len]: 0 where visible, finfo(dtype).min elsewhere.
    Query i (absolute position past+i) sees keys kv <= q, and with a window W only kv > q - W."""
    q = torch.arange(q_len)[:, None] + past
    kv = torch.arange(past + q_len)[None, :]
    visible = kv <= q
    if sliding_window is not None:
        visible = visible & (kv > q - sliding_window)
    m = torch.zeros(q_len, past + q_len, dtype=dtype)
    return m.masked_fill(~visible, torch.finfo(dtype).min)


class DecoderRef:
    """LLaMA-style pre-norm decoder (checkpoint-formats.md §1.4). Families override `mlp` and may
    override `rope_base` / `sliding_window`. Weights are cast to the run dtype at load, as HF
    from_pretrained(torch_dtype=...) does."""

    def __init__(self, cfg, sd, dtype):
        self.cfg, self.dtype = cfg, dtype
        self.w = {k: v.to(dtype) for k, v in sd.items()}
        self.d = cfg["hidden_size"]
        self.n_layers = cfg["num_hidden_layers"]
        self.nh = cfg["num_attention_heads"]
        self.nkv = cfg.get("num_key_value_heads") or self.nh
        self.hd = cfg.get("head_dim") or self.d // self.nh
        self.eps = cfg["rms_norm_eps"]
        self.vocab = cfg["vocab_size"]
        self.max_pos = cfg.get("max_position_embeddings", 2048)
        self.sliding_window = None
        self._rope = None

    def rope_base(self):
        return float(self.cfg.get("rope_theta", 10000.0))

    def rope(self, n_pos):
        if self._rope is None or self._rope[0].shape[0] < n_pos:
            self._rope = rope_tables(self.hd, self.rope_base(), max(self.max_pos, n_pos), self.dtype)
        return self._rope

    def attention(self, l, x, kv_cache):
        """x [T, d] -> [T, d]; kv_cache[l] = (k, v) [1, nkv, S, hd] after RoPE (updated)."""
        p = f"model.layers.{l}.self_attn."
        T = x.shape[0]
        q = F.linear(x, self.w[p + "q_proj.weight"]).view(1, T, self.nh, self.hd).transpose(1, 2)
        k = F.linear(x, self.w[p + "k_proj.weight"]).view(1, T, self.nkv, self.hd).transpose(1, 2)
        v = F.linear(x, self.w[p + "v_proj.weight"]).view(1, T, self.nkv, self.hd).transpose(1, 2)
        past = 0 if kv_cache[l] is None else kv_cache[l][0].shape[2]
        cos, sin = self.rope(past + T)
        cos, sin = cos[past:past + T], sin[past:past + T]  # [T, hd], broadcast over heads
        q = (q * cos) + (rotate_half(q) * sin)
        k = (k * cos) + (rotate_half(k) * sin)
        if kv_cache[l] is not None:
            k = torch.cat([kv_cache[l][0], k], dim=2)
            v = torch.cat([kv_cache[l][1], v], dim=2)
        kv_cache[l] = (k, v)
        k = repeat_kv(k, self.nh // self.nkv)
        v = repeat_kv(v, self.nh // self.nkv)
        scores = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(self.hd)  # [1, nh, T, S]
        scores = scores + causal_mask(T, past, self.dtype, self.sliding_window)
        probs = F.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
        o = torch.matmul(probs, v).transpose(1, 2).reshape(T, self.nh * self.hd)
        return F.linear(o, self.w[p + "o_proj.weight"])

    def mlp(self, l, x, state):
        """x [T, d] -> (y [T, d], state for the next layer, route dict)."""
        raise NotImplementedError

    def new_cache(self):
        return [None] * self.n_layers

    @torch.no_grad()
    def forward(self, ids, kv_cache):
        """ids: list of ints (the next chunk). Returns logits fp32 [T, V], routes (per layer: dict
        with experts [T, k] long, weights [T, k] fp32, margins [T] fp32), hidden per layer [T, d]."""
        h = self.w["model.embed_tokens.weight"][torch.tensor(ids, dtype=torch.long)]  # [T, d]
        state, routes, hidden = None, [], []
        for l in range(self.n_layers):
            p = f"model.layers.{l}."
            a = rmsnorm(h, self.w[p + "input_layernorm.weight"], self.eps)
            h = h + self.attention(l, a, kv_cache)
            m = rmsnorm(h, self.w[p + "post_attention_layernorm.weight"], self.eps)
            y, state, route = self.mlp(l, m, state)
            h = h + y
            routes.append(route)
            hidden.append(h)
        h = rmsnorm(h, self.w["model.norm.weight"], self.eps)
        logits = F.linear(h, self.w["lm_head.weight"]).float()
        return logits, routes, hidden

    def run(self, ids, chunk=None):
        """Whole prompt at once (chunk None) or `chunk` tokens at a time through the KV cache.
        Returns the concatenation over chunks of forward()'s outputs."""
        cache = self.new_cache()
        step = len(ids) if not chunk else chunk
        outs = [self.forward(ids[i:i + step], cache) for i in range(0, len(ids), step)]
        logits = torch.cat([o[0] for o in outs], 0)
        routes = [{key: torch.cat([o[1][l][key] for o in outs], 0) for key in outs[0][1][l]}
                  for l in range(self.n_layers)]
        hidden = [torch.cat([o[2][l] for o in outs], 0) for l in range(self.n_layers)]
        return logits, routes, hidden


def topk_margin(scores, k, logits=None):
    """Near-tie information per token, in the space selection is done (scores [T, N]):
    margin = k-th best minus (k+1)-th best score (+inf when all experts are selected),
    runner_up = index of the (k+1)-th best expert (-1 if none), and a noise scale for the margin:
    how much it moves per unit of relative error in the logits. Logit-space selection:
    max|logit|; probability space (pass the logits behind the probabilities): p_k * max|logit|.
    Returns dict of [T] tensors: margins, runner_up, scales."""
    n = scores.shape[-1]
    v, i = torch.topk(scores.float(), min(k + 1, n), dim=-1)
    zmax = (scores if logits is None else logits).float().abs().max(-1).values
    scale = zmax if logits is None else v[..., k - 1] * zmax
    if k >= n:
        return {"margins": torch.full(scores.shape[:-1], float("inf")),
                "runner_up": torch.full(scores.shape[:-1], -1, dtype=torch.long), "scales": scale}
    return {"margins": v[..., k - 1] - v[..., k], "runner_up": i[..., k], "scales": scale}


# ----------------------------------------------------------------------------------------------
# tolerances (shared by tests/model/check_parity.py and self_check.py)

U_BF16 = 2.0 ** -8  # unit roundoff of bf16 (8-bit significand, round to nearest)
ROUNDINGS_PER_LAYER = 20  # bf16 rounding points on one decoder layer's critical path
F32_REL_TOL = 1e-4
F32_MARGIN = 1e-4


def bf16_rel_tol(n_layers):
    """Tolerance on max|dlogit| / max|logit_ref| between two bf16 implementations.

    Each rounding point adds a relative error uniform in [-u, u] (rms u/sqrt(3)). A decoder
    layer has ~20 of them on its critical path (attention: norm cast, *weight, q/k/v, rope mul
    and add, scores, /sqrt(hd), softmax cast, P.V, o_proj, residual add; MoE: norm cast, *weight,
    up, silu, gate*up, down, *routing weight, combine add, residual add), plus 3 at the end (final
    norm cast, *weight, lm_head). Treating them as independent, the rms relative error after
    n = 20 L + 3 roundings is u sqrt(n/3); the RMSNorm at the start of every block keeps the
    growth per layer near 1. Two implementations that round at different points differ by up
    to sqrt(2) times that, and the max over the ~10^3 logits of a prompt sits near 4 sigma:
        tol = 4 * sqrt(2) * u * sqrt((20 L + 3) / 3)   (0.084 for L=2, 0.101 for L=3).
    The observed bf16-reference vs f32-reference gap on the parity presets is 0.01-0.06
    (see self_check.py), i.e. below the tolerance, so an engine that keeps more precision than
    HF does also passes, while wrong routing or a wrong scale moves logits by O(max|logit|)."""
    return 4.0 * math.sqrt(2.0) * U_BF16 * math.sqrt((ROUNDINGS_PER_LAYER * n_layers + 3) / 3.0)


def route_excuse_threshold(dtype_name, n_layers, scale):
    """A route difference at a (layer, token) is excused when the reference margin is below this:
    1e-4 absolute in f32; in bf16 the margin moves by about the relative logit noise times the
    margin's noise scale (see topk_margin), so bf16_rel_tol(L) * scale."""
    if dtype_name == "f32":
        return F32_MARGIN
    return bf16_rel_tol(n_layers) * float(scale)


def routes_to_json(routes):
    return {"layers": [r["experts"].tolist() for r in routes],
            "margins": [[min(float(m), 1e30) for m in r["margins"]] for r in routes],
            "scales": [r["scales"].float().tolist() for r in routes],
            "runner_up": [r["runner_up"].tolist() for r in routes],
            "weights": [r["weights"].float().tolist() for r in routes]}


def default_prompts(vocab_size, seed=1234, lengths=(7, 12, 16)):
    """The parity prompts: BOS (1) then random ids in [3, vocab)."""
    g = torch.Generator().manual_seed(seed)
    return [[1] + torch.randint(3, vocab_size, (n - 1,), generator=g).tolist() for n in lengths]


def make_text_model(src_dir, out_dir, tokenizer_file=None, vocab_size=32000, extra_files=None):
    """A copy of the tiny checkpoint at src_dir with its vocabulary grown to a real tokenizer's
    (default: the LLaMA SentencePiece model, 32000 pieces); the old rows are kept. extra_files:
    {name: text} written next to it (e.g. a tokenizer_config.json with a chat template)."""
    import shutil
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if tokenizer_file is None:
        tokenizer_file = os.path.join(root, ".cache", "tokenizer-assets", "sentencepiece", "llama-tokenizer.model")
    cfg, sd = load_checkpoint(src_dir)
    g = torch.Generator().manual_seed(77)
    V, d = vocab_size, cfg["hidden_size"]
    for name in ("model.embed_tokens.weight", "lm_head.weight"):
        w = torch.randn(V, d, generator=g) * float(sd[name].float().std())
        w[: sd[name].shape[0]] = sd[name].float()
        sd[name] = w.contiguous()
    cfg["vocab_size"] = V
    os.makedirs(out_dir, exist_ok=True)
    for f in os.listdir(src_dir):
        if f.endswith(".json") and f != "config.json" and not f.endswith(".index.json"):
            shutil.copy(os.path.join(src_dir, f), out_dir)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    save_safetensors(os.path.join(out_dir, "model.safetensors"), sd)
    shutil.copy(tokenizer_file, os.path.join(out_dir, os.path.basename(tokenizer_file) if tokenizer_file.endswith(".json") else "tokenizer.model"))
    for name, text in (extra_files or {}).items():
        with open(os.path.join(out_dir, name), "w") as f:
            f.write(text)
