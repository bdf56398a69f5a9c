#!/usr/bin/env python3
"""`moepp bench --json` prints one JSON object per line with the contract's fields (a tiny run)."""
import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

ap = argparse.ArgumentParser()
ap.add_argument("--moepp", required=True)
ap.add_argument("--models", required=True, help="the repository's models/ (the trained default model and its draft)")
args = ap.parse_args()

def run(*flags):
    out = subprocess.run([args.moepp, "bench", *flags], capture_output=True, text=True, timeout=240)
    if out.returncode != 0:
        sys.exit(f"moepp bench {' '.join(flags)} failed ({out.returncode}): {out.stderr}")
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]

fails = []
def expect(cond, what):
    if not cond:
        fails.append(what)

machine = run("--machine", "--json", "-t", "1", "--read-mib", "32")
expect(len(machine) == 1, f"--machine --json: one line per thread count, got {len(machine)}")
for key in ("read_gb_s", "fp32_gflop_s", "bf16_gflop_s", "int8_gop_s"):
    expect(all(m.get(key, 0) > 0 for m in machine), f"--machine --json: {key} missing or not positive")
expect(all(m.get("kernels") in ("scalar", "avx2", "avx2vnni", "avx512", "avx512bf16") for m in machine), f"--machine --json: kernels: {machine}")
forced = subprocess.run([args.moepp, "bench", "--machine", "--json", "-t", "1", "--read-mib", "32"], capture_output=True,
                        text=True, env={**os.environ, "MOEPP_KERNELS": "scalar"})
expect(forced.returncode == 0 and json.loads(forced.stdout.splitlines()[0]).get("kernels") == "scalar",
       f"MOEPP_KERNELS=scalar: {forced.stdout!r} {forced.stderr!r}")
# one_token_streams: per one-token kernel (bf16, q8, q4) the count in use in an AVX-512 set
# (MOEPP_STREAMS forces one on all), else 0; bf16 walks streams only with AVX512_BF16.
avx512 = machine[0].get("kernels", "").startswith("avx512")
streams = machine[0].get("one_token_streams")
if isinstance(streams, dict) and sorted(streams) == ["bf16", "q4", "q8"]:
    expect(all(streams[k] in ((1, 2, 4) if avx512 else (0,)) for k in ("q8", "q4")),
           f"--machine --json: one_token_streams: {streams}")
    expect(streams["bf16"] in (0, 1, 2, 4) and (avx512 or streams["bf16"] == 0),
           f"--machine --json: one_token_streams: {streams}")
    two = subprocess.run([args.moepp, "bench", "--machine", "--json", "-t", "1", "--read-mib", "32"],
                         capture_output=True, text=True, env={**os.environ, "MOEPP_STREAMS": "2"})
    forced_counts = json.loads(two.stdout.splitlines()[0]).get("one_token_streams") if two.returncode == 0 else None
    expect(forced_counts == {k: (2 if v > 0 else 0) for k, v in streams.items()},
           f"MOEPP_STREAMS=2: {two.stdout!r} {two.stderr!r}")
else:
    expect(False, f"--machine --json: one_token_streams, expected bf16, q8 and q4 counts: {machine}")

rows = run("--model-shape", "moepp-0.6b", "--layers", "1", "-p", "16", "-n", "4", "-r", "1", "-t", "1",
           "--json", "--read-mib", "32")
expect([r["test"] for r in rows] == ["pp16", "tg4"], f"tests: got {[r.get('test') for r in rows]}")
for r in rows:
    for key in ("test", "weights", "threads", "tok_s", "gb_s", "bw_share", "gflop_s", "flop_share", "zc_share"):
        expect(key in r, f"row {r.get('test')}: missing {key}")
    expect(r.get("weights") == "bf16" and r.get("threads") == 1 and r.get("layers") == 1, f"row fields: {r}")
    expect(r.get("tok_s", 0) > 0 and r.get("gb_s", 0) > 0 and r.get("gflop_s", 0) > 0, f"rates: {r}")
    # bw_share divides by the read of the weights taken beside the row where there is one (this
    # one layer is too small to leave the cache: read_gb_s 0), else by the machine's read.
    read, machine_read = r.get("read_gb_s", -1), r.get("machine_read_gb_s", 0)
    expect(read == 0 and machine_read > 0, f"read fields: {r}")
    if machine_read > 0:
        expect(abs(r["bw_share"] - r["gb_s"] / machine_read) < 1e-9 and abs(r["machine_bw_share"] - r["bw_share"]) < 1e-12,
               f"bw_share against the machine's read: {r}")
    # The random weights are written, so all resident: the peak holds at least (most of) them.
    peak, needed = r.get("peak_mem_gb", 0), r.get("needed_mem_gb", 0)
    expect(needed > 0 and peak >= 0.9 * needed and abs(r.get("mem_overhead", 0) - (peak / needed - 1)) < 1e-9,
           f"memory fields: {r}")

