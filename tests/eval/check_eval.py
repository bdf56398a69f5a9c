#!/usr/bin/python3
"""`model` test of the evaluation commands against the PyTorch reference (tools/reference).

  /usr/bin/python3 tests/eval/check_eval.py --moepp PATH/TO/moepp [--work DIR]

On a tiny MoE++ checkpoint (make_tiny.py --family moepp --preset 7b, f32) fed token ids, and on a
copy of it with a 32000-row vocabulary and the LLaMA SentencePiece tokenizer (text input):

* perplexity: every token's NLL (sliding windows, ctx 16, stride 8) equals the reference's
  log-softmax on the same windows (|d| <= 1e-4 nats); ppl and its error follow from them.
* saved logits: the file decodes as docs/evaluation.md says and its log-probs equal the
  reference's; KL of a run against its own file is ~0 (full and top-k files), bf16 vs f32 > 0.
* eval: multiple-choice (ids and text, 0- and 2-shot) and target tasks: per-choice
  log-likelihoods equal the reference's (|d| <= 1e-4), acc / acc_norm / greedy as lm-eval
  defines them from those numbers.
* routes: "layers" equal `moepp logits --routes` exactly, weights within 1e-6; summary numbers
  recomputed here from the routes; every data-key number in the HTML report equals the JSON;
  the CSV has one row per token, layer and slot.
Exit status 1 on any failure.
"""
import argparse
import html.parser
import json
import math
import os
import shutil
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tools", "reference"))

import torch  # noqa: E402

from common import load_checkpoint, make_text_model, save_safetensors  # noqa: E402
from make_tiny import make_tiny  # noqa: E402
from run_reference import build_model  # noqa: E402

TOL = 1e-4
FAILURES = []


def check(cond, what):
    print(("PASS " if cond else "FAIL ") + what)
    if not cond:
        FAILURES.append(what)
    return cond


