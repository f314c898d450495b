// Independent GPT-2 encoders for the tokenizer golden test: js-tiktoken's "gpt2" ranks (the
// reference the test requires circuitlab to match id for id) and gpt-3-encoder (printed
// beside it as a second opinion). Not part of circuitlab; only the tests run it.
//   node tests/data/gpt2_reference.mjs OUT.json FILE...   (each FILE: one UTF-8 text)
// OUT.json: {"js_tiktoken": [[ids of FILE 1], ...], "gpt_3_encoder": [[...], ...]}
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { getEncoding } from "js-tiktoken";

const require = createRequire(import.meta.url);
const gpt3 = require("gpt-3-encoder");
const [out, ...files] = process.argv.slice(2);
if (!out || files.length === 0) {
  console.error("usage: node gpt2_reference.mjs OUT.json FILE...");
  process.exit(2);
}
const enc = getEncoding("gpt2");
const result = { js_tiktoken: [], gpt_3_encoder: [] };
for (const f of files) {
  const text = readFileSync(f).toString("utf8");
  // disallowedSpecial = [] : "<|endoftext|>" in the text is ordinary text (encode_ordinary).
  result.js_tiktoken.push(Array.from(enc.encode(text, [], [])));
  let g;
  try { g = gpt3.encode(text); } catch (e) { g = null; }
  result.gpt_3_encoder.push(g);
}
writeFileSync(out, JSON.stringify(result));
