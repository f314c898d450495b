#!/usr/bin/env python3
# PyTorch-eager side of bench/bench_train.sh: a preset's model (BENCH_PRESET, default attn2l;
# TransformerLens layout: attention-only toys, or GPT-2 blocks with pre-LN LayerNorm and a
# GELU-tanh MLP; standard or shortformer positions; tied or untied unembedding) trained with
# AdamW on random tokens, same batch, context and threads as bench_train. Prints one JSON line
# per repetition. Run with Debian's /usr/bin/python3 (python3-torch 1.13). Not a training script.
import json, math, os, sys, time
import torch

preset_name = os.environ.get("BENCH_PRESET", "attn2l")
preset = json.load(open(os.path.join(os.path.dirname(__file__), "..", "configs", preset_name + ".json")))
m = preset["model"]
L, D, H, Dh, T, V = m["n_layers"], m["d_model"], m["n_heads"], m["d_head"], m["n_ctx"], m["d_vocab"]
ATTN_ONLY = m.get("attn_only", True)
LN = m.get("normalization_type", "LN") == "LN"
SHORTFORMER = m.get("positional_embedding_type", "standard") == "shortformer"
M = m.get("d_mlp", -1) if m.get("d_mlp", -1) > 0 else 4 * D
assert m.get("act_fn", "gelu_new") == "gelu_new" or ATTN_ONLY, "the benchmark's MLP is GELU (tanh)"
B = preset["batch_size"]
threads = int(os.environ.get("BENCH_THREADS", "1"))
reps = int(sys.argv[1]) if len(sys.argv) > 1 else 5
min_time = float(sys.argv[2]) if len(sys.argv) > 2 else 3.0
torch.set_num_threads(threads)
torch.manual_seed(0)
std = 0.8 / math.sqrt(D)


class Attn(torch.nn.Module):
    def __init__(self):
        super().__init__()
        P = lambda *s: torch.nn.Parameter(torch.randn(*s) * std)
        self.W_Q, self.W_K, self.W_V, self.W_O = P(H, D, Dh), P(H, D, Dh), P(H, D, Dh), P(H, Dh, D)
        self.b_Q, self.b_K, self.b_V = (torch.nn.Parameter(torch.zeros(H, Dh)) for _ in range(3))
        self.b_O = torch.nn.Parameter(torch.zeros(D))

    def forward(self, x, qk_in, mask):  # x, qk_in [B, T, D]
        q = torch.einsum("btd,hde->bhte", qk_in, self.W_Q) + self.b_Q[None, :, None]
        k = torch.einsum("btd,hde->bhte", qk_in, self.W_K) + self.b_K[None, :, None]
        v = torch.einsum("btd,hde->bhte", x, self.W_V) + self.b_V[None, :, None]
        s = (q @ k.transpose(-1, -2)) / math.sqrt(Dh)
        p = s.masked_fill(mask, float("-inf")).softmax(-1)
        z = p @ v  # [B, H, T, Dh]
        return torch.einsum("bhte,hed->btd", z, self.W_O) + self.b_O


class Mlp(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.W_in = torch.nn.Parameter(torch.randn(D, M) * std)
        self.b_in = torch.nn.Parameter(torch.zeros(M))
        self.W_out = torch.nn.Parameter(torch.randn(M, D) * std)
        self.b_out = torch.nn.Parameter(torch.zeros(D))

    def forward(self, x):
        return torch.nn.functional.gelu(x @ self.W_in + self.b_in, approximate="tanh") @ self.W_out + self.b_out


class Block(torch.nn.Module):  # pre-LN as TransformerLens: x + attn(ln1(x)) [+ mlp(ln2(.))]
    def __init__(self):
        super().__init__()
        self.attn = Attn()
        self.ln1 = torch.nn.LayerNorm(D) if LN else torch.nn.Identity()
        if not ATTN_ONLY:
            self.mlp = Mlp()
            self.ln2 = torch.nn.LayerNorm(D) if LN else torch.nn.Identity()

    def forward(self, x, pos, mask):
        a = self.ln1(x)
        x = x + self.attn(a, a + pos if SHORTFORMER else a, mask)
        return x if ATTN_ONLY else x + self.mlp(self.ln2(x))


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.W_E = torch.nn.Parameter(torch.randn(V, D) * std)
        self.W_pos = torch.nn.Parameter(torch.randn(T, D) * std)
        self.blocks = torch.nn.ModuleList([Block() for _ in range(L)])
        self.ln_final = torch.nn.LayerNorm(D) if LN else torch.nn.Identity()
        self.W_U = torch.nn.Parameter(torch.randn(D, V) * std)
        self.b_U = torch.nn.Parameter(torch.zeros(V))

    def forward(self, tok):
        t = tok.shape[1]
        x = self.W_E[tok]
        pos = self.W_pos[:t]
        if not SHORTFORMER:
            x = x + pos
        mask = torch.triu(torch.ones(t, t, dtype=torch.bool), 1)
        for blk in self.blocks:
            x = blk(x, pos, mask)
        return self.ln_final(x) @ self.W_U + self.b_U


model = Model()
DECAYED = ("W_Q", "W_K", "W_V", "W_O", "W_U", "W_in", "W_out")
decay = [p for n, p in model.named_parameters() if n.split(".")[-1] in DECAYED]
other = [p for n, p in model.named_parameters() if n.split(".")[-1] not in DECAYED]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": preset["weight_decay"]}, {"params": other, "weight_decay": 0.0}],
                        lr=preset["lr"], betas=(preset["beta1"], preset["beta2"]), eps=preset["adam_eps"])
tokens = torch.randint(0, V, (B, T + 1))
x, y = tokens[:, :T], tokens[:, 1:]


def step():
    opt.zero_grad(set_to_none=False)
    loss = torch.nn.functional.cross_entropy(model(x).reshape(-1, V), y.reshape(-1))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), preset["grad_clip"])
    opt.step()
    return loss.item()


for _ in range(3):
    step()
for r in range(reps):
    n, t0, c0 = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - t0 < min_time:
        step()
        n += 1
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(json.dumps({"rep": r, "steps": n, "seconds": dt, "cpu_seconds": cpu, "tokens_per_s": n * B * T / dt,
                      "threads": threads}), flush=True)
