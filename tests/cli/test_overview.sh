#!/usr/bin/env bash
# The CLI as a whole: every command has --help with examples and is listed by
# `ttsm --help`; global options work before or after the command; each error
# category has its exit code (docs/cli.md).
source "$(dirname "$0")/lib.sh"
EX=$TTSM_SRC/examples/models
export TTSM_CUDA_DRIVER=/nonexistent/libcuda.so.1

run "$TTSM" --help; expect_rc 0
for c in say engines ls resolve verify load devices key inspect convert; do
  expect_out "  $c "
  run "$TTSM" "$c" --help; expect_rc 0; expect_out "usage: ttsm $c"; expect_out "examples"
  run "$TTSM" --help; # restore OUT for the next expect_out
done
run "$TTSM" help load; expect_rc 0; expect_out "usage: ttsm load"

# Global options before and after the command name mean the same.
run "$TTSM" --models-dir "$EX" load f5tts --device cpu --json; expect_rc 0; a=$OUT
run "$TTSM" load f5tts --device cpu --json --models-dir "$EX"; expect_rc 0
python3 -c 'import json,sys; a=json.loads(sys.argv[1]); b=json.loads(sys.argv[2]); assert a["model"]["key"]==b["model"]["key"]' "$a" "$OUT" \
  || fail "global option position changed the result"
PASSED=$((PASSED + 1))
run "$TTSM" --budget nonsense load f5tts; expect_rc 2; expect_err "--budget wants DEVICE=SIZE"
run "$TTSM" --io carrier-pigeon devices; expect_rc 2

# Exit codes by category.
run "$TTSM" load chatterbox --models-dir "$TMP/none" --device cpu; expect_rc 3     # not found
run "$TTSM" load chatterbox --models-dir "$EX" --device cuda:3; expect_rc 4        # device
run "$TTSM" load chatterbox --models-dir "$EX" --device cpu --budget cpu=1K
expect_rc 5; expect_err "needs"                                                   # over budget
printf 'not a checkpoint at all' >"$TMP/bad.safetensors"
run "$TTSM" inspect "$TMP/bad.safetensors"; expect_rc 6                             # format
run "$TTSM" say "x" -o "$TMP/no/such/dir/x.wav"; expect_rc 7                        # io
run "$TTSM" say "hello" -e chatterbox --models-dir "$EX" -o "$TMP/x.wav"
expect_rc 8; expect_err "PyTorch runtime"; expect_err "hint:"                      # engine
run "$TTSM" key; expect_rc 2                                                       # usage
done_testing
