#!/usr/bin/python3
"""Writes a tiny random checkpoint in the exact Hugging Face layout of a family.

  /usr/bin/python3 tools/reference/make_tiny.py --family {moepp,mixtral,llama_moe} --preset NAME
      --out DIR [--format safetensors|safetensors-sharded|bin|bin-sharded] [--dtype f32|bf16|f16]
      [--seed N]

Files: config.json (the family's HF field names), weights (model.safetensors, or
model-0000i-of-0000N.safetensors + model.safetensors.index.json, or pytorch_model.bin, or
pytorch_model-0000i-of-0000N.bin + pytorch_model.bin.index.json; shards split on layer
boundaries), generation_config.json, tokenizer_config.json, special_tokens_map.json.
Router weights are scaled up (std ~3/sqrt(fan_in)) so routing varies from token to token.
Defaults per preset (format, dtype) follow the real model where there is one.
"""
import argparse
import copy
import json
import os
import sys
from collections import OrderedDict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

from common import DTYPES, TORCH_DTYPE_NAME, save_safetensors  # noqa: E402

# ----------------------------------------------------------------------------------------------
# presets: config.json contents (minus dtype), plus generator-only keys prefixed with "_"

MOEPP_BASE = {
    "architectures": ["MoeForCausalLM"],
    "auto_map": {"AutoConfig": "configuration_moe_plus_plus.MoeConfig",
                 "AutoModelForCausalLM": "modeling_moe_plus_plus.MoeForCausalLM"},
    "model_type": "MoE++",
    "vocab_size": 112, "hidden_size": 48, "intermediate_size": 32, "num_hidden_layers": 3,
    "num_attention_heads": 4, "num_key_value_heads": 4, "hidden_act": "silu",
    "max_position_embeddings": 64, "rope_theta": 10000, "rotary_percent": 1.0,
    "rms_norm_eps": 1e-06, "initializer_range": 0.01, "tie_word_embeddings": False,
    "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0,
    "num_experts": [8], "moe_expert_interval": 1,
    "moe_use_mixtral_gating": False, "moe_2layer_gate": False, "moe_use_logits_norm": True,
    "moe_gate_norm_std": 1.0, "moe_feature_no_mul_topk": True,
    "sliding_window": None, "use_cache": True, "transformers_version": "4.33.1",
    "_format": "bin-sharded", "_dtype": "bf16",  # the released model: .bin shards, bf16
    "_seed": 0,
}

MIXTRAL_BASE = {
    "architectures": ["MixtralForCausalLM"], "model_type": "mixtral",
    "attention_dropout": 0.0, "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu",
    "hidden_size": 32, "initializer_range": 0.02, "intermediate_size": 24,
    "max_position_embeddings": 64, "num_attention_heads": 4, "num_experts_per_tok": 2,
    "num_hidden_layers": 2, "num_key_value_heads": 2, "num_local_experts": 4,
    "output_router_logits": False, "rms_norm_eps": 1e-05, "rope_theta": 1000000.0,
    "router_aux_loss_coef": 0.02, "router_jitter_noise": 0.0, "sliding_window": None,
    "tie_word_embeddings": False, "transformers_version": "4.36.0", "use_cache": True,
    "vocab_size": 96,
    "_format": "safetensors-sharded", "_dtype": "bf16", "_seed": 0,
}

