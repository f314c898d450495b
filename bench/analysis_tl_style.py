#!/usr/bin/env python3
"""TransformerLens-style computation of the numbers bench_analysis.cpp computes, on the same
checkpoint: fold LN (fold_ln + centre writing weights + centre unembed, as TL's from_pretrained),
then FactoredMatrix-style full circuits W_E @ OV @ W_U and W_E @ QK @ W_E.T with eigenvalues of
the small BA product, and all_composition_scores via collapse_l / collapse_r (SVD of the
factors). TL itself is not installed; this is the same arithmetic in plain torch 1.13.
Prints timings and the worst differences from the C++ numbers (cpp_numbers.json).
Usage: /usr/bin/python3 bench/analysis_tl_style.py DIR [--threads 2] [--repeats 3]"""
import json, struct, sys, time, argparse
import numpy as np
import torch

def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", info
        b, e = info["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(data[b:e], dtype=np.float32).reshape(info["shape"]).copy())
    return out

def fold(sd, L):
    # TL fold_ln + center_writing_weights + center_unembed (tied: W_U = W_E^T).
    W_E = sd["embed.W_E"]
    W_U = W_E.T.clone()
    wf = sd["ln_final.w"]
    W_U = wf[:, None] * W_U
    W_U = W_U - W_U.mean(0, keepdim=True)
    W_U = W_U - W_U.mean(-1, keepdim=True)
    W_E = W_E - W_E.mean(-1, keepdim=True)
    Q, K, V, O = [], [], [], []
    for l in range(L):
        w1 = sd[f"blocks.{l}.ln1.w"]
        def read(W):
            W = W * w1[None, :, None]
            return W - W.mean(1, keepdim=True)
        Q.append(read(sd[f"blocks.{l}.attn.W_Q"]))
        K.append(read(sd[f"blocks.{l}.attn.W_K"]))
        V.append(read(sd[f"blocks.{l}.attn.W_V"]))
        Wo = sd[f"blocks.{l}.attn.W_O"]
        O.append(Wo - Wo.mean(-1, keepdim=True))
    return W_E, W_U, torch.stack(Q), torch.stack(K), torch.stack(V), torch.stack(O)

def positivity(ev):
    return (ev.sum(-1).real / ev.abs().sum(-1))

def tl_numbers(W_E, W_U, Q, K, V, O):
    L, H = Q.shape[:2]
    # full OV: FactoredMatrix(W_E @ W_V, W_O @ W_U); eigenvalues = eig(B @ A) (TL .eigenvalues)
    ov, qk = [], []
    for l in range(L):
        A_ov = W_E @ V[l]                       # [H, Vocab, Dh]
        B_ov = O[l] @ W_U                       # [H, Dh, Vocab]
        ov.append(positivity(torch.linalg.eig((B_ov @ A_ov).double()).eigenvalues))
        A_qk = W_E @ Q[l]                       # [H, Vocab, Dh]
        B_qk = K[l].transpose(-1, -2) @ W_E.T   # [H, Dh, Vocab]
        qk.append(positivity(torch.linalg.eig((B_qk @ A_qk).double()).eigenvalues))
    ov = torch.stack(ov).flatten()
    qk = torch.stack(qk).flatten()
    # all_composition_scores: left = OV collapse_l, right = QK / QK^T / OV collapse_r
    def fsvd(A, B):  # TL FactoredMatrix._svd_cached
        Ua, Sa, Vha = torch.linalg.svd(A, full_matrices=False)
        Ub, Sb, Vhb = torch.linalg.svd(B, full_matrices=False)
        middle = Sa[..., :, None] * (Vha @ Ub) * Sb[..., None, :]
        Um, Sm, Vhm = torch.linalg.svd(middle, full_matrices=False)
        return Ua @ Um, Sm, Vhb.transpose(-1, -2) @ Vhm.transpose(-1, -2)
    def collapse_l(A, B):
        U, S, Vv = fsvd(A, B)
        return S[..., :, None] * Vv.transpose(-1, -2)
    def collapse_r(A, B):
        U, S, Vv = fsvd(A, B)
        return U * S[..., None, :]
    left = collapse_l(V, O)                                      # [L, H, Dh, D]
    rights = {"q": collapse_r(Q, K.transpose(-1, -2)),           # QK
              "k": collapse_r(K, Q.transpose(-1, -2)),           # QK^T
              "v": collapse_r(V, O)}                             # OV
    comp = {}
    ln = left.norm(dim=(-2, -1))
    for kind, right in rights.items():
        rn = right.norm(dim=(-2, -1))
        # TL broadcasts [L,H,1,1] x [1,1,L,H]; one later layer at a time keeps memory bounded
        s = torch.stack([(left[:, :, None] @ right[None, None, l2]).norm(dim=(-2, -1)) for l2 in range(L)], 2)
        s = s / ln[:, :, None, None] / rn[None, None]             # [L, H, L, H]
        mask = torch.arange(L)[:, None, None, None] < torch.arange(L)[None, None, :, None]
        comp[kind] = torch.where(mask, s, torch.zeros_like(s)).flatten()
    return ov, qk, comp

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    sd = load_safetensors(a.dir + "/weights.safetensors")
    L = max(int(k.split(".")[1]) for k in sd if k.startswith("blocks.")) + 1
    times, cpu = [], []
    for _ in range(a.repeats):
        t0, c0 = time.perf_counter(), time.process_time()  # process_time: all threads of the process
        W_E, W_U, Q, K, V, O = fold(sd, L)
        with torch.no_grad():
            ov, qk, comp = tl_numbers(W_E, W_U, Q, K, V, O)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    out = {"tl_style_median_s": float(np.median(times)), "tl_style_runs_s": times,
           "tl_style_median_process_cpu_s": float(np.median(cpu)), "tl_style_process_cpu_s": cpu}
    # worst |difference| from circuitlab's float64 numbers (and from its float32-GEMM numbers)
    for tag, name in (("", "cpp_numbers.json"), ("_f32", "cpp_numbers_f32.json")):
        try:
            cpp = json.load(open(a.dir + "/" + name))
        except FileNotFoundError:
            continue
        out["max_abs_diff_ov_positivity" + tag] = float((ov - torch.tensor(cpp["ov_positivity"], dtype=torch.float64)).abs().max())
        out["max_abs_diff_qk_positivity" + tag] = float((qk - torch.tensor(cpp["qk_positivity"], dtype=torch.float64)).abs().max())
        out["max_abs_diff_composition" + tag] = max(
            float((comp[k].double() - torch.tensor(cpp["composition_" + k], dtype=torch.float64)).abs().max()) for k in "qkv")
    print(json.dumps(out))

if __name__ == "__main__":
    main()
