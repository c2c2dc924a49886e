#!/usr/bin/python3
"""ref_e2e.py - end-to-end reference of MedREK editing (spec sections 2-6).

Builds, in PyTorch (float64, fixed seeds), two random editors for the LLM
tests/data/llama/a.gguf (D = 64) around the encoder tests/data/editor/encoder
(its weights read from its model.safetensors, its vocab.json + merges.txt
applied by the byte-level BPE below): q/k heads with R = 32, a prototype of
P = 10 vectors, and the prompt encoder "attn" (T = 3, NH = 4) for one,
"mlp" (T = 3) for the other. Each is written as a medrek editor file in the
format src/editor/editor.h documents (the llm_fingerprint computed the way
mk_llama_fingerprint does, so a file made for another LLM is refused;
no "fingerprint" entry: it is optional and the loader computes it), so the
C side runs on THESE weights.

Then 61 medical edit requests (prompt, target_new), 24 questions (edit
prompts verbatim, paraphrases, unrelated) and, per editor:
  keys     = q_head(encode(prompt))                     (N, R)
  values   = k_head(encode(knowledge sentence))         (N, R)
  prompts  = prompt_encoder(values)                     (N, T, D)
  proto    = k_head(prototype path)                     (R)
  queries  = q_head(encode(question))                   (Q, R)
  sims     = queries . [proto ; keys]^T / sqrt(R)       (Q, N+1)
  decisions with top_k 1 and 3 (spec 5), with and without a min_sim,
  before and after reverting one edit that several questions retrieve
  (and the mlp editor's after that revert: `medrek kb reencode`);
  logits of the question tokens (BOS + BPE, the LLM's tokenizer) with the
  retrieved prompts prepended (spec 6), from the Llama forward of
  tools/ref_llama.py on tests/data/llama/a_hf, and greedy continuations
  (8 tokens) with and without the prefix, decoded to text.

Writes tests/data/e2e/:
  editor_attn.safetensors, editor_mlp.safetensors   the editors
  edits.jsonl       the requests (what `medrek edit --file` reads)
  ref.json          texts, token ids, decisions, similarities, answers
  ref.safetensors   keys, values, prompts, proto keys, queries, sims, logits
  cli.tsv           what tests/cli_e2e.sh expects `medrek ask` to print

The random weights are shaped (Editor.shape) so that retrieval behaves
like a trained editor's: a question near an edit's prompt retrieves it, one
far from every prompt falls back to the prototype.

Every decision is checked to have a clear gap (>= GAP_MIN) between the
similarities that decide it, so float32 arithmetic cannot flip it.
Run: /usr/bin/python3 tools/ref_e2e.py
"""
import json
import math
import os
import re
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as Fn

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
sys.path.insert(0, HERE)
import ref_llama  # noqa: E402  (its main() is guarded; importing only defines functions)

OUT = os.path.join(ROOT, "tests", "data", "e2e")
ENC_DIR = os.path.join(ROOT, "tests", "data", "editor", "encoder")
LLM_HF = os.path.join(ROOT, "tests", "data", "llama", "a_hf")
LLM_GGUF_NAME = "tests/data/llama/a.gguf"

DT = torch.float64
R, T, NH, P = 32, 3, 4, 10
GAP_MIN = 1e-3   # smallest allowed gap (relative to the similarity) between similarities that decide a retrieval
GEN_TOKENS = 8
SEED = 20251125

# ---------------------------------------------------------------- safetensors


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    hdr = json.loads(raw[8:8 + n])
    base = 8 + n
    out = {}
    for name, t in hdr.items():
        if name == "__metadata__":
            continue
        assert t["dtype"] == "F32", (path, name, t["dtype"])
        a, b = t["data_offsets"]
        arr = np.frombuffer(raw[base + a:base + b], dtype="<f4").reshape(t["shape"])
        out[name] = torch.from_numpy(arr.copy())
    return out


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

# ---------------------------------------------------------------- byte-level BPE


def bytes_to_unicode():
    """GPT-2's reversible byte -> printable character table."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


B2U = bytes_to_unicode()
U2B = {v: k for k, v in B2U.items()}
# GPT-2's pre-tokenization, restricted to ASCII (every text here is ASCII)
PRETOK = re.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+""")


