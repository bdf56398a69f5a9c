#!/usr/bin/python3
"""Training pass of moepp (src/train/) against PyTorch autograd (tools/reference/train_ref.py).

For each tiny random model (MoE++ with a 1-layer router, MoE++ with a 2-layer router and x top_k
input scaling and tied embeddings, MoE++ with Mixtral-style gating, and a vanilla Mixtral MoE with
a sliding window), writes a Hugging Face checkpoint (f32), runs the C++ driver
(tests/train/train_check.cc) and compares, against a float64 autograd reference:
  - the loss, cross-entropy and every layer's load-balance loss (relative error <= 1e-4),
  - the selected experts per layer (counts must match; every expert kind must be selected),
  - the gradient of every parameter: max|g_cpp - g_ref| / max|g_ref| <= 1e-4 per tensor,
  - for two models, 3 AdamW steps (2 micro-batches, clipping active, warm-up + cosine LR) against
    torch.optim.AdamW: per-step loss, gradient norm and LR, and every parameter afterwards
    (max|p_cpp - p_ref| <= 1e-4 max|p_ref| per tensor).
"""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools", "reference"))

import torch  # noqa: E402

import train_ref  # noqa: E402
from common import load_safetensors, save_safetensors  # noqa: E402

TOL = 1e-4
OPT = {"beta1": 0.9, "beta2": 0.95, "eps": 1e-8, "weight_decay": 0.1, "clip_norm": 0.5,
       "max_lr": 1e-2, "min_lr": 1e-3, "init_lr": 1e-4, "warmup_steps": 2, "total_steps": 3,
       "grad_accum": 2}

MOEPP_KINDS = ["ffn"] * 4 + ["constant"] * 2 + ["copy", "zero"]


def moepp_config(s, mixtral_gating=False):
    nc, ncopy, nz = (s.kinds.count(k) for k in ("constant", "copy", "zero"))
    return {
        "architectures": ["MoeForCausalLM"], "model_type": "MoE++", "vocab_size": s.vocab,
        "hidden_size": s.d, "intermediate_size": s.d_expert, "num_hidden_layers": s.n_layers,
        "num_attention_heads": s.n_heads, "num_key_value_heads": s.n_kv_heads, "hidden_act": "silu",
        "max_position_embeddings": 64, "rope_theta": s.rope_theta, "rms_norm_eps": s.eps,
        "tie_word_embeddings": s.tie, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0,
        "num_experts": [s.n_experts], "num_constant_experts": nc, "num_copy_experts": ncopy,
        "num_zero_experts": nz, "num_experts_per_tok": s.top_k, "moe_expert_interval": 1,
        "moe_use_mixtral_gating": mixtral_gating, "moe_2layer_gate": s.two_layer_router,
        "moe_use_logits_norm": s.logits_norm, "moe_gate_norm_std": s.norm_std,
        "moe_feature_no_mul_topk": s.input_scale == 1.0, "torch_dtype": "float32",
    }


def mixtral_config(s):
    return {
        "architectures": ["MixtralForCausalLM"], "model_type": "mixtral", "vocab_size": s.vocab,
        "hidden_size": s.d, "intermediate_size": s.d_expert, "num_hidden_layers": s.n_layers,
        "num_attention_heads": s.n_heads, "num_key_value_heads": s.n_kv_heads, "hidden_act": "silu",
        "max_position_embeddings": 64, "rope_theta": s.rope_theta, "rms_norm_eps": s.eps,
        "tie_word_embeddings": s.tie, "bos_token_id": 1, "eos_token_id": 2,
        "num_local_experts": s.n_experts, "num_experts_per_tok": s.top_k,
        "sliding_window": s.sliding_window or None, "torch_dtype": "float32",
    }


def to_mixtral_names(s, P):
    """MoE++ canonical names -> Mixtral checkpoint names (up_proj = [w1; w3], down = w2)."""
    out = {}
    for name, t in P.items():
        if ".mlp.moe.gate.wg.weight" in name:
            out[name.replace("mlp.moe.gate.wg.weight", "block_sparse_moe.gate.weight")] = t
        elif ".mlp.moe.experts.experts." in name:
            pre, rest = name.split(".mlp.moe.experts.experts.")
            e, leaf = rest.split(".", 1)
            q = f"{pre}.block_sparse_moe.experts.{e}."
            if leaf == "up_proj.weight":
                out[q + "w1.weight"], out[q + "w3.weight"] = (c.contiguous() for c in torch.chunk(t, 2, 0))
            else:
                out[q + "w2.weight"] = t
        else:
            out[name] = t
    return out


