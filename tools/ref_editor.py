#!/usr/bin/python3
"""ref_editor.py - PyTorch references for the encoder and the editor modules.

Writes into tests/data/editor/:
  encoder/            a small random RoBERTa as a Hugging Face directory:
                      config.json, model.safetensors (written by hand),
                      vocab.json + merges.txt (a tiny byte-level BPE learned
                      here from a few sentences)
  ref.safetensors     inputs, outputs and gradients (all F32):
    enc.ids, enc.mask               (n, L) token ids (explicit) and mask
    enc.hidden, enc.pooled          last hidden states (n, L, H), pooler (n, H)
    enc.r_hidden, enc.r_pooled      fixed random weights of the loss
                                    sum(hidden * r_hidden) + sum(pooled * r_pooled)
    enc.grad.<hf name>              its gradient for every encoder weight
    emb.inp, emb.hidden, emb.pooled embedding-free path on inp (2, 7, H)
    emb.r_hidden, emb.r_pooled      its loss weights
    emb.grad.inp, emb.grad.<name>   gradients of that loss
    feat.x                          features (n, 4H) of the batch
    q_head.*, k_head.*              head weights (fc1/fc2 weight, bias)
    q.out, q.r                      q head on feat.x, loss weights
    q.grad.x, q.grad.<param>        gradients of sum(q.out * q.r)
    chain.r, chain.grad.<hf name>   loss sum(q_head(features(enc(ids))) * chain.r)
                                    gradient to every encoder weight
    chain.grad.hidden, chain.grad.pooled  its gradient at the encoder output
    prototype                       (P, H) prototype vectors
    proto.out, proto.r              k head of the prototype path (1, R)
    proto.grad.prototype, proto.grad.k_head.*, proto.grad.enc.<hf name>
    pe_attn.*, pe_mlp.*             prompt-encoder weights (torch naming)
    pe.v                            values (B, R)
    pe_attn.out, pe_attn.r, pe_attn.grad.v, pe_attn.grad.<param>; same for pe_mlp
    tok.ids, tok.mask               ids of tok_sentences through the reference
                                    BPE (with truncation), for the tokenizer check
    keys, values, proto_key         the editor API results on tok_sentences
                                    (keys of prompts, values of knowledge
                                    sentences prompts + " " + targets)
  ref.json           sentences, dimensions, tolerances' context

Everything is computed in float64 and stored as float32.
Run: /usr/bin/python3 tools/ref_editor.py
"""
import json
import math
import os
import re
import struct
import sys

import torch
import torch.nn.functional as Fn

torch.manual_seed(1234)
DT = torch.float64
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "editor")
ENC_DIR = os.path.join(OUT, "encoder")

H, NL, NHEADS, INTER, MAXPOS, PAD = 32, 2, 4, 64, 40, 1
EPS = 1e-5
R, D, T, NH, P = 24, 16, 3, 4, 10

# ---------------------------------------------------------------- tokenizer


def bytes_to_unicode():
    """GPT-2's reversible byte -> printable unicode character table."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + \
        list(range(0xAE, 0xFF + 1))
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


B2U = bytes_to_unicode()
# GPT-2 pre-tokenization restricted to ASCII letters/digits (our sentences are ASCII)
PRETOK = re.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+""")

CORPUS = [
    "The patient was given aspirin for the pain.",
    "Metformin is the first-line treatment of type 2 diabetes.",
    "Insulin lowers blood glucose in the patients.",
    "The treatment of hypertension includes diuretics.",
    "What is the drug of choice for the infection?",
    "The doctor said the patient should take the medicine.",
]


def pretok(text):
    return ["".join(B2U[b] for b in piece.encode("utf-8")) for piece in PRETOK.findall(text)]


def learn_merges(n_merges):
    words = {}
    for s in CORPUS:
        for w in pretok(s):
            words[tuple(w)] = words.get(tuple(w), 0) + 1
    merges = []
    for _ in range(n_merges):
        pairs = {}
        for w, c in words.items():
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] = pairs.get((a, b), 0) + c
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        nw = {}
        for w, c in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out.append(w[i] + w[i + 1])
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            nw[tuple(out)] = nw.get(tuple(out), 0) + c
        words = nw
    return merges