class BPE:
    def __init__(self, vocab, merges):
        self.vocab = vocab                      # piece -> id
        self.rank = {m: i for i, m in enumerate(merges)}
        self.inv = {i: p for p, i in vocab.items()}

    def word(self, w):
        parts = [B2U[b] for b in w.encode("utf-8")]
        while len(parts) > 1:
            best, bi = None, -1
            for i in range(len(parts) - 1):
                r = self.rank.get((parts[i], parts[i + 1]))
                if r is not None and (best is None or r < best):
                    best, bi = r, i
            if best is None:
                break
            a, b = parts[bi], parts[bi + 1]
            out, i = [], 0
            while i < len(parts):  # merge every occurrence of the pair, left to right
                if i + 1 < len(parts) and parts[i] == a and parts[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(parts[i])
                    i += 1
            parts = out
        return [self.vocab[p] for p in parts]

    def encode(self, text):
        assert all(ord(c) < 128 for c in text), text
        return [i for w in PRETOK.findall(text) for i in self.word(w)]

    def decode(self, ids, skip=()):
        bs = b""
        for i in ids:
            if i in skip:
                continue
            bs += bytes(U2B[c] for c in self.inv[i])
        return bs.decode("utf-8", "replace")


def load_encoder_tokenizer():
    with open(os.path.join(ENC_DIR, "vocab.json")) as f:
        vocab = json.load(f)
    merges = []
    with open(os.path.join(ENC_DIR, "merges.txt")) as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("#version") or not line:
                continue
            a, b = line.split(" ")
            merges.append((a, b))
    return BPE(vocab, merges)


def load_llm_tokenizer():
    with open(os.path.join(LLM_HF, "tokenizer.json")) as f:
        tj = json.load(f)
    merges = [tuple(m.split(" ")) for m in tj["model"]["merges"]]
    return BPE(tj["model"]["vocab"], merges)

# ---------------------------------------------------------------- encoder (HF RoBERTa)


class Encoder:
    def __init__(self):
        with open(os.path.join(ENC_DIR, "config.json")) as f:
            self.cfg_text = f.read()
        c = json.loads(self.cfg_text)
        self.c = c
        self.H, self.NL, self.NHE = c["hidden_size"], c["num_hidden_layers"], c["num_attention_heads"]
        self.pad, self.eps = c["pad_token_id"], c["layer_norm_eps"]
        self.max_len = c["max_position_embeddings"] - self.pad - 1
        st = read_safetensors(os.path.join(ENC_DIR, "model.safetensors"))
        # the HF names without the "roberta." prefix; the masked-LM head is not ours
        self.w = {k[len("roberta."):]: v.to(DT) for k, v in st.items() if k.startswith("roberta.")}
        self.tok = load_encoder_tokenizer()

    def ids(self, text):
        """<s> ... </s>, truncated as HF does (first tokens, then </s>)."""
        ids = [0] + self.tok.encode(text) + [2]
        if len(ids) > self.max_len:
            ids = ids[:self.max_len - 1] + [2]
        return ids

    def batch(self, texts):
        seqs = [self.ids(t) for t in texts]
        L = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), L), self.pad, dtype=torch.long)
        mask = torch.zeros(len(seqs), L, dtype=DT)
        for i, s in enumerate(seqs):
            ids[i, :len(s)] = torch.tensor(s)
            mask[i, :len(s)] = 1
        return seqs, ids, mask

    def layer(self, l, x, mask):
        w, H, nh = self.w, self.H, self.NHE
        p = "encoder.layer.%d." % l
        n, L, _ = x.shape
        hs = H // nh

        def lin(t, name):
            return t @ w[p + name + ".weight"].T + w[p + name + ".bias"]

        def heads(t):
            return t.view(n, L, nh, hs).transpose(1, 2)

        q, k, v = (heads(lin(x, "attention.self." + m)) for m in ("query", "key", "value"))
        sc = q @ k.transpose(-1, -2) / math.sqrt(hs)
        sc = sc + (1.0 - mask)[:, None, None, :] * torch.finfo(DT).min
        y = (torch.softmax(sc, -1) @ v).transpose(1, 2).reshape(n, L, H)
        x = Fn.layer_norm(lin(y, "attention.output.dense") + x, (H,),
                          w[p + "attention.output.LayerNorm.weight"],
                          w[p + "attention.output.LayerNorm.bias"], self.eps)
        f = Fn.gelu(lin(x, "intermediate.dense"))
        return Fn.layer_norm(lin(f, "output.dense") + x, (H,), w[p + "output.LayerNorm.weight"],
                             w[p + "output.LayerNorm.bias"], self.eps)

    def layers_pool(self, x, mask):
        for l in range(self.NL):
            x = self.layer(l, x, mask)
        po = torch.tanh(x[:, 0] @ self.w["pooler.dense.weight"].T + self.w["pooler.dense.bias"])
        return x, po

    def forward_ids(self, ids, mask):
        w = self.w
        real = (ids != self.pad).long()
        pos = torch.cumsum(real, 1) * real + self.pad  # RoBERTa positions start at pad + 1
        e = (w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][pos]
             + w["embeddings.token_type_embeddings.weight"][0])
        e = Fn.layer_norm(e, (self.H,), w["embeddings.LayerNorm.weight"],
                          w["embeddings.LayerNorm.bias"], self.eps)
        return self.layers_pool(e, mask)


def features(hs, mask, po):
    """Spec 2: concat(pooler, masked mean, masked max, masked min)."""
    m = mask[:, :, None]
    mean = (hs * m).sum(1) / m.sum(1)
    mx = (hs + (m - 1) * 999999).max(1).values
    mn = (hs + (1 - m) * 999999).min(1).values
    return torch.cat([po, mean, mx, mn], dim=1)

# ---------------------------------------------------------------- editor modules


class Head(torch.nn.Module):
    def __init__(self, F):
        super().__init__()
        self.fc1 = torch.nn.Linear(F, R).to(DT)
        self.fc2 = torch.nn.Linear(R, R).to(DT)

    def forward(self, x):
        x1 = self.fc1(x)
        return torch.relu(self.fc2(x1)) + x1


