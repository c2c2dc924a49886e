#!/usr/bin/python3
"""ref_llama.py - reference fixtures for the Llama engine (src/model/llama.c).

Builds small random Llama models, implements the Llama forward in torch from
its definition (RMSNorm, rotate-half RoPE with optional Llama-3.1 scaling,
grouped-query attention, SwiGLU), writes each model by hand as a Hugging
Face directory (config.json + model.safetensors + tokenizer.json) and as
GGUF (Q/K rows permuted for interleaved RoPE, llama.* metadata, a tiny
byte-level BPE tokenizer), plus Q8_0/Q4_0 variants quantised following
GGML's rules, and the reference outputs in ref_*.safetensors:

  tokens_i, prefix_i, targets_i, mask_i   the batch (ids stored as F32)
  logits                                   (sum L_i, V)
  loss                                     mean CE over masked positions
  dprefix_i                                d loss / d prefix_i
  grad.<tensor name in the HF layout>      d loss / d weight (a subset)
  gen_prompt, gen_noprefix, gen_prefix_vec, gen_prefix   greedy 32 tokens
  logits_q8_0, logits_q4_0                 the batch with dequantised weights

Run: /usr/bin/python3 tools/ref_llama.py   (writes tests/data/llama/)
Needs torch (Debian's 1.13) and numpy; deterministic (fixed seeds).
"""
import json
import math
import os
import re
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reflib import (B2U, BPE, GG_ARR, GG_BOOL, GG_F32, GG_I32, GG_STR, GG_U32,  # noqa: E402
                    GGML_F16, GGML_F32, GGML_Q4_0, GGML_Q8_0, U2B, inv_freq, learn_merges,
                    llama_logits, make_config, q4_0_block, q8_0_block, write_gguf,
                    write_safetensors_raw)

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "llama")

# ---------------------------------------------------------------- tokenizer

CORPUS = ("The patient was given aspirin for the headache. The doctor said that the "
          "treatment of hypertension includes diuretics and beta blockers. Diabetes is "
          "treated with insulin and metformin. The heart pumps blood through the body; "
          "the lungs exchange oxygen. Antibiotics treat bacterial infections, not viral "
          "ones. The kidney filters the blood and the liver metabolises drugs. "
          "Symptoms of pneumonia: fever, cough, chest pain and shortness of breath. "
          "Vaccines prevent measles, mumps, rubella, polio, tetanus and influenza. "
          "Warfarin interacts with vitamin K; statins lower cholesterol (LDL) levels. "
          "Question: what is the first-line drug for type 2 diabetes? Answer: metformin. "
          "Chronic obstructive pulmonary disease, asthma, tuberculosis, anaemia, sepsis, "
          "myocardial infarction, stroke, epilepsy, migraine, arthritis, osteoporosis. ") * 4
PRETOK = re.compile(r"'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+")


def train_tokenizer(vocab_size=512, n_special=2):
    """Byte-level BPE: 256 byte tokens, learned merges, 2 special tokens."""
    vocab = [B2U[b] for b in range(256)]
    words = {}
    for w in PRETOK.findall(CORPUS):
        key = tuple(B2U[b] for b in w.encode("utf-8"))
        words[key] = words.get(key, 0) + 1
    merges = learn_merges(words, vocab_size - n_special - len(vocab))
    vocab += [a + b for a, b in merges]
    while len(vocab) < vocab_size - n_special:  # corpus exhausted: filler pieces
        vocab.append("<unused%d>" % len(vocab))
    specials = ["<|begin_of_text|>", "<|end_of_text|>"]
    vocab += specials
    assert len(vocab) == vocab_size and len(set(vocab)) == vocab_size
    return vocab, merges, specials


def tokenizer_json(vocab, merges, specials):
    bos, eos = vocab.index(specials[0]), vocab.index(specials[1])
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {"id": vocab.index(s), "content": s, "single_word": False, "lstrip": False,
             "rstrip": False, "normalized": False, "special": True} for s in specials],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                          "use_regex": True},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": specials[0], "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": specials[0], "type_id": 0}},
                     {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": specials[0], "type_id": 1}},
                     {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {specials[0]: {"id": specials[0], "ids": [bos], "tokens": [specials[0]]}}},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                    "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": False, "byte_fallback": False,
                  "vocab": {t: i for i, t in enumerate(vocab)},
                  "merges": ["%s %s" % m for m in merges]},
    }


