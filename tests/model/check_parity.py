#!/usr/bin/python3
"""`model` test driver: the moepp engine against the PyTorch reference on tiny random checkpoints.

  /usr/bin/python3 tests/model/check_parity.py --moepp PATH/TO/moepp [--work DIR] [--quick] [--jobs N]

For every case of the matrix below (every preset of every family; each weight format covered by
at least two families; f32 everywhere, bf16 for a few; whole prompt at once and through the KV
cache), it writes the checkpoint (tools/reference/make_tiny.py), runs the reference in process
(tools/reference) and the engine as

  moepp logits -m DIR --ids 1,2,... -o OUT.f32 --routes OUT.json --dtype f32|bf16 [--chunk K]

on 3 prompts (BOS + random ids, 7/12/16 tokens, fixed seed), and compares:

* logits, every position: f32: max|dlogit| <= 1e-4 * max|logit_ref|.
  bf16: max|dlogit| <= bf16_rel_tol(L) * max|logit_ref| with
      bf16_rel_tol(L) = 4 * sqrt(2) * u * sqrt((20 L + 3) / 3),  u = 2^-8 (bf16 unit roundoff),
  i.e. ~20 independent rounding points per decoder layer (+3 for the head), rms relative error
  u/sqrt(3) each, sqrt(2) for two implementations rounding at different points, 4 sigma for the
  max over a prompt's ~10^3 logits: 0.084 for 2 layers, 0.101 for 3. For comparison, the bf16
  reference differs from the f32 reference by 0.009-0.063 (tools/reference/self_check.py), so
  the tolerance admits an engine that keeps more precision than HF, but not a wrong route,
  weight or scale (those move logits by O(max|logit|)). The derivation lives in
  tools/reference/common.py (bf16_rel_tol).
* routes (set of experts per layer and token; the engine's JSON "layers"): identical, except at
  a (layer, token) where the engine swapped the reference's k-th expert for its (k+1)-th and the
  reference selection margin (k-th minus (k+1)-th best score) is a near-tie: < 1e-4 in f32,
  < bf16_rel_tol(L) * (the margin's noise scale, common.topk_margin) in bf16. After such
  an excused divergence at token t, tokens >= t of that prompt legitimately differ (attention
  carries the change forward), so routes and logits are compared on tokens < t only. The preset
  seeds are chosen so that no prompt has a near-tie; excusals are reported.
* MoE++ presets: the reference routes must use every expert kind (ffn, constant, copy, zero).
* A tied head stored as a view of the embedding (PyTorch .bin files of tied models) loads as the
  same model as one stored without lm_head: the same info and bit-identical logits, f32 and q4.
* `moepp info --json` (which reads the tensors' headers only): params_total is the checkpoint's
  element count (less the tensors inference ignores), weight_bytes 4 bytes a parameter under
  f32 and 2 under --dtype bf16, checkpoint_dtypes the count of tensors per stored dtype.

One line per case (PASS/FAIL with the worst error), then "N passed, M failed"; exit status 1 if
any failed. --quick runs a subset.
"""
import argparse
import concurrent.futures
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools", "reference"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from common import (DTYPES, F32_REL_TOL, bf16_rel_tol, default_prompts,  # noqa: E402
                    load_checkpoint, route_excuse_threshold)
from make_tiny import make_tiny  # noqa: E402
from run_reference import build_model  # noqa: E402

