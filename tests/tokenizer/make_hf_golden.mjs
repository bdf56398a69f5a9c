// Writes tests/tokenizer/data/hf_golden.json: golden ids for the Qwen3, DeepSeek-V3 and gpt-oss
// tokenizer.json files from @lenml/tokenizers@3.7.2 (a dependency-free fork of transformers.js,
// an independent implementation of the HF pipeline), for HfTokenizerVectors.LenmlGoldens.
//   node tests/tokenizer/make_hf_golden.mjs   (after scripts/fetch-tokenizer-assets.sh)
// Strings avoid U+0085 and U+FEFF, where JavaScript's \s differs from Rust's / Oniguruma's.
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const require = createRequire(path.join(root, ".cache/npm/node_modules/"));
const { TokenizerLoader } = require("@lenml/tokenizers");
const assets = path.join(root, ".cache/tokenizer-assets/hf");

const texts = [
  "", " ", "   ", "hello", " hello", "  hello  ", "Hello world", "\n", "\n\n\n", " \n \n", "\t\ttabs\tand spaces   ",
  "line1\r\nline2\rline3", "1234567890 12 123 1234", "3.14159, -2.5e10, 1,000,000",
  "I'm we'll they've she'd it's DON'T I'M", "🦙🦙 llamas 🦙", "👨‍👩‍👧‍👦 family emoji",
  "中文字符测试，你好世界！", "日本語のテキスト、カタカナ", "한국어 텍스트", "Привет, мир! Как дела?", "مرحبا بالعالم",
  "café naïve résumé", "e\u0301 combining acute", "x\u00a0y\u2003z\u3000w", "<<>> [[]] {{}} ((()))",
  "def f(x):\n    return x * 2  # comment\n", "https://example.com/path?q=1&r=2#frag", "ÀÁÂÃÄÅ àáâãäå",
  "Ġ ĉ Ċ byte-level look-alikes", "mixedCASEWords andALLCAPS WithCamelCase",
  "The llama (/ˈlɑːmə/; 🦙Spanish pronunciation: [ˈʎama]) (Lama glama) is a domesticated South American camelid.",
  "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n", "<|endoftext|>text<|endoftext|>",
  "<｜begin▁of▁sentence｜>Hello<｜end▁of▁sentence｜>", "<|start|>system<|message|>hi<|end|>",
  "a\u200bb zero width", "ﬁ ligature ＡＢＣ fullwidth", "    indented\n        more\n", "x".repeat(300),
];

const models = { "qwen3": "qwen3", "deepseek-v3": "deepseek-v3", "gpt-oss": "gpt-oss" };
const out = {};
for (const [name, dir] of Object.entries(models)) {
  const tokenizerJSON = JSON.parse(fs.readFileSync(path.join(assets, dir, "tokenizer.json"), "utf8"));
  const tokenizerConfig = JSON.parse(fs.readFileSync(path.join(assets, dir, "tokenizer_config.json"), "utf8"));
  const tok = TokenizerLoader.fromPreTrained({ tokenizerJSON, tokenizerConfig });
  out[name] = [];
  for (const text of texts) {
    out[name].push({ text, add_special: false, ids: tok.encode(text, { add_special_tokens: false }) });
  }
  // transformers.js builds BOS/EOS from the post_processor only; transformers' LlamaTokenizerFast
  // (DeepSeek-V3's class) adds BOS from add_bos_token, which this package misses: no case there.
  if (name !== "deepseek-v3") {
    out[name].push({ text: "Hello", add_special: true, ids: tok.encode("Hello", { add_special_tokens: true }) });
  }
}
const file = path.join(root, "tests/tokenizer/data/hf_golden.json");
fs.writeFileSync(file, JSON.stringify(out, null, 0).replace(/\},\{/g, "},\n{") + "\n");
console.log(`wrote ${file}`);
