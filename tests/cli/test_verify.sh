#!/usr/bin/env bash
# `ttsm verify`: every byte read, structure checked, hub blobs hashed
# against their names; per-file report and exit codes.
source "$(dirname "$0")/lib.sh"
FIX=$TTSM_SRC/tests/fixtures/safetensors

good=$(ls "$FIX"/ok_*.safetensors | head -1)
run "$TTSM" verify "$good" "$TTSM_SRC/engines/f5tts.json"; expect_rc 0
expect_out "ok        $good"

# A hub cache blob is named by its SHA-256.
mkdir -p "$TMP/hub/blobs"
cp "$good" "$TMP/x"
sum=$(sha256sum "$TMP/x" | cut -d' ' -f1)
mv "$TMP/x" "$TMP/hub/blobs/$sum"
run "$TTSM" verify "$TMP/hub/blobs/$sum"; expect_rc 0; expect_out "(= blob name)"
cp "$TMP/hub/blobs/$sum" "$TMP/hub/blobs/0000000000000000000000000000000000000000000000000000000000000000"
run "$TTSM" verify "$TMP/hub/blobs/0000000000000000000000000000000000000000000000000000000000000000"
expect_rc 6; expect_out "does not match its blob name"

# A file that is not what its header says.
head -c 40 "$good" >"$TMP/cut.safetensors"
run "$TTSM" verify "$TMP/cut.safetensors" --json; expect_rc 6
python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["ok"] is False; f=d["files"][0]; assert f["ok"] is False and f["error"], f' <<<"$OUT" || fail "bad JSON"
printf '{"a": ' >"$TMP/bad.json"
run "$TTSM" verify "$TMP/bad.json"; expect_rc 6; expect_out "invalid JSON"

# A model: every file the resolution finds.
run "$TTSM" verify espeak-ng; expect_rc 0; expect_out "espeak-ng-data/phontab"
run "$TTSM" verify chatterbox --models-dir "$TMP/empty"; expect_rc 3; expect_out "missing"
run "$TTSM" verify; expect_rc 2
run "$TTSM" verify --help; expect_rc 0; expect_out "examples:"
done_testing