def piece_bytes(piece):
    if piece.startswith("<|"):
        return b""
    return bytes(U2B[ch] for ch in piece)


def bpe_encode(text, merges):
    """Ids of text under the tokenizer above (this script's pre-split)."""
    vocab = {B2U[b]: b for b in range(256)}
    for i, m in enumerate(merges):
        vocab[m[0] + m[1]] = 256 + i
    return BPE(vocab, merges, PRETOK).encode(text)


# ---------------------------------------------------------------- model

def make_weights(cfg, seed):
    """HF-layout weights (name -> float32 tensor), scaled so logits spread."""
    g = torch.Generator().manual_seed(seed)
    V, D, NL, NH, NKV, HS, F = (cfg[k] for k in ("V", "D", "NL", "NH", "NKV", "HS", "F"))

    def rnd(*shape, std):
        return torch.randn(*shape, generator=g) * std

    w = {"model.embed_tokens.weight": rnd(V, D, std=1.0)}
    for l in range(NL):
        p = "model.layers.%d." % l
        w[p + "input_layernorm.weight"] = 1.0 + rnd(D, std=0.1)
        w[p + "self_attn.q_proj.weight"] = rnd(NH * HS, D, std=1.0 / math.sqrt(D))
        w[p + "self_attn.k_proj.weight"] = rnd(NKV * HS, D, std=1.0 / math.sqrt(D))
        w[p + "self_attn.v_proj.weight"] = rnd(NKV * HS, D, std=1.0 / math.sqrt(D))
        w[p + "self_attn.o_proj.weight"] = rnd(D, NH * HS, std=1.0 / math.sqrt(NH * HS))
        w[p + "post_attention_layernorm.weight"] = 1.0 + rnd(D, std=0.1)
        w[p + "mlp.gate_proj.weight"] = rnd(F, D, std=1.0 / math.sqrt(D))
        w[p + "mlp.up_proj.weight"] = rnd(F, D, std=1.0 / math.sqrt(D))
        w[p + "mlp.down_proj.weight"] = rnd(D, F, std=1.0 / math.sqrt(F))
    w["model.norm.weight"] = 1.0 + rnd(D, std=0.1)
    if not cfg["tied"]:
        # rows of unequal norm (like frequent and rare words) give the
        # logits clear winners, so top-1 agreement under quantisation means
        # something
        w["lm_head.weight"] = rnd(V, D, std=3.0 / math.sqrt(D)) * torch.exp(0.5 * rnd(V, 1, std=1.0))
    return w


def rope_freq_factors(cfg):
    """GGUF's rope_freqs.weight: divisors of the base frequencies."""
    base = 1.0 / (cfg["theta"] ** (torch.arange(0, cfg["HS"], 2, dtype=torch.float64) / cfg["HS"]))
    return (base / inv_freq(cfg)).float()


def train(cfg, w, ids, steps=300, T=64, B=8, lr=3e-3, seed=4):
    """A few hundred Adam steps of next-token prediction on the corpus, so
    model A predicts with the margins of a trained model (top-1 agreement
    under quantisation is then meaningful) and greedy text is readable."""
    g = torch.Generator().manual_seed(seed)
    w = {k: v.clone().requires_grad_(True) for k, v in w.items()}
    opt = torch.optim.Adam(list(w.values()), lr=lr)
    data = torch.tensor(ids, dtype=torch.long)
    for step in range(steps):
        starts = torch.randint(0, len(ids) - T - 1, (B,), generator=g).tolist()
        loss = 0
        for s0 in starts:
            lg = llama_logits(cfg, w, data[s0:s0 + T].tolist(), None)
            loss = loss + torch.nn.functional.cross_entropy(lg, data[s0 + 1:s0 + T + 1])
        loss = loss / B
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 100 == 0 or step == steps - 1:
            print("train step %d loss %.3f" % (step, loss.item()))
    return {k: v.detach().clone() for k, v in w.items()}


def greedy(cfg, w, prompt, prefix, n_new):
    ids = list(prompt)
    out = []
    with torch.no_grad():
        for _ in range(n_new):
            lg = llama_logits(cfg, w, ids, prefix)
            t = int(torch.argmax(lg[-1]))
            out.append(t)
            ids.append(t)
    return out