def run(moepp, *args, json_out=False):
    r = subprocess.run([moepp, *args], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise RuntimeError(f"moepp {' '.join(args)}: exit {r.returncode}: {r.stderr.strip()}")
    return json.loads(r.stdout) if json_out else r.stdout


class Ref:
    """The reference model; logprobs(ids) -> [T, V] log-softmax of every position (f64)."""

    def __init__(self, model_dir):
        cfg, sd = load_checkpoint(model_dir)
        self.model = build_model(cfg, sd, torch.float32)
        self.cache = {}

    def logprobs(self, ids):
        key = tuple(ids)
        if key not in self.cache:
            logits, _, _ = self.model.run(list(ids))
            self.cache[key] = torch.log_softmax(logits.double(), -1)
        return self.cache[key]

    def loglik(self, context, cont):
        lp = self.logprobs(context + cont)
        n = len(context)
        vals = [float(lp[n - 1 + i, t]) for i, t in enumerate(cont)]
        greedy = all(int(lp[n - 1 + i].argmax()) == t for i, t in enumerate(cont))
        return sum(vals), greedy


def hf_windows(n, ctx, stride):
    out, prev_end = [], 0
    for begin in range(0, n, stride):
        end = min(begin + ctx, n)
        out.append((begin, end, max(prev_end, begin + 1)))
        prev_end = end
        if end == n:
            break
    return out


def read_saved_logits(path):
    with open(path, "rb") as f:
        data = f.read()
    magic, version, top_k, n_rows, vocab = struct.unpack_from("<8sIIQQ", data, 0)
    assert magic == b"MOEPPLG1" and version == 1, (magic, version)
    rows, off = [], 32
    for _ in range(n_rows):
        (target,) = struct.unpack_from("<i", data, off)
        off += 4
        if top_k == 0:
            lp = struct.unpack_from(f"<{vocab}f", data, off)
            off += 4 * vocab
            rows.append((target, list(lp)))
        else:
            pairs = [struct.unpack_from("<if", data, off + 8 * i) for i in range(top_k)]
            off += 8 * top_k
            (rest,) = struct.unpack_from("<f", data, off)
            off += 4
            rows.append((target, pairs, rest))
    assert off == len(data), "trailing bytes"
    return top_k, vocab, rows


def check_perplexity(moepp, model_dir, ref, ids, work):
    ctx, stride = 16, 8
    args = ["perplexity", "-m", model_dir, "--ids", ",".join(map(str, ids)), "--ctx", str(ctx), "--stride", str(stride)]
    got = run(moepp, *args, "--json", "--batch-tokens", "40", json_out=True)
    want = []
    for begin, end, score_from in hf_windows(len(ids), ctx, stride):
        lp = ref.logprobs(ids[begin:end])
        want += [-float(lp[p - begin - 1, ids[p]]) for p in range(score_from, end)]
    err = max(abs(a - b) for a, b in zip(got["token_nll"], want)) if len(want) == len(got["token_nll"]) else float("inf")
    check(len(got["token_nll"]) == len(ids) - 1 and err <= TOL, f"perplexity: {len(want)} token NLLs vs reference, max |d| {err:.2e}")
    mean = sum(want) / len(want)
    sd = math.sqrt(sum((x - mean) ** 2 for x in want) / (len(want) - 1))
    check(abs(got["ppl"] - math.exp(mean)) <= 1e-4 * math.exp(mean) and abs(got["nll_stderr"] - sd / math.sqrt(len(want))) <= 1e-5,
          f"perplexity: ppl {got['ppl']:.4f} (reference {math.exp(mean):.4f}), stderr of the mean NLL")
    check(got["n_windows"] == len(hf_windows(len(ids), ctx, stride)), "perplexity: window count as HF's guide")

    base = os.path.join(work, "base.lgt")
    run(moepp, *args, "--save-logits", base)
    top_k, vocab, rows = read_saved_logits(base)
    win = hf_windows(len(ids), ctx, stride)
    want_rows = []
    for begin, end, score_from in win:
        lp = ref.logprobs(ids[begin:end])
        want_rows += [(ids[p], lp[p - begin - 1]) for p in range(score_from, end)]
    err = max(max(abs(a - float(b)) for a, b in zip(r[1], w[1].tolist())) for r, w in zip(rows, want_rows))
    check(top_k == 0 and len(rows) == len(want_rows) and all(r[0] == w[0] for r, w in zip(rows, want_rows)) and err <= TOL,
          f"saved logits: {len(rows)} full rows decode per the documented format, max |dlogprob| {err:.2e}")
    same = run(moepp, *args, "--kl-base", base, "--json", json_out=True)["kl"]
    # the file holds f32 log-probs: ~1e-7 relative rounding, so KL ~1e-8
    check(same["mean"] < 1e-6 and same["same_top1"] == 1.0, f"KL of a run against its own saved logits: {same['mean']:.2e}")
    topk = os.path.join(work, "top5.lgt")
    run(moepp, *args, "--save-logits", topk, "--save-top-k", "5")
    k, _, trows = read_saved_logits(topk)
    ok = k == 5 and all(abs(sum(math.exp(v) for _, v in r[1]) + math.exp(r[2]) - 1.0) < 1e-4 for r in trows)
    same_k = run(moepp, *args, "--kl-base", topk, "--json", json_out=True)["kl"]
    check(ok and same_k["mean"] < 1e-7, f"top-5 saved logits: mass sums to 1, KL against itself {same_k['mean']:.2e}")
    bf16 = run(moepp, *args, "--kl-base", base, "--json", "--dtype", "bf16", json_out=True)["kl"]
    check(0 < bf16["mean"] < 0.05, f"KL bf16 run vs f32 saved logits: {bf16['mean']:.2e} (> 0, small)")
    short = ["perplexity", "-m", model_dir, "--ids", ",".join(map(str, ids[:-5])), "--ctx", str(ctx), "--stride", str(stride)]
    r = subprocess.run([moepp, *short, "--kl-base", base], capture_output=True, text=True)
    check(r.returncode == 1 and "saved logits" in r.stderr, f"KL against logits of another text is an error: {r.stderr.strip()}")
    other = [1] + [i + 1 if i + 1 < 112 else 3 for i in ids[1:]]
    r = subprocess.run([moepp, *args[:3], "--ids", ",".join(map(str, other)), *args[5:], "--kl-base", base], capture_output=True, text=True)
    check(r.returncode == 1 and "target token" in r.stderr, f"KL with other targets is an error: {r.stderr.strip()}")


def lm_eval_metrics(docs, lls):
    acc = [float(max(range(len(l)), key=lambda i: l[i]) == d["gold"]) for d, l in zip(docs, lls)]
    norm = []
    for d, l in zip(docs, lls):
        lens = [len(c.encode()) for c in d["choices"]] if "choices" in d else [len(c) for c in d["choices_ids"]]
        s = [x / n for x, n in zip(l, lens)]
        norm.append(float(max(range(len(s)), key=lambda i: s[i]) == d["gold"]))
    return sum(acc) / len(acc), sum(norm) / len(norm)


def check_task(moepp, model_dir, work, name, docs, expected, extra=(), fewshot=None):
    """expected: per doc list of (loglik, greedy) per continuation, from the reference."""
    path = os.path.join(work, name + ".jsonl")
    with open(path, "w") as f:
        for d in docs:
            f.write(json.dumps(d) + "\n")
    args = ["eval", "-m", model_dir, "--task", path, "--json", "--batch-tokens", "64", *extra]
    if fewshot is not None:
        fpath = os.path.join(work, name + ".fewshot.jsonl")
        with open(fpath, "w") as f:
            for d in fewshot:
                f.write(json.dumps(d) + "\n")
        args += ["--fewshot-file", fpath]
    got = run(moepp, *args, json_out=True)
    err = 0.0
    greedy_ok = True
    for gd, want in zip(got["docs"], expected):
        err = max([err] + [abs(a - b[0]) for a, b in zip(gd["logliks"], want)])
        greedy_ok = greedy_ok and [bool(g) for g in gd["greedy"]] == [b[1] for b in want]
    check(len(got["docs"]) == len(expected) and err <= TOL and greedy_ok,
          f"eval {name}: {sum(len(e) for e in expected)} continuation log-likelihoods vs reference, max |d| {err:.2e}")
    lls = [[b[0] for b in e] for e in expected]
    if got["kind"] == "multiple_choice":
        acc, acc_norm = lm_eval_metrics(docs, lls)
        check(abs(got["acc"] - acc) < 1e-12 and abs(got["acc_norm"] - acc_norm) < 1e-12,
              f"eval {name}: acc {got['acc']:.3f} acc_norm {got['acc_norm']:.3f} as lm-eval computes them")
    else:
        acc = sum(e[0][1] for e in expected) / len(expected)
        ppl = math.exp(-sum(e[0][0] for e in expected) / len(expected))
        check(abs(got["acc"] - acc) < 1e-12 and abs(got["ppl"] - ppl) <= 1e-4 * ppl,
              f"eval {name}: greedy acc {got['acc']:.3f}, ppl {got['ppl']:.3f} as lm-eval's LAMBADA")
    return got


def check_eval_ids(moepp, model_dir, ref, work, g):
    def rand(n):
        return torch.randint(3, 112, (n,), generator=g).tolist()
    docs = []
    for i in range(8):
        n_choices = 2 + i % 3
        ch = [rand(1 + (i + c) % 4) for c in range(n_choices)]
        docs.append({"context_ids": [1] + rand(3 + i % 5), "choices_ids": ch,
                     "choices": [" " + "x" * (1 + 3 * ((i + c) % 3)) for c in range(n_choices)], "gold": i % n_choices})
    exp = [[ref.loglik(d["context_ids"], c) for c in d["choices_ids"]] for d in docs]
    check_task(moepp, model_dir, work, "mc_ids", docs, exp)
    # 2-shot: the first two few-shot documents' context + gold, then the query
    shots = docs[:2]
    prefix = sum([s["context_ids"] + s["choices_ids"][s["gold"]] for s in shots], [])
    exp = [[ref.loglik(prefix + d["context_ids"], c) for c in d["choices_ids"]] for d in docs[2:]]
    check_task(moepp, model_dir, work, "mc_ids_2shot", docs[2:], exp, extra=["--shots", "2"], fewshot=shots)
    # LAMBADA-style: a target continuation; make some greedy by taking the reference argmax
    tdocs = []
    for i in range(6):
        ctx = [1] + rand(4 + i)
        if i % 2 == 0:
            lp = ref.logprobs(ctx)
            tgt = [int(lp[-1].argmax())]
        else:
            tgt = rand(1 + i % 3)
        tdocs.append({"context_ids": ctx, "target_ids": tgt})
    exp = [[ref.loglik(d["context_ids"], d["target_ids"])] for d in tdocs]
    check_task(moepp, model_dir, work, "target_ids", tdocs, exp)


def check_eval_text(moepp, model_dir, work):
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=os.path.join(model_dir, "tokenizer.model"))
    ref = Ref(model_dir)

    def enc(text):
        return [1] + sp.encode(text)

    def split(context, cont):  # lm-eval's _encode_pair
        n = len(context) - len(context.rstrip(" "))
        if n:
            cont, context = context[-n:] + cont, context[:-n]
        c = enc(context)
        return c, enc(context + cont)[len(c):]

    docs = [
        {"context": "The capital of France is", "choices": [" Paris", " a large purple elephant", " Rome"], "gold": 0},
        {"context": "Water boils at a temperature of ", "choices": ["100 degrees", "ten", "cold"], "gold": 0},
        {"context": "Question: Which animal barks?\nAnswer:", "choices": [" dog", " cat"], "gold": 0},
        {"context": "She opened the door and", "choices": [" walked in.", " the.", " é ü ñ"], "gold": 0},
    ]
    exp = [[ref.loglik(*split(d["context"], c)) for c in d["choices"]] for d in docs]
    check_task(moepp, model_dir, work, "mc_text", docs, exp)
    shots = docs[:1]
    prefix = shots[0]["context"] + shots[0]["choices"][0] + "\n\n"
    exp = [[ref.loglik(*split(prefix + d["context"], c)) for c in d["choices"]] for d in docs[1:]]
    check_task(moepp, model_dir, work, "mc_text_1shot", docs[1:], exp, extra=["--shots", "1"], fewshot=shots)
    tdocs = [{"context": "Once upon a time there was a", "target": " princess"},
             {"context": "He said hello to his", "target": " friend"}]
    exp = [[ref.loglik(*split(d["context"], d["target"]))] for d in tdocs]
    check_task(moepp, model_dir, work, "target_text", tdocs, exp)
    # routes on text: the JSON names every token's piece and class
    text = os.path.join(work, "story.txt")
    with open(text, "w") as f:
        f.write("The quick brown fox jumps over the lazy dog, 42 times.\n")
    out = os.path.join(work, "text_routes.json")
    run(moepp, "routes", "-m", model_dir, "-f", text, "--json", out)
    with open(out) as f:
        j = json.load(f)
    want_ids = enc(open(text).read())
    check(j["tokens"] == want_ids and j["pieces"] == [sp.id_to_piece(i) for i in want_ids],
          f"routes -f: {len(want_ids)} tokens and pieces as SentencePiece encodes the text")
    classes = set(j["classes"])
    check({"word_start", "punctuation", "special"} <= classes, f"routes -f: token classes {sorted(classes)}")


