#!/usr/bin/env bash
# test_cli_options.sh - one table of options served by one parser: -vv and
# clustered flags, an option means the same in every command that takes
# it (-l, -e, --repo-id, --json on say and convert, --name=value), options
# a command does not take are refused by name, and `ttsm load`'s table
# stays aligned for long engine names.
. "$(dirname "$0")/store_lib.sh"
EX=$TTSM_SRC/examples/models
export TTSM_CUDA_DRIVER=/nonexistent/libcuda.so.1

# -vv: debug lines, before or after the command; -v: info only.
run "$TTSM" -vv load chatterbox --models-dir "$EX" --device cpu
expect_rc 0; expect_err "ttsm: [debug] try chatterbox/English on cpu"
run "$TTSM" load chatterbox --models-dir "$EX" --device cpu -vv
expect_rc 0; expect_err "[debug]"
run "$TTSM" load chatterbox --models-dir "$EX" --device cpu -v
expect_rc 0; expect_err "[info] loaded"
[[ "$ERR" != *"[debug]"* ]] || fail "-v printed debug lines"
run "$TTSM" -vqv load chatterbox --models-dir "$EX" --device cpu; expect_rc 0; expect_err "[debug]"
run "$TTSM" -vx devices; expect_rc 2; expect_err "unknown option '-x'"

# -l, -e, -m, -d: the same meaning in load, resolve, key and verify.
run "$TTSM" load chatterbox -l fr --models-dir "$EX" -d cpu --json; expect_rc 0
expect_eq "$(js 'd["model"]["name"]')" "French" "load -l fr"
run "$TTSM" load -e chatterbox --language=fr --models-dir "$EX" --device=cpu --json; expect_rc 0
expect_eq "$(js 'd["model"]["name"]')" "French" "load -e, --language=fr"
run "$TTSM" resolve chatterbox -l fr --models-dir "$EX" --json; expect_rc 0
expect_eq "$(js 'd["model"]')" "French" "resolve -l fr"
run "$TTSM" key chatterbox -l fr; a=$OUT
run "$TTSM" key -e chatterbox --language French; expect_eq "$OUT" "$a" "key -l fr = --language French"
run "$TTSM" verify chatterbox -l fr --models-dir "$EX"; expect_rc 0
run "$TTSM" load chatterbox -e f5tts --models-dir "$EX"; expect_rc 2; expect_err "ENGINE given twice"
# --repo-id: load takes it as key and resolve do.
run "$TTSM" load chatterbox --repo-id ResembleAI/chatterbox "${HUB[@]}" --device cpu --json
expect_rc 0
expect_out "models--ResembleAI--chatterbox/snapshots/"
run "$TTSM" resolve chatterbox --repo-id ResembleAI/chatterbox "${HUB[@]}"; expect_rc 0
run "$TTSM" key chatterbox --repo-id ResembleAI/chatterbox --explain; expect_out "repo:ResembleAI/chatterbox@main"

# An option the command does not take is refused by name.
run "$TTSM" devices --model x; expect_rc 2; expect_err "'--model' is not an option of ttsm devices"
run "$TTSM" ls -l fr; expect_rc 2; expect_err "'-l' is not an option of ttsm ls"
run "$TTSM" --json devices; expect_rc 2; expect_err "'--json' goes after a command name"
run "$TTSM" load --repeat; expect_rc 2; expect_err "--repeat needs a value"
run "$TTSM" devices --json=yes; expect_rc 2; expect_err "--json takes no value"

# --json on say and convert.
run "$TTSM" say "Hello" -o "$TMP/hello.wav" --json; expect_rc 0
expect_eq "$(js 'd["output"], d["engine"], d["sample_rate"], d["fallback"], d["attempts"][0]["status"]')" \
  "('$TMP/hello.wav', 'espeak-ng', 22050, None, 'TTSM_OK')" "say --json"
[ -s "$TMP/hello.wav" ] || fail "say --json wrote no WAV"
run "$TTSM" say "Hello" --json -o -; expect_rc 2; expect_err "--json prints on standard output"
"$TTSM" convert "$EX/TTS/chatterbox/English/conds.pt" "$TMP/conds.safetensors" --json >"$TMP/out" 2>"$TMP/err"
RC=$?; OUT=$(cat "$TMP/out"); ERR=$(cat "$TMP/err")
expect_rc 0
expect_eq "$(js 'd["output"], d["tensors"] > 0')" "('$TMP/conds.safetensors', True)" "convert --json"

# The `ttsm load` table stays aligned for engine names longer than the column.
run "$TTSM" load chatterbox_official_23lang --models-dir "$EX" --device cpu; expect_rc 0
"$PY" - <<PY || fail "load table out of line"
import re
lines = """$OUT""".splitlines()
head = next(l for l in lines if l.startswith("KEY"))
row = next(l for l in lines if re.match(r"^[0-9a-f]{32}  chatterbox_official_23lang", l))
for col in ("DEVICE", "BYTES", "REFS", "MODEL"):
    i = head.index(col)
    assert row[i - 1] == " " and row[i] != " " or col in ("BYTES", "REFS"), (col, head, row)
# Right-aligned numbers end where their header ends.
for col in ("BYTES", "REFS"):
    end = head.index(col) + len(col)
    assert row[end - 1] != " " and (end == len(row) or row[end] == " "), (col, head, row)
assert row.index("cpu") == head.index("DEVICE"), (head, row)
PY
PASSED=$((PASSED + 1))
done_testing
