#!/usr/bin/env bash
# cli_editor.sh - checks of `medrek editor init` and `medrek editor info`
# (run from the repository root):  bash tests/cli_editor.sh path/to/medrek
# Uses the small RoBERTa of tests/data/editor/encoder and the small Llama
# models of tests/data/llama.
set -u
BIN=${1:?usage: cli_editor.sh path/to/medrek}
ENC=tests/data/editor/encoder
LL=tests/data/llama
TMP=$(mktemp -d /tmp/cli_editor.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
pass=0
fail=0

# run NAME WANT_RC STDOUT_PATTERN STDERR_PATTERN -- command...
# (an empty pattern is not checked)
run() {
    local name=$1 want_rc=$2 out_pat=$3 err_pat=$4
    shift 5
    "$@" >"$TMP/out" 2>"$TMP/err"
    local rc=$?
    local ok=1
    [[ $rc == "$want_rc" ]] || ok=0
    if [[ -n $out_pat ]] && ! grep -q -- "$out_pat" "$TMP/out"; then ok=0; fi
    if [[ -n $err_pat ]] && ! grep -q -- "$err_pat" "$TMP/err"; then ok=0; fi
    if [[ $ok == 1 ]]; then
        pass=$((pass + 1))
    else
        fail=$((fail + 1))
        echo "FAIL $name: rc=$rc (want $want_rc), want stdout /$out_pat/ stderr /$err_pat/"
        sed 's/^/  stdout: /' "$TMP/out" | head -5
        sed 's/^/  stderr: /' "$TMP/err" | head -5
    fi
}

E=$TMP/ed.safetensors
run "init attn" 0 "fingerprint editor-" "" -- \
    "$BIN" editor init --llm $LL/a.gguf --encoder $ENC --out "$E" --rep-dim 24 --heads 4
[[ -s $E ]] && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL: no editor file written"; }
run "info kind" 0 "prompt_encoder  attn" "" -- "$BIN" editor info "$E"
run "info D from the LLM" 0 "llm_dim         64" "" -- "$BIN" editor info "$E"
run "info R" 0 "rep_dim         24" "" -- "$BIN" editor info "$E"
run "info llm fingerprint" 0 "llm_fingerprint llama-" "" -- "$BIN" editor info "$E"
run "info encoder" 0 "roberta: H=32 layers=2" "" -- "$BIN" editor info "$E"
run "info tokenizer embedded" 0 "vocab.json + merges.txt (embedded, 301 tokens)" "" -- \
    "$BIN" editor info "$E"
run "same LLM as HF directory fits" 0 "llm check       ok" "" -- \
    "$BIN" editor info "$E" --llm $LL/a_hf
run "another LLM is refused" 1 "" "was made for LLM" -- "$BIN" editor info "$E" --llm $LL/c_rope3.gguf

# deterministic: the same seed gives the same bytes, another seed another editor
run "init again" 0 "" "" -- \
    "$BIN" editor init --llm $LL/a.gguf --encoder $ENC --out "$TMP/ed2.safetensors" --rep-dim 24 --heads 4
if cmp -s "$E" "$TMP/ed2.safetensors"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: same seed, different files"; fi
run "init seed 2" 0 "" "" -- \
    "$BIN" editor init --llm $LL/a.gguf --encoder $ENC --out "$TMP/ed3.safetensors" --rep-dim 24 --heads 4 --seed 2
if cmp -s "$E" "$TMP/ed3.safetensors"; then fail=$((fail + 1)); echo "FAIL: seeds 1 and 2 gave the same file"; else pass=$((pass + 1)); fi

M=$TMP/mlp.safetensors
run "init mlp without LLM" 0 "D=16" "" -- \
    "$BIN" editor init --llm-dim 16 --encoder $ENC --out "$M" --prompt-encoder mlp --prompt-tokens 2 --rep-dim 8 --proto-tokens 4
run "info mlp" 0 "prompt_encoder  mlp" "" -- "$BIN" editor info "$M"
run "info T" 0 "prompt_tokens   2" "" -- "$BIN" editor info "$M"
run "info P" 0 "proto_tokens    4" "" -- "$BIN" editor info "$M"
run "mlp editor, D 16, against a D 64 LLM" 1 "" "hidden size 16" -- "$BIN" editor info "$M" --llm $LL/a.gguf

# usage errors (2) and file errors (1)
run "no subcommand" 2 "" "usage: medrek editor" -- "$BIN" editor
run "unknown subcommand" 2 "" "unknown command" -- "$BIN" editor frobnicate
run "help" 0 "usage: medrek editor init" "" -- "$BIN" editor init --help
run "missing --encoder" 2 "" "--encoder is required" -- "$BIN" editor init --llm $LL/a.gguf --out "$TMP/x"
run "missing --llm" 2 "" "--llm is required" -- "$BIN" editor init --encoder $ENC --out "$TMP/x"
run "bad kind" 2 "" "attn or mlp" -- \
    "$BIN" editor init --llm-dim 16 --encoder $ENC --out "$TMP/x" --prompt-encoder lstm
run "heads not dividing D" 2 "" "divide D" -- \
    "$BIN" editor init --llm $LL/a.gguf --encoder $ENC --out "$TMP/x" --heads 5 --rep-dim 8
run "bad number" 2 "" "bad value" -- \
    "$BIN" editor init --llm-dim 16 --encoder $ENC --out "$TMP/x" --rep-dim 12abc
run "missing encoder dir" 1 "" "no-such-encoder" -- \
    "$BIN" editor init --llm-dim 16 --encoder $TMP/no-such-encoder --out "$TMP/x" --rep-dim 8
run "missing LLM" 1 "" "no-such-llm" -- \
    "$BIN" editor init --llm $TMP/no-such-llm.gguf --encoder $ENC --out "$TMP/x" --rep-dim 8
run "info of a non-editor" 1 "" "not a medrek editor" -- "$BIN" editor info $ENC/model.safetensors
run "info of a missing file" 1 "" "cannot open" -- "$BIN" editor info "$TMP/none.safetensors"
run "info needs a file" 2 "" "give one editor FILE" -- "$BIN" editor info
head -c 100 "$E" >"$TMP/cut.safetensors"
run "info of a truncated editor" 1 "" "cut.safetensors" -- "$BIN" editor info "$TMP/cut.safetensors"
[[ -e $TMP/x ]] && { fail=$((fail + 1)); echo "FAIL: a failed init left $TMP/x behind"; }

echo "cli_editor: $pass passed, $fail failed"
[[ $fail == 0 ]]
