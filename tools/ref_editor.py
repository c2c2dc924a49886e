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
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reflib import (B2U, BPE, Head, PromptAttn, PromptMLP, byte_pieces,  # noqa: E402
                    features, knowledge_sentence, learn_merges, pad_batch, roberta_embed,
                    roberta_layer, roberta_layers_pool, roberta_positions, write_safetensors)

torch.manual_seed(1234)
DT = torch.float64
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "editor")
ENC_DIR = os.path.join(OUT, "encoder")

H, NL, NHEADS, INTER, MAXPOS, PAD = 32, 2, 4, 64, 40, 1
EPS = 1e-5
R, D, T, NH, P = 24, 16, 3, 4, 10

# ---------------------------------------------------------------- tokenizer


CORPUS = [
    "The patient was given aspirin for the pain.",
    "Metformin is the first-line treatment of type 2 diabetes.",
    "Insulin lowers blood glucose in the patients.",
    "The treatment of hypertension includes diuretics.",
    "What is the drug of choice for the infection?",
    "The doctor said the patient should take the medicine.",
]


def corpus_words():
    words = {}
    for s in CORPUS:
        for w in byte_pieces(s):
            words[tuple(w)] = words.get(tuple(w), 0) + 1
    return words


MERGES = learn_merges(corpus_words(), 40)
VOCAB = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
for b in range(256):
    VOCAB[B2U[b]] = len(VOCAB)
for a, b in MERGES:
    if a + b not in VOCAB:
        VOCAB[a + b] = len(VOCAB)
VOCAB["<mask>"] = len(VOCAB)
TOK = BPE(VOCAB, MERGES)


def encode(text, max_len=MAXPOS - PAD - 1):
    ids = TOK.encode(text)
    ids = ids[: max_len - 2]  # HF truncation: the content, then <s> ... </s>
    return [0] + ids + [2]


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


def layers_and_pool(w, x, mask, eps=EPS):
    return roberta_layers_pool(w, x, mask, NL, H, NHEADS, eps)


def encode_ids(w, ids, mask):
    return layers_and_pool(w, roberta_embed(w, ids, roberta_positions(ids, PAD), H, EPS), mask)


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
        b = roberta_layer(w, 0, x, mask, H, NHEADS, EPS)
    err = (a - b).abs().max().item()
    assert err < 1e-10, err
    return err


# ---------------------------------------------------------------- output

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
    n, L = ids.shape
    pos = torch.arange(L)[None, :].expand(n, L)
    hs, po = layers_and_pool(bw, roberta_embed(bw, ids, pos, H, beps), mask, beps)
    r_h, r_p = torch.randn(n, L, H, dtype=DT), torch.randn(n, H, dtype=DT)
    g = grads_of((hs * r_h).sum() + (po * r_p).sum(), bw)
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
    ids, mask = pad_batch([encode(s) for s in sentences], PAD)
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
    qh, kh = Head(4 * H, R), Head(4 * H, R)
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
    for nm, mod in (("pe_attn", PromptAttn(R, T, D, NH)), ("pe_mlp", PromptMLP(R, T, D))):
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
    know = [knowledge_sentence(p, t) for p, t in zip(prompts, targets)]
    tid, tmask = pad_batch([encode(s) for s in prompts], PAD)
    T_["tok.ids"], T_["tok.mask"] = tid.to(DT), tmask
    with torch.no_grad():
        h1, p1 = encode_ids(w, tid, tmask)
        T_["keys"] = qh(features(h1, tmask, p1))
        kid, kmask = pad_batch([encode(s) for s in know], PAD)
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
