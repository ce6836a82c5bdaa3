#!/usr/bin/env bash
# examples/models: the committed sample store is what the generator writes
# today, and every engine loads from it (the README's main job uses it).
source "$(dirname "$0")/lib.sh"
EX=$TTSM_SRC/examples/models

/usr/bin/python3 "$TTSM_SRC/tests/fixtures/gen_store.py" "$TMP/store" --layout comfy >/dev/null \
  || fail "generator failed"
run diff -r "$TMP/store/comfy/TTS" "$EX/TTS"
expect_rc 0

for engine in chatterbox chatterbox_official_23lang f5tts higgs_audio rvc vibevoice index_tts; do
  run "$TTSM" load "$engine" --models-dir "$EX" --device auto --json
  expect_rc 0
  python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["loads"][0]["result"]=="load"; assert d["model"]["components"], d; assert d["fallback"] is None and [a["status"] for a in d["attempts"]]==["TTSM_OK"], d' <<<"$OUT" \
    || fail "$engine: bad load JSON"
done
run "$TTSM" ls --models-dir "$EX" --json; expect_rc 0
python3 -c '
import json, sys
d = json.load(sys.stdin)
engines = {m["engine"] for m in d["models"] if m["complete"]}
want = {"chatterbox", "chatterbox_official_23lang", "f5tts", "higgs_audio", "rvc", "vibevoice", "index_tts"}
assert want <= engines, want - engines
' <<<"$OUT" || fail "ls does not show every engine complete"
PASSED=$((PASSED + 1))
done_testing
