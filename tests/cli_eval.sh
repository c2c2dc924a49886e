#!/bin/bash
# cli_eval.sh - `medrek eval`: the table, the JSON report (atomic, same
# numbers on a second run), the modes, MedCF's four locality probes,
# usage errors and a bad dataset item.
# usage: bash tests/cli_eval.sh path/to/medrek   (run from the repository root)
. "$(dirname "$0")/util/cli_lib.sh"
cli_init cli_eval "$@"
M=tests/data/llama/a.gguf
E=tests/data/e2e/editor_attn.safetensors
D=tests/data/eval/items.json

# single mode: the means tools/ref_eval.py computed (tests/data/eval/ref.json)
"$BIN" eval --model $M --editor $E --data $D --mode single --no-fluency >"$TMP/single.txt" 2>"$TMP/single.err"
check_eval "single exit" "[ $? = 0 ]"
check_eval "single efficacy"  "grep -qE '^Efficacy +19\.79$' $TMP/single.txt"
check_eval "single generality" "grep -qE '^Generality +19\.79$' $TMP/single.txt"
check_eval "single locality"  "grep -qE '^Locality +90\.48$' $TMP/single.txt"
check_eval "single avg"       "grep -qE '^Avg +55\.13$' $TMP/single.txt"
check_eval "no fluency"       "grep -qE '^Fluency +-$' $TMP/single.txt"
check_eval "settings on stderr" "grep -q 'mode single' $TMP/single.err && grep -q 'items/s' $TMP/single.err"
# sequential, one segment of every item
expect sequential 0 '^Locality +65\.41$' -- "$BIN" eval --model $M --editor $E --data $D --mode sequential --n 0 --no-fluency

# batch with fluency and a report, twice: identical numbers
for k in 1 2; do
    "$BIN" eval --model $M --editor $E --data $D --mode batch --n 4 --seed 5 --fluency-tokens 40 \
        --out "$TMP/r$k.json" >"$TMP/b$k.txt" 2>/dev/null
    check_eval "batch run $k" "[ $? = 0 ] && [ -s $TMP/r$k.json ] && [ ! -e $TMP/r$k.json.tmp ]"
done
check_eval "batch table deterministic" "cmp -s $TMP/b1.txt $TMP/b2.txt"
check_eval "report deterministic" "diff <(grep -v seconds $TMP/r1.json) <(grep -v seconds $TMP/r2.json) >/dev/null"
check_eval "report fields" "grep -q '\"means_x100\"' $TMP/r1.json && grep -q '\"efficacy_counts\"' $TMP/r1.json && grep -q '\"fluency_tokens\":.40' $TMP/r1.json && [ \$(grep -c '\"index\"' $TMP/r1.json) = 8 ]"
check_eval "fluency in the table" "grep -qE '^Fluency +[0-9]+\.[0-9]+$' $TMP/b1.txt"
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
expect "absent data" 1 'absent.json' -- "$BIN" eval --model $M --editor $E --data $TMP/absent.json
expect "foreign editor" 1 'does not fit' -- "$BIN" eval --model tests/data/llama/c_rope3.gguf --editor $E --data $D
expect "n in single mode" 2 'needs --mode batch' -- "$BIN" eval --model $M --editor $E --data $D --n 4
expect help 0 'fluency-tokens' -- "$BIN" eval --help

cli_done