MERGES = learn_merges(40)
VOCAB = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
for b in range(256):
    VOCAB[B2U[b]] = len(VOCAB)
for a, b in MERGES:
    if a + b not in VOCAB:
        VOCAB[a + b] = len(VOCAB)
VOCAB["<mask>"] = len(VOCAB)
RANK = {m: i for i, m in enumerate(MERGES)}


def bpe(word):
    parts = list(word)
    while len(parts) > 1:
        best, bi = None, -1
        for i in range(len(parts) - 1):
            r = RANK.get((parts[i], parts[i + 1]))
            if r is not None and (best is None or r < best):
                best, bi = r, i
        if best is None:
            break
        a, b = parts[bi], parts[bi + 1]
        out, i = [], 0
        while i < len(parts):
            if i + 1 < len(parts) and parts[i] == a and parts[i + 1] == b:
                out.append(a + b)
                i += 2
            else:
                out.append(parts[i])
                i += 1
        parts = out
    return parts


def encode(text, max_len=MAXPOS - PAD - 1):
    ids = [VOCAB[p] for w in pretok(text) for p in bpe(w)]
    ids = ids[: max_len - 2]  # HF truncation: the content, then <s> ... </s>
    return [0] + ids + [2]


def pad_batch(seqs):
    L = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), L), PAD, dtype=torch.long)
    mask = torch.zeros(len(seqs), L, dtype=DT)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s)
        mask[i, : len(s)] = 1
    return ids, mask


# ---------------------------------------------------------------- encoder
V = len(VOCAB)


def rn(*shape, s=0.2):
    return (torch.randn(*shape, dtype=DT) * s).requires_grad_()


def make_encoder():
    w = {}
    w["embeddings.word_embeddings.weight"] = rn(V, H, s=0.5)
    w["embeddings.position_embeddings.weight"] = rn(MAXPOS, H, s=0.5)
    w["embeddings.token_type_embeddings.weight"] = rn(1, H, s=0.5)
    w["embeddings.LayerNorm.weight"] = (1 + torch.randn(H, dtype=DT) * 0.1).requires_grad_()
    w["embeddings.LayerNorm.bias"] = rn(H, s=0.1)
    for l in range(NL):
        p = f"encoder.layer.{l}."
        for n in ("query", "key", "value"):
            w[p + f"attention.self.{n}.weight"] = rn(H, H, s=0.3)
            w[p + f"attention.self.{n}.bias"] = rn(H, s=0.1)
        w[p + "attention.output.dense.weight"] = rn(H, H, s=0.2)
        w[p + "attention.output.dense.bias"] = rn(H, s=0.1)
        w[p + "attention.output.LayerNorm.weight"] = (1 + torch.randn(H, dtype=DT) * 0.1).requires_grad_()
        w[p + "attention.output.LayerNorm.bias"] = rn(H, s=0.1)
        w[p + "intermediate.dense.weight"] = rn(INTER, H, s=0.25)
        w[p + "intermediate.dense.bias"] = rn(INTER, s=0.1)
        w[p + "output.dense.weight"] = rn(H, INTER, s=0.15)
        w[p + "output.dense.bias"] = rn(H, s=0.1)
        w[p + "output.LayerNorm.weight"] = (1 + torch.randn(H, dtype=DT) * 0.1).requires_grad_()
        w[p + "output.LayerNorm.bias"] = rn(H, s=0.1)
    w["pooler.dense.weight"] = rn(H, H, s=0.3)
    w["pooler.dense.bias"] = rn(H, s=0.1)
    return w


