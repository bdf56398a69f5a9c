#!/usr/bin/python3
"""Whole-model error budget of the quantised weight formats: logits with --weights q8 / q4
against the same model in f32, as the mean KL divergence KL(p_f32 || p_quant) over positions.

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
BUDGET = {"q8": 1e-3, "q4": 1e-1}


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
        for w in ("none", "q8", "q4"):
            out = os.path.join(d, f"logits_{w}.f32")
            subprocess.run([a.moepp, "logits", "-m", d, "--ids", ids, "-o", out, "--weights", w], check=True)
            logits[w] = np.fromfile(out, dtype="<f4").reshape(len(ids.split(",")), -1)
        kls = {w: mean_kl(logits["none"], logits[w]) for w in ("q8", "q4")}
        for w, kl in kls.items():
            ok = kl <= BUDGET[w]
            passed += ok
            failed += not ok
            print(f"{'PASS' if ok else 'FAIL'} {family}/{preset} {w}: KL {kl:.2e} (budget {BUDGET[w]:.0e})")
        ok = kls["q8"] < kls["q4"]
        passed += ok
        failed += not ok
        print(f"{'PASS' if ok else 'FAIL'} {family}/{preset}: q8 closer to f32 than q4")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
