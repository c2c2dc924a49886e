#!/usr/bin/env bash
# cli_tokenize.sh - checks of `medrek tokenize` (run from the repository root):
#   bash tests/cli_tokenize.sh path/to/medrek
# Expected ids come from the oracles (gpt-3-encoder, sentencepiece) on the
# committed fixtures in tests/data/tok/.
set -u
BIN=${1:?usage: cli_tokenize.sh path/to/medrek}
D=tests/data/tok
pass=0
fail=0

# expect NAME WANT_RC WANT_STDOUT -- command...
expect() {
    local name=$1 want_rc=$2 want_out=$3
    shift 4
    local out rc
    out=$("$@" 2>/tmp/cli_tokenize.$$.err)
    rc=$?
    if [[ $rc == "$want_rc" && $out == "$want_out" ]]; then
        pass=$((pass + 1))
    else
        fail=$((fail + 1))
        echo "FAIL $name: rc=$rc (want $want_rc)"
        echo "  got:  $out"
        echo "  want: $want_out"
        sed 's/^/  stderr: /' /tmp/cli_tokenize.$$.err | head -3
    fi
}

# expect_err NAME WANT_RC PATTERN -- command...   (PATTERN searched in stderr)
expect_err() {
    local name=$1 want_rc=$2 pat=$3
    shift 4
    "$@" >/dev/null 2>/tmp/cli_tokenize.$$.err
    local rc=$?
    if [[ $rc == "$want_rc" ]] && grep -q -- "$pat" /tmp/cli_tokenize.$$.err; then
        pass=$((pass + 1))
    else
        fail=$((fail + 1))
        echo "FAIL $name: rc=$rc (want $want_rc), stderr:"
        sed 's/^/  /' /tmp/cli_tokenize.$$.err | head -3
    fi
}

G="$BIN tokenize --tokenizer $D/gpt2/vocab.json"
expect "gpt2 pieces" 0 "Hello Ġworld , Ġit 's Ġ2024 !" -- $G "Hello world, it's 2024!"
expect "gpt2 ids" 0 "15496 995 11 340 338 48609 0" -- $G --ids "Hello world, it's 2024!"
expect "gpt2 stdin" 0 "15496 995 198" -- bash -c "printf 'Hello world\n' | $G --ids -"
expect "gpt2 invalid utf-8" 0 "187 186" -- bash -c "printf '\\xff\\xfe' | $G --ids -"
expect "gpt2 empty" 0 "" -- $G ""
expect "gpt2 special text" 0 "15496 50256" -- $G --ids "Hello<|endoftext|>"
expect "gpt2 --split-special" 0 "15496 27 91 437 1659 5239 91 29" -- $G --ids --split-special "Hello<|endoftext|>"
expect "gpt2 options after text" 0 "15496" -- $BIN tokenize Hello --ids --tokenizer $D/gpt2/vocab.json

S="$BIN tokenize --tokenizer"
expect "spm json ids" 0 "819 835 366 304 872 618" -- $S $D/spm/tokenizer.json --ids "The patient has fever"
expect "spm dir + special" 0 "1 819 835 366 304 872 618" -- $S $D/spm --special --ids "The patient has fever"
expect "spm gguf special" 0 "1 819 835 366 304 872 618" -- $S $D/spm/tokenizer.gguf --special --ids "The patient has fever"
TMPD=$(mktemp -d)
cp $D/spm/tokenizer.gguf "$TMPD/model.gguf"
expect "dir with a gguf" 0 "1 819 835 366 304 872 618" -- $S "$TMPD" --special --ids "The patient has fever"
rm -rf "$TMPD"
expect "spm byte fallback" 0 "▁ca f <0xC3> <0xA9> ▁ <0xE6> <0xBC> <0xA2>" -- $S $D/spm/tokenizer.gguf "café 漢"

expect "help" 0 "usage: medrek tokenize --tokenizer FILE [--ids] [--special] [--split-special] TEXT" \
    -- bash -c "$BIN tokenize --help | head -1"
expect_err "no tokenizer" 2 "--tokenizer FILE is required" -- $BIN tokenize hello
expect_err "no text" 2 "exactly one TEXT" -- $BIN tokenize --tokenizer $D/spm
expect_err "bad file" 1 "strings.txt" -- $BIN tokenize --tokenizer $D/strings.txt hello
expect_err "missing file" 1 "no-such" -- $BIN tokenize --tokenizer $D/no-such.json hello
expect_err "unknown option" 2 "unknown option" -- $BIN tokenize --frobnicate --tokenizer $D/spm x

rm -f /tmp/cli_tokenize.$$.err
echo "cli_tokenize: $pass passed, $fail failed"
[[ $fail == 0 ]]
