#!/bin/bash
# cli_kb.sh - `medrek kb`: every subcommand, its exit codes and messages.
# usage: bash tests/cli_kb.sh path/to/medrek   (run from the repository root)
. "$(dirname "$0")/util/cli_lib.sh"
cli_init cli_kb "$@"
DATA=tests/data/kb/edits_export.jsonl

# count NAME WANT -- command...   (number of stdout lines)
count() {
    local name=$1 want=$2
    shift 3
    local n
    n=$("$@" 2>/dev/null | wc -l)
    if [ "$n" != "$want" ]; then
        echo "FAIL $name: $n lines, expected $want"; fail=$((fail + 1))
    else
        pass=$((pass + 1))
    fi
}

KB=$TMP/a.kb
expect "help" 0 "usage: medrek kb SUBCOMMAND" -- "$BIN" kb --help
expect "no subcommand" 2 "missing subcommand" -- "$BIN" kb
expect "unknown subcommand" 2 "unknown subcommand 'frob'" -- "$BIN" kb frob
for s in list show revert history stats export import check reencode; do
    expect "$s --help" 0 "usage" -- "$BIN" kb $s --help
done
expect "no --kb" 2 "--kb FILE is required" -- "$BIN" kb list
expect "missing file" 1 "^medrek kb: $KB: no such knowledge base" -- "$BIN" kb list --kb "$KB"
expect "unknown option" 2 "unknown option '--frob'" -- "$BIN" kb list --kb "$KB" --frob
expect "option of another subcommand" 2 "option --batch does not apply" -- "$BIN" kb list --kb "$KB" --batch 1
expect "bad limit" 2 "bad value" -- "$BIN" kb list --kb "$KB" --limit x

# import creates the knowledge base
expect "import" 0 "imported 5 edits as batch 1" -- "$BIN" kb import --kb "$KB" --file "$DATA" --author tester --reason fixture
expect "import again: ids exist" 1 "medrek kb: .*$KB: edit id 1 .*already in the knowledge base" -- "$BIN" kb import --kb "$KB" --file "$DATA" --author tester
expect "import without --file" 2 "--file F is required" -- "$BIN" kb import --kb "$KB"
printf '{"prompt":"a","target_new":"b","id":9}\n{"prompt":"c","id":10}\n' >"$TMP/bad.jsonl"
expect "import malformed" 1 "bad.jsonl: line 2: missing field 'target_new'" -- "$BIN" kb import --kb "$KB" --file "$TMP/bad.jsonl" --author t
printf '{"prompt":"a","target_new":"b","id":9}\n{"prompt":"c","target_new":"d","id":9}\n' >"$TMP/dup.jsonl"
expect "import duplicate ids" 1 "line 2: id 9 repeats line 1" -- "$BIN" kb import --kb "$KB" --file "$TMP/dup.jsonl" --author t
count "nothing written by failed imports" 5 -- "$BIN" kb list --kb "$KB"

# list
expect "list" 0 "^ +5  active +batch 1 +First-line treatment.* -> Thiazide diuretics, ACE inhibitors, A\.\.\." -- "$BIN" kb list --kb "$KB"
count "list --status active" 3 -- "$BIN" kb list --kb "$KB" --status active
count "list --status superseded" 1 -- "$BIN" kb list --kb "$KB" --status superseded
count "list --limit 2" 2 -- "$BIN" kb list --kb "$KB" --limit 2
expect "list bad status" 2 "bad --status 'bogus'" -- "$BIN" kb list --kb "$KB" --status bogus

# show
expect "show" 0 "prompt +Which structure contains mitral cells" -- "$BIN" kb show 2 --kb "$KB"
expect "show history" 0 "import +edit 2 +batch 1 +by tester: fixture" -- "$BIN" kb show 2 --kb "$KB"
expect "show superseded" 0 "superseded_by +5" -- "$BIN" kb show 4 --kb "$KB"
expect "show needs encoding" 0 "needs encoding" -- "$BIN" kb show 1 --kb "$KB"
expect "show missing" 1 "no edit with id 99" -- "$BIN" kb show 99 --kb "$KB"
expect "show bad id" 2 "needs one edit id" -- "$BIN" kb show abc --kb "$KB"

