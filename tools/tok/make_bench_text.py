#!/usr/bin/env python3
"""Write the tokenizer benchmark text: MedVersa prompt lines (prompt,
rephrase, locality prompt, answers), shuffled with a fixed seed and repeated
until the file holds at least 10 MB, one line each. The file stays outside
the repository (default /tmp/tok_bench.txt).

    python3 tools/tok/make_bench_text.py [/work/shared/datasets/medversa] [/tmp/tok_bench.txt]
"""
import json
import os
import random
import sys

data = sys.argv[1] if len(sys.argv) > 1 else "/work/shared/datasets/medversa"
out = sys.argv[2] if len(sys.argv) > 2 else "/tmp/tok_bench.txt"
lines = []
for name in ("train.json", "valid.json", "test.json"):
    for e in json.load(open(os.path.join(data, name), encoding="utf-8")):
        for k in ("prompt", "rephrase_prompt", "locality_prompt", "ground_truth", "target_new",
                  "locality_ground_truth"):
            v = e.get(k)
            if isinstance(v, str) and v.strip():
                lines.append(v.replace("\n", " "))
rng = random.Random(7)
size = 0
with open(out, "w", encoding="utf-8") as f:
    while size < 10 * 1000 * 1000:
        rng.shuffle(lines)
        for l in lines:
            f.write(l + "\n")
            size += len(l.encode("utf-8")) + 1
print("%d bytes -> %s" % (size, out), file=sys.stderr)
