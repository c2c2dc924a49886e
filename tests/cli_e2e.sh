#!/usr/bin/env bash
# cli_e2e.sh - `medrek edit` then `medrek ask` end to end, against the
# PyTorch reference tools/ref_e2e.py wrote (tests/data/e2e/cli.tsv):
# the 61 edit requests go into a fresh knowledge base; for each question
# `medrek ask --compare` must print the retrieved edit id and similarity
# (or that none passed the prototype), the prototype similarity, and the
# greedy answers with and without the injected prompts, as torch computed
# them (also with --retrieve-k 3: every kept edit in rank order, and the
# answer with their 3*T prompt vectors); then `medrek kb revert` of the
# edit most questions retrieve, and the questions that retrieved it are
# asked again; finally `medrek kb reencode` with the mlp editor and all 24
# questions asked with it (the reference's mlp decisions without that edit).
# Usage: bash tests/cli_e2e.sh path/to/medrek   (run from the repository root)
set -u
export LC_ALL=C
. "$(dirname "$0")/util/cli_lib.sh"
cli_init cli_e2e "$@"
D=tests/data/e2e
LLM=tests/data/llama/a.gguf
ED=$D/editor_attn.safetensors
TOL=0.00015 # printed with 4 decimals: rounding (5e-5) + float32 vs float64 (< 3e-5)
KB=$TMP/kb.db
# near A B: |A - B| <= TOL
near() { awk -v a="$1" -v b="$2" -v t="$TOL" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= t) }'; }
hexof() { printf '%s' "$1" | od -An -tx1 | tr -d ' \n'; }

# ---- medrek edit
if "$BIN" edit --kb "$KB" --model "$LLM" --editor "$ED" --file "$D/edits.jsonl" \
    --author cli_e2e --reason "end-to-end check" >"$TMP/edit.out" 2>"$TMP/edit.err"; then
    ok
else
    bad "medrek edit exited non-zero: $(cat "$TMP/edit.err")"
fi
if grep -q '^added 61 edits as batch 1: ids 1\.\.61$' "$TMP/edit.out"; then ok; else
    bad "medrek edit did not report 61 edits with ids 1..61: $(cat "$TMP/edit.out")"
fi