class KeyCollector(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.values, self.tags = {}, {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags[tag] = self.tags.get(tag, 0) + 1
        if "data-key" in a:
            self.values[a["data-key"]] = a["data-value"]


def json_value(j, key):
    parts = key.split(".")
    if parts[0] == "summary":
        v = j["summary"]
        for p in parts[1:]:
            v = v[p]
        return v
    if parts[0] in ("by_class", "by_token"):
        field = "class" if parts[0] == "by_class" else "id"
        grp = next(g for g in j[parts[0]] if str(g[field]) == parts[1])
        return grp[parts[2]]
    v = j
    for p in parts:
        v = v[int(p)] if isinstance(v, list) else v[p]
    return v


def check_generate_show_experts(moepp, model_dir, work, prompt, kinds):
    """`generate --show-experts`: FFN experts per token of prompt + answer == `logits --routes` on the same ids
    (kinds: [layer][expert] kind names from the routes JSON of the same model)."""
    g = json.loads(run(moepp, "generate", "-m", model_dir, "--ids", ",".join(map(str, prompt)), "-n", "6",
                       "--ignore-eos", "--show-experts", "--json"))
    all_ids = prompt + g["tokens"]
    lr = os.path.join(work, "gen_routes.json")
    run(moepp, "logits", "-m", model_dir, "--ids", ",".join(map(str, all_ids)), "-o", os.path.join(work, "gen.f32"),
        "--routes", lr)
    with open(lr) as f:
        r = json.load(f)
    L = len(r["layers"])
    want = [sum(kinds[l][e] == "ffn" for l in range(L) for e in r["layers"][l][t]) / L for t in range(len(all_ids))]
    got = g.get("ffn_per_token", [])
    check(len(got) == len(want) and max(abs(a - b) for a, b in zip(got, want)) < 1e-12,
          f"generate --show-experts: FFN experts per token ({len(all_ids)} tokens) == logits --routes")
    text = run(moepp, "generate", "-m", model_dir, "--ids", ",".join(map(str, prompt)), "-n", "6", "--ignore-eos",
               "--show-experts")
    fewer = sum(1 for x in want if x < 2)
    half = sum(1 for x in want if x <= 1)
    check(f"{fewer} of {len(all_ids)} tokens used fewer than 2 FFN experts per layer on average, {half} of them" in text,
          f"generate --show-experts: the summary line counts {fewer} tokens with fewer FFN experts")


def check_routes(moepp, model_dir, work, ids):
    ids_s = ",".join(map(str, ids))
    lo, lr = os.path.join(work, "l.f32"), os.path.join(work, "l.json")
    run(moepp, "logits", "-m", model_dir, "--ids", ids_s, "-o", lo, "--routes", lr)
    rj, rh, rc = (os.path.join(work, "r." + e) for e in ("json", "html", "csv"))
    run(moepp, "routes", "-m", model_dir, "--ids", ids_s, "--json", rj, "--html", rh, "--csv", rc)
    with open(lr) as f:
        logits_routes = json.load(f)
    with open(rj) as f:
        j = json.load(f)
    werr = max(abs(a - b) for la, lb in zip(logits_routes["weights"], j["weights"]) for ta, tb in zip(la, lb) for a, b in zip(ta, tb))
    check(j["layers"] == logits_routes["layers"] and werr <= 1e-6,
          f"routes JSON layers == `moepp logits --routes` ({len(ids)} tokens), weights max |d| {werr:.1e}")
    L, T, K = j["n_layers"], j["n_tokens"], j["top_k"]
    ffn = [sum(j["kinds"][l][e] == "ffn" for e in j["layers"][l][t]) for t in range(T) for l in range(L)]
    per_tok = [sum(ffn[t * L:(t + 1) * L]) / L for t in range(T)]
    load_ok = all(j["per_layer"][l]["load"][e] == sum(x.count(e) for x in j["layers"][l]) for l in range(L) for e in range(len(j["kinds"][l])))
    share_ok = all(abs(j["per_layer"][l]["kind_share"][k] - sum(j["kinds"][l][e] == k for x in j["layers"][l] for e in x) / (T * K)) < 1e-12
                   for l in range(L) for k in ("ffn", "zero", "copy", "constant"))
    w_ok = True
    for l in range(L):
        w = [x for t in j["weights"][l] for x in t]
        m = sum(w) / len(w)
        w_ok = w_ok and abs(j["per_layer"][l]["weight_var"] - sum((x - m) ** 2 for x in w) / len(w)) < 1e-6
    check(max(abs(a - b) for a, b in zip(per_tok, j["ffn_per_token"])) < 1e-12 and load_ok and share_ok and w_ok
          and abs(j["summary"]["mean_ffn_per_token"] - sum(per_tok) / T) < 1e-12,
          f"routes summary recomputed from the routes (mean FFN experts per token {j['summary']['mean_ffn_per_token']:.4f})")
    check_generate_show_experts(moepp, model_dir, work, ids[:8], j["kinds"])
    check(all(set(j["kinds"][l]) == {"ffn", "zero", "copy", "constant"} for l in range(L)) and
          all(j["summary"]["kind_share"][k] > 0 for k in ("ffn", "zero", "copy", "constant")),
          "routes: every expert kind is chosen somewhere (MoE++ 7b preset)")
    p = KeyCollector()
    with open(rh, encoding="utf-8") as f:
        p.feed(f.read())
    bad = []
    for key, val in p.values.items():
        want = json_value(j, key)
        if isinstance(want, int):
            ok = int(val) == want
        else:
            ok = abs(float(val) - want) <= 5.1e-5
        if not ok:
            bad.append(f"{key}: html {val} json {want}")
    n_cells = sum(1 for k in p.values if ".load." in k)
    check(not bad and n_cells == L * len(j["kinds"][0]) and sum(1 for k in p.values if k.startswith("ffn_per_token.")) == T,
          f"HTML report: {len(p.values)} numbers equal the JSON ({n_cells} heat-map cells) {bad[:3]}")
    with open(rc) as f:
        lines = f.read().splitlines()
    rows = [ln.split(",") for ln in lines[1:]]
    csv_ok = len(rows) == T * L * K and all(
        int(r[6]) == j["layers"][int(r[4])][int(r[0])][int(r[5])] and abs(float(r[8]) - j["weights"][int(r[4])][int(r[0])][int(r[5])]) < 1e-7
        for r in rows)
    check(lines[0] == "token,id,piece,class,layer,slot,expert,kind,weight,score_var" and csv_ok, f"CSV: {len(rows)} rows match the JSON")
    # Router score variance: the per-layer mean in the JSON is the mean of the CSV's per-token
    # values, which lie within the bounds of a probability vector over the layer's experts.
    n_exp = len(j["kinds"][0])
    sv_ok = True
    for l in range(L):
        per_token = {int(r[0]): float(r[9]) for r in rows if int(r[4]) == l}
        sv_ok = sv_ok and all(0 <= v <= (1 - 1 / n_exp) / n_exp + 1e-6 for v in per_token.values())
        sv_ok = sv_ok and abs(sum(per_token.values()) / T - j["per_layer"][l]["score_var"]) < 1e-6
    check(sv_ok, "router score variance: JSON per-layer means equal the CSV per-token values, within bounds")

    # And against the PyTorch reference: record the softmax over all experts that its gating
    # selects from, per layer, and take each token's variance.
    cfg, sd = load_checkpoint(model_dir)
    ref_model = build_model(cfg, sd, torch.float32)
    layers_probs = []
    original = ref_model.gating

    def recording_gating(logits):
        z = logits / (logits.std(dim=1, keepdim=True) / ref_model.norm_std) if ref_model.logits_norm else logits
        layers_probs.append(torch.softmax(z.double(), dim=1))
        return original(logits)

    ref_model.gating = recording_gating
    ref_model.run(list(ids))
    ref_err = 0.0
    for l, probs in enumerate(layers_probs[:L]):
        ref_var = probs.var(dim=1, unbiased=False)
        for r in rows:
            if int(r[4]) == l and int(r[5]) == 0:
                ref_err = max(ref_err, abs(float(r[9]) - float(ref_var[int(r[0])])))
    check(len(layers_probs) >= L and ref_err < 1e-6, f"router score variance per token and layer vs PyTorch, max |d| {ref_err:.1e}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--moepp", required=True)
    ap.add_argument("--work", default="/tmp/moepp-eval-check")
    a = ap.parse_args()
    torch.set_num_threads(1)
    if os.path.isdir(a.work):
        shutil.rmtree(a.work)
    os.makedirs(a.work)
    ids_model = os.path.join(a.work, "moepp-7b")
    make_tiny("moepp", "7b", ids_model, fmt="safetensors", dtype="f32")
    ref = Ref(ids_model)
    g = torch.Generator().manual_seed(4321)
    ids = [1] + torch.randint(3, 112, (44,), generator=g).tolist()
    check_perplexity(a.moepp, ids_model, ref, ids, a.work)
    check_eval_ids(a.moepp, ids_model, ref, a.work, g)
    check_routes(a.moepp, ids_model, a.work, ids[:30])
    text_model = os.path.join(a.work, "moepp-7b-llama-vocab")
    make_text_model(ids_model, text_model)
    check_eval_text(a.moepp, text_model, a.work)
    print(f"{len(FAILURES)} failed")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
