#!/usr/bin/env bash
# test_load.sh - `ttsm load`: one load then hits through the cache, JSON
# shape, budgets and exit codes.
. "$(dirname "$0")/lib.sh"

python3 - "$TMP/m.safetensors" <<'PY'
import json, struct, sys
h = json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}).encode()
open(sys.argv[1], "wb").write(struct.pack("<Q", len(h)) + h + bytes(16))
PY

run "$TTSM" load --model-path "$TMP/m.safetensors" --device cpu --repeat 3 --json
expect_rc 0
results=$(python3 -c 'import json,sys; d=json.load(sys.stdin); print(" ".join(a["result"] for a in d["loads"]), d["stats"]["loads"], d["stats"]["hits"], d["entries"][0]["refs"], d["entries"][0]["bytes"], d["entries"][0]["device"])' <<<"$OUT")
expect_eq "$results" "load hit hit 1 2 3 16 cpu" "one load, two hits, three references"

run "$TTSM" load file --model-path "$TMP/m.safetensors" --device cpu --repeat 2
expect_rc 0
expect_out "hits 1, misses 1, loads 1"
expect_out "REFS"

run "$TTSM" load --model-path "$TMP/m.safetensors" --device cpu --budget cpu=8
expect_rc 5
expect_err "cpu: over budget: file/$TMP/m.safetensors needs 16 bytes; budget 8, in use 0"

# Keep-alive: with the timer an idle entry is evicted while nothing calls the
# manager (during --hold); without it, only at the next call.
run "$TTSM" load --model-path "$TMP/m.safetensors" --device cpu --keep-alive 100ms \
    --keep-alive-timer --hold 1s --json
expect_rc 0
held=$(python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["hold"]["evictions"], len(d["entries"]))' <<<"$OUT")
expect_eq "$held" "1 0" "the timer evicted the idle entry during the hold"
run "$TTSM" load --model-path "$TMP/m.safetensors" --device cpu --keep-alive 100ms --hold 300ms --json
expect_rc 0
held=$(python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["hold"]["evictions"], d["stats"]["evictions"])' <<<"$OUT")
expect_eq "$held" "0 1" "without the timer: evicted by the listing's sweep, after the hold"
run "$TTSM" load --model-path "$TMP/m.safetensors" --keep-alive 5x
expect_rc 2
expect_err "--keep-alive wants a duration"

run "$TTSM" load --model-path "$TMP/missing.safetensors" --device cpu
expect_rc 3
run "$TTSM" load --model-path "$TMP/m.safetensors" --device tpu
expect_rc 4
run "$TTSM" load --device cpu
expect_rc 2
run "$TTSM" load --model-path "$TMP/m.safetensors" --repeat 0
expect_rc 2
run "$TTSM" load nosuchengine --model-path "$TMP/m.safetensors" --device cpu
expect_rc 3
expect_err "engine not found"
# A model of another type than the one asked for: the error names its types
# and how to ask for one (RVC's default type is vc; content-vec is hubert).
run "$TTSM" load rvc --model content-vec-best --device cpu
expect_rc 3
expect_err 'ttsm: rvc: model type not found: model "content-vec-best" has no type "vc" (its types: hubert)'
expect_err 'hint: load it as model type "hubert" (ttsm: --type hubert)'
run "$TTSM" load chatterbox --model Italian --type vc --device cpu
expect_rc 3
expect_err 'model "Italian" has no type "vc" (its types: tts)'
expect_err '(ttsm: --type tts)'
run "$TTSM" load --help
expect_rc 0
expect_out "usage: ttsm load"
done_testing