def layer(w, l, x, mask):
    """One post-LN BERT layer, written out as Hugging Face computes it."""
    p = f"encoder.layer.{l}."
    n, L, _ = x.shape
    hs = H // NHEADS

    def lin(t, name):
        return t @ w[p + name + ".weight"].T + w[p + name + ".bias"]

    def heads(t):
        return t.view(n, L, NHEADS, hs).transpose(1, 2)

    q, k, v = (heads(lin(x, f"attention.self.{m}")) for m in ("query", "key", "value"))
    sc = q @ k.transpose(-1, -2) / math.sqrt(hs)
    sc = sc + (1.0 - mask)[:, None, None, :] * torch.finfo(DT).min
    a = torch.softmax(sc, dim=-1)
    y = (a @ v).transpose(1, 2).reshape(n, L, H)
    x = Fn.layer_norm(lin(y, "attention.output.dense") + x, (H,),
                      w[p + "attention.output.LayerNorm.weight"],
                      w[p + "attention.output.LayerNorm.bias"], EPS)
    f = Fn.gelu(lin(x, "intermediate.dense"))
    return Fn.layer_norm(lin(f, "output.dense") + x, (H,), w[p + "output.LayerNorm.weight"],
                         w[p + "output.LayerNorm.bias"], EPS)


def layers_and_pool(w, x, mask):
    for l in range(NL):
        x = layer(w, l, x, mask)
    po = torch.tanh(x[:, 0] @ w["pooler.dense.weight"].T + w["pooler.dense.bias"])
    return x, po


def encode_ids(w, ids, mask):
    real = (ids != PAD).long()
    pos = torch.cumsum(real, 1) * real + PAD
    e = (w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][pos]
         + w["embeddings.token_type_embeddings.weight"][0])
    e = Fn.layer_norm(e, (H,), w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], EPS)
    return layers_and_pool(w, e, mask)


def check_layer_against_torch(w, x, mask):
    """Our written-out layer equals torch.nn.TransformerEncoderLayer."""
    tl = torch.nn.TransformerEncoderLayer(H, NHEADS, INTER, dropout=0.0, activation="gelu",
                                          layer_norm_eps=EPS, batch_first=True,
                                          norm_first=False).to(DT)
    tl.train()  # the eval fast path zeroes padded positions; train with dropout 0 does not
    p = "encoder.layer.0."
    with torch.no_grad():
        tl.self_attn.in_proj_weight.copy_(torch.cat([w[p + f"attention.self.{m}.weight"] for m in ("query", "key", "value")]))
        tl.self_attn.in_proj_bias.copy_(torch.cat([w[p + f"attention.self.{m}.bias"] for m in ("query", "key", "value")]))
        tl.self_attn.out_proj.weight.copy_(w[p + "attention.output.dense.weight"])
        tl.self_attn.out_proj.bias.copy_(w[p + "attention.output.dense.bias"])
        tl.norm1.weight.copy_(w[p + "attention.output.LayerNorm.weight"])
        tl.norm1.bias.copy_(w[p + "attention.output.LayerNorm.bias"])
        tl.linear1.weight.copy_(w[p + "intermediate.dense.weight"])
        tl.linear1.bias.copy_(w[p + "intermediate.dense.bias"])
        tl.linear2.weight.copy_(w[p + "output.dense.weight"])
        tl.linear2.bias.copy_(w[p + "output.dense.bias"])
        tl.norm2.weight.copy_(w[p + "output.LayerNorm.weight"])
        tl.norm2.bias.copy_(w[p + "output.LayerNorm.bias"])
        a = tl(x, src_key_padding_mask=(mask == 0))
        b = layer(w, 0, x, mask)
    err = (a - b).abs().max().item()
    assert err < 1e-10, err
    return err


# ---------------------------------------------------------------- features, heads

def features(hs, mask, po):
    m = mask[:, :, None]
    mean = (hs * m).sum(1) / m.sum(1)
    mx = (hs + (m - 1) * 999999).max(1).values
    mn = (hs + (1 - m) * 999999).min(1).values
    return torch.cat([po, mean, mx, mn], dim=1)


def linear(i, o):
    """torch.nn.Linear(i, o) in float64 with its default init."""
    return torch.nn.Linear(i, o).to(DT)