# ask QUESTION WANT_ID WANT_SIM WANT_PROTO CMP ANSWER_HEX UNEDITED_HEX N_ACTIVE PROMPT TARGET
ask() {
    local q=$1 want=$2 wsim=$3 wproto=$4 cmp=$5 ahex=$6 uhex=$7 nact=$8 wp=$9 wt=${10} out
    out=$("$BIN" ask --kb "$KB" --model "$LLM" --editor "$ED" --prompt "$q" --compare \
        --max-tokens 8 2>"$TMP/ask.err") || {
        bad "ask \"$q\": exit non-zero: $(cat "$TMP/ask.err")"
        return
    }
    local kbl proto
    kbl=$(grep -a '^knowledge base: ' <<<"$out")
    proto=$(sed -n 's/^knowledge base: .*prototype similarity \([-0-9.]*\)$/\1/p' <<<"$kbl")
    if grep -q "^knowledge base: $nact active edits;" <<<"$kbl"; then ok; else
        bad "ask \"$q\": expected $nact active edits: $kbl"
    fi
    if [ -n "$proto" ] && near "$proto" "$wproto"; then ok; else
        bad "ask \"$q\": prototype similarity '$proto', reference $wproto"
    fi
    local line id sim
    line=$(grep -a '^retrieved: ' <<<"$out" | head -n 1)
    if [ "$want" = 0 ]; then
        if grep -q '^retrieved: none passed the prototype' <<<"$line"; then ok; else
            bad "ask \"$q\": reference retrieves nothing (prototype wins), medrek printed: $line"
        fi
    else
        id=$(sed -n 's/^retrieved: edit \([0-9]*\) similarity \([-0-9.]*\) margin .*/\1/p' <<<"$line")
        sim=$(sed -n 's/^retrieved: edit \([0-9]*\) similarity \([-0-9.]*\) margin .*/\2/p' <<<"$line")
        if [ "$id" = "$want" ]; then ok; else
            bad "ask \"$q\": reference retrieves edit $want, medrek printed: $line"
        fi
        if [ -n "$sim" ] && near "$sim" "$wsim"; then ok; else
            bad "ask \"$q\": similarity '$sim', reference $wsim"
        fi
        if grep -qxF "  prompt: $wp" <<<"$out" && grep -qxF "  target: $wt" <<<"$out"; then ok; else
            bad "ask \"$q\": the retrieved edit's prompt/target are not shown as \"$wp\" -> \"$wt\""
        fi
    fi
    if [ "$cmp" = 1 ]; then
        local a u
        a=$(grep -a '^answer: ' <<<"$out" | head -n 1)
        u=$(grep -a '^unedited: ' <<<"$out" | head -n 1)
        if [ "$(hexof "${a#answer: }")" = "$ahex" ]; then ok; else
            bad "ask \"$q\": answer with the retrieved prompts differs from torch's greedy answer: $a"
        fi
        if [ "$(hexof "${u#unedited: }")" = "$uhex" ]; then ok; else
            bad "ask \"$q\": unedited answer differs from torch's: $u"
        fi
        # the injected prompts change the input: a kept edit should show in the answer
        # (not asserted: a random model may give the same text either way)
    fi
}

revert=$(awk -F'\t' '$1 == "revert" { print $2 }' "$D/cli.tsv")
n_before=0
n_after=0
while IFS=$'\t' read -r phase q want wsim wproto cmp ahex uhex wp wt; do
    [ "$phase" = before ] || continue
    n_before=$((n_before + 1))
    ask "$q" "$want" "$wsim" "$wproto" "$cmp" "$ahex" "$uhex" 61 "$wp" "$wt"
done <"$D/cli.tsv"

# ---- --retrieve-k 3: every kept edit, in rank order, and the answer with k*T prompts
n_top3=0
while IFS=$'\t' read -r phase q wids wsims wproto cmp ahex; do
    [ "$phase" = top3 ] || continue
    n_top3=$((n_top3 + 1))
    out=$("$BIN" ask --kb "$KB" --model "$LLM" --editor "$ED" --prompt "$q" --retrieve-k 3 \
        --max-tokens 8 2>"$TMP/ask.err") || {
        bad "ask --retrieve-k 3 \"$q\": exit non-zero: $(cat "$TMP/ask.err")"
        continue
    }
    ids=$(sed -n 's/^retrieved: edit \([0-9]*\) similarity .*/\1/p' <<<"$out" | paste -sd, -)
    sims=$(sed -n 's/^retrieved: edit [0-9]* similarity \([-0-9.]*\) margin .*/\1/p' <<<"$out")
    if [ "$ids" = "$wids" ]; then ok; else
        bad "ask --retrieve-k 3 \"$q\": retrieved edits '$ids', reference '$wids'"
    fi
    i=0
    IFS=, read -ra want_sims <<<"$wsims"
    while read -r sv; do
        if [ -n "$sv" ] && [ $i -lt ${#want_sims[@]} ] && near "$sv" "${want_sims[$i]}"; then ok; else
            bad "ask --retrieve-k 3 \"$q\": similarity $((i + 1)) '$sv', reference ${want_sims[$i]:-none}"
        fi
        i=$((i + 1))
    done <<<"$sims"
    proto=$(sed -n 's/^knowledge base: .*prototype similarity \([-0-9.]*\)$/\1/p' <<<"$out")
    if [ -n "$proto" ] && near "$proto" "$wproto"; then ok; else
        bad "ask --retrieve-k 3 \"$q\": prototype similarity '$proto', reference $wproto"
    fi
    if [ "$cmp" = 1 ]; then
        a=$(grep -a '^answer: ' <<<"$out" | head -n 1)
        if [ "$(hexof "${a#answer: }")" = "$ahex" ]; then ok; else
            bad "ask --retrieve-k 3 \"$q\": answer differs from torch's greedy answer with the top-3 prompts: $a"
        fi
    fi
done <"$D/cli.tsv"

# ---- medrek kb revert, then ask again
if "$BIN" kb revert "$revert" --kb "$KB" --author cli_e2e --reason "end-to-end check" \
    >"$TMP/rev.out" 2>"$TMP/rev.err"; then ok; else
    bad "medrek kb revert $revert: $(cat "$TMP/rev.err")"
fi
while IFS=$'\t' read -r phase q want wsim wproto cmp ahex uhex wp wt; do
    [ "$phase" = after ] || continue
    n_after=$((n_after + 1))
    [ "$want" != "$revert" ] || bad "reference retrieves the reverted edit $revert after the revert"
    ask "$q" "$want" "$wsim" "$wproto" "$cmp" "$ahex" "$uhex" 60 "$wp" "$wt"
done <"$D/cli.tsv"
# ---- medrek kb reencode for the mlp editor, then every question with it
EM=$D/editor_mlp.safetensors
if "$BIN" kb reencode --kb "$KB" --model "$LLM" --editor "$EM" --author cli_e2e \
    >"$TMP/re.out" 2>"$TMP/re.err"; then ok; else
    bad "medrek kb reencode: $(cat "$TMP/re.err")"
fi
n_mlp=0
while IFS=$'\t' read -r phase q want wsim wproto; do
    [ "$phase" = mlp ] || continue
    n_mlp=$((n_mlp + 1))
    out=$("$BIN" ask --kb "$KB" --model "$LLM" --editor "$EM" --prompt "$q" --max-tokens 1 \
        2>"$TMP/ask.err") || {
        bad "ask (mlp) \"$q\": exit non-zero: $(cat "$TMP/ask.err")"
        continue
    }
    line=$(grep -a '^retrieved: ' <<<"$out" | head -n 1)
    proto=$(sed -n 's/^knowledge base: 60 active edits; prototype similarity \([-0-9.]*\)$/\1/p' <<<"$out")
    if [ -n "$proto" ] && near "$proto" "$wproto"; then ok; else
        bad "ask (mlp) \"$q\": expected 60 active edits and prototype similarity $wproto: $(head -n 1 <<<"$out")"
    fi
    if [ "$want" = 0 ]; then
        grep -q '^retrieved: none passed the prototype' <<<"$line" && ok ||
            bad "ask (mlp) \"$q\": reference retrieves nothing, medrek printed: $line"
    else
        id=$(sed -n 's/^retrieved: edit \([0-9]*\) similarity .*/\1/p' <<<"$line")
        sim=$(sed -n 's/^retrieved: edit [0-9]* similarity \([-0-9.]*\) margin .*/\1/p' <<<"$line")
        if [ "$id" = "$want" ] && [ -n "$sim" ] && near "$sim" "$wsim"; then ok; else
            bad "ask (mlp) \"$q\": reference edit $want similarity $wsim, medrek printed: $line"
        fi
    fi
done <"$D/cli.tsv"

[ "$n_mlp" -ge 20 ] && ok || bad "cli.tsv has $n_mlp mlp questions"
[ "$n_before" -ge 5 ] && [ "$n_after" -ge 1 ] && [ "$n_top3" -ge 1 ] && ok ||
    bad "cli.tsv has too few questions ($n_before, $n_top3, $n_after)"

echo "cli_e2e: $n_before questions (and $n_top3 with --retrieve-k 3) before and $n_after after reverting edit $revert; $n_mlp after kb reencode with the mlp editor"
cli_done
