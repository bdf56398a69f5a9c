#!/usr/bin/python3
"""Sanity checks of the reference itself (not of the engine).

  /usr/bin/python3 tools/reference/self_check.py [--work DIR]

For every preset, on the parity prompts (common.default_prompts):
  * KV-cached runs (chunk 1 and 5) equal the full-sequence run (routes identical, logits within
    fp32 noise);
  * the bf16 run stays within common.bf16_rel_tol of the f32 run (before any route flip, and
    flips only at bf16 near-ties); not asserted for raw-logit routing weights (cancellation);
  * MoE++: every expert kind (ffn, constant, copy, zero) is selected somewhere;
  * MoE++ softmax path: a selected zero expert gets weight 0 and its partner exactly 1.0;
  * MoE++ mixtral-gating: a selected zero expert keeps a non-zero weight;
  * Mixtral sliding: the window changes the logits of positions >= window, not the earlier ones.
Prints one line per check and exits non-zero on any failure.
"""
import argparse
import copy
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

from common import (DTYPES, bf16_rel_tol, default_prompts, load_checkpoint,  # noqa: E402
                    route_excuse_threshold)
from make_tiny import PRESETS, make_tiny  # noqa: E402
from run_reference import build_model  # noqa: E402


def rel(a, b):
    return float((a - b).abs().max() / b.abs().max())


def same_routes(ra, rb):
    return all(torch.equal(a["experts"].sort(-1).values, b["experts"].sort(-1).values)
               for a, b in zip(ra, rb))


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--work")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    if a.work:
        return run_checks(a.work)
    with tempfile.TemporaryDirectory(prefix="moepp_selfcheck_") as work:  # removed afterwards
        return run_checks(work)


def run_checks(work):
    fails = []

    def check(name, ok, info=""):
        print(f"{'PASS' if ok else 'FAIL'} {name} {info}")
        if not ok:
            fails.append(name)

    for family, presets in PRESETS.items():
        for preset in presets:
            tag = f"{family}/{preset}"
            d = os.path.join(work, f"{family}-{preset}")
            make_tiny(family, preset, d, fmt="safetensors", dtype="f32")
            cfg, sd = load_checkpoint(d)
            m32 = build_model(cfg, sd, DTYPES["f32"])
            m16 = build_model(cfg, sd, DTYPES["bf16"])
            prompts = default_prompts(cfg["vocab_size"])
            L = cfg["num_hidden_layers"]
            worst_kv, worst_bf, n_flips, unexcused, min_margin = 0.0, 0.0, 0, 0, float("inf")
            kv_routes_ok = True
            all_routes = []
            for ids in prompts:
                full = m32.run(ids)
                all_routes.append(full[1])
                for chunk in (1, 5):
                    inc = m32.run(ids, chunk=chunk)
                    worst_kv = max(worst_kv, rel(inc[0], full[0]))
                    kv_routes_ok &= same_routes(inc[1], full[1])
                b = m16.run(ids)
                # bf16 vs f32: logits compared before the first (layer, token) whose routes differ;
                # such a flip must be a near-tie at bf16 resolution
                cut = len(ids)
                for l, (rb, rf) in enumerate(zip(b[1], full[1])):
                    diff = (rb["experts"].sort(-1).values != rf["experts"].sort(-1).values).any(-1)
                    for t in torch.nonzero(diff).flatten().tolist():
                        n_flips += 1
                        cut = min(cut, t)
                        thr = route_excuse_threshold("bf16", L, rf["scales"][t])
                        unexcused += int(float(rf["margins"][t]) >= thr)
                if cut:
                    worst_bf = max(worst_bf, float((b[0][:cut] - full[0][:cut]).abs().max() / full[0].abs().max()))
                min_margin = min(min_margin, min(float(r["margins"].min()) for r in full[1]))
            check(f"{tag} kv-cache==full", worst_kv < 1e-5 and kv_routes_ok,
                  f"max rel {worst_kv:.2e} routes {'same' if kv_routes_ok else 'DIFFER'}")
            tol = bf16_rel_tol(L)
            info = (f"max rel {worst_bf:.3e} (tol {tol:.3f}), route flips {n_flips} "
                    f"(not near-ties: {unexcused}), min f32 margin {min_margin:.2e}")
            if cfg.get("gate_use_softmax", True):
                check(f"{tag} bf16~f32", worst_bf <= tol and unexcused == 0, info)
            else:  # raw logits as weights: +/- weights cancel, so bf16 error is unbounded relatively
                print(f"INFO {tag} bf16~f32 {info} (raw-logit weights, not asserted)")

            if family == "moepp":
                kinds = m32.kinds
                used = {kinds[e] for routes in all_routes for r in routes for e in r["experts"].flatten().tolist()}
                check(f"{tag} all expert kinds routed", used == set(kinds), f"used {sorted(used)}")
                pairs = [(r["experts"], r["weights"]) for routes in all_routes for r in routes]
                zero_sel = [(e, w) for ex, wt in pairs for e, w in zip(ex.tolist(), wt.tolist())
                            if any(kinds[i] == "zero" for i in e)]
                if cfg["moe_use_mixtral_gating"]:
                    ok = bool(zero_sel) and all(w[[kinds[i] for i in e].index("zero")] > 0 for e, w in zero_sel)
                    check(f"{tag} zero expert keeps weight (mixtral gating)", ok, f"{len(zero_sel)} pairs")
                else:
                    ok = bool(zero_sel) and all(
                        sorted(w) == [0.0, 1.0] and w[[kinds[i] for i in e].index("zero")] == 0.0
                        for e, w in zero_sel)
                    check(f"{tag} {{x, zero}} -> partner weight 1.0", ok, f"{len(zero_sel)} pairs")

            if family == "mixtral" and cfg.get("sliding_window"):
                W = cfg["sliding_window"]
                cfg_nw = copy.deepcopy(cfg)
                cfg_nw["sliding_window"] = None
                mnw = build_model(cfg_nw, sd, DTYPES["f32"])
                ids = max(prompts, key=len)
                lw, lnw = m32.run(ids)[0], mnw.run(ids)[0]
                head = float((lw[:W] - lnw[:W]).abs().max())
                tail = float((lw[W:] - lnw[W:]).abs().max())
                check(f"{tag} window matters", head == 0.0 and tail > 1e-2,
                      f"|d| first {W} positions {head:.1e}, later {tail:.2e}")

    print(f"self-check: {len(fails)} failed")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
