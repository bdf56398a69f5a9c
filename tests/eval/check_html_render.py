#!/usr/bin/python3
"""Renders the routing report in headless Chromium (Debian `chromium`): the screenshot is not
blank and the DOM (after the page's script ran) has the expected elements.

  /usr/bin/python3 tests/eval/check_html_render.py --moepp PATH/TO/moepp [--work DIR] [--keep-png OUT]

Exit 77 (skipped) when chromium is not installed; 1 on failure.
"""
import argparse
import html.parser
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools", "reference"))


class Dom(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.classes, self.text = set(), {}, []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        for c in (a.get("class") or "").split():
            self.classes[(tag, c)] = self.classes.get((tag, c), 0) + 1

    def handle_data(self, data):
        self.text.append(data)


def png_stats(path):
    """(distinct colours, share of pixels that are not the page background) of an RGB(A) PNG."""
    try:
        from PIL import Image
    except ImportError:
        return None
    im = Image.open(path).convert("RGB")
    colors = im.getcolors(maxcolors=1 << 24)
    bg = max(colors)[1]
    total = im.width * im.height
    return len(colors), 1.0 - max(colors)[0] / total, bg


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--moepp", required=True)
    ap.add_argument("--work", default="/tmp/moepp-eval-render")
    ap.add_argument("--model", help="model directory (default: a tiny MoE++ 7b-preset checkpoint)")
    ap.add_argument("--ids", help="token ids (default: 48 fixed random ids)")
    ap.add_argument("--keep-png", help="copy the screenshot here")
    a = ap.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("SKIP: chromium is not installed (scripts/install-deps.sh installs it)")
        return 77
    os.makedirs(a.work, exist_ok=True)
    model = a.model
    if model is None:
        from make_tiny import make_tiny
        model = os.path.join(a.work, "moepp-7b")
        make_tiny("moepp", "7b", model, fmt="safetensors", dtype="f32")
    ids = a.ids or ",".join(str(3 + (i * 37 + 11) % 109) for i in range(48))
    report = os.path.join(a.work, "report.html")
    subprocess.run([a.moepp, "routes", "-m", model, "--ids", ids, "--html", report, "--title", "tiny MoE++ (7b preset)"],
                   check=True, capture_output=True)
    png = os.path.join(a.work, "report.png")
    if os.path.exists(png):
        os.remove(png)
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
             f"--user-data-dir={os.path.join(a.work, 'profile')}"]
    url = "file://" + os.path.abspath(report)
    subprocess.run([chromium, *flags, f"--screenshot={png}", "--window-size=1200,900", url],
                   capture_output=True, timeout=120)
    dom = subprocess.run([chromium, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
    failures = []
    if not os.path.exists(png):
        failures.append("no screenshot written")
    else:
        st = png_stats(png)
        if st is None:
            print("note: python3-pil missing, PNG contents not checked")
        else:
            n_colors, ink, bg = st
            print(f"screenshot: {n_colors} distinct colours, {100 * ink:.1f}% non-background (background {bg})")
            if n_colors < 50 or ink < 0.05:
                failures.append(f"screenshot looks blank: {n_colors} colours, {100 * ink:.1f}% ink")
    d = Dom()
    d.feed(dom)
    text = "".join(d.text)
    want_ids = {"summary", "tokens", "hover-panel", "heatmap", "ffn-histogram", "kind-share", "class-table", "token-table",
                "layer-table", "moepp-routes"}
    missing = want_ids - d.ids
    if missing:
        failures.append(f"missing elements {sorted(missing)}")
    n_tok = d.classes.get(("span", "tok"), 0)
    n_cells = d.classes.get(("rect", "cell"), 0)
    if n_tok != 48:
        failures.append(f"{n_tok} token spans, expected 48")
    if n_cells != 3 * 8:
        failures.append(f"{n_cells} heat-map cells, expected 3 layers x 8 experts")
    if "FFN experts per layer" not in text or "L0" not in text:
        failures.append("the hover panel was not filled by the page's script")
    for f in failures:
        print("FAIL " + f)
    if not failures:
        print(f"PASS report renders: {n_tok} tokens, {n_cells} heat-map cells, hover panel filled by script")
    if a.keep_png and os.path.exists(png):
        shutil.copy(png, a.keep_png)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
