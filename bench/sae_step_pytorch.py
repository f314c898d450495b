#!/usr/bin/env python3
# PyTorch-eager side of bench/sae_side_by_side.sh: one TopK SAE training step written the way
# SAELens's TopK trainer writes it (sae_lens/saes/topk_sae.py + training_sae.py): dense encode,
# topk + scatter, dense decode, MSE summed over d and averaged over tokens, backward, the
# gradient's component parallel to the decoder rows removed, Adam, decoder rows renormalised.
# Same shapes, k, batch and threads as bench_sae. Prints one JSON line per repetition.
# Usage: sae_step_pytorch.py D_IN D_SAE K TOKENS THREADS REPS MIN_TIME_S
import json, sys, time
import torch

d_in, d_sae, k, n, threads, reps = (int(a) for a in sys.argv[1:7])
min_time = float(sys.argv[7])
torch.set_num_threads(threads)
torch.manual_seed(0)
W_dec = torch.randn(d_sae, d_in)
W_dec = (W_dec / W_dec.norm(dim=1, keepdim=True)).requires_grad_(True)
W_enc = W_dec.detach().t().clone().requires_grad_(True)
b_enc = torch.zeros(d_sae, requires_grad=True)
b_dec = torch.zeros(d_in, requires_grad=True)
opt = torch.optim.Adam([W_enc, W_dec, b_enc, b_dec], lr=4e-4)
x = torch.randn(n, d_in) * 3


def step():
    sae_in = x - b_dec
    hidden_pre = sae_in @ W_enc + b_enc
    topk = hidden_pre.topk(k, dim=-1)
    feature_acts = torch.zeros_like(hidden_pre).scatter(-1, topk.indices, topk.values.relu())
    sae_out = feature_acts @ W_dec + b_dec
    loss = (sae_out - x).pow(2).sum(dim=-1).mean()
    opt.zero_grad()
    loss.backward()
    with torch.no_grad():  # remove_gradient_parallel_to_decoder_directions
        parallel = (W_dec.grad * W_dec).sum(-1, keepdim=True)
        W_dec.grad -= parallel * W_dec
    opt.step()
    with torch.no_grad():
        W_dec.div_(W_dec.norm(dim=-1, keepdim=True))
    return loss.item()


step()  # warm-up
for _ in range(reps):
    times = []
    t_end = time.perf_counter() + min_time
    while True:
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
        if time.perf_counter() > t_end and len(times) >= 2:
            break
    times.sort()
    med = times[len(times) // 2]
    print(json.dumps({"impl": "pytorch_eager", "d_in": d_in, "d_sae": d_sae, "k": k, "tokens": n,
                      "threads": threads, "step_s": med, "tokens_per_s": n / med}), flush=True)