LLAMA_MOE_BASE = {
    "architectures": ["LlamaMoEForCausalLM"],
    "auto_map": {"AutoConfig": "configuration_llama_moe.LlamaMoEConfig",
                 "AutoModel": "modeling_llama_moe_hf.LlamaMoEModel",
                 "AutoModelForCausalLM": "modeling_llama_moe_hf.LlamaMoEForCausalLM"},
    "model_type": "llama_moe",
    "add_weight_norm": False, "bos_token_id": 1, "calculator_type": "UniversalCalculator",
    "capacity_factor": 1.25, "drop_tokens": True, "dropped_padding": "zero", "eos_token_id": 2,
    "gate_add_noise": True, "gate_balance_loss_weight": 0.01, "gate_network": "mlp",
    "gate_noise_epsilon": 0.01, "gate_type": "TopKBalancedNoisyGate", "gate_use_balance": True,
    "gate_use_softmax": True, "gates": "mlp", "hidden_act": "silu", "hidden_size": 48,
    "initializer_range": 0.02, "intermediate_size": 64, "max_position_embeddings": 64,
    "multiply_gate_scores": True, "num_attention_heads": 4, "num_experts": 4,
    "num_hidden_layers": 2, "num_key_value_heads": 4, "num_selects": 2, "pad_token_id": 0,
    "pretraining_tp": 1, "rms_norm_eps": 1e-05, "rope_scaling": None, "score_scale_factor": 4.0,
    "size_experts": None, "tie_word_embeddings": False, "transformers_version": "4.28.1",
    "use_cache": True, "vocab_size": 128,
    "_format": "bin-sharded", "_dtype": "bf16", "_inv_freq": True, "_seed": 0,
}


def _p(base, **kw):
    d = copy.deepcopy(base)
    d.update(kw)
    return d


PRESETS = {
    "moepp": {
        # released MoE++7B path: 1-layer router, logits norm, no x2; (4+4)E
        "7b": _p(MOEPP_BASE, _seed=15),
        # the Python defaults: 2-layer tanh router, no logits norm, expert inputs x2 (§2.9)
        "code-defaults": _p(MOEPP_BASE, moe_2layer_gate=True, moe_use_logits_norm=False,
                            moe_feature_no_mul_topk=False, _format="safetensors-sharded", _dtype="f32",
                            _seed=10),
        # top-2 on normalised logits, softmax over the two, no zero-expert zeroing; the x2 is
        # also skipped on this path although moe_feature_no_mul_topk is false
        "mixtral-gating": _p(MOEPP_BASE, moe_use_mixtral_gating=True, moe_gate_norm_std=0.5,
                             moe_feature_no_mul_topk=False, _format="bin", _dtype="f32", _seed=2),
        # MoE++ 2B layout (8 FFN + 6 constant + 1 copy + 1 zero) via the extension keys
        "2b-layout": _p(MOEPP_BASE, num_experts=[16], num_constant_experts=6, num_copy_experts=1,
                        num_zero_experts=1, hidden_size=32, intermediate_size=16,
                        num_hidden_layers=2, vocab_size=96, _format="safetensors", _seed=11),
    },
    "mixtral": {
        "default": _p(MIXTRAL_BASE, _seed=20),
        "sliding": _p(MIXTRAL_BASE, sliding_window=4, _format="safetensors", _dtype="f32", _seed=5),
    },
    "llama_moe": {
        # LLaMA-MoE-v1-3_5B-2_8 shape: mlp gate, softmax, x4.0, size_experts null
        "3_5b": _p(LLAMA_MOE_BASE, _seed=11),
        # JuncaiL/llama-8x265m-moe: fp32, bos_token_id 0 in config.json (wrong on purpose),
        # explicit size_experts, single pytorch_model.bin
        "8x265m": _p(LLAMA_MOE_BASE, hidden_size=32, num_experts=8, intermediate_size=128,
                     size_experts=[[16] * 8, [16] * 8], bos_token_id=0, pad_token_id=1,
                     vocab_size=96, _format="bin", _dtype="f32", _inv_freq=False, _seed=3),
        # linear gate, per-layer score_scale_factor, uneven expert widths, explicit rope_theta
        "linear-gate": _p(LLAMA_MOE_BASE, gate_network="linear", gates="linear", num_hidden_layers=3,
                          intermediate_size=112, score_scale_factor=[2.0, 3.0, 5.0],
                          size_experts=[[16, 24, 40, 32], [48, 16, 24, 24], [20, 28, 16, 48]],
                          rope_theta=10000.0, _format="safetensors-sharded", _dtype="f32", _seed=6),
        # gate_use_softmax false: the raw top-k logits (maybe negative) times the scale
        "no-softmax": _p(LLAMA_MOE_BASE, gate_use_softmax=False, score_scale_factor=1.5,
                         _format="bin", _dtype="f32", _seed=19),
        # multiply_gate_scores false: plain sum of the k=3 selected experts of 6
        "no-multiply": _p(LLAMA_MOE_BASE, multiply_gate_scores=False, num_experts=6, num_selects=3,
                          intermediate_size=96, _format="safetensors", _dtype="f32", _seed=7),
    },
}

