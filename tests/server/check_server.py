#!/usr/bin/env python3
"""End-to-end test of `moepp serve` over loopback (ctest label `server`).

Builds a tiny MoE++ checkpoint with the LLaMA SentencePiece tokenizer and a chat template,
starts the server, and checks: every endpoint (raw HTTP, curl, and the official `openai` npm
client); streaming equals non-streaming; greedy answers of concurrent requests equal the same
requests one by one; generation equals `moepp generate`; stop strings, n, seeds, logprobs, the
routes extension; bad requests get the right status and an OpenAI error body and the server keeps
serving; a client that disconnects mid-stream frees its slot; the API key; a full queue answers
503; a bounded load test (fixed request count, every answer checked) and a short wrk run.
Run with /usr/bin/python3 (Debian's, with torch for the model generator).
"""
import argparse
import concurrent.futures
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools", "reference"))

from common import make_text_model  # noqa: E402
from make_tiny import make_tiny  # noqa: E402

CHAT_TEMPLATE = ("{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}[INST] {{ m['content'] }} [/INST]"
                 "{% elif m['role'] == 'system' %}<<SYS>>{{ m['content'] }}<</SYS>>"
                 "{% else %}{{ m['content'] }}{{ eos_token }}{% endif %}{% endfor %}")
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def make_model(work):
    ids_dir, text_dir = os.path.join(work, "ids"), os.path.join(work, "model")
    make_tiny("moepp", "7b", ids_dir, fmt="safetensors")
    make_text_model(ids_dir, text_dir, extra_files={"tokenizer_config.json": json.dumps(
        {"bos_token": "<s>", "eos_token": "</s>", "add_bos_token": True, "chat_template": CHAT_TEMPLATE})})
    cfg_path = os.path.join(text_dir, "config.json")
    cfg = json.load(open(cfg_path))
    cfg["max_position_embeddings"] = 512  # RoPE has no table limit; room for longer prompts
    json.dump(cfg, open(cfg_path, "w"), indent=2)
    return text_dir


class Server:
    def __init__(self, moepp, model, *flags):
        self.proc = subprocess.Popen([moepp, "serve", "-m", model, "--port", "0", "-t", "1", *flags],
                                     stderr=subprocess.PIPE, text=True)
        self.log = []
        line = self.proc.stderr.readline()
        self.log.append(line)
        m = re.search(r"listening on http://[^:]+:(\d+)", line)
        if not m:
            raise RuntimeError("server did not start: " + line + self.proc.stderr.read())
        self.port = int(m.group(1))
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        for line in self.proc.stderr:
            self.log.append(line)

    def request(self, method, path, body=None, headers=None, raw=None, timeout=60):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        conn.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
        r = conn.getresponse()
        payload = r.read().decode()
        conn.close()
        return r.status, payload

    def post(self, path, body, **kw):
        status, payload = self.request("POST", path, body, **kw)
        try:
            return status, json.loads(payload)
        except ValueError:
            return status, payload

    def stream(self, path, body):
        """The SSE events of a streaming request, parsed ([DONE] kept as the string)."""
        status, payload = self.request("POST", path, body)
        events = []
        for block in payload.split("\n\n"):
            if not block.strip():
                continue
            assert block.startswith("data: "), block
            data = block[len("data: "):]
            events.append(data if data == "[DONE]" else json.loads(data))
        return status, events

    def alive(self):
        return self.proc.poll() is None and self.request("GET", "/health")[0] == 200

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        return self.proc.returncode


def is_error(status, body, code, param=None):
    return (status == code and isinstance(body, dict) and "error" in body and body["error"].get("message")
            and (param is None or body["error"].get("param") == param))


