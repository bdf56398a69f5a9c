"""Mixtral reference (model_type "mixtral").

Source of truth: huggingface/transformers 4.36 `models/mixtral/modeling_mixtral.py`
(MixtralSparseMoeBlock, MixtralBlockSparseTop2MLP, eager MixtralAttention), as written up in
docs checkpoint-formats.md §2 and §1.7 (sliding window: query sees itself and the previous W-1
tokens; the cache keeps every key, the mask hides the old ones).
"""
import torch
import torch.nn.functional as F

from common import DecoderRef, topk_margin


class MixtralRef(DecoderRef):
    def __init__(self, cfg, sd, dtype):
        super().__init__(cfg, sd, dtype)
        self.n_exp = cfg["num_local_experts"]
        self.top_k = cfg["num_experts_per_tok"]
        self.sliding_window = cfg.get("sliding_window")

    def rope_base(self):
        return float(self.cfg.get("rope_theta", 1e6))

    def mlp(self, l, x, state):
        p = f"model.layers.{l}.block_sparse_moe."
        logits = F.linear(x, self.w[p + "gate.weight"])  # [T, E] activation dtype
        probs = F.softmax(logits, dim=1, dtype=torch.float)  # fp32
        weights, idx = torch.topk(probs, self.top_k, dim=-1)
        weights /= weights.sum(dim=-1, keepdim=True)
        weights = weights.to(x.dtype)
        out = torch.zeros_like(x)
        for e in range(self.n_exp):
            tok, slot = torch.nonzero(idx == e, as_tuple=True)
            if tok.numel() == 0:
                continue
            t = x[tok]
            q = p + f"experts.{e}."
            y = F.silu(F.linear(t, self.w[q + "w1.weight"])) * F.linear(t, self.w[q + "w3.weight"])
            y = F.linear(y, self.w[q + "w2.weight"])
            y = weights[tok, slot, None] * y
            out.index_add_(0, tok, y.to(x.dtype))
        route = dict(experts=idx, weights=weights.float(), **topk_margin(probs, self.top_k, logits=logits))
        return out, None, route
