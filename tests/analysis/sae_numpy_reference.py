"""Independent numpy reference for `circuitlab sae eval` and `sae encode` (issue 16): a small toy
model (LN + MLP, written by tests/models/make_fixtures.py's writer and forwarded by its numpy
reference), a TopK SAE on the last block's resid_post written in SAELens's layout by hand, a
token shard, and SAELens's metrics computed in float64 from their formulas.

usage: sae_numpy_reference.py OUT_DIR
writes OUT_DIR/model/, OUT_DIR/sae/, OUT_DIR/val.bin, OUT_DIR/expected.json and
OUT_DIR/encode_expected.safetensors (latents of the prompt PROMPT, no BOS) and
OUT_DIR/features_expected.json (`sae features --tokens 55 --top 3` recomputed plainly: every
window's latents, then per latent its counts, histogram, top windows and logit effects).
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models"))
import make_fixtures as mf  # noqa: E402

T, WINDOWS, D_SAE, K = 11, 5, 48, 4
PROMPT = [3, 5, 7, 9, 11, 2]
HOOK = "blocks.1.hook_resid_post"


def main(out):
    rng = np.random.default_rng(7)
    mf.make_toy(out, "model", rng, n_layers=2, ln=True, pos_type="standard", attn_only=False)
    mdir = os.path.join(out, "model")
    cfg = json.load(open(os.path.join(mdir, "config.json")))
    W = read_safetensors(os.path.join(mdir, "model.safetensors"))
    W = {k: v.astype(np.float64) for k, v in W.items()}
    D, V = cfg["d_model"], cfg["d_vocab"]

    # SAE (TopK, SAELens >= 6 cfg.json), weights float32.
    sdir = os.path.join(out, "sae")
    os.makedirs(sdir, exist_ok=True)
    W_enc = (rng.normal(size=(D, D_SAE)) / np.sqrt(D)).astype(np.float32)
    W_dec = (rng.normal(size=(D_SAE, D)) / np.sqrt(D)).astype(np.float32)
    b_enc = (0.05 * rng.normal(size=D_SAE)).astype(np.float32)
    b_dec = (0.1 * rng.normal(size=D)).astype(np.float32)
    mf.write_safetensors(os.path.join(sdir, "sae_weights.safetensors"),
                         {"W_enc": W_enc, "W_dec": W_dec, "b_enc": b_enc, "b_dec": b_dec}, {"format": "pt"})
    json.dump({"architecture": "topk", "d_in": D, "d_sae": D_SAE, "k": K, "dtype": "float32", "device": "cpu",
               "apply_b_dec_to_input": True, "normalize_activations": "none",
               "metadata": {"model_name": "toy", "hook_name": HOOK, "hook_head_index": None, "context_size": T,
                            "prepend_bos": False}},
              open(os.path.join(sdir, "cfg.json"), "w"))

    def encode(x):
        pre = (x - b_dec.astype(np.float64)) @ W_enc.astype(np.float64) + b_enc.astype(np.float64)
        f = np.zeros_like(pre)
        top = np.argsort(-pre, axis=-1)[..., :K]
        np.put_along_axis(f, top, np.maximum(np.take_along_axis(pre, top, -1), 0), -1)
        return f

    def decode(f):
        return f @ W_dec.astype(np.float64) + b_dec.astype(np.float64)

    def unembed_from_resid(resid):
        x, _ = mf.layer_norm(resid, W["ln_final.w"], W["ln_final.b"], cfg["eps"])
        return x @ W["unembed.W_U"] + W["unembed.b_U"]

    def log_softmax(z):
        z = z - z.max(-1, keepdims=True)
        return z - np.log(np.exp(z).sum(-1, keepdims=True))

    # Shard: random ids below d_vocab (the model speaks them directly), uint16 nanoGPT layout.
    shard = rng.integers(0, V, size=WINDOWS * T + 1).astype(np.uint16)
    shard.tofile(os.path.join(out, "val.bin"))

    xs, xhats, fs, ce, kl = [], [], [], {"clean": [], "sae": [], "zero": []}, {"sae": [], "zero": []}
    for w in range(WINDOWS):
        toks = shard[w * T: w * T + T].astype(np.int64)[None]
        tgt = shard[w * T + 1: w * T + T + 1].astype(np.int64)
        logits, cache = mf.toy_reference(cfg, W, toks)
        x = cache[HOOK][0]
        f = encode(x)
        xh = decode(f)
        xs.append(x), xhats.append(xh), fs.append(f)
        lp = {"clean": log_softmax(logits[0]), "sae": log_softmax(unembed_from_resid(xh)),
              "zero": log_softmax(unembed_from_resid(np.zeros_like(x)))}
        for k in ce:
            ce[k].append(-lp[k][np.arange(T), tgt])
        p = np.exp(lp["clean"])
        for k in kl:
            kl[k].append((p * (lp["clean"] - lp[k])).sum(-1))
    x, xh, f = np.concatenate(xs), np.concatenate(xhats), np.concatenate(fs)
    CE = {k: np.concatenate(v).mean() for k, v in ce.items()}
    KL = {k: np.concatenate(v).mean() for k, v in kl.items()}
    density = (f > 0).mean(0)
    nx, nh = np.linalg.norm(x, axis=1), np.linalg.norm(xh, axis=1)
    expected = {
        "tokens": int(x.shape[0]),
        "l0": float((f > 0).sum(1).mean()),
        "explained_variance": float(1 - ((x - xh) ** 2).sum() / ((x - x.mean(0)) ** 2).sum()),
        "mse": float(((x - xh) ** 2).mean()),
        "cosine_similarity": float(((x * xh).sum(1) / (nx * nh)).mean()),
        "l2_ratio": float((nh / nx).mean()),
        "ce_loss_clean": float(CE["clean"]),
        "ce_loss_with_sae": float(CE["sae"]),
        "ce_loss_with_ablation": float(CE["zero"]),
        "ce_loss_score": float((CE["zero"] - CE["sae"]) / (CE["zero"] - CE["clean"])),
        "kl_div_with_sae": float(KL["sae"]),
        "kl_div_with_ablation": float(KL["zero"]),
        "kl_div_score": float((KL["zero"] - KL["sae"]) / KL["zero"]),
        "frac_dead": float((density == 0).mean()),
        "frac_dense_1pct": float((density > 0.01).mean()),
        "frac_dense_10pct": float((density > 0.10).mean()),
    }
    json.dump(expected, open(os.path.join(out, "expected.json"), "w"), indent=2)

    features_expected(out, cfg, W, shard, encode, W_dec)

    _, cache = mf.toy_reference(cfg, W, np.array([PROMPT], dtype=np.int64))
    mf.write_safetensors(os.path.join(out, "encode_expected.safetensors"),
                         {"feature_acts": encode(cache[HOOK][0]).astype(np.float32)})


FEAT_TOP, FEAT_BEFORE, FEAT_AFTER, FEAT_LOGITS, FEAT_NEIGHBORS = 3, 10, 4, 10, 5
HIST_LO, HIST_W, HIST_N = -4.0, 0.1, 80


def features_expected(out, cfg, W, shard, encode, W_dec):
    """Feature dashboards the plain way: all windows' latents in memory, then per latent."""
    n = len(shard)
    offsets = [int(w * (n - T) // (WINDOWS - 1)) for w in range(WINDOWS)]  # evenly spaced windows
    fs = []
    for o in offsets:
        _, cache = mf.toy_reference(cfg, W, shard[o:o + T].astype(np.int64)[None])
        fs.append(encode(cache[HOOK][0]))
    f = np.stack(fs)  # [windows, T, S]
    flat = f.reshape(-1, D_SAE)
    # Direct logit effect of each decoder row: centred, times ln_final.w, times W_U.
    d = W_dec.astype(np.float64)
    d = (d - d.mean(1, keepdims=True)) * W["ln_final.w"]
    eff = d @ W["unembed.W_U"]
    wn = d_norm = W_dec.astype(np.float64) / np.linalg.norm(W_dec.astype(np.float64), axis=1, keepdims=True)
    cos = wn @ d_norm.T
    np.fill_diagonal(cos, -np.inf)
    latents = []
    for s in range(D_SAE):
        a = flat[:, s]
        on = a > 0
        hist = np.zeros(HIST_N, dtype=np.int64)
        for v in a[on]:
            hist[min(max(int(np.floor((np.log10(v) - HIST_LO) / HIST_W)), 0), HIST_N - 1)] += 1
        peaks = f[:, :, s].max(1)
        order = [w for w in np.argsort(-peaks, kind="stable") if peaks[w] > 0][:FEAT_TOP]
        top = []
        for w in order:
            p = int(np.argmax(f[w, :, s]))
            lo, hi = max(0, p - FEAT_BEFORE), min(T - 1, p + FEAT_AFTER)
            top.append({"act": float(peaks[w]), "offset": offsets[w], "peak": p - lo,
                        "ids": [int(t) for t in shard[offsets[w] + lo: offsets[w] + hi + 1]],
                        "acts": [float(x) for x in f[w, lo:hi + 1, s]]})
        prom = np.argsort(-eff[s], kind="stable")[:FEAT_LOGITS]
        supp = np.argsort(eff[s], kind="stable")[:FEAT_LOGITS]
        nb = np.argsort(-cos[s], kind="stable")[:FEAT_NEIGHBORS]
        latents.append({
            "index": s, "fired": int(on.sum()), "density": float(on.mean()), "max": float(a.max()),
            "mean": float(a[on].mean()) if on.any() else None, "hist": [int(c) for c in hist], "top": top,
            "window_peaks": [float(x) for x in peaks], "offsets": offsets,
            "promoted": [{"id": int(i), "value": float(eff[s, i])} for i in prom],
            "suppressed": [{"id": int(i), "value": float(eff[s, i])} for i in supp],
            "neighbors": [{"index": int(j), "cosine": float(cos[s, j])} for j in nb]})
    json.dump({"tokens": WINDOWS * T, "windows": WINDOWS, "context": T, "latents": latents},
              open(os.path.join(out, "features_expected.json"), "w"))


def read_safetensors(path):
    import struct
    with open(path, "rb") as fh:
        n = struct.unpack("<Q", fh.read(8))[0]
        header = json.loads(fh.read(n))
        data = fh.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", info
        a, b = info["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype="<f4").reshape(info["shape"])
    return out


if __name__ == "__main__":
    main(sys.argv[1])
