// Node side of bench/tokenizer_side_by_side.sh: encodes the same documents (JSONL, field
// "text") with npm tiktoken (Rust compiled to wasm, encode_ordinary) and js-tiktoken (pure JS),
// one thread (Node runs JS on one), REPS timed passes each, and prints JSON with the MB/s of
// every pass. Not a test.
//   node bench/tokenizer_side_by_side.mjs CORPUS.jsonl REPS
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { getEncoding } from "js-tiktoken";

const require = createRequire(import.meta.url);
const { get_encoding } = require("tiktoken");
const [file, repsArg] = process.argv.slice(2);
const reps = Number(repsArg || 5);
const docs = readFileSync(file, "utf8").split("\n").filter((l) => l.length > 0).map((l) => JSON.parse(l).text);
const bytes = docs.reduce((n, d) => n + Buffer.byteLength(d, "utf8"), 0);

function run(name, encodeDoc) {
  let tokens = 0;
  for (const d of docs) tokens += encodeDoc(d).length;  // warm-up pass (JIT, caches)
  const mbps = [];
  for (let r = 0; r < reps; r++) {
    const t0 = process.hrtime.bigint();
    let n = 0;
    for (const d of docs) n += encodeDoc(d).length;
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    if (n !== tokens) throw new Error(name + ": token count changed between passes");
    mbps.push(bytes / 1e6 / s);
  }
  return { name, tokens, mbps };
}

const wasm = get_encoding("gpt2");
const js = getEncoding("gpt2");
const results = [
  run("tiktoken (npm, wasm)", (d) => wasm.encode_ordinary(d)),
  run("js-tiktoken (npm, JS)", (d) => js.encode(d, [], [])),
];
wasm.free();
console.log(JSON.stringify({ bytes, documents: docs.length, results }));