# (family, preset, weight format, checkpoint dtype, [(run dtype, chunks, quick chunks)])
# chunk None = whole prompt in one call; K = K tokens at a time through the KV cache.
MATRIX = [
    ("moepp", "7b", "safetensors", "f32", [("f32", [None, 1, 5], [None, 1])]),
    ("moepp", "7b", "bin-sharded", "bf16", [("f32", [None], []), ("bf16", [None, 3], [None])]),
    ("moepp", "code-defaults", "safetensors-sharded", "f32", [("f32", [None, 1], [None])]),
    ("moepp", "mixtral-gating", "bin", "f32", [("f32", [None, 4], [None])]),
    ("moepp", "2b-layout", "safetensors", "bf16", [("f32", [None, 1], [None]), ("bf16", [None], [])]),
    ("mixtral", "default", "safetensors-sharded", "bf16", [("f32", [None, 1], [None]), ("bf16", [None], [])]),
    ("mixtral", "sliding", "safetensors", "f32", [("f32", [None, 1, 3], [1])]),
    ("llama_moe", "3_5b", "bin-sharded", "bf16", [("f32", [None, 1], [None]), ("bf16", [None], [])]),
    ("llama_moe", "8x265m", "bin", "f32", [("f32", [None, 1], [None])]),
    ("llama_moe", "linear-gate", "safetensors-sharded", "f32", [("f32", [None, 2], [None])]),
    ("llama_moe", "no-softmax", "bin", "f32", [("f32", [None, 1], [])]),
    ("llama_moe", "no-multiply", "safetensors", "f32", [("f32", [None, 3], [])]),
]


def run_engine(moepp, model_dir, ids, dtype, chunk, out_prefix, timeout):
    """Returns (logits np [T*V] or None, routes dict or None, error string or None)."""
    lo, ro = out_prefix + ".f32", out_prefix + ".json"
    for p in (lo, ro):
        if os.path.exists(p):
            os.remove(p)
    cmd = [moepp, "logits", "-m", model_dir, "--ids", ",".join(map(str, ids)), "-o", lo,
           "--routes", ro, "--dtype", dtype]
    if chunk:
        cmd += ["--chunk", str(chunk)]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, None, f"timeout after {timeout}s: {' '.join(cmd)}"
    except OSError as e:
        return None, None, f"cannot run {moepp}: {e}"
    if r.returncode != 0:
        tail = (r.stderr or r.stdout).strip().splitlines()[-3:]
        return None, None, f"exit {r.returncode}: {' | '.join(tail)}"
    if not os.path.exists(lo):
        return None, None, "no logits file written"
    logits = np.fromfile(lo, dtype="<f4")
    routes = None
    if os.path.exists(ro):
        with open(ro) as f:
            routes = json.load(f)
    return logits, routes, None


