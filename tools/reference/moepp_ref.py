"""MoE++ reference (model_type "MoE++").

Source of truth: SkyworkAI/MoE-plus-plus `MoE++/modeling_moe_plus_plus.py` (MoeForCausalLM) and
`MoE++/moe_plus_plus_layer.py` (Router, gating, MOELayer, ConstantExpert/CopyExpert/ZeroExpert),
as written up in docs moepp-spec.md §1-§3 (incl. the inactive paths of §2.9).

Extensions beyond the released code (hard-coded there, config keys here, defaults = released):
  num_experts_per_tok (2), num_constant_experts (2), num_copy_experts (1), num_zero_experts (1).
Expert layout per layer: [FFN..., constant..., copy..., zero...]. Zero rule generalised to
"every selected zero-kind expert gets weight 0 before renormalisation" (softmax path only).
"""
import torch
import torch.nn.functional as F

from common import DecoderRef, topk_margin

KINDS = ("ffn", "constant", "copy", "zero")


def expert_layout(cfg):
    """List of kinds, one per expert index."""
    n = cfg["num_experts"][0]
    nc = cfg.get("num_constant_experts", 2)
    ncopy = cfg.get("num_copy_experts", 1)
    nz = cfg.get("num_zero_experts", 1)
    nffn = n - nc - ncopy - nz
    assert nffn >= 0, "more zero-computation experts than experts"
    return ["ffn"] * nffn + ["constant"] * nc + ["copy"] * ncopy + ["zero"] * nz


class MoePPRef(DecoderRef):
    def __init__(self, cfg, sd, dtype):
        super().__init__(cfg, sd, dtype)
        assert cfg.get("moe_expert_interval", 1) == 1, "only moe_expert_interval 1 is functional"
        self.kinds = expert_layout(cfg)
        self.n_exp = len(self.kinds)
        self.top_k = cfg.get("num_experts_per_tok", 2)
        self.mixtral_gating = cfg.get("moe_use_mixtral_gating", False)
        self.two_layer = cfg.get("moe_2layer_gate", True)
        self.logits_norm = cfg.get("moe_use_logits_norm", False)
        self.norm_std = cfg.get("moe_gate_norm_std", 1.0)
        self.no_mul_topk = cfg.get("moe_feature_no_mul_topk", False)
        self.is_zero = torch.tensor([k == "zero" for k in self.kinds])

    def router_logits(self, l, x, gate_residual):
        """x [T, d] -> raw logits fp32 [T, N] (incl. the gating residual, which is what the next
        layer receives). The router module is force-cast to fp32; gate_map stays in weight dtype."""
        p = f"model.layers.{l}.mlp.moe.gate."
        x32 = x.float()
        if self.two_layer:
            hmid = torch.tanh(F.linear(x32, self.w[p + "wg.0.weight"].float()))  # [T, 8N]
            logits = F.linear(hmid, self.w[p + "wg.2.weight"].float())
        else:
            logits = F.linear(x32, self.w[p + "wg.weight"].float())
        if gate_residual is not None:
            gm = self.w[p + "gate_map.weight"]  # [N, N]
            logits += F.linear(gate_residual.to(gm.dtype), gm)  # in place into fp32, as HF
        return logits

    def gating(self, logits):
        """-> indices [T, k], gates fp32 [T, k], near-tie info (topk_margin) in the selection space."""
        k = self.top_k
        if self.mixtral_gating:
            z = logits
            if self.logits_norm:
                z = logits / (logits.std(dim=1, keepdim=True) / self.norm_std)
            top, idx = torch.topk(z, k=k, dim=1)
            gates = F.softmax(top, dim=1)  # no zero-expert zeroing on this path (§2.9)
            return idx, gates, topk_margin(z, k)
        z = logits / (logits.std(dim=1, keepdim=True) / self.norm_std) if self.logits_norm else logits
        probs = F.softmax(z, dim=1)  # [T, N] fp32
        gates, idx = torch.topk(probs, k=k, dim=1)
        gates = torch.where(self.is_zero[idx], torch.zeros_like(gates), gates)
        gates /= torch.sum(gates, dim=1, keepdim=True)
        return idx, gates, topk_margin(probs, k, logits=z)

    def expert(self, l, e, t):
        """t [n, d] -> [n, d] in the activation dtype."""
        p = f"model.layers.{l}.mlp.moe.experts.experts.{e}."
        kind = self.kinds[e]
        if kind == "ffn":
            u = F.linear(t, self.w[p + "up_proj.weight"])  # [n, 2I]: gate half, then up half
            a, b = torch.chunk(u, 2, dim=-1)
            return F.linear(F.silu(a) * b, self.w[p + "down_proj.weight"])
        if kind == "constant":
            wgt = F.softmax(F.linear(t, self.w[p + "wg.weight"]), dim=-1)  # [n, 2], activation dtype
            c = self.w[p + "constant"]
            return (torch.einsum("b,bd->bd", [wgt[:, 0].type_as(t), t])
                    + torch.einsum("b,d->bd", [wgt[:, 1].type_as(t), c.type_as(t)]))
        if kind == "copy":
            return t.clone()
        return torch.zeros_like(t)

    def mlp(self, l, x, gate_residual):
        logits = self.router_logits(l, x, gate_residual)
        idx, gates, ties = self.gating(logits)
        if not (self.mixtral_gating or self.no_mul_topk):
            x = x * self.top_k  # HF does this in place after routing: experts see k*x
        out = torch.zeros_like(x)  # [T, d] activation dtype
        for e in range(self.n_exp):  # expert-index order, as HF iterates expert_info
            tok, slot = torch.nonzero(idx == e, as_tuple=True)
            if tok.numel() == 0:
                continue
            y = self.expert(l, e, x.index_select(0, tok))
            y *= gates[tok, slot].unsqueeze(-1)  # bf16 *= fp32: one rounding
            out.index_add_(0, tok, y)
        route = dict(experts=idx, weights=gates, **ties)
        return out, logits, route