class Head(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = linear(4 * H, R)
        self.fc2 = linear(R, R)

    def forward(self, x):
        x1 = self.fc1(x)
        return torch.relu(self.fc2(x1)) + x1


class PromptAttn(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.query_proj = linear(R, T * D)
        self.key_proj = linear(R, D)
        self.value_proj = linear(R, D)
        self.mha = torch.nn.MultiheadAttention(D, NH, dropout=0.0, batch_first=True).to(DT)

    def forward(self, v):
        q = self.query_proj(v).view(-1, T, D)
        k = self.key_proj(v)[:, None, :]
        vv = self.value_proj(v)[:, None, :]
        return self.mha(q, k, vv, need_weights=False)[0]


class PromptMLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = linear(R, R)
        self.fc2 = linear(R, T * D)

    def forward(self, v):
        x = torch.relu(self.fc1(v)) + v
        return self.fc2(x).view(-1, T, D)


# ---------------------------------------------------------------- output

def write_safetensors(path, tensors, metadata=None):
    header, blobs, off = {}, [], 0
    for name, t in tensors.items():
        a = t.detach().to(torch.float32).contiguous().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(a)]}
        blobs.append(a)
        off += len(a)
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def grads_of(loss, named):
    names = list(named)
    gs = torch.autograd.grad(loss, [named[n] for n in names], allow_unused=True, retain_graph=True)
    return {n: (g if g is not None else torch.zeros_like(named[n])) for n, g in zip(names, gs)}


