#!/usr/bin/env bash
# cli_editor.sh - checks of `medrek editor init` and `medrek editor info`
# (run from the repository root):  bash tests/cli_editor.sh path/to/medrek
# Uses the small RoBERTa of tests/data/editor/encoder and the small Llama
# models of tests/data/llama.
set -u
. "$(dirname "$0")/util/cli_lib.sh"
cli_init cli_editor "$@"
ENC=tests/data/editor/encoder
LL=tests/data/llama

E=$TMP/ed.safetensors
expect_io "init attn" 0 "fingerprint editor-" "" -- \
    "$BIN" editor init --llm $LL/a.gguf --encoder $ENC --out "$E" --rep-dim 24 --heads 4
[[ -s $E ]] && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL: no editor file written"; }
expect_io "info kind" 0 "prompt_encoder  attn" "" -- "$BIN" editor info "$E"
expect_io "info D from the LLM" 0 "llm_dim         64" "" -- "$BIN" editor info "$E"
expect_io "info R" 0 "rep_dim         24" "" -- "$BIN" editor info "$E"
expect_io "info llm fingerprint" 0 "llm_fingerprint llama-" "" -- "$BIN" editor info "$E"
expect_io "info encoder" 0 "roberta: H=32 layers=2" "" -- "$BIN" editor info "$E"
expect_io "info tokenizer embedded" 0 "vocab.json + merges.txt (embedded, 301 tokens)" "" -- \
    "$BIN" editor info "$E"
expect_io "same LLM as HF directory fits" 0 "llm check       ok" "" -- \
    "$BIN" editor info "$E" --llm $LL/a_hf
expect_io "another LLM is refused" 1 "" "was made for LLM" -- "$BIN" editor info "$E" --llm $LL/c_rope3.gguf

# deterministic: the same seed gives the same bytes, another seed another editor
expect_io "init again" 0 "" "" -- \
    "$BIN" editor init --llm $LL/a.gguf --encoder $ENC --out "$TMP/ed2.safetensors" --rep-dim 24 --heads 4
if cmp -s "$E" "$TMP/ed2.safetensors"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: same seed, different files"; fi
expect_io "init seed 2" 0 "" "" -- \
    "$BIN" editor init --llm $LL/a.gguf --encoder $ENC --out "$TMP/ed3.safetensors" --rep-dim 24 --heads 4 --seed 2
if cmp -s "$E" "$TMP/ed3.safetensors"; then fail=$((fail + 1)); echo "FAIL: seeds 1 and 2 gave the same file"; else pass=$((pass + 1)); fi

M=$TMP/mlp.safetensors
expect_io "init mlp without LLM" 0 "D=16" "" -- \
    "$BIN" editor init --llm-dim 16 --encoder $ENC --out "$M" --prompt-encoder mlp --prompt-tokens 2 --rep-dim 8 --proto-tokens 4
expect_io "info mlp" 0 "prompt_encoder  mlp" "" -- "$BIN" editor info "$M"
expect_io "info T" 0 "prompt_tokens   2" "" -- "$BIN" editor info "$M"
expect_io "info P" 0 "proto_tokens    4" "" -- "$BIN" editor info "$M"
expect_io "mlp editor, D 16, against a D 64 LLM" 1 "" "hidden size 16" -- "$BIN" editor info "$M" --llm $LL/a.gguf

# usage errors (2) and file errors (1)
expect_io "no subcommand" 2 "" "usage: medrek editor" -- "$BIN" editor
expect_io "unknown subcommand" 2 "" "unknown command" -- "$BIN" editor frobnicate
expect_io "help" 0 "usage: medrek editor init" "" -- "$BIN" editor init --help
expect_io "missing --encoder" 2 "" "--encoder is required" -- "$BIN" editor init --llm $LL/a.gguf --out "$TMP/x"
expect_io "missing --llm" 2 "" "--llm is required" -- "$BIN" editor init --encoder $ENC --out "$TMP/x"
expect_io "bad kind" 2 "" "attn or mlp" -- \
    "$BIN" editor init --llm-dim 16 --encoder $ENC --out "$TMP/x" --prompt-encoder lstm
expect_io "heads not dividing D" 2 "" "divide D" -- \
    "$BIN" editor init --llm $LL/a.gguf --encoder $ENC --out "$TMP/x" --heads 5 --rep-dim 8
expect_io "bad number" 2 "" "bad value" -- \
    "$BIN" editor init --llm-dim 16 --encoder $ENC --out "$TMP/x" --rep-dim 12abc
expect_io "missing encoder dir" 1 "" "no-such-encoder" -- \
    "$BIN" editor init --llm-dim 16 --encoder $TMP/no-such-encoder --out "$TMP/x" --rep-dim 8
expect_io "missing LLM" 1 "" "no-such-llm" -- \
    "$BIN" editor init --llm $TMP/no-such-llm.gguf --encoder $ENC --out "$TMP/x" --rep-dim 8
expect_io "info of a non-editor" 1 "" "not a medrek editor" -- "$BIN" editor info $ENC/model.safetensors
expect_io "info of a missing file" 1 "" "cannot open" -- "$BIN" editor info "$TMP/none.safetensors"
expect_io "info needs a file" 2 "" "give one editor FILE" -- "$BIN" editor info
head -c 100 "$E" >"$TMP/cut.safetensors"
expect_io "info of a truncated editor" 1 "" "cut.safetensors" -- "$BIN" editor info "$TMP/cut.safetensors"
[[ -e $TMP/x ]] && { fail=$((fail + 1)); echo "FAIL: a failed init left $TMP/x behind"; }

cli_done
