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
import struct
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
sys.path.insert(0, HERE)
from reflib import (BPE, Head, PromptAttn, PromptMLP, features,  # noqa: E402
                    knowledge_sentence, llama_logits, make_config, pad_batch, read_safetensors,
                    roberta_embed, roberta_layers_pool, roberta_positions, write_safetensors)

OUT = os.path.join(ROOT, "tests", "data", "e2e")
ENC_DIR = os.path.join(ROOT, "tests", "data", "editor", "encoder")
LLM_HF = os.path.join(ROOT, "tests", "data", "llama", "a_hf")
LLM_GGUF_NAME = "tests/data/llama/a.gguf"

DT = torch.float64
R, T, NH, P = 32, 3, 4, 10
GAP_MIN = 1e-3   # smallest allowed gap (relative to the similarity) between similarities that decide a retrieval
GEN_TOKENS = 8
SEED = 20251125

# ---------------------------------------------------------------- tokenizers (reflib.BPE)


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
        ids, mask = pad_batch(seqs, self.pad, DT)
        return seqs, ids, mask

    def layers_pool(self, x, mask):
        return roberta_layers_pool(self.w, x, mask, self.NL, self.H, self.NHE, self.eps)

    def forward_ids(self, ids, mask):
        e = roberta_embed(self.w, ids, roberta_positions(ids, self.pad), self.H, self.eps)
        return self.layers_pool(e, mask)


# ---------------------------------------------------------------- editor (reflib's modules)


class Editor:
    def __init__(self, enc, kind, D, seed, proto_scale):
        torch.manual_seed(seed)
        self.enc, self.kind, self.D = enc, kind, D
        F = 4 * enc.H
        self.q, self.k = Head(F, R), Head(F, R)
        self.proto = (torch.rand(P, enc.H, dtype=DT) - 0.5) * 0.1 * proto_scale
        self.pe = PromptAttn(R, T, D, NH) if kind == "attn" else PromptMLP(R, T, D)
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
        self.cfg = make_config("a", V=c["vocab_size"], D=c["hidden_size"],
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
        bs = self.tok.decode_bytes(ids, skip=(self.bos, self.eos))
        return {"ids": ids, "hex": bs.hex(), "text": bs.decode("utf-8", "replace"),
                "min_gap": min(gaps)}

    def logits(self, ids, prefix):
        """The Llama forward of reflib (ref_llama's) run in float64, its RoPE
        tables included (ref_llama keeps them in float32)."""
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


def llama_logits64(cfg, w, tokens, prefix):
    """The Llama forward of reflib (ref_llama's) in float64, RoPE tables included."""
    return llama_logits(cfg, w, tokens, prefix, DT)

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
