// Talks to a running `moepp serve` with the official OpenAI Node client (npm `openai`, pinned by
// scripts/fetch-server-test-deps.sh) and prints what it got as one JSON object; check_server.py
// compares it with the raw HTTP answers.
// Usage: node openai_client.mjs NODE_MODULES_DIR BASE_URL API_KEY
import { createRequire } from "node:module";
import path from "node:path";

const [modules, baseURL, apiKey] = process.argv.slice(2);
const require = createRequire(path.join(modules, "noop.js"));
const OpenAI = require("openai");
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });

const out = {};
const models = await client.models.list();
out.models = models.data.map((m) => m.id);
const completion = await client.completions.create({ model: out.models[0], prompt: "Once upon a time", max_tokens: 8, temperature: 0 });
out.completion = completion.choices[0].text;
out.completion_usage = completion.usage;
const chat = await client.chat.completions.create({
  model: out.models[0], messages: [{ role: "user", content: "Tell me a story" }], max_tokens: 8, temperature: 0,
});
out.chat = chat.choices[0].message.content;
out.chat_finish = chat.choices[0].finish_reason;
const stream = await client.chat.completions.create({
  model: out.models[0], messages: [{ role: "user", content: "Tell me a story" }], max_tokens: 8, temperature: 0,
  stream: true, stream_options: { include_usage: true },
});
out.chat_stream = "";
for await (const chunk of stream) {
  if (chunk.usage) out.chat_stream_usage = chunk.usage;
  for (const c of chunk.choices) if (c.delta && c.delta.content) out.chat_stream += c.delta.content;
}
try {
  await client.completions.create({ model: out.models[0], prompt: "x", max_tokens: -5 });
  out.bad_request = "no error";
} catch (e) {
  out.bad_request = { status: e.status, param: e.param ?? (e.error && e.error.param) };
}
console.log(JSON.stringify(out));
