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

# A file a strict reader refuses fails verify with the reader's message,
# whatever its name says (these were "ok" when the kind fell back to the
# extension and the refusal was dropped).
IDX=$TTSM_SRC/tests/fixtures/safetensors/index
run "$TTSM" verify "$IDX/missing_shard.safetensors.index.json"; expect_rc 6
expect_out "missing shard: 'shard-absent.safetensors' not found"
run "$TTSM" verify "$IDX/shard_dotdot.safetensors.index.json"; expect_rc 6
expect_out "unsafe shard name"
run "$TTSM" verify "$IDX/empty_weight_map.safetensors.index.json"; expect_rc 6
expect_out "empty weight_map"
run "$TTSM" verify "$IDX/not_index.safetensors.index.json"; expect_rc 6
expect_out "not a sharded index"
printf 'PK\003\004garbage, not an archive' >"$TMP/x.ckpt"
run "$TTSM" verify "$TMP/x.ckpt"; expect_rc 6; expect_out "x.ckpt: not a zip archive"
printf 'PK\003\004garbage, not an archive' >"$TMP/weights"
run "$TTSM" verify "$TMP/weights" --json; expect_rc 6
python3 -c 'import json,sys; f=json.load(sys.stdin)["files"][0]; assert not f["ok"] and "not a zip archive" in f["error"], f' <<<"$OUT" || fail "a zip that is no archive"
# Deflated storages are inflated when first read, not at open: verify makes
# them, so a broken stream or CRC still fails it.
MAL=$TTSM_SRC/tests/fixtures/torch/malicious
run "$TTSM" verify "$MAL/zip_crc.pt"; expect_rc 6; expect_out "CRC mismatch"
run "$TTSM" verify "$MAL/zip_bad_deflate.pt"; expect_rc 6; expect_out "corrupt deflate data"
run "$TTSM" verify "$TTSM_SRC/tests/fixtures/torch/deflated.pt"; expect_rc 0
# Every shard of a good index is checked, and a JSON file that is no
# checkpoint is still checked as JSON.
run "$TTSM" verify "$IDX/ok.safetensors.index.json"; expect_rc 0
expect_out "ok        $IDX/shard-a.safetensors"; expect_out "ok        $IDX/shard-b.safetensors"
run "$TTSM" verify "$TTSM_SRC/engines/f5tts.json"; expect_rc 0
# A FIFO is refused at once, never opened and waited on.
mkfifo "$TMP/pipe.safetensors"
run timeout 10 "$TTSM" verify "$TMP/pipe.safetensors"; expect_rc 6
expect_out "not a regular file: it is a FIFO (named pipe)"
# jansson's error quotes the file: a few bytes of it, made printable.
printf 'root:x:0:0:root:/root:/bin/bash-and-much-more-text\n' >"$TMP/passwd.json"
run "$TTSM" verify "$TMP/passwd.json"; expect_rc 6; expect_out "near 'root'"
printf '"\033[31m' >"$TMP/esc.json"
run "$TTSM" verify "$TMP/esc.json"; expect_rc 6
if grep -q $'\033' <<<"$OUT$ERR"; then fail "an ESC byte reached the terminal"; fi

# A model: every file the resolution finds.
run "$TTSM" verify espeak-ng; expect_rc 0; expect_out "espeak-ng-data/phontab"
run "$TTSM" verify chatterbox --models-dir "$TMP/empty"; expect_rc 3; expect_out "missing"
run "$TTSM" verify; expect_rc 2
run "$TTSM" verify --help; expect_rc 0; expect_out "examples:"
done_testing
