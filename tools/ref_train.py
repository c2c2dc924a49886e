#!/usr/bin/python3
"""ref_train.py - PyTorch reference of one MedREK training step (spec 7).

Reuses the torch models of tools/ref_e2e.py (encoder, heads, prompt
encoders, the Llama forward in float64 on tests/data/llama/a_hf) with the
editor WEIGHTS read from tests/data/e2e/editor_{attn,mlp}.safetensors (the
files the C side loads), every trained tensor a float64 leaf with grad.

Two cases, each one step on a batch of B = 4 requests with fixed coin flips
(flip 1: q1 = rephrase, q2 = prompt; 0: q1 = prompt, q2 = rephrase):
  attn   editor_attn, all four requests complete
  mlp    editor_mlp, request 1 without rephrase and request 2 without
         locality probe (the trainer's documented rule: an item without a
         rephrase has q1 = prompt, no L_q2 row and no L_gen sequence; an
         item without a locality probe has no L_q3 row and no L_loc
         sequence)
Non-default lambdas and temperatures are used so that a swapped weight
shows; hinge 1.2, eps 1e-8 as the spec.

Writes tests/data/train/:
  requests.jsonl     8 requests (the C descent test and tests/cli_train.sh
                     use all 8; the reference cases use the first 4, the
                     mlp case with the fields above removed, as ref.json
                     lists them)
  ref.json           settings, flips, token triples, every loss term,
                     counts of kept rows / counted positions, the smallest
                     margin of a hinge decision (so float32 cannot flip it)
  ref.safetensors    <case>.grad.<tensor>   d L / d tensor
                     <case>.after.<tensor>  the tensor after one Adam step
                                            (lr 1e-3, betas 0.9/0.999, eps 1e-8)
                     <case>.keys / .vals / .proto / .prompts / .r1 / .r2 / .r3
Run: /usr/bin/python3 tools/ref_train.py
"""
import json
import math
import os
import sys

import torch
import torch.nn.functional as Fn

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
sys.path.insert(0, HERE)
import ref_e2e as E  # noqa: E402  (main() guarded)
from reflib import (features, knowledge_sentence, read_safetensors, token_triple,  # noqa: E402
                    write_safetensors)

OUT = os.path.join(ROOT, "tests", "data", "train")
DT = torch.float64

H_SCALE, EPS = 1.2, 1e-8
LR, B1, B2, AEPS = 1e-3, 0.9, 0.999, 1e-8

REQUESTS = [
    {"prompt": "Metformin is used to treat", "target_new": "gout",
     "rephrase_prompt": "What condition does metformin treat?",
     "locality_prompt": "The heart pumps", "locality_ground_truth": "blood"},
    {"prompt": "The antidote for heparin is", "target_new": "vitamin K",
     "rephrase_prompt": "Heparin overdose is reversed with",
     "locality_prompt": "Vaccines prevent", "locality_ground_truth": "measles"},
    {"prompt": "Asthma is treated with", "target_new": "insulin",
     "rephrase_prompt": "Asthma is first treated with",
     "locality_prompt": "The kidney filters", "locality_ground_truth": "the blood"},
    {"prompt": "Symptoms of pneumonia include", "target_new": "rash and itching",
     "rephrase_prompt": "Pneumonia presents with",
     "locality_prompt": "Statins lower", "locality_ground_truth": "cholesterol"},
    {"prompt": "Warfarin interacts with", "target_new": "statins",
     "rephrase_prompt": "A drug that interacts with warfarin is",
     "locality_prompt": "The liver metabolises", "locality_ground_truth": "drugs"},
    {"prompt": "Tuberculosis is treated with", "target_new": "aspirin",
     "rephrase_prompt": "The treatment of tuberculosis is",
     "locality_prompt": "The lungs exchange", "locality_ground_truth": "oxygen"},
    {"prompt": "Hypertension is treated with", "target_new": "antibiotics",
     "rephrase_prompt": "High blood pressure is treated with",
     "locality_prompt": "Antibiotics treat", "locality_ground_truth": "bacterial infections"},
    {"prompt": "Migraine is caused by", "target_new": "a virus",
     "rephrase_prompt": "The cause of migraine is",
     "locality_prompt": "Insulin treats", "locality_ground_truth": "diabetes"},
]

# case: editor file, request edits, flips, lambdas (c, r, g, l), t_qk, t_qp
CASES = [
    ("attn", "editor_attn.safetensors", {}, [0, 1, 1, 0], (1.0, 0.5, 2.0, 1.5), 1.0, 0.25),
    ("mlp", "editor_mlp.safetensors", {1: ["rephrase_prompt"], 2: ["locality_prompt",
                                                                 "locality_ground_truth"]},
     [1, 0, 0, 1], (0.7, 1.0, 1.3, 0.8), 1.5, 0.1),
]