def check_endpoints(s, moepp, model):
    status, body = s.request("GET", "/health")
    check(status == 200 and json.loads(body)["status"] == "ok", "/health")
    status, body = s.request("GET", "/v1/models")
    check(status == 200 and json.loads(body)["data"][0]["id"] == "model", "/v1/models lists the model")

    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=os.path.join(model, "tokenizer.model"))
    text = "The quick brown fox jumps over the lazy dog."
    status, body = s.post("/tokenize", {"content": text})
    check(status == 200 and body["tokens"] == [1] + sp.encode(text), "/tokenize equals SentencePiece (with BOS)")
    status, body = s.post("/detokenize", {"tokens": sp.encode(text)})
    check(status == 200 and body["content"] == text, "/detokenize round-trips")

    # Generation equals the CLI's greedy generation.
    out = subprocess.run([moepp, "generate", "-m", model, "-p", "Once upon a time", "-n", "12", "-t", "1", "--json"],
                         capture_output=True, text=True, check=True)
    expected = json.loads(out.stdout)["text"]
    status, body = s.post("/v1/completions", {"prompt": "Once upon a time", "max_tokens": 12, "temperature": 0})
    check(status == 200 and body["choices"][0]["text"] == expected, "completion equals `moepp generate`")
    check(body["usage"] == {"prompt_tokens": 5, "completion_tokens": 12, "total_tokens": 17} and
          body["choices"][0]["finish_reason"] == "length" and body["object"] == "text_completion", "completion usage and fields")
    full = body["choices"][0]["text"]

    # Streaming equals non-streaming.
    status, events = s.stream("/v1/completions", {"prompt": "Once upon a time", "max_tokens": 12, "temperature": 0,
                                                   "stream": True})
    streamed = "".join(e["choices"][0]["text"] for e in events[:-1])
    check(status == 200 and events[-1] == "[DONE]" and streamed == full and
          events[-2]["choices"][0]["finish_reason"] == "length", "completion stream equals the whole answer")
    chat_req = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there"}],
                "max_tokens": 10, "temperature": 0}
    status, body = s.post("/v1/chat/completions", chat_req)
    chat_text = body["choices"][0]["message"]["content"] if status == 200 else None
    check(status == 200 and body["object"] == "chat.completion" and body["choices"][0]["message"]["role"] == "assistant",
          "chat completion")
    status, events = s.stream("/v1/chat/completions", dict(chat_req, stream=True, stream_options={"include_usage": True}))
    deltas = [e for e in events if e != "[DONE]" and e["choices"]]
    check(deltas[0]["choices"][0]["delta"].get("role") == "assistant" and
          "".join(e["choices"][0]["delta"].get("content", "") for e in deltas) == chat_text and
          events[-2]["usage"]["completion_tokens"] == body["usage"]["completion_tokens"], "chat stream equals the whole answer, with usage")

    # curl, streaming.
    out = subprocess.run(["curl", "-sN", f"http://127.0.0.1:{s.port}/v1/completions", "-H", "Content-Type: application/json",
                          "-d", json.dumps({"prompt": "Once upon a time", "max_tokens": 12, "temperature": 0, "stream": True})],
                         capture_output=True, text=True, check=True)
    curl_text = "".join(json.loads(l[6:])["choices"][0]["text"] for l in out.stdout.splitlines()
                        if l.startswith("data: {"))
    check(curl_text == full and out.stdout.rstrip().endswith("data: [DONE]"), "curl streaming")

    # Stop strings: cut before the first occurrence, finish_reason stop.
    stop = full[len(full) // 2: len(full) // 2 + 3]
    status, body = s.post("/v1/completions", {"prompt": "Once upon a time", "max_tokens": 12, "temperature": 0, "stop": [stop]})
    check(status == 200 and body["choices"][0]["text"] == full[:full.index(stop)] and
          body["choices"][0]["finish_reason"] == "stop", f"stop string {stop!r}")
    status, events = s.stream("/v1/completions", {"prompt": "Once upon a time", "max_tokens": 12, "temperature": 0,
                                                   "stop": stop, "stream": True})
    check("".join(e["choices"][0]["text"] for e in events[:-1]) == full[:full.index(stop)], "stop string while streaming")

    # Seeds and n: the same seed gives the same choices; choices differ from each other.
    req = {"prompt": "Once upon a time", "max_tokens": 10, "temperature": 1.0, "seed": 42, "n": 3}
    a, b = s.post("/v1/completions", req)[1], s.post("/v1/completions", req)[1]
    texts = [c["text"] for c in a["choices"]]
    check(len(texts) == 3 and texts == [c["text"] for c in b["choices"]] and len(set(texts)) > 1 and
          [c["index"] for c in a["choices"]] == [0, 1, 2], "n=3 sampled choices, reproducible with a seed")

    # Logprobs and routes.
    status, body = s.post("/v1/completions", {"prompt": "Once upon a time", "max_tokens": 4, "temperature": 0,
                                              "logprobs": 2, "moepp_routes": True})
    lp = body["choices"][0]["logprobs"]
    routes = body["choices"][0]["moepp_routes"]
    check(len(lp["token_logprobs"]) == 4 and all(x < 0 for x in lp["token_logprobs"]) and
          all(len(t) == 2 and max(t.values()) == pytest_approx(l) for t, l in zip(lp["top_logprobs"], lp["token_logprobs"])),
          "completion logprobs: greedy token is the most likely")
    cfg = json.load(open(os.path.join(model, "config.json")))
    check(len(routes) == 4 and all(len(t) == cfg["num_hidden_layers"] and all(len(l) == 2 for l in t) for t in routes),
          "routes extension: [token][layer][top_k]")
    status, body = s.post("/v1/chat/completions", dict(chat_req, logprobs=True, top_logprobs=3, max_tokens=3))
    content = body["choices"][0]["logprobs"]["content"]
    check(len(content) == 3 and all(len(c["top_logprobs"]) == 3 and bytes(c["bytes"]).decode() == c["token"] for c in content),
          "chat logprobs layout")
    return full


def pytest_approx(x):
    class Approx:
        def __eq__(self, other):
            return abs(other - x) <= 1e-5 * max(1.0, abs(x))
    return Approx()


def check_concurrency(s):
    prompts = [f"Story number {i}: the" + " very" * i for i in range(8)]

    def ask(p, n_tokens):
        status, body = s.post("/v1/completions", {"prompt": p, "max_tokens": n_tokens, "temperature": 0})
        return body["choices"][0]["text"] if status == 200 else f"HTTP {status}"

    one_by_one = [ask(p, 6 + i) for i, p in enumerate(prompts)]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        together = list(pool.map(lambda ip: ask(ip[1], 6 + ip[0]), enumerate(prompts)))
    check(together == one_by_one, "8 concurrent greedy requests equal the same requests one by one")

    # Bounded load test: a fixed number of requests from 6 clients; every answer must be the
    # expected one for its own prompt (nothing lost, nothing mixed up).
    jobs = [(i % len(prompts), 6 + i % len(prompts)) for i in range(48)]
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda j: ask(prompts[j[0]], j[1]), jobs))
    check(all(a == one_by_one[j[0]] for a, j in zip(answers, jobs)), "load test: 48 requests, 6 clients, every answer its own")

    if shutil.which("wrk"):
        lua = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wrk_completion.lua")
        out = subprocess.run(["wrk", "-t", "2", "-c", "4", "-d", "3s", "-s", lua, f"http://127.0.0.1:{s.port}/v1/completions"],
                             capture_output=True, text=True)
        requests = re.search(r"(\d+) requests in", out.stdout)
        check(out.returncode == 0 and requests and int(requests.group(1)) > 0 and "Non-2xx" not in out.stdout and
              "Socket errors" not in out.stdout, f"wrk: {requests.group(1) if requests else '?'} requests, no errors")
    else:
        print("skip wrk (not installed)")


