#!/usr/bin/python3
"""Whole-model error budget of the quantised weight formats: logits with --weights q8 / q4
against the same model in f32, as the mean KL divergence KL(p_f32 || p_quant) over positions.

`moepp quantize` must store exactly those weights: a model it writes gives the same logits, bit
for bit, as quantising the original at load, for every family it can write in the MoE++ layout
(mixed formats included); LLaMA-MoE (no MoE++ equivalent of its router) and bad --type values are
refused with a one-line error.

A q8 KV cache (`--kv-cache q8`, f32 weights) is held to q8's budget.

Budgets: q8 rounds each weight to 1/254 of its group's absmax (relative error <= 0.4%), q4 to
1/14 (<= 7%). KL grows with the square of the logit perturbation, so q4's budget is (7/0.4)^2 ~
300x q8's. On the tiny random models here q8 gives KL ~5e-5 and q4 ~2e-2; the budgets (1e-3,
1e-1) leave headroom for other seeds but fail on a real mistake (a wrong scale or nibble order
gives KL of order 1).

  /usr/bin/python3 tests/model/check_quantized.py --moepp build/bin/moepp [--work DIR]
"""
import argparse
import os
import shutil
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
# kv_q8: f32 weights with a q8 KV cache (`--kv-cache q8`): keys and values rounded to 1/254 of
# each 32 values' absmax, as q8 weights are, so q8's budget.
BUDGET = {"q8": 1e-3, "q4": 1e-1, "kv_q8": 1e-3}


def mean_kl(ref, other):
    la = ref - ref.max(1, keepdims=True)
    la -= np.log(np.exp(la).sum(1, keepdims=True))
    lb = other - other.max(1, keepdims=True)
    lb -= np.log(np.exp(lb).sum(1, keepdims=True))
    return float((np.exp(la) * (la - lb)).sum(1).mean())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--moepp", required=True)
    ap.add_argument("--work", default="/tmp/moepp_quantized")
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    ids = "5,17,33,2,90,45,61,7,80,3,12,77,9,41"
    passed = failed = 0
    for family, preset in (("mixtral", "default"), ("moepp", "7b"), ("llama_moe", "3_5b")):
        d = os.path.join(a.work, f"{family}_{preset}")
        shutil.rmtree(d, ignore_errors=True)
        subprocess.run([sys.executable, os.path.join(ROOT, "tools", "reference", "make_tiny.py"), "--family", family,
                        "--preset", preset, "--out", d, "--format", "safetensors"], check=True, stdout=subprocess.DEVNULL)
        logits = {}
        for w, extra in (("none", []), ("q8", []), ("q4", []), ("kv_q8", ["--kv-cache", "q8"])):
            out = os.path.join(d, f"logits_{w}.f32")
            weights = "none" if w.startswith("kv_") else w
            subprocess.run([a.moepp, "logits", "-m", d, "--ids", ids, "-o", out, "--weights", weights] + extra, check=True)
            logits[w] = np.fromfile(out, dtype="<f4").reshape(len(ids.split(",")), -1)
        kls = {w: mean_kl(logits["none"], logits[w]) for w in ("q8", "q4", "kv_q8")}
        for w, kl in kls.items():
            ok = kl <= BUDGET[w]
            passed += ok
            failed += not ok
            print(f"{'PASS' if ok else 'FAIL'} {family}/{preset} {w}: KL {kl:.2e} (budget {BUDGET[w]:.0e})")
        ok = 0 < kls["kv_q8"]  # the cache's rounding shows: the option reached the cache
        passed += ok
        failed += not ok
        print(f"{'PASS' if ok else 'FAIL'} {family}/{preset}: a q8 KV cache changes the logits (KL {kls['kv_q8']:.2e})")
        ok = kls["q8"] < kls["q4"]
        passed += ok
        failed += not ok
        print(f"{'PASS' if ok else 'FAIL'} {family}/{preset}: q8 closer to f32 than q4")
        for flags in (["--type", "q8"], ["--type", "q4"], ["--type", "q4", "--rest", "q8"]):
            q = os.path.join(a.work, f"{family}_{preset}_stored")
            shutil.rmtree(q, ignore_errors=True)
            r = subprocess.run([a.moepp, "quantize", "-m", d, "-o", q] + flags, capture_output=True, text=True)
            if family == "llama_moe":  # written in the MoE++ layout, which has no sigmoid-gate router
                ok = r.returncode != 0 and "export as MoE++" in r.stderr and len(r.stderr.strip().splitlines()) == 1
                passed += ok
                failed += not ok
                print(f"{'PASS' if ok else 'FAIL'} {family}/{preset} quantize refused in one line: {r.stderr.strip()}")
                continue
            if r.returncode != 0:
                failed += 1
                print(f"FAIL {family}/{preset} quantize {' '.join(flags)}: {r.stderr.strip()}")
                continue
            experts = flags[1]
            rest = flags[3] if len(flags) > 2 else flags[1]
            want = os.path.join(d, "logits_want.f32")
            got = os.path.join(d, "logits_got.f32")
            subprocess.run([a.moepp, "logits", "-m", d, "--ids", ids, "-o", want, "--experts", experts, "--rest", rest],
                           check=True)
            subprocess.run([a.moepp, "logits", "-m", q, "--ids", ids, "-o", got], check=True)
            ok = open(want, "rb").read() == open(got, "rb").read()
            passed += ok
            failed += not ok
            print(f"{'PASS' if ok else 'FAIL'} {family}/{preset} quantize {' '.join(flags)}: stored model gives the "
                  "load-time quantised logits bit for bit")
    r = subprocess.run([a.moepp, "quantize", "-m", d, "-o", os.path.join(a.work, "bad"), "--type", "q3"],
                       capture_output=True, text=True)
    ok = r.returncode != 0 and "--type" in r.stderr and "q3" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    passed += ok
    failed += not ok
    print(f"{'PASS' if ok else 'FAIL'} quantize --type q3 refused: {r.stderr.strip()}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
