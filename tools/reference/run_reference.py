#!/usr/bin/python3
"""Runs the PyTorch reference on a checkpoint directory and writes what the engine is compared with.

  /usr/bin/python3 tools/reference/run_reference.py -m DIR --ids 1,2,3 --logits OUT.f32
      [--routes OUT.json] [--dtype f32|bf16] [--chunk K] [--dump-dir DIR]

logits: little-endian float32 [n_tokens, vocab_size], every position.
routes: {"layers": [[[e, ...] per token] per layer], "margins": [[m per token] per layer],
         "weights": [[[w, ...] per token] per layer], "runner_up": [[e per token] per layer],
         "scales": [[s per token] per layer]}; experts in selection order (descending score),
         margin = k-th minus (k+1)-th best selection score in the space selection is done
         (probabilities for softmax-then-top-k, normalised logits for MoE++ mixtral gating, raw
         logits for llama_moe), runner_up = the (k+1)-th expert, scale = the margin's noise
         scale (common.topk_margin). Experts' weights are the ones applied to their outputs.
--chunk K feeds the prompt K tokens at a time through the KV cache (default: all at once).
--dump-dir writes layer_XX.f32 = hidden state after decoder layer XX, float32 [n_tokens, d].
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from common import DTYPES, load_checkpoint, routes_to_json  # noqa: E402
from llama_moe_ref import LlamaMoERef  # noqa: E402
from mixtral_ref import MixtralRef  # noqa: E402
from moepp_ref import MoePPRef  # noqa: E402

FAMILIES = {"MoE++": MoePPRef, "mixtral": MixtralRef, "llama_moe": LlamaMoERef}


def build_model(cfg, sd, dtype):
    cls = FAMILIES.get(cfg.get("model_type"))
    if cls is None:
        raise ValueError(f"unsupported model_type {cfg.get('model_type')!r}")
    return cls(cfg, sd, dtype)


def load_model(model_dir, dtype="f32"):
    cfg, sd = load_checkpoint(model_dir)
    return build_model(cfg, sd, DTYPES[dtype])


def write_f32(path, t):
    np.ascontiguousarray(t.detach().float().numpy(), dtype="<f4").tofile(path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-m", "--model", required=True)
    ap.add_argument("--ids", required=True, help="comma-separated token ids")
    ap.add_argument("--logits", required=True)
    ap.add_argument("--routes")
    ap.add_argument("--dtype", default="f32", choices=["f32", "bf16"])
    ap.add_argument("--chunk", type=int, default=None)
    ap.add_argument("--dump-dir")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)  # deterministic, and cheap for tiny models
    ids = [int(s) for s in a.ids.split(",") if s.strip()]
    model = load_model(a.model, a.dtype)
    logits, routes, hidden = model.run(ids, chunk=a.chunk)
    write_f32(a.logits, logits)
    if a.routes:
        with open(a.routes, "w") as f:
            json.dump(routes_to_json(routes), f)
    if a.dump_dir:
        os.makedirs(a.dump_dir, exist_ok=True)
        for l, h in enumerate(hidden):
            write_f32(os.path.join(a.dump_dir, f"layer_{l:02d}.f32"), h)
    return 0


if __name__ == "__main__":
    sys.exit(main())