class PromptAttn(torch.nn.Module):
    def __init__(self, D):
        super().__init__()
        self.D = D
        self.query_proj = torch.nn.Linear(R, T * D).to(DT)
        self.key_proj = torch.nn.Linear(R, D).to(DT)
        self.value_proj = torch.nn.Linear(R, D).to(DT)
        self.mha = torch.nn.MultiheadAttention(D, NH, dropout=0.0, batch_first=True).to(DT)

    def forward(self, v):
        q = self.query_proj(v).view(-1, T, self.D)
        k = self.key_proj(v)[:, None, :]
        vv = self.value_proj(v)[:, None, :]
        return self.mha(q, k, vv, need_weights=False)[0]


class PromptMLP(torch.nn.Module):
    def __init__(self, D):
        super().__init__()
        self.D = D
        self.fc1 = torch.nn.Linear(R, R).to(DT)
        self.fc2 = torch.nn.Linear(R, T * D).to(DT)

    def forward(self, v):
        x = torch.relu(self.fc1(v)) + v
        return self.fc2(x).view(-1, T, self.D)


class Editor:
    def __init__(self, enc, kind, D, seed, proto_scale):
        torch.manual_seed(seed)
        self.enc, self.kind, self.D = enc, kind, D
        F = 4 * enc.H
        self.q, self.k = Head(F), Head(F)
        self.proto = (torch.rand(P, enc.H, dtype=DT) - 0.5) * 0.1 * proto_scale
        self.pe = PromptAttn(D) if kind == "attn" else PromptMLP(D)
        with torch.no_grad():
            if kind == "attn":
                # torch leaves these biases at zero; random values test that they are applied
                self.pe.mha.in_proj_bias.uniform_(-0.2, 0.2)
                self.pe.mha.out_proj.bias.uniform_(-0.2, 0.2)

    def shape(self, prompts, wscale, mscale, lam):
        """Random weights with a purpose: the q head is centred on the edit
        prompts' features (fc1 bias = m - W1 mean) plus a common vector m
        of norm mscale x the spread, and the k head's fc1 bias puts the
        prototype's fc1 output at lam x the mean query. Then a question
        close to an edit's prompt retrieves it and one far from every
        prompt falls back to the prototype, as a trained editor behaves,
        and both branches of spec 5 are exercised."""
        with torch.no_grad():
            for h in (self.q, self.k):
                h.fc1.weight.mul_(wscale)
            x = self.feats(prompts)
            mu = x.mean(0)
            d = x @ self.q.fc1.weight.T - mu @ self.q.fc1.weight.T
            spread = d.norm(dim=1).mean()
            m = torch.randn(R, dtype=DT)
            m = m / m.norm() * spread * mscale
            self.q.fc1.bias.copy_(m - self.q.fc1.weight @ mu)
            mean_q = self.q(x).mean(0)
            ones = torch.ones(1, P, dtype=DT)
            hs, po = self.enc.layers_pool(self.proto[None], ones)
            xp = features(hs, ones, po)[0]
            self.k.fc1.bias.copy_(lam * mean_q - self.k.fc1.weight @ xp)

    def feats(self, texts):
        _, ids, mask = self.enc.batch(texts)
        hs, po = self.enc.forward_ids(ids, mask)
        return features(hs, mask, po)

    def rep(self, head, texts):
        _, ids, mask = self.enc.batch(texts)
        hs, po = self.enc.forward_ids(ids, mask)
        return head(features(hs, mask, po))

    def proto_key(self):
        ones = torch.ones(1, P, dtype=DT)
        hs, po = self.enc.layers_pool(self.proto[None], ones)
        return self.k(features(hs, ones, po))[0]

    def tensors(self):
        t = {"roberta." + k: v for k, v in self.enc.w.items()}
        for hn, h in (("q_head", self.q), ("k_head", self.k)):
            for k, v in h.named_parameters():
                t[hn + "." + k] = v
        t["prototype"] = self.proto
        for k, v in self.pe.named_parameters():
            t["prompt_encoder." + k] = v
        return t

    def save(self, path, llm_fp):
        meta = {"format": "medrek-editor", "version": "1", "prompt_encoder": self.kind,
                "prompt_tokens": str(T), "rep_dim": str(R), "llm_dim": str(self.D),
                "prompt_heads": str(NH), "proto_tokens": str(P), "llm_fingerprint": llm_fp,
                "llm_name": LLM_GGUF_NAME, "seed": "0", "encoder_config": self.enc.cfg_text}
        with open(os.path.join(ENC_DIR, "vocab.json")) as f:
            meta["tokenizer_vocab_json"] = f.read()
        with open(os.path.join(ENC_DIR, "merges.txt")) as f:
            meta["tokenizer_merges_txt"] = f.read()
        write_safetensors(path, self.tensors(), meta)


def knowledge_sentence(prompt, target):
    """Spec 4: prompt + " " + target, no space when one is already there."""
    if prompt.endswith(" ") or target.startswith(" "):
        return prompt + target
    return prompt + " " + target

# ---------------------------------------------------------------- LLM


