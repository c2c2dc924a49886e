#!/usr/bin/python3
"""ref_retrieve.py - PyTorch reference for spec section 5 (retrieval).

Writes tests/data/kb/retrieve_ref.bin: a knowledge base of N edits plus the
prototype row 0, B queries (some near an edit, some near the prototype,
some random), and for each (top_k, min_sim) case the kept rows, their
similarities, the prototype similarity and the margin, computed exactly as
the spec says: sims = q @ keys^T / sqrt(R) over all N+1 rows, topk, keep a
row if sim > min_sim and sim > sim(prototype).

Queries whose decisions would hinge on float rounding (two sims, or a sim
and min_sim, within 1e-3) are redrawn, so the C test can check every
decision exactly.

Layout (little-endian): b"MKRT", int32 N1, R, B, n_cases; float32 keys
(N1, R); float32 queries (B, R); per case: int32 top_k, float32 min_sim;
then per query: float32 proto_sim, float32 margin, int32 n_kept, top_k x
(int32 row, float32 sim) with row = -1 past n_kept.
Run: /usr/bin/python3 tools/ref_retrieve.py
"""
import math
import struct
import torch

N, R, B = 60, 64, 24
CASES = [(1, -999.0), (3, -999.0), (1, 6.0), (3, 6.0), (3, 0.5), (5, -999.0)]
GAP = 1e-3

g = torch.Generator().manual_seed(20261125)
keys = torch.randn(N + 1, R, generator=g)


def sims_of(q):
    return (q.unsqueeze(0) @ keys.T / math.sqrt(R))[0]


def ambiguous(s):
    v, _ = torch.sort(s, descending=True)
    top = v[:8]
    if torch.any((top[:-1] - top[1:]) < GAP):
        return True
    if torch.any(torch.abs(s - s[0]).index_fill(0, torch.tensor([0]), 1.0) < GAP):
        return True
    for _, m in CASES:
        if torch.any(torch.abs(s - m) < GAP):
            return True
    return False


queries = []
kinds = []
i = 0
while len(queries) < B:
    kind = len(queries) % 3  # 0 near an edit, 1 near the prototype, 2 random
    if kind == 0:
        row = 1 + int(torch.randint(0, N, (1,), generator=g))
        noise = 0.2 + 0.6 * float(torch.rand(1, generator=g))
        q = keys[row] + noise * torch.randn(R, generator=g)
    elif kind == 1:
        q = keys[0] + 0.3 * torch.randn(R, generator=g)
    else:
        q = torch.randn(R, generator=g)
    if ambiguous(sims_of(q)):
        continue
    queries.append(q)
    kinds.append(kind)
q = torch.stack(queries)

out = bytearray(b"MKRT")
out += struct.pack("<4i", N + 1, R, B, len(CASES))
out += keys.numpy().astype("<f4").tobytes()
out += q.numpy().astype("<f4").tobytes()
sims = q @ keys.T / math.sqrt(R)  # (B, N+1)
n_kept_total = 0
for top_k, min_sim in CASES:
    out += struct.pack("<if", top_k, min_sim)
    vals, rows = torch.topk(sims, top_k, dim=1)
    for b in range(B):
        proto = float(sims[b, 0])
        kept = [(int(r), float(v)) for v, r in zip(vals[b], rows[b])
                if float(v) > min_sim and float(v) > proto]
        n_kept_total += len(kept)
        best_edit = float(torch.max(sims[b, 1:]))
        margin = (kept[0][1] - proto) if kept else (best_edit - proto)
        out += struct.pack("<ffi", proto, margin, len(kept))
        for j in range(top_k):
            r, v = kept[j] if j < len(kept) else (-1, float("-inf"))
            out += struct.pack("<if", r, v)
path = "tests/data/kb/retrieve_ref.bin"
with open(path, "wb") as f:
    f.write(out)
print(f"wrote {path}: {len(out)} bytes, N={N} R={R} B={B}, {len(CASES)} cases, "
      f"{n_kept_total} kept rows in all")
