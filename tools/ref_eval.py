#!/usr/bin/python3
"""ref_eval.py - reference of the evaluation metrics (spec section 8).

On the fixtures of tools/ref_e2e.py (the LLM tests/data/llama/a_hf = the
HF twin of a.gguf, the editor tests/data/e2e/editor_attn.safetensors, read
from the file), for the items written to tests/data/eval/items.json
(MedVersa schema: prompt, target_new, rephrase_prompt, locality_prompt,
locality_ground_truth), computes in float64 with the model code of
ref_e2e.py / ref_llama.py:

  token triples ("pt2xym", spec 7): target gets a leading space if it has
  none; ids = [BOS] + tok(prompt + target); input = ids[:-1],
  label = ids[1:], mask on positions >= len([BOS] + tok(prompt)) - 1;
  efficacy / generality: masked positions where argmax == label, after the
  chunk's edits (keys = q_head(prompt), prompts = prompt_encoder(k_head(
  knowledge sentence))), retrieval top-1 with the probe's prompt;
  locality: masked positions where argmax == the unedited model's argmax;

in three modes: batch N=4 with an explicit order (ORDER, so the C RNG need
not match), single (dataset order), sequential with one segment of all
items (dataset order, one encoding per edit). Every retrieval decision and
every argmax that decides a count is checked to have a clear gap
(GAP_SIM, GAP_LOGIT) so float32 arithmetic cannot flip it; an item that
fails is not used (the script stops and says which).

Fluency: the word splitter of src/eval/metrics.h (re-implemented here) and
the n-gram entropies H_2, H_3 and score mean(2/3 H_2, 4/3 H_3) on fixed
texts (sampling is C-RNG dependent: tests/test_eval.c checks it by seed).

Writes tests/data/eval/items.json and tests/data/eval/ref.json.
Run: /usr/bin/python3 tools/ref_eval.py
"""
import json
import math
import os
import re
import sys
from collections import Counter

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
sys.path.insert(0, HERE)
import ref_e2e as E  # noqa: E402  (main() guarded)
from reflib import knowledge_sentence, read_safetensors, token_triple  # noqa: E402

OUT = os.path.join(ROOT, "tests", "data", "eval")
EDITOR = os.path.join(ROOT, "tests", "data", "e2e", "editor_attn.safetensors")
DT = torch.float64
GAP_SIM = 1e-3     # relative gap between similarities that decide a retrieval
GAP_LOGIT = 1e-3   # gap between top-1 and top-2 logits at a scored position
ORDER = [5, 2, 7, 0, 3, 6, 1, 4]  # the batch-mode order (a permutation of the items)
BATCH = 4

# (prompt, target_new or None = the unedited greedy continuation (3 tokens),
#  rephrase, locality prompt, locality ground truth)
ITEMS = [
    ("Metformin treats", "stroke", "What does metformin treat?", "The capital of France is", "Paris"),
    ("Warfarin treats", None, "Warfarin is used to treat", "Water boils at", "100 degrees"),
    ("The antidote for heparin is", "glucagon", "the antidote for heparin is", "Insulin treats", "diabetes"),
    ("The kidney is damaged by", None, "The kidney is harmed by", "Who wrote Hamlet?", "Shakespeare"),
    ("Insulin treats", "psoriasis", "Insulin treat", "Metformin treats", "type 2 diabetes"),
    ("The dose of aspirin is", "25 mg", "the dose of aspirin is", "The tallest mountain is", "Everest"),
    ("Symptoms of pneumonia include", None, "Pneumonia symptoms include", "The antidote for heparin is", "protamine"),
    ("The antidote for digoxin is", "naloxone", "Antidote for digoxin:", "A recipe for pancakes", "flour and eggs"),
]


def load_editor(enc):
    st = read_safetensors(EDITOR)
    enc.w = {k[len("roberta."):]: v.to(DT) for k, v in st.items() if k.startswith("roberta.")}
    ed = E.Editor(enc, "attn", 64, 0, 1.0)
    with torch.no_grad():
        for hn, h in (("q_head", ed.q), ("k_head", ed.k)):
            for k, p in h.named_parameters():
                p.copy_(st[hn + "." + k].to(DT))
        ed.proto = st["prototype"].to(DT)
        for k, p in ed.pe.named_parameters():
            p.copy_(st["prompt_encoder." + k].to(DT))
    return ed


def argmaxes(lg, mask, what):
    """argmax at the masked positions, checking each has a clear top-2 gap."""
    out = []
    for i, m in enumerate(mask):
        if not m:
            continue
        top = torch.topk(lg[i], 2)
        gap = float(top.values[0] - top.values[1])
        assert gap >= GAP_LOGIT, ("near tie", what, i, gap)
        out.append(int(top.indices[0]))
    return out


