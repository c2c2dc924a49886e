#!/usr/bin/python3
"""ref_ops.py - PyTorch references for the kernels of src/core/ops.h.

Run with Debian's torch 1.13:  /usr/bin/python3 tools/ref_ops.py
Writes tests/data/ops/<case>.bin, read by tests/test_ops.c.

Every kernel is computed in float64 from float32 inputs (so the reference
is the exact result rounded once to float32), and gradients come from
autograd of sum(out * dout) with a random dout.

File format (little-endian):
    8 bytes  magic "MKOPS001"
    u32      number of arrays
    per array:
        u32  name length L, then L bytes of name (ASCII, no NUL)
        u32  ndim (0..4), then ndim x u32 dims
        float32 x prod(dims) values, row-major
Integer inputs (targets, positions) and scalars (eps, offsets, losses) are
stored as float32 arrays too (all small integers / exact values).
"""
import math
import os
import struct

import torch
import torch.nn.functional as F

torch.manual_seed(1234)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "ops")
D = torch.float64


def rnd(*shape, scale=1.0):
    """float32 random values, returned as float64 leaf with grad."""
    x = (torch.randn(*shape) * scale).float().double()
    return x.requires_grad_(True)


def save(name, arrays):
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, name + ".bin"), "wb") as f:
        f.write(b"MKOPS001")
        f.write(struct.pack("<I", len(arrays)))
        for key, t in arrays.items():
            t = torch.as_tensor(t).detach().to(torch.float32).contiguous()
            f.write(struct.pack("<I", len(key)))
            f.write(key.encode())
            f.write(struct.pack("<I", t.dim()))
            for d in t.shape:
                f.write(struct.pack("<I", d))
            f.write(t.numpy().astype("<f4").tobytes())


def grads(out, inputs, dout):
    gs = torch.autograd.grad((out * dout).sum(), inputs, allow_unused=True)
    return [g if g is not None else torch.zeros_like(i) for g, i in zip(gs, inputs)]


def case_matmul(name, M, K, N, bias=True):
    inp, w = rnd(M, K), rnd(N, K, scale=0.3)
    b = rnd(N) if bias else None
    out = F.linear(inp, w, b)
    dout = torch.randn(M, N).float().double()
    ins = [inp, w] + ([b] if bias else [])
    g = grads(out, ins, dout)
    arr = dict(dims=torch.tensor([M, K, N]), inp=inp, w=w, dout=dout, out=out,
               dinp=g[0], dw=g[1])
    if bias:
        arr.update(bias=b, dbias=g[2])
    save(name, arr)


def case_rmsnorm():
    M, C, eps = 6, 131, 1e-5  # C > 64: several channel blocks in the dw sums
    x, w = rnd(M, C, scale=2.0), rnd(C)
    ms = (x * x).mean(-1, keepdim=True)
    rstd = 1.0 / torch.sqrt(ms + eps)
    out = x * rstd * w
    dout = torch.randn(M, C).double()
    g = grads(out, [x, w], dout)
    save("rmsnorm", dict(dims=torch.tensor([M, C]), eps=torch.tensor([eps]), inp=x, w=w,
                         dout=dout, out=out, rstd=rstd.squeeze(-1), dinp=g[0], dw=g[1]))


def case_layernorm():
    M, C, eps = 6, 131, 1e-5  # C > 64: several channel blocks in the dw sums
    x, w, b = rnd(M, C, scale=2.0) , rnd(C), rnd(C)
    with torch.no_grad():
        x += 0.7  # a non-zero mean
    out = F.layer_norm(x, (C,), w, b, eps)
    mean = x.mean(-1)
    rstd = 1.0 / torch.sqrt(x.var(-1, unbiased=False) + eps)
    dout = torch.randn(M, C).double()
    g = grads(out, [x, w, b], dout)
    save("layernorm", dict(dims=torch.tensor([M, C]), eps=torch.tensor([eps]), inp=x, w=w, b=b,
                           dout=dout, out=out, mean=mean, rstd=rstd, dinp=g[0], dw=g[1],
                           db=g[2]))


def rope_ref(x, pos, theta, ff, interleaved):
    """x (T, NH, HS) rotated from the definition: pair i turns by
    pos * theta^(-2i/HS) / ff[i]; pairs are (2i, 2i+1) or (i, i+HS/2)."""
    T, NH, HS = x.shape
    half = HS // 2
    i = torch.arange(half, dtype=D)
    inv = theta ** (-2.0 * i / HS)
    if ff is not None:
        inv = inv / ff
    ang = pos.to(D)[:, None] * inv[None, :]                   # (T, half)
    c, s = torch.cos(ang)[:, None, :], torch.sin(ang)[:, None, :]
    if interleaved:
        x0, x1 = x[..., 0::2], x[..., 1::2]
        y0, y1 = x0 * c - x1 * s, x0 * s + x1 * c
        return torch.stack([y0, y1], dim=-1).reshape(T, NH, HS)
    x0, x1 = x[..., :half], x[..., half:]
    # Hugging Face: x * cos + rotate_half(x) * sin, rotate_half = cat(-x1, x0)
    cc, ss = torch.cat([c, c], -1), torch.cat([s, s], -1)
    return x * cc + torch.cat([-x1, x0], -1) * ss