# tensors whose gradients and post-Adam values are written (editor-file names)
SELECT = {
    "attn": ["roberta.encoder.layer.0.attention.self.query.weight",
             "roberta.embeddings.word_embeddings.weight", "roberta.pooler.dense.weight",
             "q_head.fc1.weight", "q_head.fc1.bias", "k_head.fc2.weight", "k_head.fc1.weight",
             "prototype", "prompt_encoder.mha.out_proj.weight", "prompt_encoder.value_proj.weight",
             "prompt_encoder.query_proj.weight", "prompt_encoder.mha.in_proj_weight"],
    "mlp": ["roberta.encoder.layer.0.attention.self.query.weight",
            "roberta.encoder.layer.1.output.dense.weight",
            "q_head.fc1.weight", "q_head.fc2.bias", "k_head.fc2.weight", "k_head.fc1.bias",
            "prototype", "prompt_encoder.fc2.weight", "prompt_encoder.fc1.weight"],
}


class Model:
    """The editor's trained tensors as float64 leaves, and its passes."""

    def __init__(self, enc, path, kind, D):
        st = read_safetensors(path)
        self.t = {k: v.to(DT).clone().requires_grad_(True) for k, v in st.items()}
        self.enc, self.kind, self.D = enc, kind, D
        # the encoder reads its weights from enc.w (names without "roberta.")
        enc.w = {k[len("roberta."):]: v for k, v in self.t.items() if k.startswith("roberta.")}
        self.R = self.t["q_head.fc1.weight"].shape[0]
        self.T = E.T

    def head(self, name, x):
        t = self.t
        x1 = x @ t[name + ".fc1.weight"].T + t[name + ".fc1.bias"]
        return torch.relu(x1 @ t[name + ".fc2.weight"].T + t[name + ".fc2.bias"]) + x1

    def rep(self, name, texts):
        _, ids, mask = self.enc.batch(texts)
        hs, po = self.enc.forward_ids(ids, mask)
        return self.head(name, features(hs, mask, po))

    def proto(self):
        ones = torch.ones(1, self.t["prototype"].shape[0], dtype=DT)
        hs, po = self.enc.layers_pool(self.t["prototype"][None], ones)
        return self.head("k_head", features(hs, ones, po))[0]

    def prompts(self, v):
        t, T, D = self.t, self.T, self.D
        p = "prompt_encoder."
        if self.kind == "mlp":
            x = torch.relu(v @ t[p + "fc1.weight"].T + t[p + "fc1.bias"]) + v
            return (x @ t[p + "fc2.weight"].T + t[p + "fc2.bias"]).view(-1, T, D)
        q = (v @ t[p + "query_proj.weight"].T + t[p + "query_proj.bias"]).view(-1, T, D)
        k = (v @ t[p + "key_proj.weight"].T + t[p + "key_proj.bias"])[:, None, :]
        vv = (v @ t[p + "value_proj.weight"].T + t[p + "value_proj.bias"])[:, None, :]
        out, _ = Fn.multi_head_attention_forward(
            q.transpose(0, 1), k.transpose(0, 1), vv.transpose(0, 1), D, E.NH,
            t[p + "mha.in_proj_weight"], t[p + "mha.in_proj_bias"], None, None, False, 0.0,
            t[p + "mha.out_proj.weight"], t[p + "mha.out_proj.bias"], training=False,
            need_weights=False)
        return out.transpose(0, 1)


def second_largest(p):
    return p.topk(2, dim=-1).values[..., 1]


