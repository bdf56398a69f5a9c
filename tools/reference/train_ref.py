"""Differentiable PyTorch reference of the moepp training objective (src/train/), for autograd
gradient checks and optimiser-step checks. Weights use the Hugging Face MoE++ names
(moepp-spec.md §3); the forward follows the inference references (moepp_ref.py, common.py)
but without in-place ops or no_grad, in any float dtype (the tests use float64).

The loss (docs/training.md): L = CE + beta * sum_or_mean_l L_b(l), with
  CE   = mean next-token cross-entropy over targets != -100,
  L_b  = (N if scale_by_n_experts else 1) * sum_i eta_i f_i P_i, eta = 1 (FFN) or tau (zero/copy/constant),
  f_i  = (#(token, slot) pairs that selected i) / T, no gradient (both top-k slots count),
  P_i  = mean over the T tokens of softmax(z)_i, z = the normalised logits the router selects with.
Top-k selection is a constant; gradients flow through the selected softmax weights.
"""
import math

import torch
import torch.nn.functional as F


class Spec:
    """Model description: decoder shape plus one MoE layer spec shared by all layers."""

    def __init__(self, *, vocab, d, n_layers, n_heads, n_kv_heads, kinds, d_expert, top_k=2,
                 two_layer_router=False, router_hidden=0, gating_residual=True, logits_norm=True,
                 norm_std=1.0, scoring="softmax_topk", zero_rule=True, renormalize=True,
                 input_scale=1.0, tie=False, eps=1e-6, rope_theta=10000.0, sliding_window=0):
        self.__dict__.update(locals())
        del self.__dict__["self"]
        self.head_dim = d // n_heads
        self.n_experts = len(kinds)


def param_shapes(s):
    """Ordered dict name -> shape, as src/train/train_params.cc lays them out."""
    out = {"model.embed_tokens.weight": (s.vocab, s.d)}
    hd = s.head_dim
    for l in range(s.n_layers):
        p = f"model.layers.{l}."
        out[p + "input_layernorm.weight"] = (s.d,)
        out[p + "post_attention_layernorm.weight"] = (s.d,)
        out[p + "self_attn.q_proj.weight"] = (s.n_heads * hd, s.d)
        out[p + "self_attn.k_proj.weight"] = (s.n_kv_heads * hd, s.d)
        out[p + "self_attn.v_proj.weight"] = (s.n_kv_heads * hd, s.d)
        out[p + "self_attn.o_proj.weight"] = (s.d, s.n_heads * hd)
        g = p + "mlp.moe.gate."
        if s.two_layer_router:
            out[g + "wg.0.weight"] = (s.router_hidden, s.d)
            out[g + "wg.2.weight"] = (s.n_experts, s.router_hidden)
        else:
            out[g + "wg.weight"] = (s.n_experts, s.d)
        if s.gating_residual:
            out[g + "gate_map.weight"] = (s.n_experts, s.n_experts)
        for e, kind in enumerate(s.kinds):
            q = p + f"mlp.moe.experts.experts.{e}."
            if kind == "ffn":
                out[q + "up_proj.weight"] = (2 * s.d_expert, s.d)
                out[q + "down_proj.weight"] = (s.d, s.d_expert)
            elif kind == "constant":
                out[q + "constant"] = (s.d,)
                out[q + "wg.weight"] = (2, s.d)
    out["model.norm.weight"] = (s.d,)
    if not s.tie:
        out["lm_head.weight"] = (s.vocab, s.d)
    return out


def decays(name, shape):
    """AdamW weight decay applies to 2-D matrices except the embedding (adamw.h)."""
    return len(shape) == 2 and name != "model.embed_tokens.weight"


