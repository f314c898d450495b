#!/usr/bin/python3
"""GPT-2-small-shaped forward over 64 tokens with the full activation cache: circuitlab
(build/bench/bench_forward, Google Benchmark) beside the same forward in PyTorch eager
(TransformerLens-style einsum code, every hook-point activation kept, per-head result
included), same weights, same thread count, in one run. Prints medians and the ratio.

  /usr/bin/python3 bench/forward_vs_torch.py [--threads 1] [--reps 15] [--rounds 3] [--keep DIR]

Weights: random, written once in the exact Hugging Face layout (model.safetensors +
config.json) to a temp dir; both sides load that file. Not a correctness test, but the
logits of both sides are compared (max abs diff printed) so the timings are of the same model.
"""
import argparse
import json
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "models"))
from make_fixtures import write_safetensors  # noqa: E402  (the fixture writer, numpy only)

L, D, H, Dh, V, P, T = 12, 768, 12, 64, 50257, 1024, 64


def make_weights(d):
    rng = np.random.default_rng(0)
    r = lambda *s: (rng.standard_normal(s, dtype=np.float32) * 0.02)
    W = {"wte.weight": r(V, D), "wpe.weight": r(P, D), "ln_f.weight": 1 + r(D), "ln_f.bias": r(D)}
    for l in range(L):
        h = f"h.{l}."
        W.update({h + "ln_1.weight": 1 + r(D), h + "ln_1.bias": r(D), h + "attn.c_attn.weight": r(D, 3 * D),
                  h + "attn.c_attn.bias": r(3 * D), h + "attn.c_proj.weight": r(D, D), h + "attn.c_proj.bias": r(D),
                  h + "ln_2.weight": 1 + r(D), h + "ln_2.bias": r(D), h + "mlp.c_fc.weight": r(D, 4 * D),
                  h + "mlp.c_fc.bias": r(4 * D), h + "mlp.c_proj.weight": r(4 * D, D), h + "mlp.c_proj.bias": r(D)})
    os.makedirs(d, exist_ok=True)
    write_safetensors(os.path.join(d, "model.safetensors"), W, {"format": "pt"})
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump({"model_type": "gpt2", "n_layer": L, "n_head": H, "n_embd": D, "n_positions": P, "vocab_size": V,
                   "layer_norm_epsilon": 1e-5, "activation_function": "gelu_new"}, f)
    return W


def to_tl(W):
    """TransformerLens convert_gpt2_weights, in torch."""
    t = {k: torch.from_numpy(v) for k, v in W.items()}
    sd = {"W_E": t["wte.weight"], "W_pos": t["wpe.weight"], "lnf_w": t["ln_f.weight"], "lnf_b": t["ln_f.bias"]}
    sd["W_U"] = t["wte.weight"].T.contiguous()
    for l in range(L):
        h = f"h.{l}."
        w = t[h + "attn.c_attn.weight"].view(D, 3, H, Dh)
        b = t[h + "attn.c_attn.bias"].view(3, H, Dh)
        sd[l] = {"ln1_w": t[h + "ln_1.weight"], "ln1_b": t[h + "ln_1.bias"],
                 "W_Q": w[:, 0].permute(1, 0, 2).contiguous(), "W_K": w[:, 1].permute(1, 0, 2).contiguous(),
                 "W_V": w[:, 2].permute(1, 0, 2).contiguous(), "b_Q": b[0], "b_K": b[1], "b_V": b[2],
                 "W_O": t[h + "attn.c_proj.weight"].view(H, Dh, D), "b_O": t[h + "attn.c_proj.bias"],
                 "ln2_w": t[h + "ln_2.weight"], "ln2_b": t[h + "ln_2.bias"],
                 "W_in": t[h + "mlp.c_fc.weight"], "b_in": t[h + "mlp.c_fc.bias"],
                 "W_out": t[h + "mlp.c_proj.weight"], "b_out": t[h + "mlp.c_proj.bias"]}
    return sd


def ln(x, w, b, cache, name):
    x = x - x.mean(-1, keepdim=True)
    scale = (x.pow(2).mean(-1, keepdim=True) + 1e-5).sqrt()
    cache[name + ".hook_scale"] = scale
    out = x / scale * w + b
    cache[name + ".hook_normalized"] = out
    return out