def check_bad_input(s):
    cases = [
        ("invalid JSON", dict(raw=b"{\"prompt\": "), 400, None),
        ("JSON array body", dict(raw=b"[1, 2]"), 400, None),
        ("wrong type", dict(body={"prompt": "x", "max_tokens": "ten"}), 400, "max_tokens"),
        ("out of range temperature", dict(body={"prompt": "x", "temperature": 9}), 400, "temperature"),
        ("negative max_tokens", dict(body={"prompt": "x", "max_tokens": -1}), 400, "max_tokens"),
        ("huge max_tokens", dict(body={"prompt": "x", "max_tokens": 10 ** 30}), 400, "max_tokens"),
        ("prompt + max_tokens beyond the context", dict(body={"prompt": "x", "max_tokens": 4000}), 400, "max_tokens"),
        ("unknown field", dict(body={"prompt": "x", "frobnicate": True}), 400, "frobnicate"),
        ("token id out of range", dict(body={"prompt": [1, 32000]}), 400, "prompt"),
        ("prompt too long", dict(body={"prompt": list(range(1, 600))}), 400, "prompt"),
        ("invalid UTF-8", dict(raw=b"{\"prompt\": \"\xff\xfe\"}"), 400, None),
        ("huge body", dict(raw=b"{\"prompt\": \"" + b"a" * (2 << 20) + b"\"}"), 413, None),
    ]
    for name, kw, code, param in cases:
        status, payload = s.request("POST", "/v1/completions", kw.get("body"), raw=kw.get("raw"))
        try:
            body = json.loads(payload)
        except ValueError:
            body = payload
        check(is_error(status, body, code, param), f"{name}: {code}" + (f" naming {param}" if param else ""))
    status, body = s.post("/v1/chat/completions", {"messages": [{"role": "user", "content": 5}]})
    check(is_error(status, body, 400, "messages[0].content"), "chat content of the wrong type: 400")
    status, body = s.post("/detokenize", {"tokens": [1, -4]})
    check(is_error(status, body, 400, "tokens"), "/detokenize bad id: 400")
    status, payload = s.request("GET", "/v1/nothing")
    check(status == 404 and "error" in json.loads(payload), "unknown endpoint: 404 with an error body")
    check(s.alive(), "server still serving after bad requests")