def bert_reference(w, ids, mask):
    """A BERT variant (positions 0..L-1, two token types, pad 0, eps 1e-12)
    sharing the layer weights: tests/data/editor/bert/ and ref_bert.safetensors."""
    bdir = os.path.join(OUT, "bert")
    os.makedirs(bdir, exist_ok=True)
    bw = {k: v.detach().clone().requires_grad_() for k, v in w.items()}
    bw["embeddings.token_type_embeddings.weight"] = rn(2, H, s=0.5)
    beps = 1e-12
    cfg = {"architectures": ["BertModel"], "model_type": "bert", "vocab_size": V,
           "hidden_size": H, "num_hidden_layers": NL, "num_attention_heads": NHEADS,
           "intermediate_size": INTER, "max_position_embeddings": MAXPOS, "type_vocab_size": 2,
           "layer_norm_eps": beps, "pad_token_id": 0, "hidden_act": "gelu"}
    with open(os.path.join(bdir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    write_safetensors(os.path.join(bdir, "model.safetensors"), {"bert." + k: v for k, v in bw.items()})
    global EPS
    keep, EPS = EPS, beps
    n, L = ids.shape
    pos = torch.arange(L)[None, :].expand(n, L)
    e = (bw["embeddings.word_embeddings.weight"][ids] + bw["embeddings.position_embeddings.weight"][pos]
         + bw["embeddings.token_type_embeddings.weight"][0])
    e = Fn.layer_norm(e, (H,), bw["embeddings.LayerNorm.weight"], bw["embeddings.LayerNorm.bias"], EPS)
    hs, po = layers_and_pool(bw, e, mask)
    r_h, r_p = torch.randn(n, L, H, dtype=DT), torch.randn(n, H, dtype=DT)
    g = grads_of((hs * r_h).sum() + (po * r_p).sum(), bw)
    EPS = keep
    T_ = {"ids": ids.to(DT), "mask": mask, "hidden": hs, "pooled": po, "r_hidden": r_h,
          "r_pooled": r_p}
    for k, v in g.items():
        T_["grad." + k] = v
    write_safetensors(os.path.join(OUT, "ref_bert.safetensors"), T_)
    return V


def main():
    os.makedirs(ENC_DIR, exist_ok=True)
    ref = {}
    w = make_encoder()
    cfg = {"architectures": ["RobertaModel"], "model_type": "roberta", "vocab_size": V,
           "hidden_size": H, "num_hidden_layers": NL, "num_attention_heads": NHEADS,
           "intermediate_size": INTER, "max_position_embeddings": MAXPOS, "type_vocab_size": 1,
           "layer_norm_eps": EPS, "pad_token_id": PAD, "bos_token_id": 0, "eos_token_id": 2,
           "hidden_act": "gelu", "position_embedding_type": "absolute"}
    with open(os.path.join(ENC_DIR, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    # stored as a masked-LM checkpoint does: "roberta." prefix, plus an unused head
    st = {"roberta." + k: v for k, v in w.items()}
    st["lm_head.bias"] = torch.zeros(V)
    write_safetensors(os.path.join(ENC_DIR, "model.safetensors"), st, {"format": "pt"})
    with open(os.path.join(ENC_DIR, "vocab.json"), "w") as f:
        json.dump(VOCAB, f, ensure_ascii=False)
    with open(os.path.join(ENC_DIR, "merges.txt"), "w") as f:
        f.write("#version: 0.2\n")
        for a, b in MERGES:
            f.write(f"{a} {b}\n")
    # the same tokenizer as a Hugging Face tokenizer.json (the test builds an
    # encoder directory with it to check the editor's other tokenizer path)
    specials = [("<s>", 0), ("<pad>", 1), ("</s>", 2), ("<unk>", 3), ("<mask>", VOCAB["<mask>"])]
    tj = {"version": "1.0", "truncation": None, "padding": None,
          "added_tokens": [{"id": i, "content": c, "single_word": False, "lstrip": c == "<mask>",
                            "rstrip": False, "normalized": False, "special": True}
                           for c, i in specials],
          "normalizer": None,
          "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                            "use_regex": True},
          "post_processor": {"type": "RobertaProcessing", "sep": ["</s>", 2], "cls": ["<s>", 0],
                             "trim_offsets": True, "add_prefix_space": False},
          "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                      "use_regex": True},
          "model": {"type": "BPE", "dropout": None, "unk_token": None,
                    "continuing_subword_prefix": "", "end_of_word_suffix": "",
                    "fuse_unk": False, "byte_fallback": False, "vocab": VOCAB,
                    "merges": [f"{a} {b}" for a, b in MERGES]}}
    with open(os.path.join(OUT, "tokenizer.json"), "w") as f:
        json.dump(tj, f, ensure_ascii=False)

    # ---- encoder on explicit ids
    sentences = ["The patient was given aspirin.", "Metformin treats diabetes",
                 "What is the first-line therapy?", "Hi", "Insulin lowers blood glucose."]
    ids, mask = pad_batch([encode(s) for s in sentences])
    n, L = ids.shape
    assert L <= MAXPOS - PAD - 1
    hs, po = encode_ids(w, ids, mask)
    ref["check_layer_vs_torch"] = check_layer_against_torch(w, hs.detach(), mask)
    r_h, r_p = torch.randn(n, L, H, dtype=DT), torch.randn(n, H, dtype=DT)
    g = grads_of((hs * r_h).sum() + (po * r_p).sum(), w)
    T_ = {"enc.ids": ids.to(DT), "enc.mask": mask, "enc.hidden": hs, "enc.pooled": po,
          "enc.r_hidden": r_h, "enc.r_pooled": r_p}
    for k, v in g.items():
        T_["enc.grad." + k] = v

    # ---- embedding-free path
    inp = rn(2, 7, H, s=1.0)
    ones = torch.ones(2, 7, dtype=DT)
    ehs, epo = layers_and_pool(w, inp, ones)
    er_h, er_p = torch.randn(2, 7, H, dtype=DT), torch.randn(2, H, dtype=DT)
    lw = {k: v for k, v in w.items() if not k.startswith("embeddings.")}
    g = grads_of((ehs * er_h).sum() + (epo * er_p).sum(), dict(lw, inp=inp))
    T_.update({"emb.inp": inp, "emb.hidden": ehs, "emb.pooled": epo, "emb.r_hidden": er_h,
               "emb.r_pooled": er_p})
    for k, v in g.items():
        T_["emb.grad." + k] = v

    # ---- features and heads
    qh, kh = Head(), Head()
    for nm, hd in (("q_head", qh), ("k_head", kh)):
        for k, v in hd.named_parameters():
            T_[f"{nm}.{k}"] = v
    x = features(hs, mask, po)
    T_["feat.x"] = x
    xd = x.detach().requires_grad_()
    qo = qh(xd)
    qr = torch.randn(n, R, dtype=DT)
    g = grads_of((qo * qr).sum(), dict(dict(qh.named_parameters()), x=xd))
    T_["q.out"], T_["q.r"] = qo, qr
    for k, v in g.items():
        T_["q.grad." + k] = v
    # the whole chain: encoder -> features -> q head
    hsd = hs  # still attached to w
    out = qh(features(hsd, mask, po))
    cr = torch.randn(n, R, dtype=DT)
    loss = (out * cr).sum()
    g = grads_of(loss, w)
    T_["chain.r"] = cr
    T_["chain.out"] = out
    for k, v in g.items():
        T_["chain.grad." + k] = v
    # the gradient at the encoder outputs (hidden and pooler as leaves)
    hs_l, po_l = hs.detach().requires_grad_(), po.detach().requires_grad_()
    g = grads_of((qh(features(hs_l, mask, po_l)) * cr).sum(), {"hidden": hs_l, "pooled": po_l})
    T_["chain.grad.hidden"], T_["chain.grad.pooled"] = g["hidden"], g["pooled"]

    # ---- prototype through the k head
    proto = ((torch.rand(P, H, dtype=DT) - 0.5) * 0.1).requires_grad_()
    T_["prototype"] = proto
    phs, ppo = layers_and_pool(w, proto[None], torch.ones(1, P, dtype=DT))
    pout = kh(features(phs, torch.ones(1, P, dtype=DT), ppo))
    pr = torch.randn(1, R, dtype=DT)
    g = grads_of((pout * pr).sum(), dict({"prototype": proto},
                                         **{"k_head." + k: v for k, v in kh.named_parameters()},
                                         **{"enc." + k: v for k, v in lw.items()}))
    T_["proto.out"], T_["proto.r"] = pout, pr
    for k, v in g.items():
        T_["proto.grad." + k] = v

    # ---- prompt encoders
    B = 3
    vals = torch.randn(B, R, dtype=DT, requires_grad=True)
    T_["pe.v"] = vals
    for nm, mod in (("pe_attn", PromptAttn()), ("pe_mlp", PromptMLP())):
        for k, v in mod.named_parameters():
            T_[f"{nm}.{k}"] = v
        out = mod(vals)
        r = torch.randn(*out.shape, dtype=DT)
        g = grads_of((out * r).sum(), dict(dict(mod.named_parameters()), v=vals))
        T_[nm + ".out"], T_[nm + ".r"] = out, r
        for k, v in g.items():
            T_[f"{nm}.grad.{k}"] = v
        if nm == "pe_attn":
            ref["attn_query_proj_grad_absmax"] = g["query_proj.weight"].abs().max().item()
            ref["attn_prompt_spread"] = (out - out[:, :1]).abs().max().item()
            pe_attn = mod

    # ---- tokenizer check and editor API results
    prompts = ["What treats type 2 diabetes?", "The drug of choice for pain is",
               "Hypertension is treated with ",
               "A very long question about the patient that will be truncated by the encoder"]
    targets = ["metformin", "aspirin", " diuretics", "yes"]

    def ksent(p, t):
        return p + t if p.endswith(" ") or t.startswith(" ") else p + " " + t
    know = [ksent(p, t) for p, t in zip(prompts, targets)]
    tid, tmask = pad_batch([encode(s) for s in prompts])
    T_["tok.ids"], T_["tok.mask"] = tid.to(DT), tmask
    with torch.no_grad():
        h1, p1 = encode_ids(w, tid, tmask)
        T_["keys"] = qh(features(h1, tmask, p1))
        kid, kmask = pad_batch([encode(s) for s in know])
        h2, p2 = encode_ids(w, kid, kmask)
        T_["values"] = kh(features(h2, kmask, p2))
        T_["know.ids"], T_["know.mask"] = kid.to(DT), kmask
        T_["proto_key"] = pout
        T_["prompts_attn"] = pe_attn(T_["values"])

    write_safetensors(os.path.join(OUT, "ref.safetensors"), T_)
    ref["bert_vocab"] = bert_reference(w, ids, mask)
    ref.update({"sentences": sentences, "prompts": prompts, "targets": targets,
                "knowledge_sentences": know, "n": n, "L": L, "H": H, "R": R, "D": D, "T": T,
                "NH": NH, "P": P, "vocab": V})
    with open(os.path.join(OUT, "ref.json"), "w") as f:
        json.dump(ref, f, indent=1)
    print("wrote", OUT, "vocab", V, "batch", (n, L), "layer check", ref["check_layer_vs_torch"],
          "attn query_proj grad", ref["attn_query_proj_grad_absmax"], file=sys.stderr)


if __name__ == "__main__":
    main()