CASES = [
    # name, spec, family, loss options, seed, run optimiser steps
    ("moepp-linear-router", train_ref.Spec(vocab=64, d=32, n_layers=2, n_heads=4, n_kv_heads=2, kinds=MOEPP_KINDS,
                                           d_expert=16), "moepp", {}, 1, True),
    ("moepp-mlp-router-x2-tied", train_ref.Spec(vocab=64, d=32, n_layers=3, n_heads=4, n_kv_heads=4,
                                                kinds=MOEPP_KINDS, d_expert=16, two_layer_router=True,
                                                router_hidden=64, norm_std=0.5, input_scale=2.0, tie=True),
     "moepp", {"beta": 0.5, "tau": 0.3, "layers": "mean", "scale_by_n_experts": True}, 2, False),
    ("moepp-mixtral-gating", train_ref.Spec(vocab=64, d=32, n_layers=2, n_heads=4, n_kv_heads=1,
                                            kinds=MOEPP_KINDS, d_expert=16, scoring="topk_softmax",
                                            zero_rule=False), "moepp-mixtral-gating", {"beta": 0.1}, 3, False),
    # Eq. 8 capacity: gamma 1.0 over tokens, many FFN and zero-computation slots dropped
    ("moepp-capacity", train_ref.Spec(vocab=64, d=32, n_layers=2, n_heads=4, n_kv_heads=2, kinds=MOEPP_KINDS,
                                      d_expert=16), "moepp", {"capacity_factor": 1.0}, 5, False),
    ("vanilla-capacity-slots", train_ref.Spec(vocab=64, d=32, n_layers=2, n_heads=4, n_kv_heads=2,
                                              kinds=["ffn"] * 6, d_expert=16, gating_residual=False,
                                              logits_norm=False), "mixtral",
     {"capacity_factor": 1.1, "capacity_per_slot": True}, 7, False),
    ("vanilla-mixtral-sliding", train_ref.Spec(vocab=64, d=32, n_layers=2, n_heads=4, n_kv_heads=2,
                                               kinds=["ffn"] * 6, d_expert=16, gating_residual=False,
                                               logits_norm=False, sliding_window=5), "mixtral", {}, 4, True),
]


def rel(a, b):
    return abs(a - b) / max(abs(b), 1e-30)


