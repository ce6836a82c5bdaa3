#!/usr/bin/env bash
# test_comfyui.sh - models as ComfyUI users keep them: --comfyui DIR and
# TTSM_COMFYUI_PATH read DIR/models and DIR/extra_model_paths.yaml (two
# sections, base_path relative to the file, a path relative to the file, a
# root that does not exist: a warning, not an error); every root is
# searched in order, none replaces another; `ttsm resolve --where` prints
# the folder and file names each file goes under in every root.
. "$(dirname "$0")/store_lib.sh"
S="$STORE/comfy/TTS/chatterbox"
CU="$TMP/ComfyUI"
mkdir -p "$CU/models/TTS/chatterbox" "$TMP/extra/voices/chatterbox" "$CU/more_tts/chatterbox"
cp -r "$S/English" "$CU/models/TTS/chatterbox/"
cp -r "$S/French" "$TMP/extra/voices/chatterbox/"
cp -r "$S/German" "$CU/more_tts/chatterbox/"
cat >"$CU/extra_model_paths.yaml" <<YAML
comfyui:
    base_path: ../extra
    checkpoints: models/checkpoints/
    TTS: voices
other:
    tts: |
        more_tts
        $TMP/gone
YAML
NOHUB=(--hf-cache "$TMP/no-hub")

# French from the YAML's first root, the English files it borrows from models/.
run "$TTSM" load chatterbox -l fr --device cpu --json --comfyui "$CU" "${NOHUB[@]}"
expect_rc 0
expect_err "ttsm: warning: models root $TMP/gone ($CU/extra_model_paths.yaml: other.tts) does not exist"
expect_eq "$(js 'd["model"]["name"], d["fallback"]')" "('French', None)" "French, no fallback"
expect_eq "$(js 'sorted({c["path"].rsplit("/", 2)[0] for c in d["model"]["components"]})')" \
  "['$CU/models/TTS/chatterbox', '$TMP/extra/voices/chatterbox']" "files from two roots"
# German from the YAML's relative path, without base_path.
run "$TTSM" load chatterbox -l de --device cpu --json --comfyui "$CU" "${NOHUB[@]}"
expect_rc 0
expect_out "$CU/more_tts/chatterbox/German/t3_cfg.safetensors"
# The environment variable is the same as the option.
TTSM_COMFYUI_PATH="$CU" run "$TTSM" load chatterbox -l de --device cpu --json "${NOHUB[@]}"
expect_rc 0
expect_out "$CU/more_tts/chatterbox/German/t3_cfg.safetensors"
# --models-dir comes first and replaces nothing: its French wins, the
# ComfyUI roots still serve what it lacks.
mkdir -p "$TMP/mine/TTS/chatterbox"
cp -r "$S/French" "$TMP/mine/TTS/chatterbox/"
run "$TTSM" load chatterbox -l fr --device cpu --json --models-dir "$TMP/mine" --comfyui "$CU" "${NOHUB[@]}"
expect_rc 0
expect_out "$TMP/mine/TTS/chatterbox/French/t3_cfg.safetensors"
expect_out "$CU/models/TTS/chatterbox/English/s3gen.safetensors"
run "$TTSM" ls chatterbox --json --models-dir "$TMP/mine" --comfyui "$CU" "${NOHUB[@]}"
expect_rc 0
expect_eq "$(js '[r["path"] for r in d["roots"]]')" \
  "['$TMP/mine', '$CU/models', '$TMP/extra/voices', '$CU/more_tts', '$TMP/gone']" "roots in order"
expect_eq "$(js '{m["model"]: m["where"][0]["root"] for m in d["models"]}')" \
  "{'English': '$CU/models', 'German': '$CU/more_tts', 'French': '$TMP/mine'}" "where each is"

# --where: every root in order, and the folder and names in each.
run "$TTSM" resolve chatterbox -l fr --where --comfyui "$CU" "${NOHUB[@]}"
expect_rc 0
expect_out "  1  $CU/models  (models root, from ComfyUI $CU)"
expect_out "  2  $TMP/extra/voices  (TTS folder, from $CU/extra_model_paths.yaml: comfyui.TTS)"
expect_out "  4  $TMP/gone  (TTS folder, from $CU/extra_model_paths.yaml: other.tts) [missing]"
expect_out "t3_cfg (tensors): t3_cfg.safetensors | t3_cfg.pt
  1  $CU/models/TTS/chatterbox/French/
  2  $TMP/extra/voices/chatterbox/French/
  3  $CU/more_tts/chatterbox/French/
  4  $TMP/gone/chatterbox/French/
  hub  Thomcles/Chatterbox-TTS-French@main: t3_cfg.safetensors"
expect_out "s3gen (tensors, from English): s3gen.safetensors | s3gen.pt
  1  $CU/models/TTS/chatterbox/English/"
run "$TTSM" resolve chatterbox -l fr --json --comfyui "$CU" "${NOHUB[@]}"
expect_eq "$(js 'd["warnings"]')" \
  "['models root $TMP/gone ($CU/extra_model_paths.yaml: other.tts) does not exist']" "one warning"

# A broken YAML file is a warning; models/ is still searched.
printf 'comfyui:\n  TTS: [voices\n' >"$CU/extra_model_paths.yaml"
run "$TTSM" load chatterbox --device cpu --comfyui "$CU" "${NOHUB[@]}"
expect_rc 0
expect_err "ttsm: warning: $CU/extra_model_paths.yaml: invalid YAML:"
expect_err "its folders are not searched"
# A ComfyUI folder that is not there: a warning, and the other roots work.
run "$TTSM" load chatterbox --device cpu --comfyui "$TMP/nowhere:$CU" "${NOHUB[@]}"
expect_rc 0
expect_err "ttsm: warning: ComfyUI folder $TMP/nowhere (comfyui_dirs) does not exist"
done_testing
