"""PyTorch (CPU) yardstick for mk_llama_forward / mk_llama_backward: a Llama
of the same configuration as the GGUF models of bench_yardstick (random
weights, F32, requires_grad False), forward of B sequences of P prefix
vectors + L tokens (logits of the token positions), then backward of
sum(logits * dlogits) to the prefix inputs only.

    /usr/bin/python3 torch_llama.py [--B 4 --L 128 --P 3 --threads 2 --size 125m]

One warm-up forward+backward, then one timed; prints "RESULT {json}".
"""
import argparse, json, math, time
import torch

ap = argparse.ArgumentParser()
ap.add_argument("--B", type=int, default=4)
ap.add_argument("--L", type=int, default=128)
ap.add_argument("--P", type=int, default=3)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--size", default="125m")
a = ap.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)
V = 50257
D, NL, NH, NKV, F = (768, 12, 12, 12, 2048) if a.size == "125m" else (2048, 16, 32, 8, 8192)
HS = D // NH


class RMSNorm(torch.nn.Module):
    def __init__(s, d):
        super().__init__()
        s.w = torch.nn.Parameter(torch.ones(d))

    def forward(s, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * s.w


def rope_tables(T):
    inv = 1.0 / (10000.0 ** (torch.arange(0, HS, 2).float() / HS))
    f = torch.outer(torch.arange(T).float(), inv)
    emb = torch.cat([f, f], -1)
    return emb.cos(), emb.sin()


def rot_half(x):
    x1, x2 = x[..., : HS // 2], x[..., HS // 2:]
    return torch.cat([-x2, x1], -1)


class Block(torch.nn.Module):
    def __init__(s):
        super().__init__()
        s.n1, s.n2 = RMSNorm(D), RMSNorm(D)
        s.q = torch.nn.Linear(D, NH * HS, bias=False)
        s.k = torch.nn.Linear(D, NKV * HS, bias=False)
        s.v = torch.nn.Linear(D, NKV * HS, bias=False)
        s.o = torch.nn.Linear(NH * HS, D, bias=False)
        s.g = torch.nn.Linear(D, F, bias=False)
        s.u = torch.nn.Linear(D, F, bias=False)
        s.d = torch.nn.Linear(F, D, bias=False)

    def forward(s, x, cos, sin, mask):
        B, T, _ = x.shape
        h = s.n1(x)
        q = s.q(h).view(B, T, NH, HS).transpose(1, 2)
        k = s.k(h).view(B, T, NKV, HS).transpose(1, 2)
        v = s.v(h).view(B, T, NKV, HS).transpose(1, 2)
        q = q * cos + rot_half(q) * sin
        k = k * cos + rot_half(k) * sin
        if NKV != NH:
            k = k.repeat_interleave(NH // NKV, 1)
            v = v.repeat_interleave(NH // NKV, 1)
        att = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(HS)) + mask
        y = torch.softmax(att, -1) @ v
        x = x + s.o(y.transpose(1, 2).reshape(B, T, NH * HS))
        h = s.n2(x)
        return x + s.d(torch.nn.functional.silu(s.g(h)) * s.u(h))


class Llama(torch.nn.Module):
    def __init__(s):
        super().__init__()
        s.emb = torch.nn.Embedding(V, D)
        s.blocks = torch.nn.ModuleList([Block() for _ in range(NL)])
        s.norm = RMSNorm(D)
        s.out = torch.nn.Linear(D, V, bias=False)

    def forward(s, prefix, tokens):
        P, L = prefix.shape[1], tokens.shape[1]
        x = torch.cat([prefix, s.emb(tokens)], 1)
        T = P + L
        cos, sin = rope_tables(T)
        mask = torch.full((T, T), float("-inf")).triu(1)
        for b in s.blocks:
            x = b(x, cos, sin, mask)
        return s.out(s.norm(x[:, P:]))  # (B, L, V): token positions only


m = Llama()
with torch.no_grad():
    for p in m.parameters():
        if p.dim() == 2:
            p.normal_(0, 1.0 / math.sqrt(p.shape[1]))
for p in m.parameters():
    p.requires_grad_(False)
tokens = (torch.arange(a.B * a.L) * 7919 + 13).remainder(V).view(a.B, a.L)
prefix = (0.02 * torch.randn(a.B, a.P, D)).requires_grad_(True)
dl = 1e-4 * torch.randn(a.B, a.L, V)

for r in range(2):  # r = 0: warm-up
    prefix.grad = None
    t0 = time.perf_counter()
    logits = m(prefix, tokens)
    tf = time.perf_counter() - t0
    t0 = time.perf_counter()
    logits.backward(dl)  # d/dprefix of sum(logits * dl)
    tb = time.perf_counter() - t0
    del logits
print("RESULT " + json.dumps({"mode": "prefix", "tool": "torch", "torch": torch.__version__,
      "threads": torch.get_num_threads(), "B": a.B, "L": a.L, "P": a.P, "forward_s": tf,
      "backward_s": tb, "dprefix_abs_sum": float(prefix.grad.abs().sum())}), flush=True)