# Two layers of the shape (about 0.26 GB of bf16 weights) are past any last-level cache: the row
# reads them beside its repetitions and divides by that read.
big = run("--model-shape", "moepp-0.6b", "--layers", "2", "-p", "0", "-n", "2", "-r", "2", "-t", "1", "--json",
          "--read-mib", "32")
expect(len(big) == 1 and big[0].get("read_gb_s", 0) > 0, f"read beside the row: {big}")
if big and big[0].get("read_gb_s", 0) > 0:
    r = big[0]
    expect(abs(r["bw_share"] - r["gb_s"] / r["read_gb_s"]) < 1e-9, f"bw_share against the read beside the row: {r}")
    expect(abs(r["machine_bw_share"] - r["gb_s"] / r["machine_read_gb_s"]) < 1e-9, f"machine_bw_share: {r}")

# -d: the same tests after a context already in the cache, named as llama-bench names them; the
# needed memory counts the context's KV rows.
deep = run("--model-shape", "moepp-0.6b", "--layers", "1", "-p", "8", "-n", "2", "-d", "0,40", "-r", "1", "-t", "1",
           "--json", "--read-mib", "32")
expect([(r.get("test"), r.get("depth")) for r in deep] == [("pp8", 0), ("tg2", 0), ("pp8@d40", 40), ("tg2@d40", 40)],
       f"-d rows: {[(r.get('test'), r.get('depth')) for r in deep]}")
if len(deep) == 4:
    expect(deep[3]["needed_mem_gb"] > deep[1]["needed_mem_gb"] and deep[3]["tok_s"] > 0, f"-d memory and rates: {deep}")
bad_depth = subprocess.run([args.moepp, "bench", "--model-shape", "moepp-0.6b", "-d", "-3"], capture_output=True, text=True)
expect(bad_depth.returncode != 0 and "-d: expected" in bad_depth.stderr, f"bad -d: rc {bad_depth.returncode}, {bad_depth.stderr!r}")

chart_dir = tempfile.mkdtemp()
chart = os.path.join(chart_dir, "speedup.svg")
cmp_rows = run("--model-shape", "moepp-0.6b", "--compare-vanilla", "--zc-share", "0.5", "-p", "16", "-n", "2",
               "-r", "1", "-t", "1", "--json", "--read-mib", "32", "--svg", chart)
# --svg: a well-formed SVG with one point per compare row, whose title carries the row's numbers.
try:
    svg_root = ET.parse(chart).getroot()
    circles = svg_root.findall(".//{http://www.w3.org/2000/svg}circle")
    expect(len(circles) == len(cmp_rows), f"--svg: {len(circles)} points for {len(cmp_rows)} rows")
    titles = " ".join(c.findtext("{http://www.w3.org/2000/svg}title", "") for c in circles)
    for r in cmp_rows:
        expect(f"speed-up {r['expert_speedup']:.3f}" in titles, f"--svg: no point for {r['test']}: {titles}")
except (OSError, ET.ParseError) as e:
    expect(False, f"--svg: {e}")
for flags, message in ((["--stream", "--svg", chart], "--svg: charts the pp/tg and --compare-vanilla rows, not --stream"),
                       (["--machine", "--svg", chart], "--svg: nothing to chart"),
                       (["--model-shape", "moepp-0.6b", "-p", "0", "-n", "0", "--svg", chart], "--svg: no rows to chart"),
                       (["--model-shape", "moepp-0.6b", "--svg", ""], "--svg: expected a file name"),
                       (["--model-shape", "moepp-0.6b", "--svg", os.path.join(chart_dir, "no", "such", "dir.svg")],
                        os.path.join(chart_dir, "no", "such", "dir.svg"))):
    refused = subprocess.run([args.moepp, "bench", *flags], capture_output=True, text=True, timeout=60)
    expect(refused.returncode != 0 and message in refused.stderr, f"--svg refused {flags}: rc {refused.returncode}, {refused.stderr!r}")
