"""Summarise bench/yardstick/run.sh's results.txt as Markdown tables:
medians per (part, tool, threads), the ratio medrek / tool in throughput
terms (> 1: medrek faster), the load average range of the rows, and the
agreement of the greedy ids (medrek vs llama.cpp)."""
import json, statistics, sys
from collections import defaultdict

rows = []
for ln in open(sys.argv[1]):
    if ln.startswith("ROW "):
        _, label, th, load, js = ln.split(" ", 4)
        d = json.loads(js)
        d.update(label=label, th=int(th), load=float(load))
        rows.append(d)
    elif ln.startswith("#") or ln.startswith("FAILED"):
        print(ln.rstrip())

groups = defaultdict(list)
for d in rows:
    groups[(d["label"], d["th"], d["tool"])].append(d)


def med(ds, k):
    return statistics.median(d[k] for d in ds)


def loads(ds):
    v = [d["load"] for d in ds]
    return f"{min(v):.1f}-{max(v):.1f}"


print("\n### Inference: llama.cpp vs medrek on the same GGUF file\n")
print("| model | threads | metric | medrek | llama.cpp | medrek / llama.cpp | runs | load |")
print("|---|---|---|---|---|---|---|---|")
for label in ("gen-f32", "gen-q8_0"):
    for th in (2, 1):
        a, b = groups.get((label, th, "medrek")), groups.get((label, th, "llama.cpp"))
        if not a or not b:
            continue
        for k, name in (("prefill_tps", f"prefill {a[0]['n_prompt']} tok, tok/s"),
                        ("decode_tps", f"decode {a[0]['n_gen']} tok, tok/s")):
            ma, mb = med(a, k), med(b, k)
            mname = a[0]["model"].rsplit("/", 1)[-1].split("_")[0][1:].upper()
            print(f"| {mname} {label[4:].upper()} | {th} | {name} | {ma:.1f} | {mb:.1f} | {ma / mb:.2f} | "
                  f"{len(a)}+{len(b)} | {loads(a + b)} |")

print("\n### Agreement of greedy continuations (same prompt ids)\n")
print("| model | threads | medrek vs llama.cpp: equal leading ids (of n_gen) | medrek's top-1 minus top-2 logit at the first difference (median over steps) | top-5 at the first position (id: medrek p / llama.cpp p) |")
print("|---|---|---|---|---|")
for label in ("gen-f32", "gen-q8_0"):
    for th in (2, 1):
        a, b = groups.get((label, th, "medrek")), groups.get((label, th, "llama.cpp"))
        if not a or not b:
            continue
        ia, ib = a[0]["ids"], b[0]["ids"]
        lead = next((i for i, (x, y) in enumerate(zip(ia, ib)) if x != y), min(len(ia), len(ib)))
        same = sum(x == y for x, y in zip(ia, ib))
        pb = {int(t): p for t, p in b[0]["top5"]}
        tops = ", ".join(f"{t}: {p:.4g} / {pb.get(t, float('nan')):.4g}" for t, p in a[0]["top5"])
        stable_a = all(d["ids"] == ia for d in a)
        stable_b = all(d["ids"] == ib for d in b)
        mg = a[0].get("margins")
        gap = "-" if not mg else (f"{mg[lead]:.3g}" if lead < len(mg) else "none") + \
            f" ({statistics.median(mg):.3g})"
        print(f"| {label[4:].upper()} | {th} | {lead} (same at {same} positions; repeatable: medrek "
              f"{stable_a}, llama.cpp {stable_b}) | {gap} | {tops} |")

for part, title, keys in (
        ("prefix", "Forward + backward to the prefix: PyTorch vs medrek (125M F32, 4 x (3 + 128))",
         ("forward_s", "backward_s")),
        ("edit", "Edit encoding: PyTorch vs medrek (RoBERTa-base size, 100 + 100 sentences, R 4096)",
         ("keys_s", "values_s", "total_s"))):
    a, b = groups.get((part, 2, "medrek")), groups.get((part, 2, "torch"))
    if not a or not b:
        continue
    print(f"\n### {title}\n")
    print("| step | medrek s | PyTorch s | PyTorch time / medrek time | runs | load |")
    print("|---|---|---|---|---|---|")
    for k in keys:
        ma, mb = med(a, k), med(b, k)
        print(f"| {k[:-2]} | {ma:.3f} | {mb:.3f} | {mb / ma:.2f} | {len(a)}+{len(b)} | {loads(a + b)} |")
    if part == "prefix":
        print(f"\n(medrek backward/forward {med(a, 'backward_s') / med(a, 'forward_s'):.2f}, PyTorch "
              f"{med(b, 'backward_s') / med(b, 'forward_s'):.2f})")
    if part == "edit":
        print(f"\n(padded lengths: keys {a[0]['L_keys']}, values {a[0]['L_values']}; real tokens "
              f"{a[0]['real_tokens']:.0f}; medrek tokenisation {1e3 * med(a, 'tokenize_s'):.2f} ms, "
              "inside medrek's keys time; PyTorch gets the ids)")