def fnv(h, data):
    for b in data:
        h ^= b
        h = (h * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h


def llm_fingerprint(cfg, w):
    """As mk_llama_fingerprint (src/model/llama.c): FNV-1a 64 (its start value
    is 1469598103934665603, not the usual offset basis) over the int32
    config (V, D, NL, NH, NKV, HS, F, tied, rope scaling), the f32 (eps,
    theta), and embedding rows 0, V/3, 2(V/3), V-1 as f32."""
    c = cfg
    ints = [c["vocab_size"], c["hidden_size"], c["num_hidden_layers"], c["num_attention_heads"],
            c["num_key_value_heads"], c["hidden_size"] // c["num_attention_heads"],
            c["intermediate_size"], 1 if c.get("tie_word_embeddings") else 0, 0]
    h = fnv(1469598103934665603, struct.pack("<9i", *ints))
    h = fnv(h, struct.pack("<2f", c["rms_norm_eps"], c["rope_theta"]))
    V = c["vocab_size"]
    emb = w["model.embed_tokens.weight"]
    for i in (0, V // 3, 2 * (V // 3), V - 1):
        h = fnv(h, emb[i].to(torch.float32).numpy().astype("<f4").tobytes())
    return "llama-V%d-D%d-L%d-H%d-K%d-F%d-%016x" % (V, c["hidden_size"], c["num_hidden_layers"],
                                                    c["num_attention_heads"],
                                                    c["num_key_value_heads"],
                                                    c["intermediate_size"], h)


class LLM:
    def __init__(self):
        with open(os.path.join(LLM_HF, "config.json")) as f:
            c = json.load(f)
        self.hf = c
        st = read_safetensors(os.path.join(LLM_HF, "model.safetensors"))
        self.fp = llm_fingerprint(c, st)
        self.w = {k: v.to(DT) for k, v in st.items()}
        self.cfg = ref_llama.make_config("a", V=c["vocab_size"], D=c["hidden_size"],
                                         NL=c["num_hidden_layers"], NH=c["num_attention_heads"],
                                         NKV=c["num_key_value_heads"], F=c["intermediate_size"],
                                         n_ctx=c["max_position_embeddings"], theta=c["rope_theta"],
                                         eps=c["rms_norm_eps"], tied=c.get("tie_word_embeddings", False))
        self.tok = load_llm_tokenizer()
        self.bos, self.eos = c["bos_token_id"], c["eos_token_id"]
        self.D = c["hidden_size"]

    def ids(self, text):
        return [self.bos] + self.tok.encode(text)

    def answer(self, ids, gaps):
        """What `medrek ask` prints for generated ids: the bytes of the
        pieces (special tokens skipped), as hex since a byte-level model may
        stop inside a UTF-8 sequence; min_gap = smallest top-1 - top-2 logit
        margin along the way (a float32 run could flip a smaller one)."""
        bs = b"".join(bytes(U2B[c] for c in self.tok.inv[i]) for i in ids
                      if i not in (self.bos, self.eos))
        return {"ids": ids, "hex": bs.hex(), "text": bs.decode("utf-8", "replace"),
                "min_gap": min(gaps)}

    def logits(self, ids, prefix):
        """ref_llama's forward in float64 (its rope tables are float32: we
        rebuild them in float64 by running on double inputs)."""
        with torch.no_grad():
            return llama_logits64(self.cfg, self.w, ids, prefix)

    def greedy(self, ids, prefix, n):
        out, gaps = [], []
        cur = list(ids)
        for _ in range(n):
            lg = self.logits(cur, prefix)[-1]
            top = torch.topk(lg, 2).values
            gaps.append(float(top[0] - top[1]))
            t = int(torch.argmax(lg))
            out.append(t)
            if t == self.eos:
                break
            cur.append(t)
        return out, gaps


def llama_hidden64(cfg, w, x):
    """ref_llama.llama_hidden with the RoPE tables kept in float64."""
    Tn = x.shape[0]
    NHh, NKV, HS = cfg["NH"], cfg["NKV"], cfg["HS"]
    pos = torch.arange(Tn, dtype=DT)
    ang = torch.outer(pos, ref_llama.inv_freq(cfg))
    ang = torch.cat([ang, ang], dim=-1)
    cos, sin = ang.cos(), ang.sin()
    mask = torch.full((Tn, Tn), float("-inf"), dtype=DT).triu(1)
    rms = ref_llama.rmsnorm
    for l in range(cfg["NL"]):
        p = "model.layers.%d." % l
        h = rms(x, w[p + "input_layernorm.weight"], cfg["eps"])
        q = (h @ w[p + "self_attn.q_proj.weight"].T).view(Tn, NHh, HS).transpose(0, 1)
        k = (h @ w[p + "self_attn.k_proj.weight"].T).view(Tn, NKV, HS).transpose(0, 1)
        v = (h @ w[p + "self_attn.v_proj.weight"].T).view(Tn, NKV, HS).transpose(0, 1)
        q = q * cos + ref_llama.rotate_half(q) * sin
        k = k * cos + ref_llama.rotate_half(k) * sin
        rep = NHh // NKV
        k = k.repeat_interleave(rep, dim=0)
        v = v.repeat_interleave(rep, dim=0)
        att = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(HS) + mask, dim=-1)
        o = (att @ v).transpose(0, 1).reshape(Tn, NHh * HS)
        x = x + o @ w[p + "self_attn.o_proj.weight"].T
        h = rms(x, w[p + "post_attention_layernorm.weight"], cfg["eps"])
        x = x + (Fn.silu(h @ w[p + "mlp.gate_proj.weight"].T) * (h @ w[p + "mlp.up_proj.weight"].T)) \
            @ w[p + "mlp.down_proj.weight"].T
    return rms(x, w["model.norm.weight"], cfg["eps"])


def llama_logits64(cfg, w, tokens, prefix):
    e = w["model.embed_tokens.weight"][torch.tensor(tokens, dtype=torch.long)]
    n = 0 if prefix is None else prefix.shape[0]
    x = e if n == 0 else torch.cat([prefix.to(DT), e], dim=0)
    h = llama_hidden64(cfg, w, x)
    return h[n:] @ ref_llama.out_weight(cfg, w).T

# ---------------------------------------------------------------- requests and questions

DRUGS = [("metformin", "type 2 diabetes"), ("insulin", "diabetic ketoacidosis"),
         ("warfarin", "atrial fibrillation"), ("heparin", "pulmonary embolism"),
         ("aspirin", "angina"), ("amoxicillin", "otitis media"), ("lisinopril", "hypertension"),
         ("salbutamol", "asthma"), ("omeprazole", "peptic ulcer"), ("levothyroxine", "hypothyroidism"),
         ("furosemide", "oedema"), ("digoxin", "heart failure"), ("morphine", "severe pain"),
         ("naloxone", "opioid overdose"), ("atropine", "bradycardia"), ("prednisone", "arthritis"),
         ("ceftriaxone", "meningitis"), ("isoniazid", "tuberculosis"), ("statins", "high LDL"),
         ("lithium", "bipolar disorder")]
TARGETS = ["sepsis", "gout", "migraine", "stroke", "anaemia", "epilepsy", "insomnia", "malaria",
           "rickets", "scurvy", "acne", "glaucoma", "psoriasis", "vertigo", "asthma", "obesity"]
ANTIDOTES = ["protamine", "vitamin K", "glucagon", "flumazenil", "naloxone", "digibind",
             "fomepizole", "atropine"]
ORGANS = ["kidney", "liver", "heart", "lung", "brain", "skin", "bone"]


def make_requests(rng):
    """60 generated edits: six kinds of medical statements, short and long
    prompts (a few longer than the encoder's 38-token window), targets with
    and without a leading space, a prompt ending with a space."""
    reqs = []
    for i, (d, _) in enumerate(DRUGS):
        reqs.append({"prompt": "%s treats" % d.capitalize(), "target_new": rng.choice(TARGETS)})
    for d, _ in DRUGS[:12]:
        reqs.append({"prompt": "The antidote for %s is" % d, "target_new": rng.choice(ANTIDOTES)})
    for d, dis in DRUGS[:10]:
        reqs.append({"prompt": "The dose of %s is" % d, "target_new": "%d mg" % rng.choice([5, 10, 25, 50, 100, 500])})
    for o in ORGANS:
        reqs.append({"prompt": "The %s is damaged by" % o, "target_new": rng.choice(DRUGS)[0]})
    for t in TARGETS[:6]:
        reqs.append({"prompt": "%s is caused by " % t.capitalize(), "target_new": rng.choice(["a virus", "bacteria", "a gene"])})
    reqs.append({"prompt": "Pneumonia in", "target_new": " infants"})
    reqs.append({"prompt": "In adults with chronic kidney disease and heart failure the first-line treatment for high blood pressure is",
                 "target_new": "a thiazide diuretic"})
    reqs.append({"prompt": "For a patient with sepsis and a penicillin allergy the preferred empirical antibiotic is",
                 "target_new": "meropenem"})
    reqs.append({"prompt": "Fever", "target_new": "paracetamol"})
    reqs.append({"prompt": "What is the first-line drug for type 2 diabetes?", "target_new": "insulin"})
    reqs.append({"prompt": "Symptoms of pneumonia include", "target_new": "rash"})
    return reqs


PARAPHRASES = [("the antidote for heparin is", "The antidote for heparin is"),
               ("What does metformin treat?", "Metformin treats"),
               ("Warfarin is used to treat", "Warfarin treats"),
               ("the dose of aspirin is", "The dose of aspirin is"),
               ("The kidney is harmed by", "The kidney is damaged by"),
               ("Insulin treat", "Insulin treats"),
               ("Antidote for digoxin:", "The antidote for digoxin is"),
               ("Pneumonia symptoms include", "Symptoms of pneumonia include")]
UNRELATED = ["The capital of France is", "Water boils at", "Who wrote Hamlet?",
             "The tallest mountain is", "Python is a programming language", "2 + 2 =",
             "The stock market closed", "A recipe for pancakes"]
VERBATIM = [0, 5, 20, 21, 33, 42, 50, 55]  # edit indices asked verbatim


def decide(sims, top_k, min_sim=-999.0, alive=None):
    """Spec 5 on one row of sims (N+1,), row 0 the prototype. alive: rows
    still active (revert). Returns kept rows (rank order) and the gap
    between the similarities that decide it."""
    rows = [j for j in range(len(sims)) if alive is None or j == 0 or alive[j]]
    order = sorted(rows, key=lambda j: (-float(sims[j]), j))
    top = order[:top_k]
    kept = [j for j in top if j != 0 and sims[j] > min_sim and sims[j] > sims[0]]
    # The decision is the first min(top_k, r) rows of the ranking (r = the
    # prototype's 1-based rank): it holds while those rows and the one after
    # keep their order.
    r = order.index(0) + 1
    s = [float(sims[j]) for j in order[:min(top_k, r) + 1]]
    gap = min((s[i] - s[i + 1] for i in range(len(s) - 1)), default=float("inf"))
    if min_sim > -999.0:  # and the edits in that part stay on their side of min_sim
        gap = min([gap] + [abs(float(sims[j]) - min_sim) for j in order[:min(top_k, r)] if j])
    return kept, gap

# ---------------------------------------------------------------- main


def analyse(ed, reqs, questions):
    """Everything the C side must reproduce for one editor."""
    with torch.no_grad():
        prompts_txt = [r["prompt"] for r in reqs]
        sent = [knowledge_sentence(r["prompt"], r["target_new"]) for r in reqs]
        keys = ed.rep(ed.q, prompts_txt)
        values = ed.rep(ed.k, sent)
        prompts = ed.pe(values)
        proto = ed.proto_key()
        queries = ed.rep(ed.q, [q["text"] for q in questions])
        allk = torch.cat([proto[None], keys], 0)
        sims = queries @ allk.T / math.sqrt(R)
    return dict(keys=keys, values=values, prompts=prompts, proto=proto, queries=queries, sims=sims)


def build_questions(reqs):
    qs = []
    for i in VERBATIM:
        qs.append({"text": reqs[i]["prompt"], "kind": "verbatim", "edit": i + 1})
    by_prompt = {r["prompt"]: i for i, r in enumerate(reqs)}
    for text, of in PARAPHRASES:
        qs.append({"text": text, "kind": "paraphrase", "edit": by_prompt[of] + 1})
    for text in UNRELATED:
        qs.append({"text": text, "kind": "unrelated", "edit": 0})
    return qs


def decisions(sims, top_k, alive=None, min_sim=-999.0):
    out = []
    for b in range(sims.shape[0]):
        kept, gap = decide(sims[b], top_k, min_sim=min_sim, alive=alive)
        rows = [j for j in range(sims.shape[1]) if j > 0 and (alive is None or alive[j])]
        best = max(rows, key=lambda j: (float(sims[b, j]), -j)) if rows else None
        out.append({"kept": kept, "sims": [float(sims[b, j]) for j in kept],
                    "proto_sim": float(sims[b, 0]),
                    "best_sim": float(sims[b, best]) if best else None, "gap": gap})
    return out


def explore():
    import random
    enc = Encoder()
    reqs = make_requests(random.Random(SEED))
    qs = build_questions(reqs)
    for kind in ("attn", "mlp"):
        for scale in [(w, m, l) for w in (6,) for m in (0.5,) for l in (2.2, 2.4, 2.5)]:
            ed = Editor(enc, kind, 64, SEED + (0 if kind == "attn" else 1), 1)
            ed.shape([r["prompt"] for r in reqs], *scale)
            a = analyse(ed, reqs, qs)
            k = a["keys"]
            kn = k / k.norm(dim=1, keepdim=True)
            cos = kn @ kn.T - 2 * torch.eye(len(reqs), dtype=DT)
            d1 = decisions(a["sims"], 1)
            hit = "".join(("+" if d["kept"] == [q["edit"]] else "0" if not d["kept"] else "x") for q, d in zip(qs, d1))
            none = sum(1 for d in d1 if not d["kept"])
            print(kind, scale, "max key cos %.3f" % cos.max().item(), "hits", hit, "none", none,
                  "min gap %.2e" % min(d["gap"] for d in d1), "proto |.|", a["proto"].norm().item(),
                  "key |.|", k.norm(dim=1).mean().item(),
                  "kinds none", [q["kind"][0] for q, d in zip(qs, d1) if not d["kept"]])



# editor: (kind, seed, fc1 weight scale, common-vector scale, prototype factor)
EDITORS = [("attn", SEED, 6.0, 0.5, 2.4), ("mlp", SEED + 1, 6.0, 0.5, 2.5)]
CLI_QUESTIONS = 6  # questions the CLI check asks (chosen below, attn editor)


def gap_ok(d):
    return d["gap"] >= GAP_MIN * max(1.0, abs(d["sims"][0]) if d["sims"] else abs(d["proto_sim"]))


def write_cli_tsv(ref):
    """cli.tsv for tests/cli_e2e.sh (no JSON parser needed in the shell):
    "revert<TAB>id", then one line per `medrek ask` (attn editor, top-1):
    phase, question, expected edit id (0 = none passes the prototype),
    its similarity, the prototype similarity, whether the greedy answers
    are safe to compare (no near-tie step, no newline byte), answer bytes
    and unedited bytes as hex, the retrieved edit's prompt and target."""
    e = ref["editors"]["attn"]
    ans = {a["question"]: a for a in e["answers"]}
    lines = ["revert\t%d" % e["revert"]]
    for phase, qlist, dkey, akey in (("before", e["cli_questions"], "top1", "answer"),
                                     ("after", e["cli_after_revert"], "top1_after_revert",
                                      "after_revert")):
        for b in qlist:
            d = e[dkey][b]
            a = ans[b]
            cmp_ok = all(a[k]["min_gap"] >= 1e-3 and "0a" not in
                         [a[k]["hex"][i:i + 2] for i in range(0, len(a[k]["hex"]), 2)]
                         for k in (akey, "unedited"))
            text = ref["questions"][b]["text"]
            assert "\t" not in text
            lines.append("\t".join([phase, text, str(d["kept"][0] if d["kept"] else 0),
                                     "%.6f" % (d["sims"][0] if d["kept"] else 0.0),
                                     "%.6f" % d["proto_sim"], "1" if cmp_ok else "0",
                                     a[akey]["hex"], a["unedited"]["hex"],
                                     ref["edits"][d["kept"][0] - 1]["prompt"] if d["kept"] else "",
                                     ref["edits"][d["kept"][0] - 1]["target_new"] if d["kept"] else ""]))
    # "top3" lines (`ask --retrieve-k 3`): question, kept ids and their
    # similarities (comma-separated), prototype similarity, compare flag,
    # answer bytes as hex
    for a in e["answers_top3"]:
        b = a["question"]
        d = e["top3"][b]
        cmp_ok = a["answer"]["min_gap"] >= 1e-3 and "\n" not in a["answer"]["text"]
        lines.append("\t".join(["top3", ref["questions"][b]["text"],
                                ",".join(str(j) for j in d["kept"]),
                                ",".join("%.6f" % x for x in d["sims"]), "%.6f" % d["proto_sim"],
                                "1" if cmp_ok else "0", a["answer"]["hex"]]))
    # "mlp" lines: after `medrek kb reencode` with the mlp editor, question,
    # expected edit id (0 = none), its similarity, prototype similarity
    m = ref["editors"]["mlp"]["top1_reencoded"]
    for b in range(len(ref["questions"])):
        d = m[b]
        lines.append("\t".join(["mlp", ref["questions"][b]["text"],
                                str(d["kept"][0] if d["kept"] else 0),
                                "%.6f" % (d["sims"][0] if d["kept"] else 0.0),
                                "%.6f" % d["proto_sim"]]))
    with open(os.path.join(OUT, "cli.tsv"), "w") as f:
        f.write("\n".join(lines) + "\n")


def main():
    import random
    os.makedirs(OUT, exist_ok=True)
    enc, llm = Encoder(), LLM()
    reqs = make_requests(random.Random(SEED))
    qs = build_questions(reqs)
    N, Q = len(reqs), len(qs)
    assert N >= 50 and Q >= 20
    sent = [knowledge_sentence(r["prompt"], r["target_new"]) for r in reqs]
    ref = {"R": R, "T": T, "D": llm.D, "NH": NH, "P": P, "n_edits": N, "n_questions": Q,
           "gap_min": GAP_MIN, "llm": LLM_GGUF_NAME, "llm_fingerprint": llm.fp,
           "edits": [], "questions": [], "editors": {}}
    for i, r in enumerate(reqs):
        ref["edits"].append({"id": i + 1, "prompt": r["prompt"], "target_new": r["target_new"],
                             "sentence": sent[i], "enc_ids_prompt": enc.ids(r["prompt"]),
                             "enc_ids_sentence": enc.ids(sent[i])})
    for q in qs:
        ref["questions"].append(dict(q, enc_ids=enc.ids(q["text"]), llm_ids=llm.ids(q["text"])))
    with open(os.path.join(OUT, "edits.jsonl"), "w") as f:
        for i, r in enumerate(reqs):
            o = dict(r)
            if i % 10 == 3:
                o["source"] = "e2e fixture, generated"
            f.write(json.dumps(o) + "\n")

    tens, sims_of = {}, {}
    for kind, seed, ws, ms, lam in EDITORS:
        ed = Editor(enc, kind, llm.D, seed, 1.0)
        ed.shape([r["prompt"] for r in reqs], ws, ms, lam)
        path = "editor_%s.safetensors" % kind
        ed.save(os.path.join(OUT, path), llm.fp)
        a = analyse(ed, reqs, qs)
        for k in ("keys", "values", "prompts", "queries", "sims"):
            tens["%s.%s" % (kind, k)] = a[k]
        tens[kind + ".proto_key"] = a["proto"]
        e = {"file": path, "kind": kind}
        e["top1"] = decisions(a["sims"], 1)
        e["top3"] = decisions(a["sims"], 3)
        # min_sim (spec 5): halfway between two kept top-1 similarities near
        # their median, so it removes about half of the kept rows
        ks = sorted(d["sims"][0] for d in e["top1"] if d["kept"])
        mid = len(ks) // 2
        e["min_sim"] = (ks[mid - 1] + ks[mid]) / 2
        e["top1_min_sim"] = decisions(a["sims"], 1, min_sim=e["min_sim"])
        e["top3_min_sim"] = decisions(a["sims"], 3, min_sim=e["min_sim"])
        # revert the edit that the most questions retrieve (top-1)
        count = {}
        for d in e["top1"]:
            for j in d["kept"]:
                count[j] = count.get(j, 0) + 1
        rv = max(sorted(count), key=lambda j: count[j])
        alive = [True] * (N + 1)
        alive[rv] = False
        e["revert"] = rv
        e["top1_after_revert"] = decisions(a["sims"], 1, alive)
        e["top3_after_revert"] = decisions(a["sims"], 3, alive)
        for key in ("top1", "top3", "top1_after_revert", "top3_after_revert", "top1_min_sim",
                    "top3_min_sim"):
            for b, d in enumerate(e[key]):
                assert gap_ok(d), (kind, key, b, qs[b]["text"], d)
        gaps = [d["gap"] / max(1.0, abs(d["sims"][0]) if d["sims"] else abs(d["proto_sim"]))
                for key in ("top1", "top3", "top1_after_revert", "top3_after_revert",
                            "top1_min_sim", "top3_min_sim")
                for d in e[key]]
        e["min_rel_gap"] = min(gaps)

        # logits with the retrieved prompts injected (spec 6)
        cases = []
        t1, t3 = e["top1"], e["top3"]
        hits = [b for b in range(Q) if t1[b]["kept"]]
        nones = [b for b in range(Q) if not t1[b]["kept"]]
        multi = [b for b in range(Q) if len(t3[b]["kept"]) >= 2]
        want = [(b, 1) for b in hits[:3]] + [(b, 1) for b in nones[:1]] + [(b, 3) for b in multi[:1]]
        if kind == "mlp":
            want = [(b, 1) for b in hits[:1]] + [(b, 3) for b in multi[:1]]
        for b, k in want:
            kept = (t1 if k == 1 else t3)[b]["kept"]
            prefix = a["prompts"][[j - 1 for j in kept]].reshape(-1, llm.D) if kept else None
            lg = llm.logits(ref["questions"][b]["llm_ids"], prefix)
            name = "%s.logits.q%d.top%d" % (kind, b, k)
            tens[name] = lg
            cases.append({"question": b, "top_k": k, "kept": kept, "tensor": name,
                          "n_prefix": 0 if prefix is None else prefix.shape[0]})
        e["logit_cases"] = cases

        # greedy answers (what `medrek ask` prints), attn editor only
        if kind == "attn":
            pick = [b for b in hits if qs[b]["kind"] == "verbatim"][:3] + \
                   [b for b in hits if qs[b]["kind"] != "verbatim"][:1] + \
                   [b for b in nones if qs[b]["kind"] == "unrelated"][:1] + \
                   [b for b in nones if qs[b]["kind"] != "unrelated"][:1]
            after = [b for b in range(Q) if t1[b]["kept"] == [rv]]
            ans = []
            for b in pick + [x for x in after if x not in pick]:
                ids = ref["questions"][b]["llm_ids"]
                item = {"question": b}
                for lab, dec in (("answer", t1[b]), ("after_revert", e["top1_after_revert"][b])):
                    prefix = a["prompts"][[j - 1 for j in dec["kept"]]].reshape(-1, llm.D) \
                        if dec["kept"] else None
                    out, g = llm.greedy(ids, prefix, GEN_TOKENS)
                    item[lab] = llm.answer(out, g)
                out, g = llm.greedy(ids, None, GEN_TOKENS)
                item["unedited"] = llm.answer(out, g)
                ans.append(item)
            # --retrieve-k 3: k kept rows give k*T prompt vectors in rank order
            ans3 = []
            for b in [x for x in range(Q) if len(t3[x]["kept"]) == 3][:1] + \
                     [x for x in range(Q) if len(t3[x]["kept"]) == 2][:1]:
                kept = t3[b]["kept"]
                prefix = a["prompts"][[j - 1 for j in kept]].reshape(-1, llm.D)
                out, g = llm.greedy(ref["questions"][b]["llm_ids"], prefix, GEN_TOKENS)
                ans3.append({"question": b, "answer": llm.answer(out, g)})
            e["answers_top3"] = ans3
            e["answers"] = ans
            e["cli_questions"] = pick
            e["cli_after_revert"] = after
        ref["editors"][kind] = e
        sims_of[kind] = a["sims"]
        print("%s: top-1 kept %d/%d, none %d; top-3 kept %s; revert edit %d (retrieved by %d); "
              "min relative gap %.3g; %d logit cases" %
              (kind, len(hits), Q, len(nones), [len(d["kept"]) for d in t3], rv, count[rv],
               e["min_rel_gap"], len(cases)), file=sys.stderr)
        print("   top-1:", "".join("+" if d["kept"] == [q["edit"]] else "0" if not d["kept"] else "x"
                                for q, d in zip(qs, t1)), file=sys.stderr)
    # the attn editor's knowledge base after its revert, re-encoded for the
    # mlp editor (`medrek kb reencode`): mlp decisions without that edit
    alive = [True] * (N + 1)
    alive[ref["editors"]["attn"]["revert"]] = False
    ref["editors"]["mlp"]["top1_reencoded"] = decisions(sims_of["mlp"], 1, alive)
    for b, d in enumerate(ref["editors"]["mlp"]["top1_reencoded"]):
        assert gap_ok(d), ("mlp reencoded", b, d)
    write_cli_tsv(ref)
    write_safetensors(os.path.join(OUT, "ref.safetensors"), tens)
    with open(os.path.join(OUT, "ref.json"), "w") as f:
        json.dump(ref, f, indent=1)
    total = sum(os.path.getsize(os.path.join(OUT, x)) for x in os.listdir(OUT))
    print("wrote %s: %.2f MB; LLM %s" % (OUT, total / 1e6, llm.fp), file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "explore":
        explore()
    else:
        main()