def forward_with_cache(sd, tokens, mask):
    """TransformerLens's HookedTransformer forward, every hook point cached."""
    cache = {}
    Tn = tokens.shape[1]
    embed = sd["W_E"][tokens]
    pos = sd["W_pos"][:Tn].unsqueeze(0).expand_as(embed)
    cache["hook_embed"], cache["hook_pos_embed"] = embed, pos
    resid = embed + pos
    for l in range(L):
        p, w = f"blocks.{l}.", sd[l]
        cache[p + "hook_resid_pre"] = resid
        x = ln(resid, w["ln1_w"], w["ln1_b"], cache, p + "ln1")
        q = torch.einsum("bpd,hdk->bphk", x, w["W_Q"]) + w["b_Q"]
        k = torch.einsum("bpd,hdk->bphk", x, w["W_K"]) + w["b_K"]
        v = torch.einsum("bpd,hdk->bphk", x, w["W_V"]) + w["b_V"]
        scores = torch.einsum("bqhk,bshk->bhqs", q, k) / Dh ** 0.5
        scores = torch.where(mask[:Tn, :Tn], scores, torch.tensor(-float("inf")))
        pattern = scores.softmax(-1)
        z = torch.einsum("bhqs,bshk->bqhk", pattern, v)
        result = torch.einsum("bqhk,hkd->bqhd", z, w["W_O"])
        attn_out = result.sum(-2) + w["b_O"]
        cache.update({p + "attn.hook_q": q, p + "attn.hook_k": k, p + "attn.hook_v": v,
                      p + "attn.hook_attn_scores": scores, p + "attn.hook_pattern": pattern, p + "attn.hook_z": z,
                      p + "attn.hook_result": result, p + "hook_attn_out": attn_out})
        mid = resid + attn_out
        cache[p + "hook_resid_mid"] = mid
        x2 = ln(mid, w["ln2_w"], w["ln2_b"], cache, p + "ln2")
        pre = x2 @ w["W_in"] + w["b_in"]
        post = F.gelu(pre, approximate="tanh")
        mlp_out = post @ w["W_out"] + w["b_out"]
        cache.update({p + "mlp.hook_pre": pre, p + "mlp.hook_post": post, p + "hook_mlp_out": mlp_out})
        resid = mid + mlp_out
        cache[p + "hook_resid_post"] = resid
    x = ln(resid, sd["lnf_w"], sd["lnf_b"], cache, "ln_final")
    return x @ sd["W_U"], cache


def run_ours(bench, model_dir, threads, reps):
    env = dict(os.environ, CIRCUITLAB_BENCH_MODEL=model_dir, CIRCUITLAB_THREADS=str(threads),
               OMP_WAIT_POLICY="PASSIVE", OPENBLAS_NUM_THREADS="1")
    out = subprocess.run([bench, "--benchmark_filter=BM_Gpt2SmallForward", f"--benchmark_repetitions={reps}",
                          "--benchmark_format=json", "--benchmark_min_time=0.05"],
                         env=env, check=True, capture_output=True, text=True).stdout
    res = {}
    for b in json.loads(out)["benchmarks"]:
        if b.get("run_type") == "iteration":
            res.setdefault(b["run_name"], []).append(b["real_time"])  # ms
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--bench", default=os.path.join(ROOT, "build", "bench", "bench_forward"))
    ap.add_argument("--keep", help="write the weights here and keep them")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model_dir = args.keep or tempfile.mkdtemp(prefix="circuitlab-bench-gpt2-")
    W = make_weights(model_dir)
    sd = to_tl(W)
    del W
    mask = torch.ones(P, P, dtype=torch.bool).tril()
    tokens = torch.from_numpy(np.random.default_rng(0).integers(0, V, (1, T)))

    # Same model on both sides: compare logits with `circuitlab forward` when it is built.
    cli = os.path.join(ROOT, "build", "apps", "circuitlab")
    with torch.inference_mode():
        ref_logits, ref_cache = forward_with_cache(sd, tokens, mask)
    if os.path.exists(cli):
        npy = os.path.join(model_dir, "logits.npy")
        ids = " ".join(str(int(i)) for i in tokens[0])
        r = subprocess.run([cli, "forward", "--model", model_dir, "--tokens", ids, "--no-prepend-bos", "--npy", npy,
                            "--threads", str(args.threads)], capture_output=True, text=True)
        if r.returncode == 0:
            diff = np.abs(np.load(npy) - ref_logits[0].numpy()).max()
            print(f"logits max |circuitlab - torch| = {diff:.3g}")
        else:
            print(f"(logit check skipped: {cli} forward failed: {r.stderr.strip()[:200]})")

    ours_full, ours_plain, torch_times = [], [], []
    for _ in range(args.rounds):
        r = run_ours(args.bench, model_dir, args.threads, args.reps)
        ours_full += r["BM_Gpt2SmallForwardFullCache/64/real_time"]
        ours_plain += r["BM_Gpt2SmallForwardNoHooks/64/real_time"]
        with torch.inference_mode():
            forward_with_cache(sd, tokens, mask)  # warm-up
            for _ in range(args.reps):
                t0 = time.perf_counter()
                logits, cache = forward_with_cache(sd, tokens, mask)
                torch_times.append((time.perf_counter() - t0) * 1e3)
    mo, mt, mp = statistics.median(ours_full), statistics.median(torch_times), statistics.median(ours_plain)
    print(f"GPT-2-small shape, T={T}, threads={args.threads}, {len(ref_cache)} cached activations, "
          f"{args.rounds} rounds x {args.reps} reps")
    print(f"circuitlab run_with_cache (all hooks) median {mo:.2f} ms")
    print(f"PyTorch eager with full cache     median {mt:.2f} ms")
    print(f"ratio circuitlab / PyTorch        {mo / mt:.3f}x  (target <= 0.8x)")
    print(f"circuitlab forward, no hooks      median {mp:.2f} ms")
    if not args.keep:
        shutil.rmtree(model_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