IGNORED_SUFFIXES = (".rotary_emb.inv_freq", ".gate.weight_noise.weight")  # unused by inference
DTYPE_NAMES = {torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16"}


def check_info(moepp, model_dir, sd, timeout):
    """Returns None if `moepp info --json` agrees with the checkpoint's tensors, else what differs."""
    params = sum(t.numel() for k, t in sd.items() if not k.endswith(IGNORED_SUFFIXES))
    dtypes = {}
    for t in sd.values():
        dtypes[DTYPE_NAMES[t.dtype]] = dtypes.get(DTYPE_NAMES[t.dtype], 0) + 1
    problems = []
    for dtype, bytes_per_param in (("f32", 4), ("bf16", 2)):
        cmd = [moepp, "info", "-m", model_dir, "--json", "--dtype", dtype]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
            info = json.loads(r.stdout) if r.returncode == 0 else None
        except (subprocess.TimeoutExpired, OSError, ValueError) as e:
            return f"{' '.join(cmd)}: {e}"
        if info is None:
            return f"{' '.join(cmd)}: exit {r.returncode}: {r.stderr.strip()[:300]}"
        if info["params_total"] != params:
            problems.append(f"params_total {info['params_total']}, checkpoint has {params}")
        if info["weight_bytes"] != bytes_per_param * params:
            problems.append(f"--dtype {dtype}: weight_bytes {info['weight_bytes']}, expected {bytes_per_param * params}")
        if info["checkpoint_dtypes"] != dtypes:
            problems.append(f"checkpoint_dtypes {info['checkpoint_dtypes']}, checkpoint has {dtypes}")
    return "; ".join(problems) or None


def check_tied_views(moepp, model_dir, work, timeout):
    """Returns None if lm_head as a view of the embedding loads as no lm_head at all, else what differs."""
    cfg, sd = load_checkpoint(model_dir)
    cfg = dict(cfg, tie_word_embeddings=True)
    sd = {k: v.clone() for k, v in sd.items() if k != "lm_head.weight"}
    dirs = {}
    for name, with_view in (("view", True), ("absent", False)):
        d = dirs[name] = os.path.join(work, "tied-" + name)
        os.makedirs(d, exist_ok=True)
        part = dict(sd, **({"lm_head.weight": sd["model.embed_tokens.weight"]} if with_view else {}))
        torch.save(part, os.path.join(d, "pytorch_model.bin"))
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(cfg, f)
    outputs = {}
    for name, d in dirs.items():
        for flags in ([], ["--weights", "q4"]):
            info = subprocess.run([moepp, "info", "-m", d, "--json"] + flags, capture_output=True, text=True,
                                  timeout=timeout)
            out = os.path.join(d, "logits.f32")
            run = subprocess.run([moepp, "logits", "-m", d, "--ids", "1,5,9,2", "-o", out] + flags,
                                 capture_output=True, text=True, timeout=timeout)
            if info.returncode or run.returncode:
                return f"{name} {flags}: {info.stderr.strip()[:200]} {run.stderr.strip()[:200]}"
            j = json.loads(info.stdout)
            with open(out, "rb") as f:
                outputs[(name, tuple(flags))] = (j["params_total"], j["weight_bytes"], f.read())
    for flags in ((), ("--weights", "q4")):
        a, b = outputs[("view", flags)], outputs[("absent", flags)]
        if a[:2] != b[:2]:
            return f"{' '.join(flags) or 'f32'}: params/bytes {a[:2]} with the view, {b[:2]} without lm_head"
        if a[2] != b[2]:
            return f"{' '.join(flags) or 'f32'}: logits differ"
    return None


def compare(ref, logits, routes, dtype, n_layers, n_experts):
    """ref = (logits [T, V] torch fp32, reference routes). Returns (ok, note, err, tol, excused);
    err/tol are None when the logits were not compared."""
    ref_logits, ref_routes = ref
    T, V = ref_logits.shape
    if logits.size != T * V:
        return False, f"logits size {logits.size}, expected {T}x{V}", None, None, 0
    eng = torch.from_numpy(logits.reshape(T, V).copy())
    if not torch.isfinite(eng).all():
        return False, "non-finite logits", None, None, 0
    if routes is None or "layers" not in routes:
        return False, "no routes JSON", None, None, 0
    layers = routes["layers"]
    if len(layers) != n_layers or any(len(x) != T for x in layers):
        return False, f"routes shape: {len(layers)} layers, expected {n_layers} x {T} tokens", None, None, 0
    # first differing (token, layer), tokens in order. Excusable only as a near-tie: the engine
    # swapped the reference's k-th expert for its (k+1)-th, and the reference margin is small.
    cut = T
    for t in range(T):
        for l in range(n_layers):
            r = ref_routes[l]
            want = r["experts"][t].tolist()
            got = [int(e) for e in layers[l][t]]
            if sorted(want) == sorted(got):
                continue
            where = f"layer {l} token {t}: engine {got} vs ref {want}"
            if len(got) != len(want) or len(set(got)) != len(got) or not all(0 <= e < n_experts for e in got):
                return False, f"bad route {where}", None, None, 0
            margin = float(r["margins"][t])
            thr = route_excuse_threshold(dtype, n_layers, r["scales"][t])
            swap = sorted(want[:-1] + [int(r["runner_up"][t])]) == sorted(got)
            if margin >= thr or not swap:
                why = f"margin {margin:.2e} >= {thr:.2e}" if margin >= thr else "not a k-th/(k+1)-th swap"
                return False, f"route mismatch {where} ({why})", None, None, 0
            cut = t
            break
        if cut < T:
            break
    tol = (F32_REL_TOL if dtype == "f32" else bf16_rel_tol(n_layers)) * float(ref_logits.abs().max())
    err = float((eng[:cut] - ref_logits[:cut]).abs().max()) if cut > 0 else 0.0
    note = "" if cut == T else f"near-tie excused at token {cut}, compared tokens < {cut}"
    return err <= tol, note, err, tol, int(cut < T)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--moepp", required=True, help="path to the moepp binary")
    ap.add_argument("--work", help="scratch directory (default: a temporary one, removed at the end)")
    ap.add_argument("--quick", action="store_true", help="fewer cases")
    ap.add_argument("--jobs", type=int, default=2, help="engine processes in parallel")
    ap.add_argument("--timeout", type=int, default=120, help="seconds per engine call")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    moepp = os.path.abspath(a.moepp) if os.path.exists(a.moepp) else a.moepp
    work = a.work or tempfile.mkdtemp(prefix="moepp_model_test_")
    os.makedirs(work, exist_ok=True)
    passed = failed = 0
    t0 = time.time()
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, a.jobs))

    def report(ok, line):
        nonlocal passed, failed
        print(f"{'PASS' if ok else 'FAIL'} {line}", flush=True)
        if ok:
            passed += 1
        else:
            failed += 1

    for family, preset, fmt, ckpt_dtype, runs in MATRIX:
        runs = [(d, q if a.quick else c) for d, c, q in runs]
        runs = [(d, c) for d, c in runs if c]
        if not runs:
            continue
        tag = f"{family}/{preset} {fmt} {ckpt_dtype}"
        mdir = os.path.join(work, f"{family}-{preset}-{fmt}-{ckpt_dtype}")
        try:
            make_tiny(family, preset, mdir, fmt=fmt, dtype=ckpt_dtype)
            cfg, sd = load_checkpoint(mdir)
        except Exception as e:  # a broken generator is a failed case, not a crash
            report(False, f"{tag}: checkpoint generation failed: {e}")
            continue
        problem = check_info(moepp, mdir, sd, a.timeout)
        report(problem is None, f"{tag} info: " + (problem or "parameters, bytes and dtypes as in the checkpoint"))
        if family == "moepp" and preset == "7b" and fmt == "safetensors":
            problem = check_tied_views(moepp, mdir, work, a.timeout)
            report(problem is None, f"{tag} tied head as a view of the embedding: " +
                   (problem or "the same info and logits as without lm_head"))
        n_layers = cfg["num_hidden_layers"]
        prompts = default_prompts(cfg["vocab_size"])
        for dtype, chunks in runs:
            model = build_model(cfg, sd, DTYPES[dtype])
            refs = [model.run(ids)[:2] for ids in prompts]
            min_margin = min(float(r["margins"].min()) for _, routes in refs for r in routes)
            if family == "moepp" and dtype == "f32":
                used = {model.kinds[e] for _, routes in refs for r in routes
                        for e in r["experts"].flatten().tolist()}
                report(used == set(model.kinds),
                       f"{tag} reference routing uses kinds {sorted(used)} of {sorted(set(model.kinds))}")
            for chunk in chunks:
                name = f"{tag} run={dtype} chunk={chunk or 'full'}"
                futs = [pool.submit(run_engine, moepp, mdir, ids, dtype, chunk,
                                    os.path.join(mdir, f"out-{dtype}-{chunk or 0}-{i}"), a.timeout)
                        for i, ids in enumerate(prompts)]
                ok, worst, worst_tol, excused, notes = True, None, None, 0, []
                for i, fut in enumerate(futs):
                    logits, routes, err = fut.result()
                    if err:
                        ok = False
                        notes.append(f"prompt {i}: {err}")
                        continue
                    c_ok, note, e, tol, exc = compare(refs[i], logits, routes, dtype, n_layers, model.n_exp)
                    ok &= c_ok
                    excused += exc
                    if e is not None and (worst is None or e * worst_tol >= worst * tol):
                        worst, worst_tol = e, tol  # keep the prompt with the worst err/tol
                    if note:
                        notes.append(f"prompt {i}: {note}")
                line = name + ": " + ("max|dlogit| n/a" if worst is None else
                                      f"max|dlogit| {worst:.2e} tol {worst_tol:.2e}")
                line += f", excused near-ties {excused}, min ref margin {min_margin:.1e}"
                if notes:
                    line += "; " + "; ".join(notes)
                report(ok, line)
    pool.shutdown()
    if not a.work:
        shutil.rmtree(work, ignore_errors=True)
    print(f"# {time.time() - t0:.1f}s", flush=True)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