ROUTER_GAIN = 3.0  # router std = ROUTER_GAIN / sqrt(fan_in): routing varies with the token


# ----------------------------------------------------------------------------------------------
# random weights, in HF state-dict order

class Init:
    def __init__(self, seed):
        self.g = torch.Generator().manual_seed(seed)

    def normal(self, shape, std):
        return torch.randn(*shape, generator=self.g) * std

    def linear(self, out, inp, gain=1.0):
        return self.normal((out, inp), gain / inp ** 0.5)

    def norm(self, n):
        return 1.0 + self.normal((n,), 0.1)


def _attention(sd, r, p, cfg):
    d, nh = cfg["hidden_size"], cfg["num_attention_heads"]
    hd = d // nh
    nkv = cfg.get("num_key_value_heads") or nh
    sd[p + "self_attn.q_proj.weight"] = r.linear(nh * hd, d)
    sd[p + "self_attn.k_proj.weight"] = r.linear(nkv * hd, d)
    sd[p + "self_attn.v_proj.weight"] = r.linear(nkv * hd, d)
    sd[p + "self_attn.o_proj.weight"] = r.linear(d, nh * hd)


def gen_moepp(cfg, r):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from moepp_ref import expert_layout
    d, inter = cfg["hidden_size"], cfg["intermediate_size"]
    kinds = expert_layout(cfg)
    n = len(kinds)
    sd = OrderedDict()
    sd["model.embed_tokens.weight"] = r.normal((cfg["vocab_size"], d), 1.0)
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        _attention(sd, r, p, cfg)
        g = p + "mlp.moe.gate."
        if cfg["moe_2layer_gate"]:
            sd[g + "wg.0.weight"] = r.linear(8 * n, d, ROUTER_GAIN)
            # tanh saturates: a smaller second-layer gain keeps the softmax from collapsing onto
            # one expert (p2 and p3 both ~0 would make every token a near-tie)
            sd[g + "wg.2.weight"] = r.linear(n, 8 * n, 2.0)
        else:
            sd[g + "wg.weight"] = r.linear(n, d, ROUTER_GAIN)
        sd[g + "gate_map.weight"] = r.linear(n, n, 0.5)  # unused in layer 0, present anyway
        for e, kind in enumerate(kinds):
            q = p + f"mlp.moe.experts.experts.{e}."
            if kind == "ffn":
                sd[q + "up_proj.weight"] = r.linear(2 * inter, d)  # rows [0,I) gate, [I,2I) up
                sd[q + "down_proj.weight"] = r.linear(d, inter)
            elif kind == "constant":
                sd[q + "constant"] = r.normal((d,), 1.0)
                sd[q + "wg.weight"] = r.linear(2, d, 2.0)
        sd[p + "input_layernorm.weight"] = r.norm(d)
        sd[p + "post_attention_layernorm.weight"] = r.norm(d)
    sd["model.norm.weight"] = r.norm(d)
    sd["lm_head.weight"] = r.linear(cfg["vocab_size"], d)
    return sd


