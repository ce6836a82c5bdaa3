# lib.sh - helpers for the CLI tests: each test script sources this, runs
# commands with `run`, and checks with the expect_* functions. The script
# exits non-zero at the first failed check, printing what differed.
set -u
: "${TTSM:?TTSM must name the ttsm binary}"
: "${TTSM_SRC:?TTSM_SRC must name the source tree}"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
PASSED=0

# run CMD...: runs it, keeping stdout in $OUT, stderr in $ERR, status in $RC.
run() {
  "$@" >"$TMP/out" 2>"$TMP/err"
  RC=$?
  OUT=$(cat "$TMP/out")
  ERR=$(cat "$TMP/err")
}

fail() {
  echo "FAIL: $*" >&2
  echo "--- command stdout:" >&2; echo "$OUT" >&2
  echo "--- command stderr:" >&2; echo "$ERR" >&2
  exit 1
}

expect_rc() { [ "$RC" -eq "$1" ] || fail "exit code $RC, want $1"; PASSED=$((PASSED + 1)); }
expect_out() { grep -qF -- "$1" <<<"$OUT" || fail "stdout lacks: $1"; PASSED=$((PASSED + 1)); }
expect_err() { grep -qF -- "$1" <<<"$ERR" || fail "stderr lacks: $1"; PASSED=$((PASSED + 1)); }
expect_eq() { [ "$1" = "$2" ] || fail "'$1' != '$2' ($3)"; PASSED=$((PASSED + 1)); }
expect_ne() { [ "$1" != "$2" ] || fail "'$1' == '$2' ($3)"; PASSED=$((PASSED + 1)); }
done_testing() { echo "$PASSED passed, 0 failed"; }