# revert
expect "revert" 0 "reverted edit 2" -- "$BIN" kb revert 2 --kb "$KB" --author dana --reason "wrong source"
expect "revert again" 1 "edit 2 is already reverted" -- "$BIN" kb revert 2 --kb "$KB" --author dana
expect "revert both id and batch" 2 "one of them" -- "$BIN" kb revert 2 --batch 1 --kb "$KB"
expect "revert neither" 2 "one of them" -- "$BIN" kb revert --kb "$KB"
expect "revert default author" 0 "reverted 2 edits of batch 1" -- env USER=envuser "$BIN" kb revert --batch 1 --kb "$KB"
expect "revert no author" 2 "--author is required" -- env -u USER "$BIN" kb revert 1 --kb "$KB"
expect "revert empty batch" 1 "batch 1 has no active edits" -- "$BIN" kb revert --batch 1 --kb "$KB" --author x
count "all reverted" 0 -- "$BIN" kb list --kb "$KB" --status active

# history
count "history" 8 -- "$BIN" kb history --kb "$KB"
count "history --limit 2" 2 -- "$BIN" kb history --kb "$KB" --limit 2
expect "history last" 0 "revert +edit 5 +batch 1 +by envuser \(batch revert\)" -- "$BIN" kb history --kb "$KB" --limit 1
count "history --edit 2" 2 -- "$BIN" kb history --kb "$KB" --edit 2

# stats
expect "stats" 0 "edits +0 active, 4 reverted, 1 superseded" -- "$BIN" kb stats --kb "$KB"
expect "stats needs encoding" 0 "no vectors +5 edits \(0 active\)" -- "$BIN" kb stats --kb "$KB"

# export: stdout and --out agree; import into a fresh base round-trips
count "export" 5 -- "$BIN" kb export --kb "$KB"
expect "export --out" 0 "" -- "$BIN" kb export --kb "$KB" --out "$TMP/x1.jsonl"
"$BIN" kb export --kb "$KB" >"$TMP/x0.jsonl"
expect "export stdout == --out" 0 "" -- cmp "$TMP/x0.jsonl" "$TMP/x1.jsonl"
expect "export has fields" 0 '"id":3,"status":"reverted",.*"source":"doi:10.1000/\\"x\\" — é"' -- cat "$TMP/x1.jsonl"
expect "re-import" 0 "imported 5 edits" -- "$BIN" kb import --kb "$TMP/b.kb" --file "$TMP/x1.jsonl" --author tester --reason fixture
"$BIN" kb export --kb "$TMP/b.kb" >"$TMP/x2.jsonl"
expect "round trip" 0 "" -- cmp "$TMP/x1.jsonl" "$TMP/x2.jsonl"

expect "check" 0 "$KB: ok" -- "$BIN" kb check --kb "$KB"

# foreign and damaged files
head -c 8192 /dev/urandom >"$TMP/random.kb"
expect "random bytes" 1 "^medrek kb: $TMP/random.kb: not a medrek knowledge base \(not a SQLite database\)" -- "$BIN" kb stats --kb "$TMP/random.kb"
if command -v sqlite3 >/dev/null; then
    sqlite3 "$TMP/other.db" "CREATE TABLE t(x); INSERT INTO t VALUES(1);"
    expect "foreign SQLite" 1 "a SQLite database, but not a medrek knowledge base" -- "$BIN" kb list --kb "$TMP/other.db"
fi
head -c 50000 "$KB" >"$TMP/trunc.kb"
expect "truncated file" 1 "^medrek kb: $TMP/trunc.kb: truncated knowledge base" -- "$BIN" kb list --kb "$TMP/trunc.kb"
: >"$TMP/empty.kb"
expect "empty file" 1 "empty file, not a medrek knowledge base" -- "$BIN" kb list --kb "$TMP/empty.kb"
# reencode needs the editor (medrek edit's side): it must not succeed here
out=$("$BIN" kb reencode --kb "$KB" 2>&1)
if [ $? = 0 ]; then echo "FAIL reencode without --editor succeeded"; fail=$((fail + 1)); else pass=$((pass + 1)); fi

cli_done