def gen_mixtral(cfg, r):
    d, inter, n = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_local_experts"]
    sd = OrderedDict()
    sd["model.embed_tokens.weight"] = r.normal((cfg["vocab_size"], d), 1.0)
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        _attention(sd, r, p, cfg)
        sd[p + "block_sparse_moe.gate.weight"] = r.linear(n, d, ROUTER_GAIN)
        for e in range(n):
            q = p + f"block_sparse_moe.experts.{e}."
            sd[q + "w1.weight"] = r.linear(inter, d)
            sd[q + "w2.weight"] = r.linear(d, inter)
            sd[q + "w3.weight"] = r.linear(inter, d)
        sd[p + "input_layernorm.weight"] = r.norm(d)
        sd[p + "post_attention_layernorm.weight"] = r.norm(d)
    sd["model.norm.weight"] = r.norm(d)
    sd["lm_head.weight"] = r.linear(cfg["vocab_size"], d)
    return sd


def llama_moe_sizes(cfg, l):
    if cfg.get("size_experts") is not None:
        return cfg["size_experts"][l]
    return [cfg["intermediate_size"] // cfg["num_experts"]] * cfg["num_experts"]


def gen_llama_moe(cfg, r):
    d, n = cfg["hidden_size"], cfg["num_experts"]
    hd = d // cfg["num_attention_heads"]
    sd = OrderedDict()
    sd["model.embed_tokens.weight"] = r.normal((cfg["vocab_size"], d), 1.0)
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        _attention(sd, r, p, cfg)
        if cfg.get("_inv_freq"):  # persistent buffer in the LLaMA-MoE code: engines must ignore it
            sd[p + "self_attn.rotary_emb.inv_freq"] = 1.0 / (10000 ** (torch.arange(0, hd, 2).float() / hd))
        if cfg["gate_network"] == "mlp":
            sd[p + "mlp.gate.gate_network.0.weight"] = r.linear(n, d, ROUTER_GAIN)
            sd[p + "mlp.gate.gate_network.2.weight"] = r.linear(n, n, ROUTER_GAIN)
        else:
            sd[p + "mlp.gate.gate_network.weight"] = r.linear(n, d, ROUTER_GAIN)
        sd[p + "mlp.gate.weight_noise.weight"] = r.linear(n, d)  # training only
        sizes = llama_moe_sizes(cfg, l)
        for kind in ("weight_gate", "weight_up", "weight_down"):
            for e, ie in enumerate(sizes):
                name = p + f"mlp.calculator.experts.{kind}.{e}"
                sd[name] = r.linear(d, ie) if kind == "weight_down" else r.linear(ie, d)
        sd[p + "input_layernorm.weight"] = r.norm(d)
        sd[p + "post_attention_layernorm.weight"] = r.norm(d)
    sd["model.norm.weight"] = r.norm(d)
    sd["lm_head.weight"] = r.linear(cfg["vocab_size"], d)
    return sd


GENERATORS = {"moepp": gen_moepp, "mixtral": gen_mixtral, "llama_moe": gen_llama_moe}


# ----------------------------------------------------------------------------------------------
# files

def _layer_of(name):
    parts = name.split(".")
    return int(parts[2]) if name.startswith("model.layers.") else None


def shard_plan(names, n_layers):
    """Shard index (0-based) per tensor: layers split into contiguous groups (at least 2 shards),
    embeddings with the first group, final norm and lm_head with the last."""
    n_shards = min(3, max(2, n_layers))
    per = -(-n_layers // n_shards)
    plan = {}
    for n in names:
        l = _layer_of(n)
        if l is None:
            plan[n] = 0 if n.startswith("model.embed_tokens") else n_shards - 1
        else:
            plan[n] = min(l // per, n_shards - 1)
    return plan, n_shards


def write_weights(out, sd, fmt, n_layers):
    if fmt in ("safetensors", "bin"):
        if fmt == "safetensors":
            save_safetensors(os.path.join(out, "model.safetensors"), sd)
        else:
            torch.save(OrderedDict(sd), os.path.join(out, "pytorch_model.bin"))
        return
    plan, n_shards = shard_plan(list(sd), n_layers)
    st = fmt == "safetensors-sharded"
    stem, ext = ("model", "safetensors") if st else ("pytorch_model", "bin")
    wmap, total = {}, 0
    for i in range(n_shards):
        fname = f"{stem}-{i + 1:05d}-of-{n_shards:05d}.{ext}"
        part = OrderedDict((k, v) for k, v in sd.items() if plan[k] == i)
        for k, v in part.items():
            wmap[k] = fname
            total += v.numel() * v.element_size()
        if st:
            save_safetensors(os.path.join(out, fname), part)
        else:
            torch.save(part, os.path.join(out, fname))
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(wmap.items()))}
    with open(os.path.join(out, f"{stem}.{ext}.index.json"), "w") as f:
        json.dump(index, f, indent=2)
        f.write("\n")


def _dump(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")


def write_tokenizer_files(out):
    """LlamaTokenizer-style files (no tokenizer.model: ids are fed directly). bos <s>=1."""
    def tok(content):
        return {"content": content, "lstrip": False, "normalized": False, "rstrip": False,
                "single_word": False}
    added = {str(i): dict(tok(c), special=True) for i, c in enumerate(["<unk>", "<s>", "</s>"])}
    _dump(os.path.join(out, "tokenizer_config.json"), {
        "add_bos_token": True, "add_eos_token": False, "added_tokens_decoder": added,
        "bos_token": "<s>", "clean_up_tokenization_spaces": False, "eos_token": "</s>",
        "legacy": True, "model_max_length": 1000000000000000019884624838656, "pad_token": None,
        "sp_model_kwargs": {}, "spaces_between_special_tokens": False,
        "tokenizer_class": "LlamaTokenizer", "unk_token": "<unk>", "use_default_system_prompt": False,
    })
    _dump(os.path.join(out, "special_tokens_map.json"),
          {"bos_token": tok("<s>"), "eos_token": tok("</s>"), "unk_token": tok("<unk>")})


def make_tiny(family, preset, out, fmt=None, dtype=None, seed=None):
    """Writes the checkpoint; returns the config dict written."""
    spec = copy.deepcopy(PRESETS[family][preset])
    fmt = fmt or spec["_format"]
    dtype = dtype or spec["_dtype"]
    gen_keys = {k: spec.pop(k) for k in list(spec) if k.startswith("_")}
    cfg = dict(spec, torch_dtype=TORCH_DTYPE_NAME[DTYPES[dtype]])
    r = Init(gen_keys["_seed"] if seed is None else seed)
    sd = GENERATORS[family](dict(cfg, **gen_keys), r)
    # inv_freq buffers stay fp32 (checkpoint-formats.md §1.3); everything else in the file dtype
    sd = OrderedDict((k, v if k.endswith("inv_freq") else v.to(DTYPES[dtype]).contiguous())
                     for k, v in sd.items())
    os.makedirs(out, exist_ok=True)
    for f in os.listdir(out):  # a stale file of another format would change what loaders pick
        if f.endswith((".safetensors", ".bin", ".index.json")):
            os.remove(os.path.join(out, f))
    _dump(os.path.join(out, "config.json"), cfg)
    gen = {"_from_model_config": True, "bos_token_id": cfg["bos_token_id"],
           "eos_token_id": cfg["eos_token_id"], "transformers_version": cfg["transformers_version"]}
    if "pad_token_id" in cfg:
        gen["pad_token_id"] = cfg["pad_token_id"]
    _dump(os.path.join(out, "generation_config.json"), gen)
    write_tokenizer_files(out)
    write_weights(out, sd, fmt, cfg["num_hidden_layers"])
    return cfg


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--family", required=True, choices=sorted(PRESETS))
    ap.add_argument("--preset", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--format", choices=["safetensors", "safetensors-sharded", "bin", "bin-sharded"])
    ap.add_argument("--dtype", choices=sorted(DTYPES))
    ap.add_argument("--seed", type=int, help="default: the preset's seed (chosen so that no route is "
                    "a near-tie on the parity prompts)")
    a = ap.parse_args(argv)
    if a.preset not in PRESETS[a.family]:
        ap.error(f"unknown preset {a.preset!r} for {a.family}; have {sorted(PRESETS[a.family])}")
    make_tiny(a.family, a.preset, a.out, a.format, a.dtype, a.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
