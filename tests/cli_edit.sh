#!/usr/bin/env bash
# cli_edit.sh - `medrek edit` on the project's small models: a batch is
# added, exact duplicates are skipped (or kept with --keep-duplicates),
# contradicting requests in one file and conflicts with active edits are
# refused with nothing written, --supersede replaces, --dry-run writes
# nothing, bad requests are refused with their line.
#   bash tests/cli_edit.sh path/to/medrek      (from the repository root)
set -u
. "$(dirname "$0")/util/cli_lib.sh"
cli_init cli_edit "$@"
LLM=tests/data/llama/a.gguf
ED=tests/data/e2e/editor_attn.safetensors
KB=$TMP/kb.db
edit() { "$BIN" edit --kb "$KB" --model "$LLM" --editor "$ED" --author tester "$@"; }
active() { "$BIN" kb list --kb "$KB" --status active | wc -l; }

cat >"$TMP/a.jsonl" <<'J'
{"prompt": "The antidote for heparin overdose is", "target_new": "protamine sulfate"}
{"prompt": "Metformin is contraindicated when eGFR falls below", "target_new": "30 mL/min"}
J
expect_io "first batch" 0 "added 2 edits as batch 1: ids 1..2" "" -- edit --file "$TMP/a.jsonl"
check_eval "two active" '[ "$(active)" = 2 ]'

cat >"$TMP/dup.jsonl" <<'J'
{"prompt": "The antidote for heparin overdose is", "target_new": "protamine sulfate"}
{"prompt": "Warfarin is reversed with", "target_new": "vitamin K"}
{"prompt": "Warfarin is reversed with", "target_new": "vitamin K"}
J
expect_io "duplicates skipped" 0 "added 1 edits" "same prompt and target as active edit 1" -- \
    edit --file "$TMP/dup.jsonl"
expect_io "repeat inside the file named" 0 "dry run: 2 edits" "repeats request #2" -- \
    "$BIN" edit --kb "$TMP/other.db" --model "$LLM" --editor "$ED" --file "$TMP/dup.jsonl" --dry-run
check_eval "a dry run leaves no new knowledge base" '[ ! -e "$TMP/other.db" ]'
expect_io "--keep-duplicates keeps them" 0 "dry run: 3 edits" "" -- edit --file "$TMP/dup.jsonl" --dry-run --keep-duplicates
check_eval "three active" '[ "$(active)" = 3 ]'
expect_io "nothing new" 0 "nothing new" "" -- edit --file "$TMP/dup.jsonl"
check_eval "still three" '[ "$(active)" = 3 ]'

cat >"$TMP/contra.jsonl" <<'J'
{"prompt": "The first-line drug for gout flares is", "target_new": "colchicine"}
{"prompt": "The first-line drug for gout flares is", "target_new": "allopurinol"}
J
expect_io "contradiction refused" 1 "" "contradict each other; nothing written" -- edit --file "$TMP/contra.jsonl"
check_eval "contradiction wrote nothing" '[ "$(active)" = 3 ]'

cat >"$TMP/contra2.jsonl" <<'J'
{"prompt": "The antidote for heparin overdose is", "target_new": "protamine sulfate"}
{"prompt": "The first-line drug for gout flares is", "target_new": "colchicine"}
{"prompt": "The first-line drug for gout flares is", "target_new": "allopurinol"}
J
expect_io "messages keep the file's numbering after a skipped duplicate" 1 "" '#3 .* vs #2' -- \
    edit --file "$TMP/contra2.jsonl"

echo '{"prompt": "The antidote for heparin overdose is", "target_new": "naloxone"}' >"$TMP/conf.jsonl"
expect_io "conflict refused" 1 "" "conflict(s) with active edits; nothing written" -- edit --file "$TMP/conf.jsonl"
expect_io "dry run writes nothing" 0 "dry run" "" -- edit --file "$TMP/conf.jsonl" --dry-run --supersede
check_eval "conflict wrote nothing" '[ "$(active)" = 3 ]'
expect_io "supersede" 0 "superseded 1 active edit" "" -- edit --file "$TMP/conf.jsonl" --supersede
expect_io "old edit superseded" 0 "superseded" "" -- "$BIN" kb show 1 --kb "$KB"

printf '{"prompt": "ok", "target_new": "fine"}\n{"prompt": "", "target_new": "x"}\n' >"$TMP/bad.jsonl"
expect_io "empty prompt refused with its line" 1 "" "line 2" -- edit --file "$TMP/bad.jsonl"
expect_io "missing --editor is a usage error" 2 "" "required" -- \
    "$BIN" edit --kb "$KB" --model "$LLM" --file "$TMP/a.jsonl"
expect_io "help" 0 "usage: medrek edit" "" -- "$BIN" edit --help
cli_done