# ---------------------------------------------------------------- quantisation (GGML rules)

def f16_round(a):
    return a.astype(np.float16).astype(np.float32)


def quantise(a, block):
    """a (n,) f32, n % 32 == 0 -> (bytes, dequantised f32), block by block
    (reflib.q8_0_block or q4_0_block: GGML's rules)."""
    parts = [block(b) for b in a.reshape(-1, 32)]
    return b"".join(r for r, _ in parts), np.concatenate([d for _, d in parts])


# ---------------------------------------------------------------- writers

def write_safetensors(path, tensors, dtype="F32", meta=None):
    """tensors: list of (name, np.float32 array), stored as dtype."""
    entries = []
    for name, a in tensors:
        if dtype == "F32":
            raw = a.astype("<f4").tobytes()
        elif dtype == "F16":
            raw = a.astype("<f2").tobytes()
        elif dtype == "BF16":
            raw = bf16_bits(a).astype("<u2").tobytes()
        entries.append((name, dtype, a.shape, raw))
    write_safetensors_raw(path, entries, meta, separators=(",", ":"))


def bf16_bits(a):
    """f32 -> the upper 16 bits of its round-to-nearest-even bf16 (as u64)."""
    u = a.astype("<f4").view("<u4").astype(np.uint64)
    return (u + 0x7FFF + ((u >> 16) & 1)) >> 16


def bf16_round(a):
    return (bf16_bits(a) << 16).astype("<u4").view("<f4")