shutil.rmtree(chart_dir)
expect([r["test"] for r in cmp_rows] == ["moe_pp16", "moe_tg2"], f"compare tests: {[r.get('test') for r in cmp_rows]}")
for r in cmp_rows:
    for key in ("zc_share", "expert_speedup", "ffn_work_ratio", "roofline_speedup", "roofline_share",
                "roofline_share_vanilla", "tok_s", "gb_s", "bw_share", "gflop_s", "flop_share"):
        expect(key in r, f"compare row {r.get('test')}: missing {key}")
    expect(r.get("expert_speedup", 0) > 0 and r.get("ffn_work_ratio", 0) > 0, f"compare rates: {r}")
    # The speed-up at the machine's limits, and each layer's share of its own: the measured
    # speed-up is the roofline's times the ratio of the shares.
    roofline_filled = r.get("roofline_speedup", 0) > 0 and r.get("roofline_share", 0) > 0 and \
        r.get("roofline_share_vanilla", 0) > 0
    expect(roofline_filled, f"compare roofline: {r}")
    if roofline_filled:
        expect(abs(r["expert_speedup"] - r["roofline_speedup"] * r["roofline_share"] / r["roofline_share_vanilla"])
               < 1e-6 * r["expert_speedup"], f"compare roofline shares: {r}")

# --moe-time on a trained checkpoint and real text: one row per model and thread count, ratios to
# the first; the MoE++ default model sends some slots to zero-computation experts.
default, draft = f"{args.models}/default", f"{args.models}/draft"
text = f"{args.models}/default/TRAINING.md"
mt = run("--moe-time", f"{default},{draft}", "-f", text, "-p", "48", "-r", "1", "-t", "1", "--json")
expect([r.get("model") for r in mt] == [default, draft], f"--moe-time rows: {[r.get('model') for r in mt]}")
if len(mt) == 2:
    expect(mt[0]["tokens"] == 48 and mt[0]["moe_layers"] == 6 and mt[1]["moe_layers"] == 2, f"--moe-time shapes: {mt}")
    expect(0 < mt[0]["zc_share"] < 1 and abs(mt[0]["ffn_per_token_layer"] - 2 * (1 - mt[0]["zc_share"])) < 1e-9,
           f"--moe-time: FFN experts per token = top_k x FFN share: {mt[0]}")
    expect(mt[0]["pp_ratio"] == 1 and mt[0]["tg_ratio"] == 1 and mt[1]["pp_tok_s"] > 0, f"--moe-time ratios: {mt}")

# --draft with prompts from real text: every output equal to plain greedy (the bench checks), and
# the counts add up.
sp = run("-m", default, "--draft", draft, "-f", text, "-p", "16", "-n", "8", "--draft-n", "2,3", "-t", "1", "--json")
expect([r.get("k") for r in sp] == [2, 3], f"--draft rows: {[r.get('k') for r in sp]}")
for r in sp:
    expect(0 <= r["acceptance_rate"] <= 1 and r["accepted_per_step"] <= r["k"] and r["plain_tok_s"] > 0,
           f"--draft row: {r}")

# --stream: a huge-page and a small-page row per format, rates positive; bad shapes refused.
st = run("--stream", "--weights", "q8,bf16", "--stream-shape", "64x256", "--stream-calls", "4", "--json")
expect([(r.get("weights"), r.get("pages")) for r in st] == [("q8", "huge"), ("q8", "small"), ("bf16", "huge"), ("bf16", "small")],
       f"--stream rows: {st}")
for r in st:
    expect(r.get("test") == "stream" and r.get("rows") == 64 and r.get("cols") == 256 and r.get("streams") in (1, 2, 4),
           f"--stream fields: {r}")
    expect(r.get("kernel_gb_s", 0) > 0 and r.get("read_gb_s", 0) > 0 and
           abs(r.get("ratio", 0) - r["kernel_gb_s"] / r["read_gb_s"]) < 1e-9, f"--stream rates: {r}")
# --streams: a row per stream count and page size, in the order named; each row's read is its
# page size's, shared by the counts; counts other than 1, 2 or 4 refused.
# (The q4 kernel walks streams in the AVX-512 sets only; elsewhere one row per page size, 0.)
ss = run("--stream", "--weights", "q4", "--streams", "4,1", "--stream-shape", "64x256", "--stream-calls", "4", "--json")
if avx512:
    expect([(r.get("pages"), r.get("streams")) for r in ss] == [("huge", 4), ("huge", 1), ("small", 4), ("small", 1)],
           f"--streams rows: {ss}")
    expect(len(ss) == 4 and ss[0]["read_gb_s"] == ss[1]["read_gb_s"] and ss[2]["read_gb_s"] == ss[3]["read_gb_s"],
           f"--streams reads: {ss}")
else:
    expect([(r.get("pages"), r.get("streams")) for r in ss] == [("huge", 0), ("small", 0)], f"--streams rows: {ss}")
