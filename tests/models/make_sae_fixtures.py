"""Independent writer of SAELens-layout SAE directories (numpy only: safetensors written by hand,
8-byte header length + JSON header + raw little-endian bytes) and the expected encodings,
computed with SAELens's formulas in float64. Used by tests/models/sae_test.cpp.

usage: make_sae_fixtures.py OUT_DIR
writes OUT_DIR/{standard,topk,jumprelu}/ (cfg.json, sae_weights.safetensors,
sparsity.safetensors) and OUT_DIR/<arch>/expected.safetensors (x, feature_acts, sae_out).
"""
import json
import os
import struct
import sys

import numpy as np

D_IN, D_SAE, N, K = 12, 40, 9, 5


def write_safetensors(path, tensors):
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr, dtype="<f4")
        b = arr.tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def main(out):
    rng = np.random.default_rng(1234)
    for arch in ["standard", "topk", "jumprelu"]:
        d = os.path.join(out, arch)
        os.makedirs(d, exist_ok=True)
        W_enc = rng.normal(size=(D_IN, D_SAE)).astype(np.float32) / np.sqrt(D_IN)
        W_dec = rng.normal(size=(D_SAE, D_IN)).astype(np.float32) / np.sqrt(D_IN)
        b_enc = (0.1 * rng.normal(size=D_SAE)).astype(np.float32)
        b_dec = (0.2 * rng.normal(size=D_IN)).astype(np.float32)
        threshold = rng.uniform(0.05, 0.6, size=D_SAE).astype(np.float32)
        x = rng.normal(size=(N, D_IN)).astype(np.float32)
        weights = {"W_enc": W_enc, "W_dec": W_dec, "b_enc": b_enc, "b_dec": b_dec}
        if arch == "jumprelu":
            weights["threshold"] = threshold
        write_safetensors(os.path.join(d, "sae_weights.safetensors"), weights)
        write_safetensors(os.path.join(d, "sparsity.safetensors"),
                          {"sparsity": np.log10(rng.uniform(1e-4, 0.5, size=D_SAE))})
        meta = {"model_name": "tiny", "hook_name": "blocks.0.hook_resid_post", "hook_head_index": None,
                "context_size": 16, "prepend_bos": True, "dataset_path": "x", "sae_lens_version": "6.5.1"}
        if arch == "standard":
            # SAELens < 6: flat keys, no `metadata` object.
            cfg = {"architecture": "standard", "d_in": D_IN, "d_sae": D_SAE, "dtype": "float32", "device": "cpu",
                   "activation_fn_str": "relu", "apply_b_dec_to_input": True, "finetuning_scaling_factor": False,
                   "normalize_activations": "none", "hook_layer": 0, **meta}
        else:
            cfg = {"architecture": arch, "d_in": D_IN, "d_sae": D_SAE, "dtype": "float32", "device": "cpu",
                   "apply_b_dec_to_input": arch == "topk", "normalize_activations": "none",
                   "reshape_activations": "none", "metadata": meta}
            if arch == "topk":
                cfg["k"] = K
                cfg["rescale_acts_by_decoder_norm"] = False
        with open(os.path.join(d, "cfg.json"), "w") as f:
            json.dump(cfg, f, indent=2)

        xd = x.astype(np.float64)
        sae_in = xd - b_dec.astype(np.float64) if cfg["apply_b_dec_to_input"] else xd
        pre = sae_in @ W_enc.astype(np.float64) + b_enc.astype(np.float64)
        if arch == "standard":
            acts = np.maximum(pre, 0)
        elif arch == "topk":
            acts = np.zeros_like(pre)
            top = np.argsort(-pre, axis=1)[:, :K]
            rows = np.arange(N)[:, None]
            acts[rows, top] = np.maximum(pre[rows, top], 0)
        else:
            acts = np.maximum(pre, 0) * (pre > threshold.astype(np.float64))
        out_ = acts @ W_dec.astype(np.float64) + b_dec.astype(np.float64)
        write_safetensors(os.path.join(d, "expected.safetensors"), {"x": x, "feature_acts": acts, "sae_out": out_})


if __name__ == "__main__":
    main(sys.argv[1])
