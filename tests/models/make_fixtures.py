#!/usr/bin/python3
"""Golden fixtures for tests/models: small model dirs with random weights and the outputs of an
independent reference forward written from the architecture (numpy float64), NOT calling
circuitlab. Run with Debian's /usr/bin/python3 (numpy):  make_fixtures.py OUT_DIR

Writes OUT_DIR/<name>/{config.json, model.safetensors, reference.safetensors} for toys in the
TransformerLens layout (LN / no LN, standard / shortformer, 0 layers, MLP) and GPT-2 in the
exact Hugging Face layout (Conv1D [in, out], attn.bias buffers, with/without 'transformer.').
reference.safetensors holds 'tokens' [B, T] (I64) and, in float32, 'logits' plus cached
activations under TransformerLens hook names.
"""
import json
import os
import struct
import sys

import numpy as np

DT = {np.dtype("float32"): "F32", np.dtype("int64"): "I64", np.dtype("float64"): "F64", np.dtype("uint8"): "U8"}


def write_safetensors(path, tensors, metadata=None):
    """The safetensors byte layout: u64 LE header length, JSON header, data section."""
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        b = a.tobytes()
        header[name] = {"dtype": DT[a.dtype], "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header).encode()
    h += b" " * ((8 - (8 + len(h)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    xc = x - mu
    scale = np.sqrt((xc ** 2).mean(-1, keepdims=True) + eps)
    return xc / scale * w + b, scale


def gelu_new(x):
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3)))


def softmax(x):
    m = np.max(x, -1, keepdims=True)
    e = np.exp(x - m)
    return e / e.sum(-1, keepdims=True)


def attention(q_in, k_in, v_in, Wq, Wk, Wv, Wo, bq, bk, bv, bo, cache, pre):
    """Per-head attention from first principles. x [B,T,D], W_Q[h] [D,Dh], W_O[h] [Dh,D]."""
    B, T, D = q_in.shape
    H = Wq.shape[0]
    q = np.einsum("btd,hdk->bthk", q_in, Wq) + bq  # [B,T,H,Dh]
    k = np.einsum("btd,hdk->bthk", k_in, Wk) + bk
    v = np.einsum("btd,hdk->bthk", v_in, Wv) + bv
    Dh = q.shape[-1]
    scores = np.einsum("bqhk,bshk->bhqs", q, k) / np.sqrt(Dh)  # [B,H,T,T]
    future = np.triu(np.ones((T, T), dtype=bool), 1)
    scores = np.where(future, -np.inf, scores)
    pattern = softmax(scores)
    z = np.einsum("bhqs,bshk->bqhk", pattern, v)  # [B,T,H,Dh]
    result = np.einsum("bthk,hkd->bthd", z, Wo)  # [B,T,H,D]
    out = result.sum(2) + bo
    cache.update({pre + "attn.hook_q": q, pre + "attn.hook_k": k, pre + "attn.hook_v": v,
                  pre + "attn.hook_attn_scores": scores, pre + "attn.hook_pattern": pattern,
                  pre + "attn.hook_z": z, pre + "attn.hook_result": result, pre + "hook_attn_out": out})
    return out


def toy_reference(cfg, W, tokens):
    """TransformerLens semantics, written out: standard pos adds W_pos to the residual stream;
    shortformer adds it to the (normalised) query/key inputs only."""
    cache = {}
    D, L = cfg["d_model"], cfg["n_layers"]
    ln = cfg["normalization_type"] == "LN"
    B, T = tokens.shape
    g = lambda n, shape: W[n] if n in W else np.zeros(shape)
    embed = W["embed.W_E"][tokens]
    pos = np.broadcast_to(W["pos_embed.W_pos"][:T], (B, T, D))
    cache["hook_embed"], cache["hook_pos_embed"] = embed, pos
    short = cfg["positional_embedding_type"] == "shortformer"
    resid = embed if short else embed + pos
    for l in range(L):
        p = f"blocks.{l}."
        cache[p + "hook_resid_pre"] = resid
        if ln:
            x, sc = layer_norm(resid, W[p + "ln1.w"], W[p + "ln1.b"], cfg["eps"])
            cache[p + "ln1.hook_scale"], cache[p + "ln1.hook_normalized"] = sc, x
        else:
            x = resid
        H, Dh = cfg["n_heads"], cfg["d_head"]
        qk = x + pos if short else x
        out = attention(qk, qk, x, W[p + "attn.W_Q"], W[p + "attn.W_K"], W[p + "attn.W_V"], W[p + "attn.W_O"],
                        g(p + "attn.b_Q", (H, Dh)), g(p + "attn.b_K", (H, Dh)), g(p + "attn.b_V", (H, Dh)),
                        g(p + "attn.b_O", (D,)), cache, p)
        if cfg["attn_only"]:
            resid = resid + out
        else:
            mid = resid + out
            cache[p + "hook_resid_mid"] = mid
            x2 = layer_norm(mid, W[p + "ln2.w"], W[p + "ln2.b"], cfg["eps"])[0] if ln else mid
            pre = x2 @ W[p + "mlp.W_in"] + g(p + "mlp.b_in", (cfg["d_mlp"],))
            post = gelu_new(pre)
            mo = post @ W[p + "mlp.W_out"] + g(p + "mlp.b_out", (D,))
            cache.update({p + "mlp.hook_pre": pre, p + "mlp.hook_post": post, p + "hook_mlp_out": mo})
            resid = mid + mo
        cache[p + "hook_resid_post"] = resid
    if ln:
        resid, sc = layer_norm(resid, W["ln_final.w"], W["ln_final.b"], cfg["eps"])
        cache["ln_final.hook_scale"], cache["ln_final.hook_normalized"] = sc, resid
    logits = resid @ W["unembed.W_U"] + g("unembed.b_U", (W["unembed.W_U"].shape[1],))
    return logits, cache


def gpt2_reference(hf, W, prefix, tokens):
    """GPT-2 from the Hugging Face tensors directly: Conv1D y = x @ W + b, c_attn columns q|k|v
    with contiguous heads, gelu_new, pre-LN, final LN, logits = x @ wteᵀ."""
    cache = {}
    D, H, L = hf["n_embd"], hf["n_head"], hf["n_layer"]
    Dh = D // H
    eps = hf["layer_norm_epsilon"]
    B, T = tokens.shape
    t = lambda n: W[prefix + n]
    x = t("wte.weight")[tokens] + t("wpe.weight")[:T]
    for l in range(L):
        h = f"h.{l}."
        p = f"blocks.{l}."
        cache[p + "hook_resid_pre"] = x
        a, sc = layer_norm(x, t(h + "ln_1.weight"), t(h + "ln_1.bias"), eps)
        cache[p + "ln1.hook_scale"] = sc
        qkv = a @ t(h + "attn.c_attn.weight") + t(h + "attn.c_attn.bias")  # [B,T,3D]
        q, k, v = (qkv[..., i * D:(i + 1) * D].reshape(B, T, H, Dh) for i in range(3))
        att = np.einsum("bqhk,bshk->bhqs", q, k) / np.sqrt(Dh)
        att = np.where(np.triu(np.ones((T, T), dtype=bool), 1), -np.inf, att)
        pat = softmax(att)
        z = np.einsum("bhqs,bshk->bqhk", pat, v)
        attn_out = z.reshape(B, T, D) @ t(h + "attn.c_proj.weight") + t(h + "attn.c_proj.bias")
        cache.update({p + "attn.hook_q": q, p + "attn.hook_v": v, p + "attn.hook_pattern": pat, p + "attn.hook_z": z,
                      p + "hook_attn_out": attn_out})
        x = x + attn_out
        cache[p + "hook_resid_mid"] = x
        m = layer_norm(x, t(h + "ln_2.weight"), t(h + "ln_2.bias"), eps)[0]
        pre = m @ t(h + "mlp.c_fc.weight") + t(h + "mlp.c_fc.bias")
        post = gelu_new(pre)
        mo = post @ t(h + "mlp.c_proj.weight") + t(h + "mlp.c_proj.bias")
        cache.update({p + "mlp.hook_pre": pre, p + "mlp.hook_post": post, p + "hook_mlp_out": mo})
        x = x + mo
        cache[p + "hook_resid_post"] = x
    x, sc = layer_norm(x, t("ln_f.weight"), t("ln_f.bias"), eps)
    cache["ln_final.hook_scale"], cache["ln_final.hook_normalized"] = sc, x
    return x @ t("wte.weight").T, cache


def f32(d):
    return {k: np.asarray(v, dtype=np.float32) for k, v in d.items()}


def make_toy(out, name, rng, n_layers, ln, pos_type, attn_only=True, use_bias=True, d_vocab_out=None):
    D, H, Dh, n_ctx, V = 16, 4, 5, 12, 41
    Vo = d_vocab_out or V
    cfg = {"n_layers": n_layers, "d_model": D, "n_heads": H, "d_head": Dh, "n_ctx": n_ctx, "d_vocab": V,
           "d_vocab_out": Vo, "attn_only": attn_only, "d_mlp": None if attn_only else 24, "act_fn": "gelu_new",
           "normalization_type": "LN" if ln else None, "positional_embedding_type": pos_type, "eps": 1e-5,
           "seed": 1}
    if not use_bias:
        cfg["circuitlab"] = {"use_bias": False}
    n = lambda *s: rng.normal(0, 0.4, s)
    W = {"embed.W_E": n(V, D), "pos_embed.W_pos": n(n_ctx, D), "unembed.W_U": n(D, Vo)}
    if use_bias:
        W["unembed.b_U"] = n(Vo)
    for l in range(n_layers):
        p = f"blocks.{l}."
        W.update({p + "attn.W_Q": n(H, D, Dh), p + "attn.W_K": n(H, D, Dh), p + "attn.W_V": n(H, D, Dh),
                  p + "attn.W_O": n(H, Dh, D)})
        if use_bias:
            W.update({p + "attn.b_Q": n(H, Dh), p + "attn.b_K": n(H, Dh), p + "attn.b_V": n(H, Dh), p + "attn.b_O": n(D)})
        if ln:
            W.update({p + "ln1.w": 1 + n(D), p + "ln1.b": n(D)})
        if not attn_only:
            W.update({p + "mlp.W_in": n(D, 24), p + "mlp.b_in": n(24), p + "mlp.W_out": n(24, D), p + "mlp.b_out": n(D)})
            if ln:
                W.update({p + "ln2.w": 1 + n(D), p + "ln2.b": n(D)})
    if ln:
        W.update({"ln_final.w": 1 + n(D), "ln_final.b": n(D)})
    W = f32(W)  # the model is float32; the reference computes in float64 from the same values
    tokens = rng.integers(0, V, size=(2, n_ctx - 1)).astype(np.int64)
    logits, cache = toy_reference(cfg, {k: v.astype(np.float64) for k, v in W.items()}, tokens)
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    write_safetensors(os.path.join(d, "model.safetensors"), W, {"format": "pt"})
    ref = f32(cache)
    ref["logits"] = np.asarray(logits, np.float32)
    ref["tokens"] = tokens
    write_safetensors(os.path.join(d, "reference.safetensors"), ref)


def make_gpt2(out, name, rng, prefix, with_lm_head):
    L, D, H, n_pos, V = 2, 24, 4, 16, 53
    hf = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "activation_function": "gelu_new",
          "n_layer": L, "n_head": H, "n_embd": D, "n_positions": n_pos, "n_ctx": n_pos, "vocab_size": V,
          "layer_norm_epsilon": 1e-5, "initializer_range": 0.02, "n_inner": None, "bos_token_id": 50256,
          "eos_token_id": 50256}
    n = lambda *s: rng.normal(0, 0.3, s)
    W = {"wte.weight": n(V, D), "wpe.weight": n(n_pos, D), "ln_f.weight": 1 + n(D), "ln_f.bias": n(D)}
    for l in range(L):
        h = f"h.{l}."
        W.update({h + "ln_1.weight": 1 + n(D), h + "ln_1.bias": n(D), h + "attn.c_attn.weight": n(D, 3 * D),
                  h + "attn.c_attn.bias": n(3 * D), h + "attn.c_proj.weight": n(D, D), h + "attn.c_proj.bias": n(D),
                  h + "ln_2.weight": 1 + n(D), h + "ln_2.bias": n(D), h + "mlp.c_fc.weight": n(D, 4 * D),
                  h + "mlp.c_fc.bias": n(4 * D), h + "mlp.c_proj.weight": n(4 * D, D), h + "mlp.c_proj.bias": n(D),
                  h + "attn.bias": np.tril(np.ones((n_pos, n_pos)))[None, None],
                  h + "attn.masked_bias": np.array(-1e4)})
    W = f32({prefix + k: v for k, v in W.items()})
    if with_lm_head:
        W["lm_head.weight"] = W[prefix + "wte.weight"].copy()
    tokens = rng.integers(0, V, size=(2, 9)).astype(np.int64)
    logits, cache = gpt2_reference(hf, {k: v.astype(np.float64) for k, v in W.items()}, prefix, tokens)
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(hf, f, indent=2)
    write_safetensors(os.path.join(d, "model.safetensors"), W, {"format": "pt"})
    ref = f32(cache)
    ref["logits"] = np.asarray(logits, np.float32)
    ref["tokens"] = tokens
    write_safetensors(os.path.join(d, "reference.safetensors"), ref)


def main():
    out = sys.argv[1]
    rng = np.random.default_rng(20211222)
    make_toy(out, "toy_ln_standard", rng, 2, True, "standard")
    make_toy(out, "toy_noln_standard", rng, 2, False, "standard")
    make_toy(out, "toy_ln_shortformer", rng, 2, True, "shortformer")
    make_toy(out, "toy_noln_shortformer_nobias", rng, 2, False, "shortformer", use_bias=False)
    make_toy(out, "toy_0l", rng, 0, True, "standard", d_vocab_out=29)
    make_toy(out, "toy_mlp", rng, 2, True, "standard", attn_only=False)
    make_gpt2(out, "gpt2_hf", rng, "", False)
    make_gpt2(out, "gpt2_hf_prefixed", rng, "transformer.", True)


if __name__ == "__main__":
    main()