def open_stream(port, request):
    """Starts a streaming completion on a raw socket and returns once its first event arrived."""
    body = json.dumps(request).encode()
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    got = b""
    while b"data: " not in got:
        got += sock.recv(4096)
    return sock


def check_disconnect(s):
    """A client that goes away mid-stream: its sequence is cancelled and the slot freed."""
    sock = open_stream(s.port, {"prompt": "Once upon a time", "max_tokens": 400, "temperature": 0, "stream": True})
    sock.close()

    def metric(name):
        status, text = s.request("GET", "/metrics")
        m = re.search(rf"^{name} (\S+)$", text, re.M)
        return float(m.group(1)) if m else None

    deadline = time.time() + 20
    while time.time() < deadline and metric("moepp_sequences_active") != 0:
        time.sleep(0.05)
    generated_after = metric("moepp_generated_tokens_total")
    time.sleep(0.3)
    check(metric("moepp_sequences_active") == 0 and metric("moepp_generated_tokens_total") == generated_after,
          "client disconnect mid-stream cancels its sequence")
    status, text = s.request("GET", "/metrics")
    check(status == 200 and "moepp_expert_selections_total{layer=\"0\",expert=\"0\",kind=\"ffn\"}" in text and
          "moepp_requests_total{endpoint=\"/v1/completions\",status=\"200\"}" in text, "/metrics in Prometheus text")
    check(s.alive(), "server still serving after the disconnect")


