#!/usr/bin/python3
"""`moepp train` end to end on a tiny MoE++ model and a tiny byte-level BPE tokenizer:
  - progress lines (step, loss, tok/s, GFLOP/s, ETA), the share of the fp32 peak at the end,
    validation lines; the validation loss falls,
  - exact resume: 30 steps in one run == 12 steps, stop, --resume to 30 (identical weights),
  - the exported directory loads in `moepp generate` (ids and text prompts),
  - flags from --config JSON (command line wins), and bad input gives one clear error line.
"""
import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def write_tokenizer(d):
    """GPT-2 style byte-level BPE: 256 byte tokens, <s>=256, </s>=257, a few merges."""
    m = bytes_to_unicode()
    vocab = {m[b]: b for b in range(256)}
    merges = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("Ġ", "a"), ("i", "n")]
    for a, b in merges:
        vocab[a + b] = len(vocab) + 2

    def added(i, c):
        return {"id": i, "content": c, "single_word": False, "lstrip": False, "rstrip": False,
                "normalized": False, "special": True}
    tok = {"version": "1.0", "truncation": None, "padding": None,
           "added_tokens": [added(256, "<s>"), added(257, "</s>")], "normalizer": None,
           "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
           "post_processor": None,
           "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
           "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                     "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                     "vocab": vocab, "merges": [a + " " + b for a, b in merges]}}
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "tokenizer.json"), "w") as f:
        json.dump(tok, f)
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump({"bos_token": "<s>", "eos_token": "</s>", "tokenizer_class": "PreTrainedTokenizerFast"}, f)


MODEL_CONFIG = {
    "architectures": ["MoeForCausalLM"], "model_type": "MoE++", "vocab_size": 264, "hidden_size": 32,
    "intermediate_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
    "max_position_embeddings": 64, "rope_theta": 10000, "rms_norm_eps": 1e-6, "tie_word_embeddings": False,
    "bos_token_id": 256, "eos_token_id": 257, "num_experts": [8], "moe_expert_interval": 1,
    "moe_use_mixtral_gating": False, "moe_2layer_gate": False, "moe_use_logits_norm": True,
    "moe_gate_norm_std": 1.0, "moe_feature_no_mul_topk": True,
}


def write_text(path, seed, n_sentences):
    rng = random.Random(seed)
    subj = ["the cat", "the dog", "a bird", "the man", "a child"]
    verb = ["sees", "likes", "finds", "wants", "hears"]
    obj = ["the hat", "a tree", "the ball", "an apple", "the sun"]
    with open(path, "w") as f:
        for _ in range(n_sentences):
            f.write(f"{rng.choice(subj)} {rng.choice(verb)} {rng.choice(obj)} in the garden. ")


