#!/usr/bin/env python3
"""Writes a tiny GPT-2 checkpoint in the exact Hugging Face layout (config.json +
model.safetensors, Conv1D weights [in, out], `transformer.` prefix, attn.bias mask buffers,
no lm_head: tied to wte) with random weights, for the lab's API tests. numpy only; the
safetensors file is written by hand (8-byte LE header length, JSON header, raw data).
Not a reference forward pass: the model layer's golden tests do that.
usage: make_tiny_gpt2.py OUT_DIR [--layers 2] [--heads 2] [--embd 32] [--ctx 64] [--seed 0]"""
import argparse, json, os, struct
import numpy as np

ap = argparse.ArgumentParser()
ap.add_argument("out")
ap.add_argument("--layers", type=int, default=2)
ap.add_argument("--heads", type=int, default=2)
ap.add_argument("--embd", type=int, default=32)
ap.add_argument("--ctx", type=int, default=64)
ap.add_argument("--vocab", type=int, default=50257)
ap.add_argument("--seed", type=int, default=0)
a = ap.parse_args()
rng = np.random.default_rng(a.seed)
D, V, C = a.embd, a.vocab, a.ctx

def w(*shape, std=0.2):
    return (rng.standard_normal(shape) * std).astype(np.float32)

t = {"transformer.wte.weight": w(V, D, std=0.5), "transformer.wpe.weight": w(C, D, std=0.1)}
for l in range(a.layers):
    h = f"transformer.h.{l}."
    t[h + "ln_1.weight"] = (1 + w(D, std=0.05)); t[h + "ln_1.bias"] = w(D, std=0.05)
    t[h + "attn.c_attn.weight"] = w(D, 3 * D, std=0.3); t[h + "attn.c_attn.bias"] = w(3 * D, std=0.05)
    t[h + "attn.c_proj.weight"] = w(D, D); t[h + "attn.c_proj.bias"] = w(D, std=0.05)
    t[h + "attn.bias"] = np.tril(np.ones((C, C), np.float32)).reshape(1, 1, C, C)
    t[h + "ln_2.weight"] = (1 + w(D, std=0.05)); t[h + "ln_2.bias"] = w(D, std=0.05)
    t[h + "mlp.c_fc.weight"] = w(D, 4 * D); t[h + "mlp.c_fc.bias"] = w(4 * D, std=0.05)
    t[h + "mlp.c_proj.weight"] = w(4 * D, D); t[h + "mlp.c_proj.bias"] = w(D, std=0.05)
t["transformer.ln_f.weight"] = (1 + w(D, std=0.05)); t["transformer.ln_f.bias"] = w(D, std=0.05)

os.makedirs(a.out, exist_ok=True)
header, offset, blobs = {"__metadata__": {"format": "pt"}}, 0, []
for name in sorted(t):
    b = np.ascontiguousarray(t[name]).astype("<f4").tobytes()
    header[name] = {"dtype": "F32", "shape": list(t[name].shape), "data_offsets": [offset, offset + len(b)]}
    offset += len(b)
    blobs.append(b)
hj = json.dumps(header, separators=(",", ":")).encode()
hj += b" " * ((8 - len(hj) % 8) % 8)
with open(os.path.join(a.out, "model.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(hj))); f.write(hj)
    for b in blobs: f.write(b)
config = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_layer": a.layers, "n_head": a.heads,
          "n_embd": D, "n_positions": C, "n_ctx": C, "vocab_size": V, "layer_norm_epsilon": 1e-5,
          "activation_function": "gelu_new", "bos_token_id": 50256, "eos_token_id": 50256}
with open(os.path.join(a.out, "config.json"), "w") as f:
    json.dump(config, f, indent=2)