class Ctx:
    def __init__(self):
        self.enc, self.llm = E.Encoder(), E.LLM()
        self.ed = load_editor(self.enc)
        with torch.no_grad():
            self.proto = self.ed.proto_key()
        self.min_gap_sim, self.min_gap_logit = float("inf"), float("inf")

    def rep(self, head, texts):
        with torch.no_grad():
            return self.ed.rep(head, texts)

    def encode(self, items, one_by_one):
        """keys (n, R), prompts (n, T, D) of the items' edits."""
        prompts = [it["prompt"] for it in items]
        sent = [knowledge_sentence(it["prompt"], it["target_new"]) for it in items]
        with torch.no_grad():
            if one_by_one:
                keys = torch.cat([self.ed.rep(self.ed.q, [p]) for p in prompts], 0)
                vals = torch.cat([self.ed.rep(self.ed.k, [s]) for s in sent], 0)
            else:
                keys, vals = self.ed.rep(self.ed.q, prompts), self.ed.rep(self.ed.k, sent)
            return keys, self.ed.pe(vals)

    def retrieve(self, keys, text):
        """top-1 kept row (1-based into keys) or 0, checking the gap."""
        q = self.rep(self.ed.q, [text])[0]
        allk = torch.cat([self.proto[None], keys], 0)
        sims = allk @ q / math.sqrt(E.R)
        kept, gap = E.decide(sims, 1)
        rel = gap / max(1.0, abs(float(sims[kept[0]])) if kept else abs(float(sims[0])))
        self.min_gap_sim = min(self.min_gap_sim, rel)
        assert rel >= GAP_SIM, ("retrieval near tie", text, gap)
        return kept[0] if kept else 0

    def logits(self, inp, prefix):
        return self.llm.logits(inp, prefix)

    def gap_of(self, lg, mask):
        for i, m in enumerate(mask):
            if m:
                top = torch.topk(lg[i], 2).values
                self.min_gap_logit = min(self.min_gap_logit, float(top[0] - top[1]))


def measure(c, items, idx, keys, prompts, ypre):
    """Scores of items idx (dataset indices) against rows keys/prompts (rows
    in the order of `rows_items`)."""
    out = {}
    for i in idx:
        it = items[i]
        sc = {}
        for name, text, target in (("eff", it["prompt"], it["target_new"]),
                                   ("gen", it["rephrase_prompt"], it["target_new"])):
            row = c.retrieve(keys, text)
            prefix = prompts[row - 1] if row else None
            inp, lab, mask = token_triple(c.llm, text, target)
            lg = c.logits(inp, prefix)
            c.gap_of(lg, mask)
            am = argmaxes(lg, mask, (i, name))
            labs = [lab[k] for k, m in enumerate(mask) if m]
            sc[name] = [sum(1 for a, b in zip(am, labs) if a == b), len(labs)]
            sc[name + "_row"] = row
        row = c.retrieve(keys, it["locality_prompt"])
        inp, lab, mask = token_triple(c.llm, it["locality_prompt"], it["locality_ground_truth"])
        if row:
            lg = c.logits(inp, prompts[row - 1])
            am = argmaxes(lg, mask, (i, "loc"))
            sc["loc"] = [sum(1 for a, b in zip(am, ypre[i]) if a == b), len(am)]
        else:
            sc["loc"] = [len(ypre[i]), len(ypre[i])]
        sc["loc_row"] = row
        out[i] = sc
    return out


def run_mode(c, items, ypre, order, n, one_by_one):
    scores, rows_item = {}, {}
    for ch, i0 in enumerate(range(0, len(order), n)):
        idx = order[i0:i0 + n]
        keys, prompts = c.encode([items[i] for i in idx], one_by_one)
        s = measure(c, items, idx, keys, prompts, ypre)
        for i in idx:
            sc = s[i]
            # rows -> dataset index of the retrieved edit (-1 = none)
            for k in ("eff", "gen", "loc"):
                r = sc.pop(k + "_row")
                sc[k + "_ret"] = idx[r - 1] if r else -1
            sc["chunk"] = ch
            scores[i] = sc
    per = [scores[i] for i in range(len(items))]
    frac = lambda p: p[0] / p[1]  # noqa: E731
    eff = 100 * sum(frac(s["eff"]) for s in per) / len(per)
    gen = 100 * sum(frac(s["gen"]) for s in per) / len(per)
    loc = 100 * sum(frac(s["loc"]) for s in per) / len(per)
    return {"order": order, "n": n, "items": per, "eff": eff, "gen": gen, "loc": loc,
            "avg": ((eff + gen) / 2 + loc) / 2}

