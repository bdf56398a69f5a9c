#!/usr/bin/python3
"""Bad input through the moepp command: corrupt or hostile checkpoints, contradictory configs,
bad flags. Each case must exit non-zero (not by a signal: no crash) and print one clear error
line that names what was wrong. Run it on a sanitizer build to catch memory errors too.

  /usr/bin/python3 tests/model/check_bad_input.py --moepp build/bin/moepp [--work DIR]
"""
import argparse
import json
import os
import shutil
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tools", "reference"))

import torch  # noqa: E402

from common import load_safetensors, save_safetensors  # noqa: E402


def make(work, name, family, preset, fmt="safetensors", dtype="f32"):
    out = os.path.join(work, name)
    shutil.rmtree(out, ignore_errors=True)
    subprocess.run([sys.executable, os.path.join(ROOT, "tools", "reference", "make_tiny.py"), "--family", family,
                    "--preset", preset, "--out", out, "--format", fmt, "--dtype", dtype], check=True,
                   stdout=subprocess.DEVNULL)
    return out


def edit_safetensors(path, fn):
    tensors = load_safetensors(path)
    fn(tensors)
    save_safetensors(path, tensors)


def edit_config(d, **changes):
    p = os.path.join(d, "config.json")
    with open(p) as f:
        cfg = json.load(f)
    cfg.update(changes)
    with open(p, "w") as f:
        json.dump(cfg, f)


