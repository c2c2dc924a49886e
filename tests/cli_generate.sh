#!/usr/bin/env bash
# cli_generate.sh - `medrek generate` on the Llama fixtures of
# tests/data/llama (written by tools/ref_llama.py): greedy ids equal torch's
# (gen_a.txt), HF directory and GGUF agree, text output, sampling options,
# and clear errors. Usage: bash tests/cli_generate.sh path/to/medrek
set -u
. "$(dirname "$0")/util/cli_lib.sh"
cli_init cli_generate "$@"
D=tests/data/llama

want_ids=$(sed -n 2p $D/gen_a.txt)
want_text=$(sed -n 3p $D/gen_a.txt)
prompt_ids=$(sed -n 1p $D/gen_a.txt)

what="--help"
run generate --help
exit_is 0
if grep -q -- '--max-tokens' "$TMP/out"; then ok; else bad "$what: usage lacks --max-tokens"; fi

for m in a_hf a.gguf; do
    what="greedy ids, $m"
    run generate --model $D/$m --prompt "The patient was" --max-tokens 32 --ids
    exit_is 0
    out_is "$want_ids"
    err_has 'prompt: 6 positions .* tokens/s\); generated: 32 tokens .* tokens/s\)'
    what="greedy text, $m"
    run generate --model $D/$m --prompt "The patient was" --max-tokens 32
    exit_is 0
    out_is "$want_text"
    what="--prompt-ids, $m"
    run generate --model $D/$m --prompt-ids "$prompt_ids" --max-tokens 32 --ids
    exit_is 0
    out_is "$want_ids"
done

what="--tokenizer from another file"
run generate --model $D/a.gguf --tokenizer $D/a_hf/tokenizer.json --prompt "The patient was" --max-tokens 32 --ids
exit_is 0
out_is "$want_ids"

what="Q8_0 greedy, first 8 tokens as F32"
run generate --model $D/a_q8_0.gguf --prompt "The patient was" --max-tokens 8 --ids
exit_is 0
out_is "$(echo "$want_ids" | cut -d' ' -f1-8)"

what="seeded sampling is reproducible"
run generate --model $D/a.gguf --prompt "The" --max-tokens 24 --temp 1.5 --top-k 50 --top-p 0.95 --seed 7 --ids
exit_is 0
first=$out
run generate --model $D/a.gguf --prompt "The" --max-tokens 24 --temp 1.5 --top-k 50 --top-p 0.95 --seed 7 --ids
out_is "$first"
n=$(echo "$first" | wc -w)
if [ "$n" -ge 1 ] && [ "$n" -le 24 ]; then ok; else bad "$what: $n ids"; fi

what="id out of range"
run generate --model $D/a.gguf --prompt-ids "510 512" --ids
exit_is 1
err_has 'token id 512 .* out of range'

what="prompt longer than the context"
run generate --model $D/a.gguf --prompt-ids "$(seq -s ' ' 1 513)" --ids
exit_is 1
err_has 'context of 512'

what="missing model"
run generate --model $D/nope.gguf --prompt x
exit_is 1
err_has 'nope.gguf'

what="not a model"
run generate --model $D/a_hf/tokenizer.json --prompt x
exit_is 1
err_has 'medrek generate: '

what="unknown option"
run generate --model $D/a.gguf --prompt x --bogus
exit_is 2

what="no prompt"
run generate --model $D/a.gguf
exit_is 2
err_has 'prompt'

what="bad top-p"
run generate --model $D/a.gguf --prompt x --top-p 0
exit_is 2

cli_done