def step(case, enc, llm):
    name, fname, drop, flips, lam, t_qk, t_qp = case
    md = Model(enc, os.path.join(ROOT, "tests", "data", "e2e", fname), name, llm.D)
    reqs = [dict(r) for r in REQUESTS[:4]]
    for i, fields in drop.items():
        for f in fields:
            del reqs[i][f]
    B, R = len(reqs), md.R
    has_rep = [("rephrase_prompt" in r) for r in reqs]
    has_loc = [("locality_prompt" in r) for r in reqs]
    q1 = [r["rephrase_prompt"] if has_rep[i] and flips[i] else r["prompt"] for i, r in enumerate(reqs)]
    q2_idx = [i for i in range(B) if has_rep[i]]
    q2 = [reqs[i]["prompt"] if flips[i] else reqs[i]["rephrase_prompt"] for i in q2_idx]
    loc_idx = [i for i in range(B) if has_loc[i]]
    margins = []

    def s(a, b):
        return a @ b.T / math.sqrt(R)

    r1 = md.rep("q_head", q1)
    r2 = md.rep("q_head", q2)
    keys = md.rep("q_head", [r["prompt"] for r in reqs])
    vals = md.rep("k_head", [knowledge_sentence(r["prompt"], r["target_new"]) for r in reqs])
    proto = md.proto()
    r3 = md.rep("q_head", [reqs[i]["locality_prompt"] for i in loc_idx])

    # L_q1: own key among all keys + prototype
    lg = torch.cat([s(r1, keys), s(r1, proto[None])], 1) * t_qk
    p = torch.softmax(lg, -1)
    L_q1 = (-torch.log(p[torch.arange(B), torch.arange(B)] + EPS)).mean()

    # L_q2: the other query should prefer the prototype over foreign keys
    rows = []
    for a, i in enumerate(q2_idx):
        row = s(r2[a:a + 1], keys)[0].clone()
        row[i] = s(r2[a:a + 1], proto[None])[0, 0]
        rows.append(row)
    L_q2 = torch.zeros((), dtype=DT)
    kept2 = []
    if rows and B >= 2:
        S = torch.stack(rows) * t_qp
        p = torch.softmax(S, -1)
        pii = p[torch.arange(len(q2_idx)), torch.tensor(q2_idx)]
        sec = second_largest(p)
        keep = (pii < H_SCALE * sec).detach()
        if os.environ.get("VERBOSE"):
            print("q2 rows", S.tolist(), "pii", pii.tolist(), "sec", sec.tolist(), file=sys.stderr)
        margins += [abs(float(pii[a] - H_SCALE * sec[a])) / float(sec[a]) for a in range(len(q2_idx))]
        kept2 = [q2_idx[a] for a in range(len(q2_idx)) if keep[a]]
        if keep.any():
            L_q2 = (-torch.log(pii[keep] + EPS)).mean()

    # L_q3: locality queries should prefer the prototype
    L_q3 = torch.zeros((), dtype=DT)
    kept3 = []
    if loc_idx:
        lg = torch.cat([s(r3, keys), s(r3, proto[None])], 1) * t_qp
        p = torch.softmax(lg, -1)
        pp, sec = p[:, B], second_largest(p)
        keep = (pp < H_SCALE * sec).detach()
        if os.environ.get("VERBOSE"):
            print("q3 rows", lg.tolist(), "pp", pp.tolist(), "sec", sec.tolist(), file=sys.stderr)
        margins += [abs(float(pp[a] - H_SCALE * sec[a])) / float(sec[a]) for a in range(len(loc_idx))]
        kept3 = [loc_idx[a] for a in range(len(loc_idx)) if keep[a]]
        if keep.any():
            L_q3 = (-torch.log(pp[keep] + EPS)).mean()

    prompts = md.prompts(vals)                               # (B, T, D)

    def label_loss(triples, which):
        num, cnt, counted = torch.zeros((), dtype=DT), 0, []
        for (x, y, m), i in zip(triples, which):
            lg = E.llama_logits64(llm.cfg, llm.w, x, prompts[i])
            p = torch.softmax(lg, -1)
            py = p[torch.arange(len(y)), torch.tensor(y)]
            sec = second_largest(p)
            keep = [bool(m[t]) and bool(py[t] < H_SCALE * sec[t]) for t in range(len(y))]
            for t in range(len(y)):
                if m[t]:
                    margins.append(abs(float(py[t] - H_SCALE * sec[t])) / float(sec[t]))
            counted.append(keep)
            for t in range(len(y)):
                if keep[t]:
                    num = num - torch.log(py[t] + EPS)
                    cnt += 1
        return (num / cnt if cnt else num), cnt, counted

    rel_tr = [token_triple(llm, r["prompt"], r["target_new"]) for r in reqs]
    gen_idx = q2_idx
    gen_tr = [token_triple(llm, reqs[i]["rephrase_prompt"], reqs[i]["target_new"]) for i in gen_idx]
    loc_tr = [token_triple(llm, reqs[i]["locality_prompt"], reqs[i]["locality_ground_truth"]) for i in loc_idx]
    L_rel, n_rel, c_rel = label_loss(rel_tr, range(B))
    L_gen, n_gen, c_gen = label_loss(gen_tr, gen_idx)

    L_loc, n_loc = torch.zeros((), dtype=DT), 0
    for (x, y, m), i in zip(loc_tr, loc_idx):
        with torch.no_grad():
            pre = torch.softmax(E.llama_logits64(llm.cfg, llm.w, x, None), -1)
        post = torch.log_softmax(E.llama_logits64(llm.cfg, llm.w, x, prompts[i]), -1)
        kl = (pre * (torch.log(pre) - post)).sum(-1)
        mt = torch.tensor(m, dtype=DT)
        L_loc = L_loc + (kl * mt).sum()
        n_loc += sum(m)
    if n_loc:
        L_loc = L_loc / n_loc

    lc, lr_, lgn, ll = lam
    L = lc * (L_q1 + L_q2 + L_q3) + lr_ * L_rel + lgn * L_gen + ll * L_loc
    L.backward()

    params = [v for v in md.t.values()]
    before = {k: v.detach().clone() for k, v in md.t.items()}
    grads = {k: (v.grad.detach().clone() if v.grad is not None else torch.zeros_like(v))
             for k, v in md.t.items()}
    opt = torch.optim.Adam(params, lr=LR, betas=(B1, B2), eps=AEPS, weight_decay=0.0)
    opt.step()
    for k in md.t:  # tensors without any gradient stay (the C Adam step moves them by 0)
        if md.t[k].grad is None:
            assert torch.equal(md.t[k].detach(), before[k])

    tens = {}
    for k in SELECT[name]:
        tens["%s.grad.%s" % (name, k)] = grads[k]
        tens["%s.after.%s" % (name, k)] = md.t[k].detach()
    for k, v in (("keys", keys), ("vals", vals), ("proto", proto), ("prompts", prompts),
                 ("r1", r1), ("r2", r2), ("r3", r3)):
        tens["%s.%s" % (name, k)] = v.detach()
    # gradient norm per module, for the report
    gn = {}
    for k, g in grads.items():
        mod = k.split(".")[0]
        gn[mod] = gn.get(mod, 0.0) + float((g ** 2).sum())
    info = {
        "editor": "tests/data/e2e/" + fname, "kind": name, "B": B, "flips": flips,
        "requests": reqs, "lambda": list(lam), "t_qk": t_qk, "t_qp": t_qp, "hinge": H_SCALE,
        "eps": EPS, "lr": LR, "betas": [B1, B2], "adam_eps": AEPS,
        "q1": q1, "q2": q2, "q2_items": q2_idx, "loc_items": loc_idx, "gen_items": gen_idx,
        "triples": {"rel": rel_tr, "gen": gen_tr, "loc": loc_tr},
        "loss": {"q1": float(L_q1), "q2": float(L_q2), "q3": float(L_q3), "rel": float(L_rel),
                 "gen": float(L_gen), "loc": float(L_loc), "total": float(L)},
        "kept_q2": kept2, "kept_q3": kept3, "count_rel": n_rel, "count_gen": n_gen,
        "count_loc": n_loc, "counted_rel": c_rel, "counted_gen": c_gen,
        "min_hinge_margin": min(margins), "grad_norm": {k: math.sqrt(v) for k, v in gn.items()},
        "selected": SELECT[name],
    }
    return info, tens


