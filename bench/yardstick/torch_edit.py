"""PyTorch (CPU) yardstick for the edit encoding (mk_editor_keys +
mk_editor_values): a RoBERTa-base-sized encoder (H 768, 12 layers, 12 heads,
I 3072, random weights) over the SAME padded token ids medrek produced
(bench_yardstick edit writes them), then MedREK's features
[pooled | mean | max | min] and a head (x1 = fc1 x; out = relu(fc2 x1) + x1,
R = 4096): the q head on the prompts, the k head on the knowledge sentences.
Encoder layers are torch.nn.TransformerEncoderLayer (post-LN, GELU),
evaluated under torch.inference_mode (PyTorch's fast path).

    /usr/bin/python3 torch_edit.py IDS_FILE [--threads 2] [--R 4096]

One warm-up pass over both batches, then one timed; prints "RESULT {json}".
"""
import argparse, json, time
import numpy as np
import torch

ap = argparse.ArgumentParser()
ap.add_argument("ids")
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--R", type=int, default=4096)
a = ap.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)
V, H, NL, NH, I, PAD = 50265, 768, 12, 12, 3072, 1


def read_batches(path):
    raw = open(path, "rb").read()
    off, out = 0, []
    while off < len(raw):
        n, L = np.frombuffer(raw, np.int32, 2, off)
        off += 8
        ids = np.frombuffer(raw, np.int32, n * L, off).reshape(n, L)
        off += 4 * n * L
        mask = np.frombuffer(raw, np.float32, n * L, off).reshape(n, L)
        off += 4 * n * L
        out.append((torch.from_numpy(ids.astype(np.int64)), torch.from_numpy(mask.copy())))
    return out


class Encoder(torch.nn.Module):
    def __init__(s):
        super().__init__()
        s.wte = torch.nn.Embedding(V, H)
        s.wpe = torch.nn.Embedding(514, H)
        s.wtt = torch.nn.Embedding(1, H)
        s.ln = torch.nn.LayerNorm(H, eps=1e-5)
        layer = torch.nn.TransformerEncoderLayer(H, NH, I, dropout=0.0, activation="gelu",
                                                 layer_norm_eps=1e-5, batch_first=True,
                                                 norm_first=False)
        s.enc = torch.nn.TransformerEncoder(layer, NL, enable_nested_tensor=True)
        s.pool = torch.nn.Linear(H, H)

    def forward(s, ids, mask):
        pos = (torch.cumsum(mask, 1) * mask).long() + PAD  # RoBERTa position ids
        x = s.ln(s.wte(ids) + s.wpe(pos) + s.wtt.weight[0])
        h = s.enc(x, src_key_padding_mask=mask == 0)
        if h.is_nested:
            h = h.to_padded_tensor(0.0, (ids.shape[0], ids.shape[1], H))
        pooled = torch.tanh(s.pool(h[:, 0]))
        m = mask.unsqueeze(-1)
        mean = (h * m).sum(1) / m.sum(1)
        mx = h.masked_fill(m == 0, float("-inf")).amax(1)
        mn = h.masked_fill(m == 0, float("inf")).amin(1)
        return torch.cat([pooled, mean, mx, mn], -1)  # (n, 4H)


class Head(torch.nn.Module):
    def __init__(s, R):
        super().__init__()
        s.fc1 = torch.nn.Linear(4 * H, R)
        s.fc2 = torch.nn.Linear(R, R)

    def forward(s, x):
        x1 = s.fc1(x)
        return torch.relu(s.fc2(x1)) + x1


enc, qh, kh = Encoder().eval(), Head(a.R).eval(), Head(a.R).eval()
(ik, mk), (iv, mv) = read_batches(a.ids)
with torch.inference_mode():
    for r in range(2):  # r = 0: warm-up
        t0 = time.perf_counter()
        keys = qh(enc(ik, mk))
        tk = time.perf_counter() - t0
        t0 = time.perf_counter()
        vals = kh(enc(iv, mv))
        tv = time.perf_counter() - t0
print("RESULT " + json.dumps({"mode": "edit", "tool": "torch", "torch": torch.__version__,
      "threads": torch.get_num_threads(), "n": int(ik.shape[0]), "L_keys": int(ik.shape[1]),
      "L_values": int(iv.shape[1]), "real_tokens": float(mk.sum() + mv.sum()), "keys_s": tk,
      "values_s": tv, "total_s": tk + tv, "finite": bool(torch.isfinite(keys).all() and
                                                          torch.isfinite(vals).all())}), flush=True)