def run_case(name, s, family, loss_kw, seed, steps, args):
    work = os.path.join(args.work, name)
    model_dir = os.path.join(work, "model")
    os.makedirs(model_dir, exist_ok=True)
    P32 = train_ref.random_params(s, seed)
    if family == "mixtral":
        cfg, tensors = mixtral_config(s), to_mixtral_names(s, P32)
    else:
        cfg, tensors = moepp_config(s, family == "moepp-mixtral-gating"), P32
    with open(os.path.join(model_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    save_safetensors(os.path.join(model_dir, "model.safetensors"), tensors)

    g = torch.Generator().manual_seed(100 + seed)
    n_seqs, T = 4, 12
    tokens = torch.randint(0, s.vocab, (n_seqs, T), generator=g)
    targets = torch.cat([tokens[:, 1:], torch.full((n_seqs, 1), -100)], dim=1)
    targets[0, 3] = -100  # an ignored label inside a sequence
    job = {"model": model_dir, "out": work, "threads": 2, "tokens": tokens.tolist(),
           "targets": targets.tolist(), **loss_kw}
    if steps:
        job.update(steps=3, optimizer=OPT)
    job_path = os.path.join(work, "job.json")
    with open(job_path, "w") as f:
        json.dump(job, f)
    res = subprocess.run([args.bin, job_path], capture_output=True, text=True)
    if res.returncode != 0:
        raise AssertionError(f"{name}: driver failed: {res.stderr.strip()}")
    with open(os.path.join(work, "report.json")) as f:
        rep = json.load(f)

    # Reference in float64 from the same f32 weights.
    P = {k: v.double().requires_grad_(True) for k, v in P32.items()}
    ref = train_ref.loss(s, P, tokens, targets, **loss_kw)
    ref["loss"].backward()
    failures = []
    # f32 routing noise is ~1e-6 relative; a smaller margin could flip the choice between engines
    if ref["min_margin"] < 1e-5:
        failures.append(f"near-tie in the reference routing (relative margin {ref['min_margin']:.2e}); change the seed")
    if rep["dropped"] != ref["dropped"]:
        failures.append(f"capacity drops differ: cpp {rep['dropped']} ref {ref['dropped']}")
    if loss_kw.get("capacity_factor") and not all(ref["dropped"]):
        failures.append(f"capacity never drops a slot in some layer: {ref['dropped']}")
    if rep["expert_counts"] != ref["expert_counts"]:
        failures.append(f"expert counts differ: cpp {rep['expert_counts']} ref {ref['expert_counts']}")
    used = {s.kinds[e] for layer in ref["expert_counts"] for e, c in enumerate(layer) if c > 0}
    if used != set(s.kinds):
        failures.append(f"not every expert kind is selected: {sorted(used)} of {sorted(set(s.kinds))}")
    worst = ("", 0.0)
    for key in ("loss", "ce", "balance"):
        e = rel(rep[key], ref[key].item())
        if e > TOL:
            failures.append(f"{key}: cpp {rep[key]!r} ref {ref[key].item()!r} rel {e:.2e}")
        worst = max(worst, (key, e), key=lambda x: x[1])
    for l, (a, b) in enumerate(zip(rep["balance_per_layer"], ref["balance_per_layer"])):
        e = rel(a, b.item())
        if e > TOL:
            failures.append(f"balance layer {l}: cpp {a!r} ref {b.item()!r} rel {e:.2e}")

    grads = load_safetensors(os.path.join(work, "grads.safetensors"))
    if set(grads) != set(P):
        failures.append(f"gradient names differ: only cpp {sorted(set(grads) - set(P))}, only ref {sorted(set(P) - set(grads))}")
    nonzero_gate_map = False
    worst_grad = ("", 0.0)
    for n, t in P.items():
        if n not in grads:
            continue
        gr = t.grad if t.grad is not None else torch.zeros_like(t)
        gc = grads[n].double()
        scale = gr.abs().max().item()
        err = (gc - gr).abs().max().item()
        e = err / scale if scale > 0 else (0.0 if err == 0 else float("inf"))
        if "gate_map" in n and scale > 0:
            nonzero_gate_map = True
        if e > TOL:
            failures.append(f"grad {n}: max|diff| {err:.3e}, max|ref| {scale:.3e}, rel {e:.2e}")
        worst_grad = max(worst_grad, (n, e), key=lambda x: x[1])
    if s.gating_residual and not nonzero_gate_map:
        failures.append("gate_map gradients are all zero in the reference: the gating residual is not exercised")
    print(f"{name}: loss {rep['loss']:.6f} (ref {ref['loss'].item():.6f}), worst loss rel {worst[1]:.1e}, "
          f"worst grad rel {worst_grad[1]:.1e} ({worst_grad[0]}), counts {rep['expert_counts']}"
          + (f", dropped {rep['dropped']}" if loss_kw.get("capacity_factor") else ""))

    if steps:
        Ps = {k: v.double().requires_grad_(True) for k, v in P32.items()}
        ref_steps = train_ref.train_steps(s, Ps, tokens, targets, OPT, 3, loss_kw)
        if not any(r["grad_norm"] > OPT["clip_norm"] for r in ref_steps):
            failures.append(f"clipping never active: grad norms {[r['grad_norm'] for r in ref_steps]}")
        for i, (a, b) in enumerate(zip(rep["steps"], ref_steps)):
            for key in ("loss", "grad_norm", "lr"):
                e = rel(a[key], b[key])
                if e > TOL:
                    failures.append(f"step {i} {key}: cpp {a[key]!r} ref {b[key]!r} rel {e:.2e}")
        after = load_safetensors(os.path.join(work, "params_after.safetensors"))
        worst_p = ("", 0.0)
        for n, t in Ps.items():
            pc = after[n].double()
            scale = t.detach().abs().max().item()
            e = (pc - t.detach()).abs().max().item() / scale
            moved = (t.detach() - P32[n].double()).abs().max().item()
            if e > TOL:
                failures.append(f"params after 3 steps {n}: rel {e:.2e} (update size {moved:.2e})")
            worst_p = max(worst_p, (n, e), key=lambda x: x[1])
        print(f"  3 AdamW steps: losses {[round(r['loss'], 5) for r in rep['steps']]}, grad norms "
              f"{[round(r['grad_norm'], 4) for r in ref_steps]}, worst param rel {worst_p[1]:.1e} ({worst_p[0]})")
    return failures


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True, help="moepp_train_check")
    ap.add_argument("--work", required=True)
    ap.add_argument("--only", help="run one case")
    args = ap.parse_args()
    torch.set_num_threads(1)
    failures = []
    for name, s, family, loss_kw, seed, steps in CASES:
        if args.only and name != args.only:
            continue
        failures += [f"{name}: {f}" for f in run_case(name, s, family, loss_kw, seed, steps, args)]
    for f in failures:
        print("FAIL", f)
    print("OK" if not failures else f"{len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