class Runner:
    def __init__(self, moepp):
        self.moepp = moepp
        self.failures = []

    def run(self, args, expect_ok=True):
        r = subprocess.run([self.moepp] + args, capture_output=True, text=True)
        if expect_ok and r.returncode != 0:
            raise AssertionError(f"moepp {' '.join(args)} failed ({r.returncode}): {r.stderr.strip()[-2000:]}")
        return r

    def check(self, cond, msg):
        if not cond:
            self.failures.append(msg)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--moepp", required=True)
    ap.add_argument("--work", required=True)
    a = ap.parse_args()
    shutil.rmtree(a.work, ignore_errors=True)
    os.makedirs(a.work)
    w = lambda *p: os.path.join(a.work, *p)  # noqa: E731
    write_tokenizer(w("tok"))
    with open(w("config.json"), "w") as f:
        json.dump(MODEL_CONFIG, f)
    for i in range(3):
        write_text(w(f"doc{i}.txt"), i, 300)
    R = Runner(a.moepp)
    common = ["--model-config", w("config.json"), "--tokenizer", w("tok"),
              "--data", w("doc0.txt"), w("doc1.txt"), w("doc2.txt"), "--steps", "30", "--seq-len", "32",
              "--batch", "4", "--grad-accum", "2", "--lr", "3e-3", "--min-lr", "3e-4", "--warmup", "3",
              "--eval-every", "10", "--eval-batches", "2", "--threads", "2", "--seed", "7"]

    # One uninterrupted run.
    r = R.run(["train"] + common + ["--out", w("outA"), "--checkpoint-dir", w("ckA"), "--checkpoint-every", "10"])
    progress = re.findall(r"step (\d+)/30 \| loss ([\d.]+) .*\| ([\d.]+) tok/s, ([\d.]+) GFLOP/s \| ETA (\S+)", r.stderr)
    share = re.search(r"GFLOP/s of matmuls = ([\d.]+)% of the measured fp32 peak \(([\d.]+) GFLOP/s", r.stderr)
    R.check(share is not None and 0 < float(share.group(1)) < 100 and float(share.group(2)) > 0,
            f"no throughput line with a share of the fp32 peak:\n{r.stderr[-600:]}")
    val = [float(v) for v in re.findall(r"validation loss ([\d.]+)", r.stderr)]
    R.check(len(progress) == 30, f"expected 30 progress lines, got {len(progress)}:\n{r.stderr[-1500:]}")
    R.check(len(val) == 3, f"expected 3 validation lines, got {val}")
    if len(val) == 3:
        R.check(val[-1] < val[0] - 0.2, f"validation loss did not fall: {val}")
    first_loss = float(progress[0][1]) if progress else 0
    last_loss = float(progress[-1][1]) if progress else 0
    R.check(last_loss < first_loss - 1.0, f"training loss did not fall: {first_loss} -> {last_loss}")
    print(f"run A: loss {first_loss} -> {last_loss}, validation {val}")

    # Interrupted at step 12, then resumed: identical result.
    R.run(["train"] + common + ["--out", w("outB"), "--checkpoint-dir", w("ckB"), "--stop-at", "12"])
    with open(w("ckB", "train_state.json")) as f:
        state = json.load(f)
    R.check(state["step"] == 12 and sorted(os.listdir(w("ckB"))) == ["train_state-12.safetensors", "train_state.json"],
            f"checkpoint after --stop-at 12: {state.get('step')}, files {os.listdir(w('ckB'))}")
    r = R.run(["train"] + common + ["--out", w("outC"), "--checkpoint-dir", w("ckB"), "--resume"])
    R.check("steps 13..30" in r.stderr, f"resume did not continue at step 13: {r.stderr[:300]}")
    with open(w("outA", "model.safetensors"), "rb") as f1, open(w("outC", "model.safetensors"), "rb") as f2:
        R.check(f1.read() == f2.read(), "resumed run differs from the uninterrupted run")
    print("exact resume: " + ("identical weights" if not R.failures else "FAILED"))

    # The exported model loads in moepp generate, with ids and with text (tokenizer copied).
    g = R.run(["generate", "-m", w("outA"), "--ids", "256,116,259", "-n", "6", "--json", "--temperature", "0"],
              expect_ok=False)
    R.check(g.returncode == 0, f"generate --ids failed: {g.stderr.strip()}")
    if g.returncode == 0:
        out = json.loads(g.stdout)
        R.check(len(out["tokens"]) >= 1, f"generate produced nothing: {out}")
    g = R.run(["generate", "-m", w("outA"), "-p", "the cat", "-n", "8", "--temperature", "0"], expect_ok=False)
    R.check(g.returncode == 0, f"generate -p failed: {g.stderr.strip()}")
    print(f"generate from the trained model: {g.stdout.strip()!r}")

    # moepp convert to bf16: every tensor equals PyTorch's bf16 cast of the f32 export, the
    # config says bfloat16, the tokenizer comes along and the model still generates.
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "reference"))
    import torch
    from common import load_safetensors
    R.run(["convert", "-m", w("outA"), "-o", w("outBF"), "--dtype", "bf16"])
    f32 = load_safetensors(w("outA", "model.safetensors"))
    bf = load_safetensors(w("outBF", "model.safetensors"))
    same = set(f32) == set(bf) and all(bf[k].dtype == torch.bfloat16 and
                                       torch.equal(bf[k].view(torch.int16), f32[k].to(torch.bfloat16).view(torch.int16))
                                       for k in f32)
    with open(w("outBF", "config.json")) as f:
        bf_dtype = json.load(f).get("torch_dtype")
    R.check(same and bf_dtype == "bfloat16" and os.path.exists(w("outBF", "tokenizer.json")),
            f"convert --dtype bf16: {len(bf)} tensors bit-equal to torch's cast, torch_dtype {bf_dtype}")
    g = R.run(["generate", "-m", w("outBF"), "-p", "the cat", "-n", "4"], expect_ok=False)
    R.check(g.returncode == 0, f"generate on the bf16 conversion failed: {g.stderr.strip()}")
    bad_conv = R.run(["convert", "-m", w("outA"), "-o", w("outX"), "--dtype", "fp8"], expect_ok=False)
    R.check(bad_conv.returncode == 1 and "--dtype" in bad_conv.stderr, f"convert --dtype fp8: {bad_conv.stderr.strip()}")
    print(f"convert: {len(bf)} tensors to bf16, bit-equal to torch")

    # --config JSON; command-line flags win.
    with open(w("train.json"), "w") as f:
        json.dump({"model-config": w("config.json"), "tokenizer": w("tok"), "data": [w("doc0.txt")],
                   "steps": 50, "seq-len": 16, "batch": 2, "threads": 1, "eval-every": 0}, f)
    r = R.run(["train", "--config", w("train.json"), "--steps", "2", "--out", w("outD")])
    R.check("step 2/2" in r.stderr and "step 3/" not in r.stderr, f"--steps on the command line did not win: {r.stderr}")

    # Bad input: one clear line, exit code 1.
    bad = [
        (["--steps", "0"], "--steps"),
        (["--lr", "-1"], "learning rate"),
        (["--balance-layers", "max"], "sum or mean"),
        (["--adam-beta2", "1.5"], "betas"),
        (["--seq-len", "100000"], "need at least"),
        (["--seed", "8", "--resume", "--checkpoint-dir", w("ckB")], "seed"),
    ]
    for extra, needle in bad:
        r = R.run(["train"] + common + ["--out", w("outX")] + extra, expect_ok=False)
        lines = r.stderr.strip().splitlines()
        R.check(r.returncode == 1 and len(lines) >= 1 and lines[-1].startswith("moepp: ") and needle in lines[-1],
                f"bad input {extra}: rc {r.returncode}, stderr {r.stderr.strip()[-300:]!r}")
    with open(w("bad.json"), "w") as f:
        json.dump({"stepz": 3}, f)
    r = R.run(["train", "--config", w("bad.json")] + common + ["--out", w("outX")], expect_ok=False)
    R.check(r.returncode == 1 and "unknown key 'stepz'" in r.stderr, f"unknown config key: {r.stderr.strip()}")
    bad_cfg = dict(MODEL_CONFIG, num_experts_per_tok=9)
    with open(w("bad_config.json"), "w") as f:
        json.dump(bad_cfg, f)
    r = R.run(["train", "--model-config", w("bad_config.json")] + common[2:] + ["--out", w("outX")], expect_ok=False)
    R.check(r.returncode == 1 and "num_experts_per_tok" in r.stderr, f"bad model config: {r.stderr.strip()}")

    for f in R.failures:
        print("FAIL", f)
    print("OK" if not R.failures else f"{len(R.failures)} failure(s)")
    return 1 if R.failures else 0


if __name__ == "__main__":
    sys.exit(main())