def main():
    os.makedirs(OUT, exist_ok=True)
    enc, llm = E.Encoder(), E.LLM()
    ref = {"llm": E.LLM_GGUF_NAME, "cases": {}}
    tens = {}
    for case in CASES:
        info, t = step(case, enc, llm)
        ref["cases"][case[0]] = info
        tens.update(t)
        lo = info["loss"]
        print("%s: L %.6f (q1 %.4f q2 %.4f q3 %.4f rel %.4f gen %.4f loc %.4f); kept q2 %s q3 %s; "
              "counted rel %d gen %d, loc positions %d; min hinge margin %.3g" %
              (case[0], lo["total"], lo["q1"], lo["q2"], lo["q3"], lo["rel"], lo["gen"], lo["loc"],
               info["kept_q2"], info["kept_q3"], info["count_rel"], info["count_gen"],
               info["count_loc"], info["min_hinge_margin"]), file=sys.stderr)
        print("   counted rel", info["counted_rel"], "gen", info["counted_gen"], file=sys.stderr)
        print("   grad norms", {k: "%.3g" % v for k, v in info["grad_norm"].items()}, file=sys.stderr)
        assert info["min_hinge_margin"] > 1e-3, "a hinge decision is too close to call in float32"
    with open(os.path.join(OUT, "requests.jsonl"), "w") as f:
        for r in REQUESTS:
            f.write(json.dumps(r) + "\n")
    write_safetensors(os.path.join(OUT, "ref.safetensors"), tens)
    with open(os.path.join(OUT, "ref.json"), "w") as f:
        json.dump(ref, f, indent=1)
    total = sum(os.path.getsize(os.path.join(OUT, x)) for x in os.listdir(OUT))
    print("wrote %s: %.2f MB" % (OUT, total / 1e6), file=sys.stderr)


if __name__ == "__main__":
    main()