def random_params(s, seed, router_gain=3.0):
    """float32 weights: matrices N(0, 1/fan_in), norms 1 + N(0, 0.1), embeddings N(0, 1),
    routers scaled by router_gain so that routing varies from token to token."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, shape in param_shapes(s).items():
        if len(shape) == 1:
            v = torch.randn(shape, generator=g) * (1.0 if name.endswith(".constant") else 0.1)
            if not name.endswith(".constant"):
                v = v + 1.0
        elif name == "model.embed_tokens.weight":
            v = torch.randn(shape, generator=g)
        else:
            gain = router_gain if ".gate.wg" in name else (0.5 if "gate_map" in name else 1.0)
            v = torch.randn(shape, generator=g) * gain / math.sqrt(shape[1])
        out[name] = v.float()
    return out


def rmsnorm(x, w, eps):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def rope(x, pos_cos, pos_sin):
    h = x.shape[-1] // 2
    rot = torch.cat((-x[..., h:], x[..., :h]), dim=-1)
    return x * pos_cos + rot * pos_sin


def attention(s, P, l, x, n_seqs, T):
    p = f"model.layers.{l}.self_attn."
    hd = s.head_dim
    q = F.linear(x, P[p + "q_proj.weight"]).view(n_seqs, T, s.n_heads, hd).transpose(1, 2)
    k = F.linear(x, P[p + "k_proj.weight"]).view(n_seqs, T, s.n_kv_heads, hd).transpose(1, 2)
    v = F.linear(x, P[p + "v_proj.weight"]).view(n_seqs, T, s.n_kv_heads, hd).transpose(1, 2)
    # inv_freq and angles in f32 as HF (and the engine) compute them
    inv_freq = 1.0 / (s.rope_theta ** (torch.arange(0, hd, 2).float() / hd))
    ang = torch.arange(T, dtype=torch.float32)[:, None] * inv_freq[None, :]
    emb = torch.cat((ang, ang), dim=-1)
    cos, sin = emb.cos().to(x.dtype), emb.sin().to(x.dtype)
    q, k = rope(q, cos, sin), rope(k, cos, sin)
    rep = s.n_heads // s.n_kv_heads
    k = k.repeat_interleave(rep, dim=1)
    v = v.repeat_interleave(rep, dim=1)
    scores = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(hd)  # [S, nh, T, T]
    i = torch.arange(T)[:, None]
    j = torch.arange(T)[None, :]
    visible = j <= i
    if s.sliding_window:
        visible = visible & (j > i - s.sliding_window)
    scores = scores.masked_fill(~visible, float("-inf"))
    probs = F.softmax(scores, dim=-1)
    o = torch.matmul(probs, v).transpose(1, 2).reshape(n_seqs * T, s.n_heads * hd)
    return F.linear(o, P[p + "o_proj.weight"])


def capacity_mask(s, idx, factor, tau, per_slot):
    """Heterogeneous capacity (paper Eq. 8, src/train/moe_grad.h): bool [n, k], False where the
    slot is dropped; first choices before second choices, then token order."""
    n, k = idx.shape
    kept = torch.ones(n, k, dtype=torch.bool)
    if factor <= 0:
        return kept
    t_eff = n * k if per_slot else n
    n_ffn = s.kinds.count("ffn")
    denom = tau * n_ffn + (s.n_experts - n_ffn)
    left = [math.ceil(factor * (tau if kind == "ffn" else 1.0) * t_eff / denom) for kind in s.kinds]
    for j in range(k):
        for t in range(n):
            e = int(idx[t, j])
            if left[e] > 0:
                left[e] -= 1
            else:
                kept[t, j] = False
    return kept


def moe(s, P, l, x, prev, capacity=(0.0, 0.75, False)):
    """x [n, d] -> (y [n, d], raw logits [n, N], probs [n, N], idx [n, k], margin [n], kept [n, k])."""
    g = f"model.layers.{l}.mlp.moe.gate."
    if s.two_layer_router:
        raw = F.linear(torch.tanh(F.linear(x, P[g + "wg.0.weight"])), P[g + "wg.2.weight"])
    else:
        raw = F.linear(x, P[g + "wg.weight"])
    if s.gating_residual and prev is not None:
        raw = raw + F.linear(prev, P[g + "gate_map.weight"])
    z = raw / (raw.std(dim=1, keepdim=True) / s.norm_std) if s.logits_norm else raw
    probs = F.softmax(z, dim=1)
    k = s.top_k
    if s.scoring == "softmax_topk":
        top, idx = torch.topk(probs.detach(), k + 1, dim=1)
        idx = idx[:, :k]
        gates = probs.gather(1, idx)
        if s.zero_rule:
            is_zero = torch.tensor([kind == "zero" for kind in s.kinds])[idx]
            gates = torch.where(is_zero, torch.zeros_like(gates), gates)
        if s.renormalize:
            gates = gates / gates.sum(dim=1, keepdim=True)
    else:
        top, idx = torch.topk(z.detach(), k + 1, dim=1)
        idx = idx[:, :k]
        gates = F.softmax(z.gather(1, idx), dim=1)
    margin = (top[:, k - 1] - top[:, k]) / top[:, 0].abs().clamp_min(1e-30)
    kept = capacity_mask(s, idx, *capacity)
    xs = x * s.input_scale
    y = torch.zeros_like(x)
    for e, kind in enumerate(s.kinds):
        tok, slot = torch.nonzero((idx == e) & kept, as_tuple=True)
        if tok.numel() == 0:
            continue
        t = xs.index_select(0, tok)
        q = f"model.layers.{l}.mlp.moe.experts.experts.{e}."
        if kind == "ffn":
            a, b = torch.chunk(F.linear(t, P[q + "up_proj.weight"]), 2, dim=-1)
            out = F.linear(F.silu(a) * b, P[q + "down_proj.weight"])
        elif kind == "constant":
            al = F.softmax(F.linear(t, P[q + "wg.weight"]), dim=-1)
            out = al[:, :1] * t + al[:, 1:] * P[q + "constant"][None, :]
        elif kind == "copy":
            out = t
        else:
            out = torch.zeros_like(t)
        y = y.index_add(0, tok, out * gates[tok, slot].unsqueeze(-1))
    return y, raw, probs, idx, margin, kept


def loss(s, P, tokens, targets, beta=0.01, tau=0.75, layers="sum", scale_by_n_experts=False,
         capacity_factor=0.0, capacity_per_slot=False):
    """tokens, targets: long [n_seqs, T]. Returns dict: loss, ce, balance, balance_per_layer,
    expert_counts (per layer, per expert), dropped (per layer), min_margin (smallest relative
    top-k margin)."""
    n_seqs, T = tokens.shape
    n = n_seqs * T
    h = P["model.embed_tokens.weight"][tokens.reshape(-1)]
    prev, lbs, counts, margins, dropped = None, [], [], [], []
    eta = torch.tensor([1.0 if kind == "ffn" else tau for kind in s.kinds], dtype=h.dtype)
    for l in range(s.n_layers):
        p = f"model.layers.{l}."
        h = h + attention(s, P, l, rmsnorm(h, P[p + "input_layernorm.weight"], s.eps), n_seqs, T)
        y, raw, probs, idx, margin, kept = moe(s, P, l, rmsnorm(h, P[p + "post_attention_layernorm.weight"], s.eps),
                                               prev, (capacity_factor, tau, capacity_per_slot))
        dropped.append(int((~kept).sum()))
        h = h + y
        prev = raw
        cnt = torch.bincount(idx.reshape(-1), minlength=s.n_experts)
        f = cnt.to(h.dtype) / n
        lb = (eta * f * probs.mean(0)).sum()
        if scale_by_n_experts:
            lb = lb * s.n_experts
        lbs.append(lb)
        counts.append(cnt.tolist())
        margins.append(margin.min().item())
    h = rmsnorm(h, P["model.norm.weight"], s.eps)
    head = P["model.embed_tokens.weight"] if s.tie else P["lm_head.weight"]
    logits = F.linear(h, head)
    ce = F.cross_entropy(logits, targets.reshape(-1), ignore_index=-100)
    balance = sum(lbs) if layers == "sum" else sum(lbs) / len(lbs)
    return {"loss": ce + beta * balance, "ce": ce, "balance": balance, "balance_per_layer": lbs,
            "expert_counts": counts, "dropped": dropped, "min_margin": min(margins)}


def lr_at(step, o):
    """src/train/lr_schedule.cc."""
    if step < o["warmup_steps"]:
        return o["init_lr"] + (o["max_lr"] - o["init_lr"]) * (step + 1) / o["warmup_steps"]
    decay = max(1, o["total_steps"] - o["warmup_steps"])
    q = min(1.0, (step - o["warmup_steps"]) / decay)
    return o["min_lr"] + (o["max_lr"] - o["min_lr"]) * 0.5 * (1.0 + math.cos(math.pi * q))


def train_steps(s, P, tokens, targets, o, steps, loss_kw):
    """`steps` optimiser steps with torch.optim.AdamW (decay / no-decay groups),
    clip_grad_norm_, the warm-up + cosine LR and o["grad_accum"] micro-batches (split by
    sequence) whose gradients are averaged. P: dict of leaf tensors (updated in place).
    Returns per-step dicts of loss (mean over micro-batches), grad_norm and lr."""
    shapes = param_shapes(s)
    decay = [P[n] for n in P if decays(n, shapes[n])]
    no_decay = [P[n] for n in P if not decays(n, shapes[n])]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": o["weight_decay"]},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=o["max_lr"], betas=(o["beta1"], o["beta2"]), eps=o["eps"])
    acc = o["grad_accum"]
    per = tokens.shape[0] // acc
    out = []
    for step in range(steps):
        opt.zero_grad()
        total = 0.0
        for i in range(acc):
            r = loss(s, P, tokens[i * per:(i + 1) * per], targets[i * per:(i + 1) * per], **loss_kw)
            (r["loss"] / acc).backward()
            total += r["loss"].item() / acc
        params = [t for t in P.values()]
        for t in params:
            if t.grad is None:
                t.grad = torch.zeros_like(t)
        norm = torch.nn.utils.clip_grad_norm_(params, o["clip_norm"]).item()
        lr = lr_at(step, o)
        for group in opt.param_groups:
            group["lr"] = lr
        opt.step()
        out.append({"loss": total, "grad_norm": norm, "lr": lr})
    return out