def forbidden_pickle_bin(path):
    """A torch-style zip whose data.pkl calls os.system: must be refused, never executed."""
    import zipfile
    marker = path + ".executed"
    payload = (b"\x80\x02" + b"cos\nsystem\n" + b"X" + struct.pack("<I", len("touch " + marker)) +
               ("touch " + marker).encode() + b"\x85R.")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", payload)
        z.writestr("archive/version", "3\n")
    return marker


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--moepp", required=True)
    ap.add_argument("--work", default="/tmp/moepp_bad_input")
    a = ap.parse_args()
    work = a.work
    os.makedirs(work, exist_ok=True)
    ids = ["--ids", "1,5,9,3"]
    out = os.path.join(work, "out.f32")
    cases = []  # (name, argv, [substrings the error must contain], max error lines)

    def logits(d, *extra):
        return ["logits", "-m", d, "-o", out] + list(ids) + list(extra)

    base = make(work, "base", "mixtral", "default")
    cases.append(("valid model loads", logits(base), None, 0))

    d = make(work, "missing", "mixtral", "default")
    name = "model.layers.1.block_sparse_moe.experts.2.w3.weight"
    edit_safetensors(os.path.join(d, "model.safetensors"), lambda t: t.pop(name))
    cases.append(("missing tensor", logits(d), ["missing tensor", name], 1))

    d = make(work, "extra", "mixtral", "default")
    edit_safetensors(os.path.join(d, "model.safetensors"), lambda t: t.__setitem__("model.layers.0.bogus.weight", torch.zeros(3)))
    cases.append(("unexpected tensor", logits(d), ["model.safetensors", "unexpected tensor 'model.layers.0.bogus.weight'"], 1))

    d = make(work, "shape", "mixtral", "default")
    name = "model.layers.0.self_attn.o_proj.weight"
    edit_safetensors(os.path.join(d, "model.safetensors"), lambda t: t.__setitem__(name, t[name][:, :-1].contiguous()))
    cases.append(("shape mismatch", logits(d), ["model.safetensors", name, "expected shape"], 1))

    d = make(work, "dtype", "mixtral", "default")
    name = "model.norm.weight"
    edit_safetensors(os.path.join(d, "model.safetensors"), lambda t: t.__setitem__(name, t[name].to(torch.int64)))
    cases.append(("integer tensor", logits(d), [name, "expected dtype", "I64"], 1))

    d = make(work, "truncated", "mixtral", "default")
    p = os.path.join(d, "model.safetensors")
    with open(p, "r+b") as f:
        f.truncate(os.path.getsize(p) - 100)
    cases.append(("truncated safetensors", logits(d), ["model.safetensors"], 1))

    d = make(work, "hugeheader", "mixtral", "default")
    p = os.path.join(d, "model.safetensors")
    with open(p, "r+b") as f:
        f.write(struct.pack("<Q", 1 << 60))
    cases.append(("huge header length", logits(d), ["model.safetensors", "header"], 1))

    d = make(work, "badconfig", "mixtral", "default")
    edit_config(d, hidden_size=40)
    cases.append(("config contradicts weights", logits(d), ["expected shape"], 1))

    d = make(work, "badfield", "moepp", "7b")
    edit_config(d, moe_gate_norm_std="wide")
    cases.append(("bad config field", logits(d), ["config.json", "moe_gate_norm_std", "\"wide\""], 1))

    d = make(work, "shardgone", "moepp", "7b", fmt="safetensors-sharded")
    shard = sorted(f for f in os.listdir(d) if f.startswith("model-"))[-1]
    os.remove(os.path.join(d, shard))
    cases.append(("missing shard", logits(d), [shard], 1))

    d = make(work, "pickle", "llama_moe", "8x265m", fmt="bin")
    marker = forbidden_pickle_bin(os.path.join(d, "pytorch_model.bin"))
    cases.append(("pickle with os.system", logits(d), ["pytorch_model.bin", "forbidden global", "os"], 1))

    cases.append(("ids not numbers", ["logits", "-m", base, "-o", out, "--ids", "1,x,3"], ["--ids", "'x'"], 1))
    cases.append(("token id out of range", ["logits", "-m", base, "-o", out, "--ids", "1,99999"], ["99999", "out of range"], 1))
    cases.append(("bad dtype", logits(base, "--dtype", "f8"), ["--dtype", "f8"], 1))
    cases.append(("bad kv cache", logits(base, "--kv-cache", "q5"), ["--kv-cache", "q5"], 1))
    cases.append(("bf16 kv cache under an f32 forward", logits(base, "--kv-cache", "bf16"), ["--kv-cache bf16", "--dtype bf16"], 1))
    cases.append(("negative chunk", logits(base, "--chunk", "-1"), ["--chunk"], 1))
    cases.append(("unknown flag", logits(base, "--bogus"), ["--bogus"], 2))
    cases.append(("missing -m", ["logits", "-o", out] + ids, ["--model"], 2))
    cases.append(("no such directory", ["info", "-m", os.path.join(work, "nope")], ["nope", "config.json"], 1))
    # Quantised files written by `moepp quantize`, then damaged.
    qbase = os.path.join(work, "qbase")
    subprocess.run([a.moepp, "quantize", "-m", base, "-o", qbase, "--type", "q4"], check=True, capture_output=True)
    qname = "model.layers.0.self_attn.o_proj.weight"
    for label, edit, needles in (
            ("quantised values of a float dtype", lambda t: t.__setitem__(qname, t[qname].to(torch.float32)),
             [qname, "expected dtype I8 (q8) or U8 (q4)", "F32"]),
            ("quantised values of the wrong width", lambda t: t.__setitem__(qname, t[qname][:, :-1].contiguous()),
             [qname, "expected shape"]),
            ("scales of the wrong shape", lambda t: t.__setitem__(qname + ".moepp_scales", t[qname + ".moepp_scales"][:-1].contiguous()),
             [qname + ".moepp_scales", "expected F32"]),
            ("non-finite scale", lambda t: t[qname + ".moepp_scales"].__setitem__((0, 0), float("nan")),
             [qname + ".moepp_scales", "not finite"]),
            ("values without scales", lambda t: t.pop(qname + ".moepp_scales"), [qname, "expected its scales", "found none"])):
        d = os.path.join(work, "q_" + label.replace(" ", "_"))
        shutil.rmtree(d, ignore_errors=True)
        shutil.copytree(qbase, d)
        edit_safetensors(os.path.join(d, "model.safetensors"), edit)
        cases.append((label, logits(d), needles, 1))
    cases.append(("requantising a quantised file", logits(qbase, "--weights", "q8"), ["stored as q4", "requantised to q8"], 1))
    cases.append(("threads past the limit", logits(base, "-t", "100000"), ["--threads", "100000"], 2))
    cases.append(("negative threads", logits(base, "-t", "-2"), ["--threads", "-2"], 2))
    cases.append(("bench threads past the limit", ["bench", "--model-shape", "moepp-0.6b", "-t", "1,5000"], ["-t", "5000"], 1))
    cases.append(("bench with two probes", ["bench", "--stream", "--batch-kernels"], ["--stream", "--batch-kernels"], 2))
    cases.append(("generate top_p out of range", ["generate", "-m", base, "--ids", "1,2", "--top-p", "2"], ["top_p"], 1))
    cases.append(("generate text without tokenizer", ["generate", "-m", base, "-p", "hello"], ["tokenizer"], 1))
    cases.append(("unwritable output", ["logits", "-m", base, "-o", os.path.join(work, "no", "dir", "x.f32")] + ids,
                  ["x.f32"], 1))

    passed = failed = 0
    for name, argv, needles, max_lines in cases:
        r = subprocess.run([a.moepp] + argv, capture_output=True, text=True, timeout=120)
        lines = [l for l in r.stderr.splitlines() if l.strip()]
        problems = []
        if needles is None:
            if r.returncode != 0:
                problems.append(f"expected success, got exit {r.returncode}: {r.stderr.strip()}")
        else:
            if r.returncode <= 0:
                problems.append(f"expected a non-zero exit code, got {r.returncode}" +
                                (" (killed by a signal: a crash)" if r.returncode < 0 else ""))
            if not lines or len(lines) > max_lines:
                problems.append(f"expected 1..{max_lines} error lines, got {len(lines)}")
            if "AddressSanitizer" in r.stderr or "runtime error" in r.stderr:
                problems.append("sanitizer report")
            for n in needles:
                if n not in r.stderr:
                    problems.append(f"error does not mention {n!r}")
        if problems:
            failed += 1
            print(f"FAIL {name}: {'; '.join(problems)}\n     stderr: {r.stderr.strip()[:400]}")
        else:
            passed += 1
            print(f"PASS {name}" + (f": {lines[0][:150]}" if lines else ""))
    if os.path.exists(marker):
        failed += 1
        print("FAIL pickle payload was executed")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