def case_rope():
    T, NH, HS, theta = 5, 3, 10, 10000.0
    pos = torch.tensor([3, 4, 7, 100, 2000])
    ff = (1.0 + 7.0 * torch.rand(HS // 2)).float().double()
    for inter in (0, 1):
        for use_ff in (0, 1):
            x = rnd(T, NH, HS)
            y = rope_ref(x, pos, theta, ff if use_ff else None, inter)
            dout = torch.randn(T, NH, HS).double()
            (dx,) = grads(y, [x], dout)
            arr = dict(dims=torch.tensor([T, NH, HS]), theta=torch.tensor([theta]), pos=pos,
                       x=x, out=y, dout=dout, dx=dx)
            if use_ff:
                arr["ff"] = ff
            save("rope_%s%s" % ("inter" if inter else "half", "_ff" if use_ff else ""), arr)


def case_act():
    n = 53
    a, b = rnd(n, scale=3.0), rnd(n, scale=2.0)
    with torch.no_grad():
        a[0] = 0.0
        a[1] = -30.0
        a[2] = 30.0
    dout = torch.randn(n).double()
    out = F.silu(a) * b
    g = grads(out, [a, b], dout)
    save("swiglu", dict(a=a, b=b, dout=dout, out=out, da=g[0], db=g[1]))
    x = rnd(n, scale=3.0)
    for name, fn in (("gelu", lambda t: F.gelu(t)), ("relu", F.relu), ("tanh", torch.tanh)):
        y = fn(x)
        (dx,) = grads(y, [x], dout)
        save(name, dict(inp=x, dout=dout, out=y, dinp=dx))


def case_attention(name, T, Tk, NH, NKV, HS, off, masked):
    q, k, v = rnd(T, NH, HS), rnd(Tk, NKV, HS), rnd(Tk, NKV, HS)
    kmask = torch.ones(Tk)
    for j in masked:
        kmask[j] = 0
    grp = NH // NKV
    outs, atts = [], []
    allowed = kmask.bool()[None, :].expand(T, Tk).clone()
    if off >= 0:
        allowed &= torch.arange(Tk)[None, :] <= torch.arange(T)[:, None] + off
    for h in range(NH):
        kv = h // grp
        s = q[:, h, :] @ k[:, kv, :].T / math.sqrt(HS)          # (T, Tk)
        s = s.masked_fill(~allowed, float("-inf"))
        p = torch.softmax(s, dim=-1)
        atts.append(p)
        outs.append(p @ v[:, kv, :])
    out = torch.stack(outs, dim=1)                               # (T, NH, HS)
    att = torch.stack(atts, dim=0)                               # (NH, T, Tk)
    dout = torch.randn(T, NH, HS).double()
    g = grads(out, [q, k, v], dout)
    save(name, dict(dims=torch.tensor([T, Tk, NH, NKV, HS, off]), q=q, k=k, v=v, kmask=kmask,
                    dout=dout, out=out, att=att, dq=g[0], dk=g[1], dv=g[2]))


def case_softmax():
    M, N = 4, 29
    x = rnd(M, N, scale=4.0)
    y = torch.softmax(x, -1)
    dout = torch.randn(M, N).double()
    (dx,) = grads(y, [x], dout)
    save("softmax", dict(dims=torch.tensor([M, N]), inp=x, dout=dout, out=y, dinp=dx))


def case_xent():
    M, V, dloss = 6, 31, 1.7
    x = rnd(M, V, scale=3.0)
    targets = torch.randint(0, V, (M,))
    mask = torch.ones(M)
    mask[2] = 0
    keep = mask.bool()
    loss = F.cross_entropy(x[keep], targets[keep])
    (dx,) = torch.autograd.grad(loss * dloss, [x])
    save("xent", dict(dims=torch.tensor([M, V]), logits=x, targets=targets, mask=mask,
                      dloss=torch.tensor([dloss]), loss=loss.reshape(1), dlogits=dx))


def main():
    case_matmul("matmul", 7, 13, 11)
    case_matmul("matmul_m1", 1, 37, 19)
    case_matmul("matmul_big", 20, 130, 110, bias=False)  # M*K*N > 2^18: threaded path
    case_rmsnorm()
    case_layernorm()
    case_rope()
    case_act()
    # GQA 4 heads / 2 kv heads, KV cache of 4 earlier positions, key 1 padded
    case_attention("attn_gqa_causal", 5, 9, 4, 2, 6, 4, [1])
    # encoder style: bidirectional, last two keys padded
    case_attention("attn_bidir_mask", 7, 7, 3, 3, 5, -1, [5, 6])
    # plain causal self-attention, 1 kv head for 4 query heads
    case_attention("attn_causal_mqa", 6, 6, 4, 1, 8, 0, [])
    # big enough for the multi-threaded paths (NH*T*Tk*HS >= 65536)
    case_attention("attn_par", 16, 20, 4, 2, 64, 4, [7])
    case_softmax()
    case_xent()
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print("wrote %d files, %d bytes, to %s" % (len(os.listdir(OUT)), total, OUT))


if __name__ == "__main__":
    main()
