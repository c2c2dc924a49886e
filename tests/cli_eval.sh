#!/bin/bash
# cli_eval.sh - `medrek eval`: the table, the JSON report (atomic, same
# numbers on a second run), the modes, MedCF's four locality probes,
# usage errors and a bad dataset item.
# usage: bash tests/cli_eval.sh path/to/medrek   (run from the repository root)
BIN=${1:?usage: cli_eval.sh path/to/medrek}
M=tests/data/llama/a.gguf
E=tests/data/e2e/editor_attn.safetensors
D=tests/data/eval/items.json
T=$(mktemp -d /tmp/mk_cli_eval.XXXXXX)
trap 'rm -rf "$T"' EXIT
pass=0
fail=0

# expect NAME WANT_RC PATTERN -- command...   (PATTERN: grep -E on stdout+stderr, or "")
expect() {
    local name=$1 want=$2 pat=$3
    shift 4
    local out rc
    out=$("$@" 2>&1)
    rc=$?
    if [ "$rc" != "$want" ]; then
        echo "FAIL $name: exit $rc, expected $want"; echo "$out" | head -5 | sed 's/^/    /'
        fail=$((fail + 1)); return
    fi
    if [ -n "$pat" ] && ! grep -qE -- "$pat" <<<"$out"; then
        echo "FAIL $name: output does not match /$pat/"; echo "$out" | head -8 | sed 's/^/    /'
        fail=$((fail + 1)); return
    fi
    pass=$((pass + 1))
}
ok() { if eval "$2"; then pass=$((pass + 1)); else echo "FAIL $1"; fail=$((fail + 1)); fi; }

# single mode: the means tools/ref_eval.py computed (tests/data/eval/ref.json)
"$BIN" eval --model $M --editor $E --data $D --mode single --no-fluency >"$T/single.txt" 2>"$T/single.err"
ok "single exit" "[ $? = 0 ]"
ok "single efficacy"  "grep -qE '^Efficacy +19\.79$' $T/single.txt"
ok "single generality" "grep -qE '^Generality +19\.79$' $T/single.txt"
ok "single locality"  "grep -qE '^Locality +90\.48$' $T/single.txt"
ok "single avg"       "grep -qE '^Avg +55\.13$' $T/single.txt"
ok "no fluency"       "grep -qE '^Fluency +-$' $T/single.txt"
ok "settings on stderr" "grep -q 'mode single' $T/single.err && grep -q 'items/s' $T/single.err"
# sequential, one segment of every item
expect sequential 0 '^Locality +65\.41$' -- "$BIN" eval --model $M --editor $E --data $D --mode sequential --n 0 --no-fluency

# batch with fluency and a report, twice: identical numbers
for k in 1 2; do
    "$BIN" eval --model $M --editor $E --data $D --mode batch --n 4 --seed 5 --fluency-tokens 40 \
        --out "$T/r$k.json" >"$T/b$k.txt" 2>/dev/null
    ok "batch run $k" "[ $? = 0 ] && [ -s $T/r$k.json ] && [ ! -e $T/r$k.json.tmp ]"
done
ok "batch table deterministic" "cmp -s $T/b1.txt $T/b2.txt"
ok "report deterministic" "diff <(grep -v seconds $T/r1.json) <(grep -v seconds $T/r2.json) >/dev/null"
ok "report fields" "grep -q '\"means_x100\"' $T/r1.json && grep -q '\"efficacy_counts\"' $T/r1.json && grep -q '\"fluency_tokens\":.40' $T/r1.json && [ \$(grep -c '\"index\"' $T/r1.json) = 8 ]"
ok "fluency in the table" "grep -qE '^Fluency +[0-9]+\.[0-9]+$' $T/b1.txt"
expect "other seed" 0 'Fluency' -- "$BIN" eval --model $M --editor $E --data $D --mode batch --n 4 --seed 6 --fluency-tokens 40 --limit 5

# MedCF: four locality probes, reported by kind
expect medcf 0 'locality mapping' -- "$BIN" eval --model $M --editor $E --data tests/data/eval/medcf_small.json --mode batch --n 2 --no-fluency
expect "medcf detected" 0 '3 medcf items' -- "$BIN" eval --model $M --editor $E --data tests/data/eval/medcf_small.json --mode batch --n 2 --no-fluency
expect "format forced" 1 'locality_prompt' -- "$BIN" eval --model $M --editor $E --data tests/data/eval/medcf_small.json --format medversa --no-fluency

# errors
expect "bad item" 1 'item 1: field "rephrase_prompt": missing' -- "$BIN" eval --model $M --editor $E --data tests/data/eval/bad_item.json
expect "missing --data" 2 'required' -- "$BIN" eval --model $M --editor $E
expect "bad mode" 2 'unknown --mode' -- "$BIN" eval --model $M --editor $E --data $D --mode lifelong
expect "bad format" 2 'unknown --format' -- "$BIN" eval --model $M --editor $E --data $D --format x
expect "batch of 0" 2 'batch' -- "$BIN" eval --model $M --editor $E --data $D --mode batch --n 0
expect "absent data" 1 'absent.json' -- "$BIN" eval --model $M --editor $E --data $T/absent.json
expect "foreign editor" 1 'does not fit' -- "$BIN" eval --model tests/data/llama/c_rope3.gguf --editor $E --data $D
expect "n in single mode" 2 'needs --mode batch' -- "$BIN" eval --model $M --editor $E --data $D --n 4
expect help 0 'fluency-tokens' -- "$BIN" eval --help

echo "cli_eval: $pass passed, $fail failed"
[ "$fail" = 0 ]
