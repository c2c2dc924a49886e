#!/usr/bin/env bash
# cli_inspect.sh - `medrek inspect` on the fixtures of tests/data/safetensors
# (written by tools/st_fixture.py, independent of medrek) and on corrupted
# copies. Usage: bash tests/cli_inspect.sh path/to/medrek   (from the repo root)
set -u
. "$(dirname "$0")/util/cli_lib.sh"
cli_init cli_inspect "$@"
D=tests/data/safetensors

# fails_with PATH: exit 1, nothing on stdout, "medrek inspect: PATH...: problem" on stderr
fails_with() {
    what="corrupt $1"
    run inspect "$1"
    exit_is 1
    if [ -z "$out" ]; then ok; else bad "$what: printed to stdout"; fi
    if grep -Fq -- "medrek inspect: $1" "$TMP/err"; then ok; else bad "$what: stderr '$err' lacks 'medrek inspect: $1'"; fi
}

what="--help"
run inspect --help
exit_is 0
has '^usage: medrek inspect PATH'
what="no argument"
run inspect
exit_is 2
what="two arguments"
run inspect a b
exit_is 2

what="safetensors file"
run inspect "$D/mixed.safetensors"
exit_is 0
has '^format: safetensors$'
has '^metadata: 2 entries$'
has '^  format = "pt"$'
has '^  note = "medrek fixture ü \\"quoted\\""$'
has '^tensors: 7$'
has '^  w_f16 +F16 +\[2, 3, 5\]$'
has '^  w_f32 +F32 +\[3, 4\]$'
has '^  w_bf16 +BF16 \[7\]$'
has '^  scalar +F32 +\[\]$'
has '^  empty +F16 +\[0, 4\]$'
has '^  four_d +BF16 \[2, 1, 2, 3\]$'
has '^  "x.y/z ü" +F32 +\[2\]$'
has '^parameters: 64 '
has '^tensor bytes: 158 '

what="HF directory"
run inspect "$D/hfdir"
exit_is 0
has '^format: HF directory with 2 shards$'
has "^config: $D/hfdir/config.json \(141 bytes\)$"
has '^metadata of model-00001-of-00002.safetensors: 1 entries$'
has '^tensors: 4$'
has '^  model.layers.0.self_attn.q_proj.weight +BF16 \[4, 4\]$'
has '^  lm_head.weight +F32 +\[8, 4\]$'
has '^parameters: 84 '

what="one shard with config.json beside it"
run inspect "$D/hfdir/model-00002-of-00002.safetensors"
exit_is 0
has '^format: safetensors$'
has '^config: '
has '^tensors: 2$'

what="tensors of other dtypes are listed as skipped"
run inspect "$D/skip.safetensors"
exit_is 0
has '^tensors: 1$'
has '^  w +F32 +\[2\]$'
has '^skipped \(dtype medrek does not compute with\): 2$'
has '^  embeddings.position_ids +I64 +\[1, 6\]$'
has '^  mask +BOOL \[3\]$'
has '^parameters: 2 '

what="GGUF file"
run inspect "$D/inspect.gguf"
exit_is 0
has '^format: GGUF v3 \(alignment 32, '
has '^metadata: 6 entries$'
has '^  general.architecture string = "llama"$'
has '^  test.long string = "a{120}"\.\.\.\(503 bytes\)$'
has '^  test.ctrl string = "bell\\x07esc\\x1b\[31mred\\nnl"$'
has '^  test.many int32\[100\] = \[0, 1, 2, 3, 4, 5, 6, 7, \.\.\. 92 more\]$'
has '^  test.strs string\[20\] = \["s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", \.\.\. 12 more\]$'
has '^  test.f float32 = 1.5$'
has '^  w +F32 +\[2, 3\]$'
has '^  "e\\x1bvil" +F32 +\[4\]$'
has '^parameters: 10 '
if LC_ALL=C grep -q $'\x1b' "$TMP/out"; then bad "$what: raw escape byte reached stdout"; else ok; fi

# Corrupted inputs: exit 1 with "medrek inspect: <file>: <problem>".
head -c 100 "$D/mixed.safetensors" >"$TMP/truncated.safetensors"
fails_with "$TMP/truncated.safetensors"
printf 'this is not a model file at all' >"$TMP/garbage.safetensors"
fails_with "$TMP/garbage.safetensors"
: >"$TMP/empty.safetensors"
fails_with "$TMP/empty.safetensors"
head -c 1000 "$D/inspect.gguf" >"$TMP/truncated.gguf"
fails_with "$TMP/truncated.gguf"
# An overlapping tensor pair: patch "data_offsets": [0, 4] of "scalar" to [4, 8].
sed 's/"data_offsets": \[0, 4\]/"data_offsets": [4, 8]/' "$D/mixed.safetensors" >"$TMP/overlap.safetensors"
if cmp -s "$D/mixed.safetensors" "$TMP/overlap.safetensors"; then bad "overlap: sed did not patch"; else ok; fi
fails_with "$TMP/overlap.safetensors"
mkdir "$TMP/noconfig"
cp "$D/mixed.safetensors" "$TMP/noconfig/model.safetensors"
fails_with "$TMP/noconfig"
mkdir "$TMP/escape"
cp "$D/hfdir/config.json" "$TMP/escape/"
printf '{"weight_map": {"a": "../mixed.safetensors"}}' >"$TMP/escape/model.safetensors.index.json"
fails_with "$TMP/escape"
fails_with "$TMP/does-not-exist"

cli_done