def check_openai_client(s, node_modules):
    if not shutil.which("node") or not os.path.isdir(os.path.join(node_modules, "openai")):
        check(False, "openai npm client present (scripts/fetch-server-test-deps.sh)")
        return
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "openai_client.mjs")
    out = subprocess.run(["node", script, node_modules, f"http://127.0.0.1:{s.port}/v1", "sk-test"],
                         capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        check(False, "openai client ran: " + out.stderr[-2000:])
        return
    got = json.loads(out.stdout)
    _, ref = s.post("/v1/completions", {"prompt": "Once upon a time", "max_tokens": 8, "temperature": 0})
    _, chat = s.post("/v1/chat/completions", {"messages": [{"role": "user", "content": "Tell me a story"}],
                                              "max_tokens": 8, "temperature": 0})
    check(got["models"] == ["model"], "openai client: models.list")
    check(got["completion"] == ref["choices"][0]["text"] and got["completion_usage"] == ref["usage"], "openai client: completions")
    check(got["chat"] == chat["choices"][0]["message"]["content"] and got["chat_stream"] == got["chat"] and
          got["chat_stream_usage"]["completion_tokens"] == chat["usage"]["completion_tokens"],
          "openai client: chat, streamed and whole")
    check(got["bad_request"] == {"status": 400, "param": "max_tokens"}, "openai client: BadRequestError with the field")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--moepp", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--node-modules", default=os.path.join(ROOT, ".cache", "npm-server", "node_modules"))
    a = ap.parse_args()
    shutil.rmtree(a.work, ignore_errors=True)
    os.makedirs(a.work)
    model = make_model(a.work)

    s = Server(a.moepp, model, "--np", "4", "--max-body", "1024")
    try:
        full = check_endpoints(s, a.moepp, model)
        check_concurrency(s)
        check_bad_input(s)
        check_disconnect(s)
        check_openai_client(s, a.node_modules)
        logs = "".join(s.log)
        check("Once upon" not in logs and "Story number" not in logs, "no prompt text in the log")
    finally:
        check(s.stop() == 0, "server stops cleanly on SIGTERM")

    # Speculative decoding in the server: greedy answers unchanged, for both kinds of self-draft.
    for draft in ("self", "ngram"):
        s = Server(a.moepp, model, "--draft", draft, "--draft-n", "3")
        try:
            status, body = s.post("/v1/completions", {"prompt": "Once upon a time", "max_tokens": 12, "temperature": 0})
            check(status == 200 and body["choices"][0]["text"] == full, f"serve --draft {draft}: same greedy answer")
        finally:
            s.stop()

    # API key: required everywhere but /health.
    s = Server(a.moepp, model, "--api-key", "sk-secret")
    try:
        check(s.request("GET", "/health")[0] == 200, "api key: /health open")
        status, body = s.post("/v1/completions", {"prompt": "x", "max_tokens": 1})
        check(is_error(status, body, 401), "api key: missing -> 401")
        status, _ = s.request("GET", "/v1/models", headers={"Authorization": "Bearer wrong"})
        check(status == 401, "api key: wrong -> 401")
        status, body = s.post("/v1/completions", {"prompt": "x", "max_tokens": 1}, headers={"Authorization": "Bearer sk-secret"})
        check(status == 200, "api key: right -> 200")
    finally:
        s.stop()

    # A full queue: one slot, no waiting places; a request while a stream holds the slot gets 503.
    s = Server(a.moepp, model, "--np", "1", "--queue", "0")
    try:
        sock = open_stream(s.port, {"prompt": "Once upon a time", "max_tokens": 500, "temperature": 0, "stream": True})
        status, body = s.post("/v1/completions", {"prompt": "x", "max_tokens": 1})
        check(is_error(status, body, 503), "full queue: 503 with an error body")
        sock.close()
        deadline = time.time() + 20
        while time.time() < deadline and s.post("/v1/completions", {"prompt": "x", "max_tokens": 1})[0] != 200:
            time.sleep(0.05)
        check(s.post("/v1/completions", {"prompt": "x", "max_tokens": 1})[0] == 200, "the slot serves again once freed")
    finally:
        s.stop()

    # Bad flags: a clear one-line error, non-zero exit.
    out = subprocess.run([a.moepp, "serve", "-m", model, "--port", "70000"], capture_output=True, text=True)
    check(out.returncode != 0 and "--port" in out.stderr, "bad --port: clear error")
    out = subprocess.run([a.moepp, "serve", "-m", model, "--draft", os.path.join(a.work, "ids")], capture_output=True, text=True)
    check(out.returncode != 0 and "must share a tokenizer" in out.stderr, "a draft with another vocabulary: clear error")

    print(f"\n{'FAILED: ' + str(len(failures)) if failures else 'all server checks passed'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