def permute_qk(w, n_head):
    """HF rotate-half rows -> GGUF interleaved rows (per head:
    new row 2i+j = old row i + j*HS/2)."""
    rows, cols = w.shape
    hs = rows // n_head
    return w.reshape(n_head, 2, hs // 2, cols).swapaxes(1, 2).reshape(rows, cols)


HF2GG = [("model.embed_tokens.weight", "token_embd.weight"),
         ("model.norm.weight", "output_norm.weight"),
         ("lm_head.weight", "output.weight")]
LAYER_MAP = [("input_layernorm.weight", "attn_norm.weight"),
             ("self_attn.q_proj.weight", "attn_q.weight"),
             ("self_attn.k_proj.weight", "attn_k.weight"),
             ("self_attn.v_proj.weight", "attn_v.weight"),
             ("self_attn.o_proj.weight", "attn_output.weight"),
             ("post_attention_layernorm.weight", "ffn_norm.weight"),
             ("mlp.gate_proj.weight", "ffn_gate.weight"),
             ("mlp.up_proj.weight", "ffn_up.weight"),
             ("mlp.down_proj.weight", "ffn_down.weight")]


def gguf_name(cfg, hf):
    for a, b in HF2GG:
        if hf == a:
            return b
    m = re.match(r"model\.layers\.(\d+)\.(.*)", hf)
    for a, b in LAYER_MAP:
        if m.group(2) == a:
            return "blk.%s.%s" % (m.group(1), b)
    raise KeyError(hf)


def write_hf(dirname, cfg, w, tok, dtype="F32"):
    os.makedirs(dirname, exist_ok=True)
    conf = {"architectures": ["LlamaForCausalLM"], "model_type": "llama",
            "vocab_size": cfg["V"], "hidden_size": cfg["D"], "num_hidden_layers": cfg["NL"],
            "num_attention_heads": cfg["NH"], "num_key_value_heads": cfg["NKV"],
            "intermediate_size": cfg["F"], "rms_norm_eps": cfg["eps"], "rope_theta": cfg["theta"],
            "max_position_embeddings": cfg["n_ctx"], "tie_word_embeddings": cfg["tied"],
            "hidden_act": "silu", "bos_token_id": tok[0].index(tok[2][0]),
            "eos_token_id": tok[0].index(tok[2][1]), "torch_dtype": "float32"}
    if cfg["rope3"] is not None:
        r = cfg["rope3"]
        conf["rope_scaling"] = {"rope_type": "llama3", "factor": r["factor"],
                                "low_freq_factor": r["low_freq_factor"],
                                "high_freq_factor": r["high_freq_factor"],
                                "original_max_position_embeddings": r["orig"]}
    with open(os.path.join(dirname, "config.json"), "w") as f:
        json.dump(conf, f, indent=1)
    with open(os.path.join(dirname, "tokenizer.json"), "w") as f:
        json.dump(tokenizer_json(*tok), f, ensure_ascii=False, separators=(",", ":"))
    write_safetensors(os.path.join(dirname, "model.safetensors"),
                      [(k, v.numpy()) for k, v in w.items()], dtype=dtype, meta={"format": "pt"})


def write_gguf_model(path, cfg, w, tok, qtype):
    vocab, merges, specials = tok
    kvs = [("general.architecture", GG_STR, "llama"),
           ("general.name", GG_STR, cfg["name"]),
           ("general.alignment", GG_U32, 32),
           ("llama.context_length", GG_U32, cfg["n_ctx"]),
           ("llama.embedding_length", GG_U32, cfg["D"]),
           ("llama.block_count", GG_U32, cfg["NL"]),
           ("llama.feed_forward_length", GG_U32, cfg["F"]),
           ("llama.attention.head_count", GG_U32, cfg["NH"]),
           ("llama.attention.head_count_kv", GG_U32, cfg["NKV"]),
           ("llama.attention.layer_norm_rms_epsilon", GG_F32, cfg["eps"]),
           ("llama.rope.freq_base", GG_F32, cfg["theta"]),
           ("llama.rope.dimension_count", GG_U32, cfg["HS"]),
           ("llama.vocab_size", GG_U32, cfg["V"]),
           ("general.file_type", GG_U32, {"F32": 0, "F16": 1, "Q4_0": 2, "Q8_0": 7}[qtype]),
           ("tokenizer.ggml.model", GG_STR, "gpt2"),
           ("tokenizer.ggml.pre", GG_STR, "gpt-2"),
           ("tokenizer.ggml.tokens", GG_ARR, (GG_STR, vocab)),
           ("tokenizer.ggml.token_type", GG_ARR, (GG_I32, [3 if t in specials else 1 for t in vocab])),
           ("tokenizer.ggml.merges", GG_ARR, (GG_STR, ["%s %s" % m for m in merges])),
           ("tokenizer.ggml.bos_token_id", GG_U32, vocab.index(specials[0])),
           ("tokenizer.ggml.eos_token_id", GG_U32, vocab.index(specials[1])),
           ("tokenizer.ggml.add_bos_token", GG_BOOL, True)]
    tensors, deq = [], {}
    for hf, t in w.items():
        a = t.numpy().astype(np.float32)
        if hf.endswith("q_proj.weight"):
            a = permute_qk(a, cfg["NH"])
        elif hf.endswith("k_proj.weight"):
            a = permute_qk(a, cfg["NKV"])
        name = gguf_name(cfg, hf)
        if a.ndim == 1 or qtype == "F32":  # norms stay F32, as llama.cpp does
            raw, typ, d = a.astype("<f4").tobytes(), GGML_F32, a
        elif qtype == "F16":
            raw, typ, d = a.astype("<f2").tobytes(), GGML_F16, f16_round(a)
        elif qtype == "Q8_0":
            raw, d = quantise(a, q8_0_block)
            typ = GGML_Q8_0
        else:
            raw, d = quantise(a, q4_0_block)
            typ = GGML_Q4_0
        tensors.append((name, list(a.shape), typ, raw))
        d = d.reshape(a.shape)
        if hf.endswith("q_proj.weight") or hf.endswith("k_proj.weight"):  # undo for the reference
            nh = cfg["NH"] if hf.endswith("q_proj.weight") else cfg["NKV"]
            rows, cols = d.shape
            hs = rows // nh
            d = d.reshape(nh, hs // 2, 2, cols).transpose(0, 2, 1, 3).reshape(rows, cols)
        deq[hf] = torch.from_numpy(np.ascontiguousarray(d, dtype=np.float32))
    if cfg["rope3"] is not None:
        tensors.append(("rope_freqs.weight", [cfg["HS"] // 2], GGML_F32,
                        rope_freq_factors(cfg).numpy().astype("<f4").tobytes()))
    write_gguf(path, kvs, tensors)
    return deq


# ---------------------------------------------------------------- batch + references

def make_batch(cfg, seed, Ls, ns):
    g = torch.Generator().manual_seed(seed)
    seqs = []
    for L, n in zip(Ls, ns):
        toks = torch.randint(0, cfg["V"], (L,), generator=g).tolist()
        tg = torch.randint(0, cfg["V"], (L,), generator=g).tolist()
        mask = (torch.rand(L, generator=g) < 0.7).float()
        mask[-1] = 1.0
        pre = torch.randn(n, cfg["D"], generator=g) if n > 0 else None
        seqs.append((toks, pre, tg, mask))
    return seqs


def batch_forward(cfg, w, seqs):
    """Logits (sum L, V) and mean CE over masked positions of all sequences."""
    logits = [llama_logits(cfg, w, t, p) for t, p, _, _ in seqs]
    lg = torch.cat(logits, 0)
    tg = torch.tensor(sum((s[2] for s in seqs), []), dtype=torch.long)
    mk = torch.cat([s[3] for s in seqs])
    ce = torch.nn.functional.cross_entropy(lg, tg, reduction="none")
    loss = (ce * mk).sum() / mk.sum()
    return lg, loss


GRAD_SUBSET = ["model.layers.0.input_layernorm.weight",
               "model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.k_proj.weight",
               "model.layers.0.self_attn.v_proj.weight", "model.layers.0.self_attn.o_proj.weight",
               "model.layers.0.post_attention_layernorm.weight",
               "model.layers.0.mlp.gate_proj.weight", "model.layers.0.mlp.up_proj.weight",
               "model.layers.1.mlp.down_proj.weight", "model.layers.1.input_layernorm.weight",
               "model.norm.weight"]


def references(cfg, w, seqs, gen_prompt, gen_prefix, want_grads, extra_logits=None):
    out = []
    w = {k: v.clone().requires_grad_(want_grads) for k, v in w.items()}
    pres = [p.clone().requires_grad_(True) if p is not None else None for _, p, _, _ in seqs]
    seqs2 = [(t, p2, tg, m) for (t, _, tg, m), p2 in zip(seqs, pres)]
    lg, loss = batch_forward(cfg, w, seqs2)
    loss.backward()
    for i, (t, p, tg, m) in enumerate(seqs2):
        out.append(("tokens_%d" % i, np.array(t, dtype=np.float32)))
        out.append(("targets_%d" % i, np.array(tg, dtype=np.float32)))
        out.append(("mask_%d" % i, m.numpy()))
        if p is not None:
            out.append(("prefix_%d" % i, p.detach().numpy()))
            out.append(("dprefix_%d" % i, p.grad.numpy()))
    out.append(("logits", lg.detach().numpy()))
    out.append(("loss", np.array([loss.item()], dtype=np.float32)))
    if want_grads:
        for k in GRAD_SUBSET:
            if k in w:
                out.append(("grad." + k, w[k].grad.numpy()))
    wd = {k: v.detach() for k, v in w.items()}
    out.append(("gen_prompt", np.array(gen_prompt, dtype=np.float32)))
    out.append(("gen_noprefix", np.array(greedy(cfg, wd, gen_prompt, None, 32), dtype=np.float32)))
    out.append(("gen_prefix_vec", gen_prefix.numpy()))
    out.append(("gen_prefix", np.array(greedy(cfg, wd, gen_prompt, gen_prefix, 32), dtype=np.float32)))
    if extra_logits:
        with torch.no_grad():
            for name, wq in extra_logits:
                lq, _ = batch_forward(cfg, wq, seqs)
                out.append((name, lq.numpy()))
    return out


def round_weights(w, fn):
    return {k: torch.from_numpy(fn(v.numpy())) for k, v in w.items()}


def main():
    torch.manual_seed(0)
    os.makedirs(OUT, exist_ok=True)
    tok = train_tokenizer()
    print("tokenizer: %d merges" % len(tok[1]))
    gen_prompt = [510] + bpe_encode("The patient was", tok[1])
    Ls, ns = [7, 5, 9], [2, 0, 3]

    # A: the main model, F32 in both layouts, plus quantised GGUF variants.
    a = make_config("mk-test-a", NL=2)
    corpus = bpe_encode(CORPUS, tok[1])
    print("corpus: %d tokens" % len(corpus))
    wa = train(a, make_weights(a, 1), corpus)
    write_hf(os.path.join(OUT, "a_hf"), a, wa, tok, "F32")
    write_gguf_model(os.path.join(OUT, "a.gguf"), a, wa, tok, "F32")
    dq8 = write_gguf_model(os.path.join(OUT, "a_q8_0.gguf"), a, wa, tok, "Q8_0")
    dq4 = write_gguf_model(os.path.join(OUT, "a_q4_0.gguf"), a, wa, tok, "Q4_0")
    seqs = make_batch(a, 2, Ls, ns)
    gp = torch.randn(3, a["D"], generator=torch.Generator().manual_seed(3))
    ref = references(a, wa, seqs, gen_prompt, gp, True,
                     extra_logits=[("logits_q8_0", dq8), ("logits_q4_0", dq4)])
    ref.append(("corpus_ids", np.array(corpus, dtype=np.float32)))
    write_safetensors(os.path.join(OUT, "ref_a.safetensors"), ref)
    with open(os.path.join(OUT, "gen_a.txt"), "w") as f:  # for tests/cli_generate.sh
        f.write(" ".join(map(str, gen_prompt)) + "\n")
        f.write(" ".join(str(int(x)) for x in dict(ref)["gen_noprefix"]) + "\n")
        f.write(bytes(b for t in dict(ref)["gen_noprefix"] for b in piece_bytes(tok[0][int(t)])).decode("utf-8", "replace") + "\n")

    # B: tied embeddings, 3 layers, HF layout stored as F16.
    b = make_config("mk-test-b", NL=3, tied=True, theta=500000.0, eps=1e-6)
    wb = round_weights(make_weights(b, 11), f16_round)
    write_hf(os.path.join(OUT, "b_tied_hf"), b, wb, tok, "F16")
    seqs = make_batch(b, 12, Ls, ns)
    ref = references(b, wb, seqs, gen_prompt, gp, False)
    write_safetensors(os.path.join(OUT, "ref_b.safetensors"), ref)

    # C: Llama-3.1 rope scaling, the same values in both layouts: HF stores
    # BF16, GGUF F16 matrices; values rounded to BF16 then F16 are exact in both.
    c = make_config("mk-test-c", NL=2, rope3=dict(factor=8.0, low_freq_factor=1.0,
                                                    high_freq_factor=4.0, orig=32))
    wc = round_weights(make_weights(c, 21), lambda x: f16_round(bf16_round(x)))
    write_hf(os.path.join(OUT, "c_rope3_hf"), c, wc, tok, "BF16")
    write_gguf_model(os.path.join(OUT, "c_rope3.gguf"), c, wc, tok, "F16")
    seqs = make_batch(c, 22, [20, 33, 5], [3, 0, 1])
    ref = references(c, wc, seqs, gen_prompt, gp, False)
    write_safetensors(os.path.join(OUT, "ref_c.safetensors"), ref)

    # Q8_0 top-1 agreement on this model (printed; the C test measures its own).
    g = torch.Generator().manual_seed(5)
    agree8 = agree4 = tot = 0
    maxd8 = maxd4 = 0.0
    with torch.no_grad():
        for k in range(4):
            t = corpus[k * 256:(k + 1) * 256]
            l0 = llama_logits(a, wa, t, None)
            l8 = llama_logits(a, dq8, t, None)
            l4 = llama_logits(a, dq4, t, None)
            agree8 += int((l0.argmax(-1) == l8.argmax(-1)).sum())
            agree4 += int((l0.argmax(-1) == l4.argmax(-1)).sum())
            maxd8 = max(maxd8, float((l0 - l8).abs().max()))
            maxd4 = max(maxd4, float((l0 - l4).abs().max()))
            tot += 256
    print("torch: Q8_0 top-1 agreement %d/%d (max |dlogit| %.3g), Q4_0 %d/%d (%.3g); logit std %.2f"
          % (agree8, tot, maxd8, agree4, tot, maxd4, float(l0.std())))
    total = 0
    for root, _, files in os.walk(OUT):
        for f in files:
            total += os.path.getsize(os.path.join(root, f))
    print("fixtures: %.2f MB in %s" % (total / 1e6, OUT))


if __name__ == "__main__":
    main()
