#!/usr/bin/env bash
# test_fallback_visible.sh - a fallback that succeeds is visible: a one-line
# note on stderr without -v, and in `load --json` the attempts and a
# fallback object (asked, loaded, why), on success and on failure; a
# corrupt file that falls back says so and points to ttsm verify; an
# entry is labelled with what it holds (a repo id that is another model's
# repo); `ttsm verify ENGINE` names the missing component and file; a
# broken manifest of TTSM_ENGINES_PATH is named with why.
. "$(dirname "$0")/store_lib.sh"
C="$STORE/comfy/TTS/chatterbox"

# French is missing: English is loaded, and said so without -v.
mv "$C/French/t3_cfg.safetensors" "$TMP/t3_fr"
run "$TTSM" load chatterbox --language fr --device cpu "${COMFY[@]}"
expect_rc 0
expect_err "ttsm: note: loaded chatterbox/English instead of chatterbox/French: chatterbox/French: file not found: t3_cfg.safetensors|t3_cfg.pt"
[ "$(grep -c '^ttsm: note:' <<<"$ERR")" -eq 1 ] || fail "one note line"
run "$TTSM" load chatterbox --language fr --device cpu --json "${COMFY[@]}"
expect_rc 0
expect_eq "$(js 'd["model"]["name"], d["fallback"]["asked"], d["fallback"]["loaded"], d["fallback"]["loaded_device"]')" \
  "('English', 'French', 'English', 'cpu')" "fallback object"
expect_eq "$(js '[(a["model"], a["device"], a["status"]) for a in d["attempts"]]')" \
  "[('French', 'cpu', 'TTSM_ERR_NOT_FOUND'), ('English', 'cpu', 'TTSM_OK')]" "attempts"
expect_eq "$(js '"file not found: t3_cfg.safetensors" in d["fallback"]["why"] and d["attempts"][1]["message"] == ""')" \
  "True" "why"
# Nothing loads: --json still carries the attempts.
mv "$C/English/t3_cfg.safetensors" "$TMP/t3_en"
run "$TTSM" load chatterbox --language fr --device cpu --json "${COMFY[@]}"
expect_rc 3
expect_eq "$(js 'd["error"]["status"], [a["status"] for a in d["attempts"]], d["fallback"]')" \
  "('TTSM_ERR_NOT_FOUND', ['TTSM_ERR_NOT_FOUND', 'TTSM_ERR_NOT_FOUND'], None)" "failure JSON"
mv "$TMP/t3_en" "$C/English/t3_cfg.safetensors"
mv "$TMP/t3_fr" "$C/French/t3_cfg.safetensors"
# A direct load is no fallback: no note, fallback null.
run "$TTSM" load chatterbox --language fr --device cpu --json "${COMFY[@]}"
expect_rc 0
expect_eq "$(js 'd["fallback"], d["model"]["name"]')" "(None, 'French')" "no fallback"
[[ "$ERR" != *"note:"* ]] || fail "a note without a fallback"

# A corrupt German file becomes English, visibly; with English corrupt too
# the error says how to check the model and to download the file again.
cp "$C/German/t3_cfg.safetensors" "$TMP/t3_de"
printf 'XXXXXXXXXXXXXXXX' | dd of="$C/German/t3_cfg.safetensors" bs=1 seek=0 conv=notrunc 2>/dev/null
run "$TTSM" load chatterbox --language de --device cpu "${COMFY[@]}"
expect_rc 0
expect_err "ttsm: note: loaded chatterbox/English instead of chatterbox/German: $C/German/t3_cfg.safetensors: unknown format"
cp "$C/English/t3_cfg.safetensors" "$TMP/t3_en"
printf 'XXXXXXXXXXXXXXXX' | dd of="$C/English/t3_cfg.safetensors" bs=1 seek=0 conv=notrunc 2>/dev/null
run "$TTSM" load chatterbox --language de --device cpu "${COMFY[@]}"
expect_rc 6
expect_err 'hint: the file is damaged: `ttsm verify chatterbox -m "German"` checks every file of the model; delete this one and download it again from stlohrey/chatterbox_de'
run "$TTSM" inspect "$C/English/t3_cfg.safetensors"
expect_rc 6
expect_err "hint: the file is damaged or not a checkpoint: \`ttsm verify $C/English/t3_cfg.safetensors\` checks every byte; if it was downloaded, download it again"
cp "$TMP/t3_en" "$C/English/t3_cfg.safetensors"
cp "$TMP/t3_de" "$C/German/t3_cfg.safetensors"

# Label what was loaded: French with English's repo loads English, says so.
run "$TTSM" load chatterbox --language fr --repo-id ResembleAI/chatterbox --device cpu --json "${HUB[@]}"
expect_rc 0
expect_eq "$(js 'd["model"]["name"], d["entries"][0]["model"], d["fallback"]["asked"]')" \
  "('English', 'English', 'French')" "labelled English"
expect_out "the repo ResembleAI/chatterbox holds the files of English"

# verify ENGINE names the missing component, its file and where it goes.
V="$STORE/comfy/TTS/vibevoice/vibevoice-1.5B"
mv "$V/preprocessor_config.json" "$TMP/pre"
run "$TTSM" verify vibevoice "${COMFY[@]}"
expect_rc 3
expect_out "MISSING   preprocessor_config (preprocessor_config.json): missing: put it at $V/preprocessor_config.json"
run "$TTSM" verify vibevoice --json "${COMFY[@]}"
expect_rc 3
expect_eq "$(js '[(f["component"], f["path"]) for f in d["files"] if f.get("missing")]')" \
  "[('preprocessor_config', '$V/preprocessor_config.json')]" "missing entry named"
expect_eq "$(js 'any(f["path"] is None for f in d["files"])')" "False" "no null path"
mv "$TMP/pre" "$V/preprocessor_config.json"

# A broken manifest in TTSM_ENGINES_PATH: named, with why, wherever the
# engine it would define is asked for.
mkdir -p "$TMP/engines"
printf '{"schema": 1, "name": "kokoro",' >"$TMP/engines/kokoro.json"
export TTSM_ENGINES_PATH="$TMP/engines"
run "$TTSM" load kokoro "${COMFY[@]}"
expect_rc 3
expect_err "kokoro: engine not found: not registered, and a manifest of TTSM_ENGINES_PATH failed to load: $TMP/engines/kokoro.json: invalid manifest:"
run "$TTSM" resolve kokoro "${COMFY[@]}"
expect_rc 3; expect_err "$TMP/engines/kokoro.json: invalid manifest"
run "$TTSM" ls kokoro; expect_rc 3; expect_err "$TMP/engines/kokoro.json: invalid manifest"
run "$TTSM" engines kokoro; expect_rc 3; expect_err "$TMP/engines/kokoro.json: invalid manifest"
run "$TTSM" engines; expect_rc 6; expect_out "chatterbox"
expect_err "ttsm: warning: $TMP/engines/kokoro.json: invalid manifest"
unset TTSM_ENGINES_PATH
done_testing
