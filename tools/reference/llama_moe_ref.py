"""LLaMA-MoE v1 / SpecMoE reference (model_type "llama_moe").

Source of truth: pjlab-sys4nlp/llama-moe `smoe/models/llama_moe/modeling_llama_moe_hf.py`
(TopKBalancedNoisyGate at inference, UniversalCalculator, LinearGLUExperts,
LlamaMoEDecoderLayer), as written up in docs checkpoint-formats.md §3. That file builds its
rotary embedding without a base argument, so RoPE uses 10000 whatever the config says.
"""
import torch
import torch.nn.functional as F

from common import DecoderRef, topk_margin


class LlamaMoERef(DecoderRef):
    def __init__(self, cfg, sd, dtype):
        super().__init__(cfg, sd, dtype)
        self.n_exp = cfg["num_experts"]
        self.top_k = cfg["num_selects"]
        self.gate_network = cfg.get("gate_network", "mlp").lower()
        self.use_softmax = cfg.get("gate_use_softmax", True)
        self.multiply = cfg.get("multiply_gate_scores", True)
        ssf = cfg.get("score_scale_factor", 1.0)
        self.scale = [ssf[l] if isinstance(ssf, list) else ssf for l in range(self.n_layers)]

    def rope_base(self):
        return 10000.0

    def mlp(self, l, x, state):
        p = f"model.layers.{l}.mlp."
        if self.gate_network == "mlp":
            z = F.linear(torch.tanh(F.linear(x, self.w[p + "gate.gate_network.0.weight"])),
                         self.w[p + "gate.gate_network.2.weight"])
        else:
            z = F.linear(x, self.w[p + "gate.gate_network.weight"])
        # [T, E] activation dtype; noise is training-only
        k = self.top_k
        top_logits, top_idx = z.topk(min(k + 1, self.n_exp), dim=1)
        zk, idx = top_logits[:, :k], top_idx[:, :k]
        scores = F.softmax(zk.to(torch.float32), dim=1) if self.use_softmax else zk
        scores = scores.to(z.dtype)
        if self.multiply:
            mult = scores * self.scale[l]  # activation dtype, rounded once
        out = torch.zeros_like(x)
        for e in range(self.n_exp):  # calculator sorts by expert index, then index_add
            tok, slot = torch.nonzero(idx == e, as_tuple=True)
            if tok.numel() == 0:
                continue
            t = x.index_select(0, tok)
            q = p + "calculator.experts."
            g = F.silu(F.linear(t, self.w[q + f"weight_gate.{e}"]))
            u = F.linear(t, self.w[q + f"weight_up.{e}"])
            y = F.linear(g * u, self.w[q + f"weight_down.{e}"])
            if self.multiply:
                y = torch.mul(y, mult[tok, slot].reshape(-1, 1))
            out.index_add_(0, tok, y)
        weights = (mult if self.multiply else torch.ones_like(scores)).float()
        route = dict(experts=idx, weights=weights, **topk_margin(z, k))
        return out, None, route
