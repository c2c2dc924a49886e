# cli_lib.sh - what every tests/cli_*.sh shares: the medrek path, a temp
# directory removed on exit, the pass/fail counters, the check helpers and
# the summary line "cli_X: N passed, M failed".
# Use (run from the repository root as `bash tests/cli_X.sh path/to/medrek`):
#   . "$(dirname "$0")/util/cli_lib.sh"
#   cli_init cli_X "$@"      # sets BIN, TMP (and the EXIT trap), pass, fail
#   ... checks ...
#   cli_done                 # prints the summary; its status is the script's

# cli_init NAME ARGS...: the first argument is the medrek binary
cli_init() {
    CLI_NAME=$1
    BIN=${2:?usage: $1.sh path/to/medrek}
    TMP=$(mktemp -d "/tmp/mk_$1.XXXXXX")
    trap 'rm -rf "$TMP"' EXIT
    pass=0
    fail=0
}

cli_done() {
    echo "$CLI_NAME: $pass passed, $fail failed"
    [ "$fail" -eq 0 ]
}

# ok: count a passed check; bad MESSAGE...: count a failed one, say why
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }

# check NAME COMMAND...: passes when the command succeeds
check() {
    local name=$1
    shift
    if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL $name"; fi
}

# check_eval NAME CONDITION: passes when the shell condition (a string) holds
check_eval() { if eval "$2"; then pass=$((pass + 1)); else echo "FAIL $1"; fail=$((fail + 1)); fi; }

# expect NAME WANT_RC PATTERN -- command...   (PATTERN: grep -E on stdout+stderr, or "")
expect() {
    local name=$1 want=$2 pat=$3
    shift 4
    local out rc
    out=$("$@" 2>&1)
    rc=$?
    if [ "$rc" != "$want" ]; then
        echo "FAIL $name: exit $rc, expected $want"; echo "$out" | head -5 | sed 's/^/    /'
        fail=$((fail + 1)); return
    fi
    if [ -n "$pat" ] && ! grep -qE -- "$pat" <<<"$out"; then
        echo "FAIL $name: output does not match /$pat/"; echo "$out" | head -8 | sed 's/^/    /'
        fail=$((fail + 1)); return
    fi
    pass=$((pass + 1))
}

# expect_io NAME WANT_RC STDOUT_PATTERN STDERR_PATTERN -- command...
# (grep basic regexes, each on its own stream; an empty pattern is not checked)
expect_io() {
    local name=$1 want_rc=$2 out_pat=$3 err_pat=$4
    shift 5
    "$@" >"$TMP/out" 2>"$TMP/err"
    local rc=$?
    local good=1
    [[ $rc == "$want_rc" ]] || good=0
    if [[ -n $out_pat ]] && ! grep -q -- "$out_pat" "$TMP/out"; then good=0; fi
    if [[ -n $err_pat ]] && ! grep -q -- "$err_pat" "$TMP/err"; then good=0; fi
    if [[ $good == 1 ]]; then
        pass=$((pass + 1))
    else
        fail=$((fail + 1))
        echo "FAIL $name: rc=$rc (want $want_rc), want stdout /$out_pat/ stderr /$err_pat/"
        sed 's/^/  stdout: /' "$TMP/out" | head -5
        sed 's/^/  stderr: /' "$TMP/err" | head -12
    fi
}

# run ARGS...: runs medrek with ARGS; sets $rc, $out (stdout), $err (stderr)
# for the checks below, which name the case by $what
run() {
    "$BIN" "$@" >"$TMP/out" 2>"$TMP/err"
    rc=$?
    out=$(cat "$TMP/out")
    err=$(cat "$TMP/err")
}
exit_is() { if [ "$rc" -eq "$1" ]; then ok; else bad "$what: exit $rc, expected $1 (stderr: $err)"; fi; }
out_is() { if [ "$out" = "$1" ]; then ok; else bad "$what: stdout '$out', expected '$1'"; fi; }
# has REGEX: some stdout line matches; err_has REGEX: some stderr line does (extended regexes)
has() { if grep -Eq -- "$1" "$TMP/out"; then ok; else bad "$what: no line matching /$1/"; fi; }
err_has() { if grep -Eq -- "$1" "$TMP/err"; then ok; else bad "$what: stderr '$err' lacks /$1/"; fi; }
