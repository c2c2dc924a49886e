#!/usr/bin/env bash
# cli_tokenize.sh - checks of `medrek tokenize` (run from the repository root):
#   bash tests/cli_tokenize.sh path/to/medrek
# Expected ids come from the oracles (gpt-3-encoder, sentencepiece) on the
# committed fixtures in tests/data/tok/.
set -u
. "$(dirname "$0")/util/cli_lib.sh"
cli_init cli_tokenize "$@"
D=tests/data/tok

# expect_out NAME WANT_RC WANT_STDOUT -- command...   (stdout exactly)
expect_out() {
    local name=$1 want_rc=$2 want_out=$3
    shift 4
    local out rc
    out=$("$@" 2>"$TMP/err")
    rc=$?
    if [[ $rc == "$want_rc" && $out == "$want_out" ]]; then
        pass=$((pass + 1))
    else
        fail=$((fail + 1))
        echo "FAIL $name: rc=$rc (want $want_rc)"
        echo "  got:  $out"
        echo "  want: $want_out"
        sed 's/^/  stderr: /' "$TMP/err" | head -3
    fi
}

G="$BIN tokenize --tokenizer $D/gpt2/vocab.json"
expect_out "gpt2 pieces" 0 "Hello Ġworld , Ġit 's Ġ2024 !" -- $G "Hello world, it's 2024!"
expect_out "gpt2 ids" 0 "15496 995 11 340 338 48609 0" -- $G --ids "Hello world, it's 2024!"
expect_out "gpt2 stdin" 0 "15496 995 198" -- bash -c "printf 'Hello world\n' | $G --ids -"
expect_out "gpt2 invalid utf-8" 0 "187 186" -- bash -c "printf '\\xff\\xfe' | $G --ids -"
expect_out "gpt2 empty" 0 "" -- $G ""
expect_out "gpt2 special text" 0 "15496 50256" -- $G --ids "Hello<|endoftext|>"
expect_out "gpt2 --split-special" 0 "15496 27 91 437 1659 5239 91 29" -- $G --ids --split-special "Hello<|endoftext|>"
expect_out "gpt2 options after text" 0 "15496" -- $BIN tokenize Hello --ids --tokenizer $D/gpt2/vocab.json

S="$BIN tokenize --tokenizer"
expect_out "spm json ids" 0 "819 835 366 304 872 618" -- $S $D/spm/tokenizer.json --ids "The patient has fever"
expect_out "spm dir + special" 0 "1 819 835 366 304 872 618" -- $S $D/spm --special --ids "The patient has fever"
expect_out "spm gguf special" 0 "1 819 835 366 304 872 618" -- $S $D/spm/tokenizer.gguf --special --ids "The patient has fever"
mkdir "$TMP/dir"
cp $D/spm/tokenizer.gguf "$TMP/dir/model.gguf"
expect_out "dir with a gguf" 0 "1 819 835 366 304 872 618" -- $S "$TMP/dir" --special --ids "The patient has fever"
expect_out "spm byte fallback" 0 "▁ca f <0xC3> <0xA9> ▁ <0xE6> <0xBC> <0xA2>" -- $S $D/spm/tokenizer.gguf "café 漢"

expect_out "help" 0 "usage: medrek tokenize --tokenizer FILE [--ids] [--special] [--split-special] TEXT" \
    -- bash -c "$BIN tokenize --help | head -1"
expect_io "no tokenizer" 2 "" "--tokenizer FILE is required" -- $BIN tokenize hello
expect_io "no text" 2 "" "exactly one TEXT" -- $BIN tokenize --tokenizer $D/spm
expect_io "bad file" 1 "" "strings.txt" -- $BIN tokenize --tokenizer $D/strings.txt hello
expect_io "missing file" 1 "" "no-such" -- $BIN tokenize --tokenizer $D/no-such.json hello
expect_io "unknown option" 2 "" "unknown option" -- $BIN tokenize --frobnicate --tokenizer $D/spm x

cli_done
