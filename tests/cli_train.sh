#!/usr/bin/env bash
# cli_train.sh - checks of `medrek train` (run from the repository root):
#   bash tests/cli_train.sh path/to/medrek
# A few steps on the fixtures (LLM tests/data/llama/a.gguf, editor
# tests/data/e2e/editor_attn.safetensors, the 8 edits of
# tests/data/train/requests.jsonl): the written editor loads, fits the LLM
# and differs from the input (another fingerprint); the same seed gives the
# same file; periodic saves; a file with incomplete items; SIGINT writes
# the editor and exits 130; bad arguments exit 2 with the usage.
set -u
. "$(dirname "$0")/util/cli_lib.sh"
cli_init cli_train "$@"
LLM=tests/data/llama/a.gguf
ED=tests/data/e2e/editor_attn.safetensors
DATA=tests/data/train/requests.jsonl
fp() { "$BIN" editor info "$1" | awk '$1 == "fingerprint" {print $2}'; }

OUT=$TMP/out.safetensors
expect_io "train 6 steps" 0 "trained 6 steps" "step 6/6" -- \
    "$BIN" train --model $LLM --editor $ED --data $DATA --out "$OUT" --steps 6 --batch 4 \
    --lr 1e-3 --log-every 2 --save-every 4 --valid $DATA
check "settings printed" grep -q "lambda c 1 r 1 g 1 l 1, t_qk 1 t_qp 1, hinge 1.2" "$TMP/err"
check "progress has losses, rate, ETA" grep -q "step 2/6 epoch 1 | L .* (q1 .* loc .*) | .* edits/s | .* ETA" "$TMP/err"
check "periodic save" grep -q "saved $OUT at step 4" "$TMP/err"
check "valid losses" grep -q "^valid L " "$TMP/err"
expect_io "output loads and fits" 0 "llm check       ok" "" -- "$BIN" editor info "$OUT" --llm $LLM
F_IN=$(fp $ED)
F_OUT=$(fp "$OUT")
check "output differs from input ($F_IN vs $F_OUT)" test -n "$F_OUT" -a "$F_IN" != "$F_OUT"
check "output file differs" test "$(cmp -s $ED "$OUT"; echo $?)" = 1

# same seed, same result; another seed, another
expect_io "train again, same seed" 0 "trained 6 steps" "" -- \
    "$BIN" train --model $LLM --editor $ED --data $DATA --out "$TMP/again.safetensors" --steps 6 \
    --batch 4 --lr 1e-3
check "same seed gives the same editor" test "$(fp "$TMP/again.safetensors")" = "$F_OUT"
expect_io "train, seed 2" 0 "trained 6 steps" "" -- \
    "$BIN" train --model $LLM --editor $ED --data $DATA --out "$TMP/seed2.safetensors" --steps 6 \
    --batch 4 --lr 1e-3 --seed 2
check "another seed gives another editor" test "$(fp "$TMP/seed2.safetensors")" != "$F_OUT"

# epochs; items without rephrase / locality probe (MedCF-style field names too)
cat >"$TMP/mixed.jsonl" <<'EOF'
{"prompt": "Fever is treated with", "target_new": "paracetamol"}
{"prompt": "Warfarin interacts with", "target_new": "statins", "rephrase_prompt": "A drug that interacts with warfarin is"}
{"prompt": "Insulin treats", "target_new": "gout", "locality_mapping_prompt": "The heart pumps", "locality_mapping_ground_truth": "blood"}
EOF
expect_io "epochs, incomplete items" 0 "trained 2 steps (6 edits" "2 without rephrase, 2 without locality probe" -- \
    "$BIN" train --model $LLM --editor tests/data/e2e/editor_mlp.safetensors --data "$TMP/mixed.jsonl" \
    --out "$TMP/mixed.safetensors" --epochs 2 --batch 3
expect_io "mixed output loads" 0 "prompt_encoder  mlp" "" -- "$BIN" editor info "$TMP/mixed.safetensors"

# SIGINT: finish the step, write the editor, exit 130
"$BIN" train --model $LLM --editor $ED --data $DATA --out "$TMP/int.safetensors" --steps 1000000 \
    --batch 2 --log-every 1 --save-every 0 >"$TMP/iout" 2>"$TMP/ierr" &
pid=$!
for _ in $(seq 1 600); do grep -q "^step 1/" "$TMP/ierr" 2>/dev/null && break; sleep 0.1; done
kill -INT $pid
wait $pid
rc=$?
check "SIGINT exits 130 (got $rc)" test $rc = 130
check "SIGINT says it wrote the editor" grep -q "interrupted (signal 2) after step .*; wrote" "$TMP/ierr"
expect_io "interrupted output loads" 0 "fingerprint     editor-" "" -- "$BIN" editor info "$TMP/int.safetensors"

# bad arguments: exit 2 with the usage
U="usage: medrek train"
expect_io "no arguments" 2 "" "$U" -- "$BIN" train
expect_io "missing --out" 2 "" "required" -- "$BIN" train --model $LLM --editor $ED --data $DATA
expect_io "steps and epochs" 2 "" "not both" -- \
    "$BIN" train --model $LLM --editor $ED --data $DATA --out "$TMP/x" --steps 2 --epochs 1
expect_io "batch 0" 2 "" "$U" -- "$BIN" train --model $LLM --editor $ED --data $DATA --out "$TMP/x" --batch 0
expect_io "bad lr" 2 "" "learning rate" -- "$BIN" train --model $LLM --editor $ED --data $DATA --out "$TMP/x" --lr -1
expect_io "lr not a number" 2 "" "$U" -- "$BIN" train --model $LLM --editor $ED --data $DATA --out "$TMP/x" --lr abc
expect_io "unknown option" 2 "" "unknown option" -- "$BIN" train --model $LLM --editor $ED --data $DATA --out "$TMP/x" --bogus 1
expect_io "negative lambda" 2 "" "loss weights" -- \
    "$BIN" train --model $LLM --editor $ED --data $DATA --out "$TMP/x" --lambda-l -0.5
expect_io "help" 0 "$U" "" -- "$BIN" train --help
# errors from the files: exit 1 with a message naming the file
expect_io "missing data" 1 "" "nope.jsonl" -- "$BIN" train --model $LLM --editor $ED --data "$TMP/nope.jsonl" --out "$TMP/x"
expect_io "editor for another LLM" 1 "" "" -- \
    "$BIN" train --model tests/data/llama/c_rope3.gguf --editor $ED --data $DATA --out "$TMP/x" --steps 1
check "nothing written on errors" test ! -e "$TMP/x"

cli_done
