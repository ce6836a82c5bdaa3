#!/usr/bin/env bash
# test_prefetch.sh - `ttsm load --prefetch`: the model's bytes are brought in
# after the load, the command waits and says how many (human and JSON); in
# read mode there is nothing to bring in.
. "$(dirname "$0")/lib.sh"
F="$TTSM_SRC/tests/fixtures/safetensors/ok_all_dtypes.safetensors"
SIZE=$(stat -c %s "$F")

run "$TTSM" load --model-path "$F" --device cpu --prefetch
expect_rc 0
expect_out "prefetched $SIZE bytes"

run "$TTSM" load --model-path "$F" --device cpu --prefetch --json
expect_rc 0
expect_out "\"bytes\": $SIZE"
expect_out "\"seconds_after_load\""

run "$TTSM" load --model-path "$F" --device cpu --prefetch --io read
expect_rc 0
expect_out "prefetched 0 bytes"

run "$TTSM" load --model-path "$F" --device cpu
expect_rc 0
[ -z "$(grep prefetched <<<"$OUT")" ] || fail "prefetch reported without --prefetch"
done_testing