for bad_count, message in (("3", "--streams: expected 1, 2 or 4"), ("0", "--streams: expected comma-separated positive"),
                           ("2,2", "--streams: 2 is named twice")):
    bc = subprocess.run([args.moepp, "bench", "--stream", "--streams", bad_count, "--stream-shape", "64x256"],
                        capture_output=True, text=True)
    expect(bc.returncode != 0 and message in bc.stderr, f"--streams {bad_count}: rc {bc.returncode}, {bc.stderr!r}")
# --batch-kernels: one row per SIMD set (or the scalar twin alone), format and token count; the
# sets' products are compared bit for bit before timing, and -p 0 is refused.
bk = run("--batch-kernels", "--weights", "bf16,q4", "-p", "3,50", "--stream-shape", "40x96", "--batch-calls", "2", "--json")
sets = sorted({r.get("kernels") for r in bk})
expect(len(bk) == 4 * len(sets) and all(r.get("test") == "batch_kernels" for r in bk), f"--batch-kernels rows: {bk}")
expect([(r["weights"], r["tokens"]) for r in bk][::len(sets)] == [("bf16", 3), ("bf16", 50), ("q4", 3), ("q4", 50)],
       f"--batch-kernels order: {bk}")
for r in bk:
    expect(r.get("rows") == 40 and r.get("cols") == 96 and r.get("gflop_s", 0) > 0 and r.get("gb_s", 0) > 0,
           f"--batch-kernels fields: {r}")
    # kernel / read: the two rates of one row divided (one read per format and token count).
    expect(r.get("read_gb_s", 0) > 0 and abs(r.get("ratio", 0) - r["gb_s"] / r["read_gb_s"]) < 1e-9 * r.get("ratio", 1),
           f"--batch-kernels read: {r}")
    # The cached rate and the overlap: (cached + read - cold) / min(cached, read), seconds a call,
    # recomputed from the row's own rates (each rate is the call's work over its seconds).
    finite_overlap = isinstance(r.get("overlap"), float) and math.isfinite(r["overlap"])
    expect(r.get("cached_gflop_s", 0) > 0 and finite_overlap, f"--batch-kernels cached fields: {r}")
    if r.get("cached_gflop_s", 0) > 0 and finite_overlap:
        # Times in the unit of one call's work: the read moves the bytes gb_s counts.
        cold, cached = 1 / r["gflop_s"], 1 / r["cached_gflop_s"]
        read = cold * r["gb_s"] / r["read_gb_s"]
        expect(abs(r["overlap"] - (cached + read - cold) / min(cached, read)) < 1e-6 * max(1.0, abs(r["overlap"])),
               f"--batch-kernels overlap: {r}")
for fmt, tokens in (("bf16", 3), ("bf16", 50), ("q4", 3), ("q4", 50)):
    reads = {r["read_gb_s"] for r in bk if r["weights"] == fmt and r["tokens"] == tokens}
    expect(len(reads) == 1, f"--batch-kernels {fmt} x {tokens}: one read for all sets, got {reads}")
# Both rates divide by the same seconds: their ratio is 2 x 40 x 96 x tokens / the matrix's bytes,
# so it grows with the tokens alone for one format.
for fmt in ("bf16", "q4"):
    ratios = {(r["tokens"], r["kernels"]): r["gflop_s"] / r["gb_s"] for r in bk if r["weights"] == fmt and r["gb_s"] > 0}
    if len(ratios) == 2 * len(sets):
        per_token = [v / t for (t, _), v in ratios.items()]
        expect(max(per_token) - min(per_token) < 1e-6 * max(per_token), f"--batch-kernels {fmt} rates: {ratios}")
no_tokens = subprocess.run([args.moepp, "bench", "--batch-kernels", "-p", "0"], capture_output=True, text=True)
expect(no_tokens.returncode != 0 and "-p: expected 1 to 65536 tokens" in no_tokens.stderr,
       f"--batch-kernels -p 0: rc {no_tokens.returncode}, {no_tokens.stderr!r}")
bad_shape = subprocess.run([args.moepp, "bench", "--stream", "--stream-shape", "64by256"], capture_output=True, text=True)
expect(bad_shape.returncode != 0 and "--stream-shape: expected ROWSxCOLS" in bad_shape.stderr,
       f"bad --stream-shape: rc {bad_shape.returncode}, {bad_shape.stderr!r}")

bad = subprocess.run([args.moepp, "bench", "--model-shape", "nope"], capture_output=True, text=True)
expect(bad.returncode != 0 and "unknown shape" in bad.stderr, f"unknown shape: rc {bad.returncode}, {bad.stderr!r}")

if fails:
    sys.exit("\n".join(fails))
print("ok")
