#!/usr/bin/env bash
# test_escapes.sh - the CLI on two ways out of the places models load from:
# a manifest in TTSM_ENGINES_PATH naming a system folder (it loaded
# /etc/passwd as a blob, exit 0, and `resolve` called the model complete),
# and a hub repo folder that is a symlink to a folder outside the hub (its
# files counted as inside their repo folder and loaded).
. "$(dirname "$0")/lib.sh"
unset TTSM_MODELS_PATH HF_HUB_CACHE HF_HOME
export HOME="$TMP/home"
mkdir -p "$HOME" "$TMP/eng" "$TMP/none"
OUT="" ERR=""

manifest() { # NAME SYSTEM_DIRS_JSON KIND FILE REPO
  cat <<EOF
{"schema": 1, "name": "$1", "runtime": "pytorch", "model_types": ["tts"],
 "capabilities": {"supports_voice_conversion": false, "has_fallback": false,
  "can_corrupt": false, "requires_special_init": false, "language_selects_model": false,
  "single_instance": false, "recovery": "none"},
 "devices": ["cpu"], "folder": "$1", "default_model": "m",
 "models": [{"name": "m", $2 "repos": [{"id": "$5"}],
   "components": [{"name": "w", "kind": "$3", "files": ["$4"]}]}]}
EOF
}

# ---- system_dirs from a folder manifest ------------------------------------
manifest sysread '"system_dirs": ["/etc"],' blob passwd org/none >"$TMP/eng/sysread.json"
export TTSM_ENGINES_PATH="$TMP/eng"
run "$TTSM" engines; expect_rc 6
expect_err "sysread.json: invalid manifest: models[0].system_dirs: \"/etc\" is a system folder, which only built-in manifests may name"
run "$TTSM" resolve sysread --models-dir "$TMP/none" --hf-cache "$TMP/none"
grep -q "complete" <<<"$OUT" && fail "a system folder resolved"
PASSED=$((PASSED + 1))
run "$TTSM" load sysread --device cpu --models-dir "$TMP/none" --hf-cache "$TMP/none"
expect_rc 3; expect_err "engine not found"
grep -q "passwd" <<<"$OUT" && fail "/etc/passwd was loaded"
PASSED=$((PASSED + 1))
manifest sysjson '"system_dirs": ["/etc"],' json passwd org/none >"$TMP/eng/sysread.json"
run "$TTSM" engines; expect_rc 6; expect_err "is a system folder"
grep -q "root:" <<<"$ERR" && fail "the content of /etc/passwd was quoted"
PASSED=$((PASSED + 1))
rm "$TMP/eng/sysread.json"

# ---- a hub repo folder that leads out of the hub ---------------------------
manifest hubonly '' tensors w.safetensors org/name >"$TMP/eng/hubonly.json"
C=0123456789abcdef0123456789abcdef01234567
R="$TMP/hub/models--org--name"
mkdir -p "$R/refs" "$R/blobs" "$R/snapshots/$C"
printf '%s' "$C" >"$R/refs/main"
cp "$TTSM_SRC/tests/fixtures/safetensors/ok_scalar.safetensors" "$R/blobs/b1"
ln -s ../../blobs/b1 "$R/snapshots/$C/w.safetensors"
run "$TTSM" load hubonly --device cpu --models-dir "$TMP/none" --hf-cache "$TMP/hub"; expect_rc 0
mkdir -p "$TMP/elsewhere"
mv "$R" "$TMP/elsewhere/"
ln -s "$TMP/elsewhere/models--org--name" "$R"
run "$TTSM" load hubonly --device cpu --models-dir "$TMP/none" --hf-cache "$TMP/hub"
expect_rc 6; expect_err "unsafe hub cache entry: its repo folder"
expect_err "outside the hub cache"
run "$TTSM" resolve hubonly --models-dir "$TMP/none" --hf-cache "$TMP/hub"
expect_rc 6; expect_err "outside the hub cache"
done_testing