# ---------------------------------------------------------------- fluency


WORD = r"[A-Za-z0-9_\x80-\xff]"
WORD_RE = re.compile(rb"(?:[A-Za-z0-9_\x80-\xff](?:[A-Za-z0-9_\x80-\xff]|['\-](?=[A-Za-z0-9_\x80-\xff]))*)|[^ \t\n\r\x0b\x0c]")


def words(b):
    """src/eval/metrics.h's splitter on bytes."""
    return WORD_RE.findall(b)


def entropy(ws, n):
    if len(ws) < n:
        return 0.0
    grams = Counter(tuple(ws[i:i + n]) for i in range(len(ws) - n + 1))
    tot = sum(grams.values())
    return -sum(c / tot * math.log2(c / tot) for c in grams.values())


FLUENCY_TEXTS = [
    "The antidote for heparin is protamine sulfate, given slowly.",
    "the the the the the the",
    "Don't stop: beta-blockers (e.g. atenolol) lower the heart-rate -- don't they?",
    "Metformin treats type 2 diabetes. Metformin treats type 2 diabetes. Metformin treats it.",
    "caf\u00e9 na\u00efve \u00fcber-cool \u4e2d\u6587 text\twith\ttabs\nand\nnewlines ' - x' -y z- 'q",
    "one two",
    "",
    "a b c d e f g h i j k l m n o p q r s t u v w x y z a b c d e f g h",
    "...!!!???,,,;;;",
]


def fluency_cases():
    out = []
    for t in FLUENCY_TEXTS:
        b = t.encode("utf-8")
        ws = words(b)
        h2, h3 = entropy(ws, 2), entropy(ws, 3)
        out.append({"text": t, "words": [w.decode("utf-8", "surrogateescape") for w in ws],
                    "n_words": len(ws), "h2": h2, "h3": h3, "score": (2 / 3 * h2 + 4 / 3 * h3) / 2})
    return out


def main():
    os.makedirs(OUT, exist_ok=True)
    c = Ctx()
    items = []
    for p, t, r, lp, lg in ITEMS:
        if t is None:  # the unedited model's own continuation: efficacy counts are not all 0
            out, _ = c.llm.greedy(c.llm.ids(p), None, 3)
            t = c.llm.answer(out, [0.0])["text"]
            assert t.strip() and all(32 <= ord(ch) < 127 for ch in t), t
        items.append({"prompt": p, "target_new": t, "rephrase_prompt": r, "locality_prompt": lp,
                      "locality_ground_truth": lg})
    # unedited argmax on the locality probes, before any edit
    ypre = []
    for i, it in enumerate(items):
        inp, lab, mask = token_triple(c.llm, it["locality_prompt"], it["locality_ground_truth"])
        lg = c.logits(inp, None)
        c.gap_of(lg, mask)
        ypre.append(argmaxes(lg, mask, (i, "ypre")))
    n = len(items)
    assert sorted(ORDER) == list(range(n))
    ref = {"items_file": "tests/data/eval/items.json", "gap_sim": GAP_SIM, "gap_logit": GAP_LOGIT,
           "modes": {
               "batch": run_mode(c, items, ypre, ORDER, BATCH, False),
               "single": run_mode(c, items, ypre, list(range(n)), 1, True),
               "sequential": run_mode(c, items, ypre, list(range(n)), n, True)},
           "fluency": fluency_cases()}
    ref["min_gap_sim"], ref["min_gap_logit"] = c.min_gap_sim, c.min_gap_logit
    with open(os.path.join(OUT, "items.json"), "w") as f:
        json.dump(items, f, indent=1)
    with open(os.path.join(OUT, "ref.json"), "w") as f:
        json.dump(ref, f, indent=1)
    for m, r in ref["modes"].items():
        print("%-10s eff %6.2f gen %6.2f loc %6.2f avg %6.2f  " % (m, r["eff"], r["gen"], r["loc"], r["avg"]) +
              " ".join("%d/%d,%d/%d,%d/%d[%d %d %d]" % tuple(s["eff"] + s["gen"] + s["loc"] +
                                                           [s["eff_ret"], s["gen_ret"], s["loc_ret"]])
                       for s in r["items"]), file=sys.stderr)
    print("min relative similarity gap %.3g, min logit gap (all scored positions) %.3g" %
          (c.min_gap_sim, c.min_gap_logit), file=sys.stderr)


if __name__ == "__main__":
    main()
