#!/usr/bin/env bash
# test_store_fallback.sh - on the generated store: each documented fallback
# takes its path (German variant -> German -> English, other languages ->
# English, VibeVoice and content-vec fallback repos, the 23-language v2
# tokenizer -> mtl_tokenizer.json) and lists every attempt when nothing
# loads; the hub cache is read safely (symlinks leaving the repo folder,
# malformed refs, unsafe revisions, .no_exist markers); and an eighth engine
# added as a manifest in a folder, with no code, loads from both layouts.
. "$(dirname "$0")/store_lib.sh"

C="$STORE/comfy/TTS/chatterbox"
model() { js 'd["entries"][0]["model"]'; }
dirs() { js '" ".join(sorted({c["path"].split("/")[-2] for c in d["model"]["components"]}))'; }

# ---- ChatterBox: German (havok2) -> German -> English ----------------------
mv "$C/German (havok2)" "$TMP/havok2"
run "$TTSM" load chatterbox --model "German (havok2)" --device cpu --json "${COMFY[@]}"
expect_rc 0
expect_eq "$(model)" "German" "havok2 missing: its base model"
expect_eq "$(dirs)" "German" "German's files only"
mv "$TMP/havok2" "$C/German (havok2)"
# A corrupt variant falls back too (FORMAT, not only NOT_FOUND).
cp "$C/German (havok2)/t3_cfg.safetensors" "$TMP/t3_h2"
printf 'not a checkpoint' >"$C/German (havok2)/t3_cfg.safetensors"
run "$TTSM" load chatterbox --model "German (havok2)" --device cpu --json "${COMFY[@]}"
expect_rc 0
expect_eq "$(model)" "German" "corrupt havok2: German"
mv "$C/German" "$TMP/german"
run "$TTSM" load chatterbox --model "German (havok2)" --device cpu --json "${COMFY[@]}"
expect_rc 0
expect_eq "$(model)" "English" "havok2 and German broken: English"
mv "$C/English" "$TMP/english"
run "$TTSM" load chatterbox --model "German (havok2)" --device cpu "${COMFY[@]}"
expect_rc 6 # the first (the requested model's) error
expect_err "ttsm: $C/German (havok2)/t3_cfg.safetensors: unknown format"
expect_err "  attempt 1: German (havok2): $C/German (havok2)/t3_cfg.safetensors: unknown format"
expect_err "  attempt 2: German: chatterbox/German: file not found: t3_cfg.safetensors|t3_cfg.pt"
expect_err "  attempt 3: English: chatterbox/English: file not found: t3_cfg.safetensors|t3_cfg.pt"
[ "$(grep -c '  attempt ' <<<"$ERR")" -eq 3 ] || fail "three attempts"
cp "$TMP/t3_h2" "$C/German (havok2)/t3_cfg.safetensors"
mv "$TMP/german" "$C/German"
mv "$TMP/english" "$C/English"
# The same in the hub: the variant's repo (with its subfolder) is absent.
mv "$STORE/hub/models--havok2--Kartoffelbox-v0.1_0.65h2" "$TMP/havok2"
run "$TTSM" load chatterbox --model "German (havok2)" --device cpu --json "${HUB[@]}"
expect_rc 0
expect_eq "$(model)" "German" "hub: havok2 absent"
expect_out "models--stlohrey--chatterbox_de/snapshots/"
mv "$TMP/havok2" "$STORE/hub/models--havok2--Kartoffelbox-v0.1_0.65h2"
run "$TTSM" load chatterbox --model "German (havok2)" --device cpu --json "${HUB[@]}"
expect_eq "$(model)" "German (havok2)" "hub: havok2 back"
expect_out "models--havok2--Kartoffelbox-v0.1_0.65h2/snapshots/"
expect_out "/finetuned_by_h2/t3_cfg.safetensors"

# ---- ChatterBox: French (any non-English) -> English -------------------------
mv "$C/French" "$TMP/french"
run "$TTSM" load chatterbox --language fr --device cpu --json "${COMFY[@]}"
expect_rc 0
expect_eq "$(model)" "English" "French missing: English"
mv "$TMP/french" "$C/French"
run "$TTSM" load chatterbox --language fr --device cpu --json "${COMFY[@]}"
expect_eq "$(model)" "French" "French back"
expect_eq "$(dirs)" "English French" "French borrows from English"
# English's s3gen is gone: French (which borrows it) and English both fail,
# and the error says which file of which model, for each attempt.
mv "$C/English/s3gen.safetensors" "$TMP/s3gen"
run "$TTSM" load chatterbox --language fr --device cpu "${COMFY[@]}"
expect_rc 3
expect_err "ttsm: chatterbox/French: file not found: s3gen.safetensors|s3gen.pt from English (borrowed) (searched: $C/English;"
expect_err "  attempt 1: French: chatterbox/French: file not found: s3gen.safetensors|s3gen.pt from English (borrowed)"
expect_err "  attempt 2: English: chatterbox/English: file not found: s3gen.safetensors|s3gen.pt (searched: $C/English;"
mv "$TMP/s3gen" "$C/English/s3gen.safetensors"
# Japanese: its own tokenizer is missing; English it is.
mv "$C/Japanese/tokenizer_jp.json" "$TMP/tok_jp"
run "$TTSM" load chatterbox --language Japanese --device cpu --json "${HUB[@]}"
expect_eq "$(model)" "Japanese" "the hub still has Japanese"
run "$TTSM" load chatterbox --language Japanese --device cpu --json "${COMFY[@]}"
expect_rc 0
expect_eq "$(model)" "English" "Japanese incomplete: English"
mv "$TMP/tok_jp" "$C/Japanese/tokenizer_jp.json"
# An engine without fallback reports its one error, with no attempts.
mv "$STORE/comfy/TTS/HiggsAudio/higgs-audio-v2-3B/tokenizer/model.pth" "$TMP/higgs"
run "$TTSM" load higgs_audio --device cpu "${COMFY[@]}"
expect_rc 3
expect_err "ttsm: higgs_audio/higgs-audio-v2-3B: file not found: model.pth"
grep -q "attempt" <<<"$ERR" && fail "no fallback for higgs_audio"
mv "$TMP/higgs" "$STORE/comfy/TTS/HiggsAudio/higgs-audio-v2-3B/tokenizer/model.pth"

# ---- fallback repos (hub) -----------------------------------------------------
H="$STORE/hub"
mv "$H/models--microsoft--VibeVoice-1.5B" "$H/models--Shinku--VibeVoice-1.5B"
run "$TTSM" load vibevoice --device cpu --json "${HUB[@]}"
expect_rc 0
expect_eq "$(js '" ".join(sorted({c["path"].split("/hub/")[1].split("/")[0] for c in d["model"]["components"]}))')" \
  "models--Qwen--Qwen2.5-1.5B models--Shinku--VibeVoice-1.5B" "primary repo absent: Shinku"
expect_eq "$(js '[c["tensors"] for c in d["model"]["components"] if c["name"] == "model"]')" "[35]" "all shards"
mv "$H/models--Shinku--VibeVoice-1.5B" "$H/models--callgg--vibevoice-bf16"
run "$TTSM" load vibevoice --device cpu --json "${HUB[@]}"
expect_rc 0
expect_out "models--callgg--vibevoice-bf16/snapshots/"
mv "$H/models--callgg--vibevoice-bf16" "$TMP/vv"
run "$TTSM" resolve vibevoice "${HUB[@]}"
expect_rc 3
expect_out "      searched hub microsoft/VibeVoice-1.5B@main (not in cache $STORE/hub)
      searched hub Shinku/VibeVoice-1.5B@main (not in cache)
      searched hub callgg/vibevoice-bf16@main (not in cache)"
mv "$TMP/vv" "$H/models--microsoft--VibeVoice-1.5B"
mv "$H/models--aoi-ot--VibeVoice-Large" "$H/models--SassyDiffusion--VibeVoice-Large-pt"
run "$TTSM" load vibevoice --model VibeVoice-Large --device cpu --json "${HUB[@]}"
expect_rc 0
expect_out "models--SassyDiffusion--VibeVoice-Large-pt/snapshots/"
expect_out "models--Qwen--Qwen2.5-7B/snapshots/"
# content-vec-best: each repo has its own file name (repo_files). The model
# repo's content-vec-best.safetensors first, then the fallback repo's
# pytorch_model.bin - never a name from the other repo.
hub_file() { js '[c["path"].split("/hub/")[1].split("/", 1)[0] + " " + c["path"].rsplit("/", 1)[1] for c in d["model"]["components"] if c["name"] == "hubert"][0]'; }
run "$TTSM" load rvc --type hubert --device cpu --json "${HUB[@]}"
expect_rc 0
expect_eq "$(model)" "content-vec-best" "hubert default model"
expect_eq "$(hub_file)" "models--SayanoAI--RVC-models content-vec-best.safetensors" "content-vec: the model repo first"
CV=$(snap models--SayanoAI--RVC-models)
LY=$(snap models--lengyue233--content-vec-best)
mv "$CV/content-vec-best.safetensors" "$TMP/cvb"
ln -s "$(readlink "$LY/pytorch_model.bin" | sed 's|models--lengyue233--content-vec-best|models--SayanoAI--RVC-models|')" "$CV/pytorch_model.bin"
cp "$(realpath "$LY/pytorch_model.bin")" "$H/models--SayanoAI--RVC-models/blobs/$(basename "$(realpath "$LY/pytorch_model.bin")")"
run "$TTSM" load rvc --type hubert --device cpu --json "${HUB[@]}"
expect_rc 0
expect_eq "$(hub_file)" "models--lengyue233--content-vec-best pytorch_model.bin" \
  "the model repo's pytorch_model.bin is not its file: the fallback repo's is"
rm "$CV/pytorch_model.bin"
mv "$TMP/cvb" "$CV/content-vec-best.safetensors"
mv "$LY/pytorch_model.bin" "$TMP/ly"
# The fallback repo holding the model repo's name is not enough: a pull of
# lengyue233/content-vec-best fetches pytorch_model.bin, so only that counts.
cp -L "$CV/content-vec-best.safetensors" "$LY/content-vec-best.safetensors"
mv "$H/models--SayanoAI--RVC-models" "$TMP/rvcm"
run "$TTSM" resolve rvc --type hubert "${HUB[@]}"
expect_rc 3
expect_out "searched hub SayanoAI/RVC-models@main (not in cache)
      searched $LY"
mv "$TMP/rvcm" "$H/models--SayanoAI--RVC-models"
rm -f "$LY/content-vec-best.safetensors"
mv "$TMP/ly" "$LY/pytorch_model.bin"

# ---- 23-language v2 tokenizer -> mtl_tokenizer.json ---------------------------------
O="$STORE/comfy/TTS/chatterbox_official_23lang/Official 23-Lang"
tok() { js '[c["path"].rsplit("/", 1)[1] for c in d["model"]["components"] if c["name"] == "tokenizer"][0]'; }
run "$TTSM" load chatterbox_official_23lang --device cpu --json "${COMFY[@]}"
expect_eq "$(tok)" "grapheme_mtl_merged_expanded_v1.json" "v2 tokenizer"
mv "$O/grapheme_mtl_merged_expanded_v1.json" "$TMP/graph"
run "$TTSM" load chatterbox_official_23lang --device cpu --json "${COMFY[@]}"
expect_rc 0
expect_eq "$(tok)" "mtl_tokenizer.json" "v2 tokenizer missing: mtl_tokenizer.json"
expect_out "t3_mtl23ls_v2.safetensors" # still the v2 model
mv "$O/mtl_tokenizer.json" "$TMP/mtl"
run "$TTSM" load chatterbox_official_23lang --device cpu "${COMFY[@]}"
expect_rc 3
expect_err "file not found: grapheme_mtl_merged_expanded_v1.json|mtl_tokenizer.json"
mv "$TMP/graph" "$O/grapheme_mtl_merged_expanded_v1.json"
mv "$TMP/mtl" "$O/mtl_tokenizer.json"
R="$H/models--ResembleAI--chatterbox"
S=$(snap models--ResembleAI--chatterbox)
rm "$S/grapheme_mtl_merged_expanded_v1.json"
mkdir -p "$R/.no_exist/$(basename "$S")"
touch "$R/.no_exist/$(basename "$S")/grapheme_mtl_merged_expanded_v1.json"
run "$TTSM" load chatterbox_official_23lang --language de --device cpu --json "${HUB[@]}"
expect_rc 0
expect_eq "$(tok)" "mtl_tokenizer.json" "hub: v2 tokenizer marked absent"

# ---- hub safety ------------------------------------------------------------------
tok_blob=$(realpath "$S/tokenizer.json")
ln -sfn /etc/passwd "$S/tokenizer.json"
run "$TTSM" load chatterbox --device cpu "${HUB[@]}"
expect_rc 6
expect_err "ttsm: $S/tokenizer.json: unsafe hub cache entry: it resolves to /etc/passwd, outside its repo folder $R"
D=$(snap models--stlohrey--chatterbox_de)
ln -sfn "../../../models--stlohrey--chatterbox_de/snapshots/$(basename "$D")/tokenizer.json" "$S/tokenizer.json"
run "$TTSM" load chatterbox --device cpu "${HUB[@]}"
expect_rc 6
expect_err "unsafe hub cache entry: it resolves to $H/models--stlohrey--chatterbox_de/blobs/"
# A sibling folder whose name starts with the repo's is outside it too.
mkdir -p "${R}-evil/blobs"
cp "$D/tokenizer.json" "${R}-evil/blobs/tok"
ln -sfn "../../../models--ResembleAI--chatterbox-evil/blobs/tok" "$S/tokenizer.json"
run "$TTSM" load chatterbox --device cpu "${HUB[@]}"
expect_rc 6
expect_err "unsafe hub cache entry"
# Resolve reports it the same way; an absolute link inside the repo is fine.
run "$TTSM" resolve chatterbox "${HUB[@]}"
expect_rc 6
ln -sfn "$tok_blob" "$S/tokenizer.json"
run "$TTSM" load chatterbox --device cpu "${HUB[@]}"
expect_rc 0
# A snapshot folder that is a symlink out of the repo.
N=$(snap models--akhbar--chatterbox-tts-norwegian)
mkdir -p "$TMP/nor" && cp -L "$N"/* "$TMP/nor/"
mv "$N" "$TMP/nor_snap" && ln -s "$TMP/nor" "$N"
run "$TTSM" resolve chatterbox --model Norwegian "${HUB[@]}"
expect_rc 6
expect_err "unsafe hub cache entry: it resolves to $TMP/nor/t3_cfg.safetensors"
rm "$N" && mv "$TMP/nor_snap" "$N"
# Refs: a 40-digit hash (a trailing newline is fine), else FORMAT.
F="$R/refs/main"
commit=$(cat "$F")
printf '%s\n' "$commit" >"$F"
run "$TTSM" load chatterbox --device cpu --json "${HUB[@]}"
expect_rc 0
for bad in "zzzz" "${commit:0:39}" "$(tr a-f A-F <<<"$commit")" "${commit}0" ""; do
  printf '%s' "$bad" >"$F"
  run "$TTSM" load chatterbox --device cpu "${HUB[@]}"
  expect_rc 6
  expect_err "ttsm: $F: malformed ref: expected a 40-digit commit hash"
done
printf '%s' "$commit" >"$F"
# A FORMAT error of a non-English model is a reason to fall back, like a
# corrupt file: the French repo's bad ref gives English, and the attempts.
F="$H/models--Thomcles--Chatterbox-TTS-French/refs/main"
commit=$(cat "$F")
printf 'zzzz' >"$F"
run "$TTSM" load chatterbox --language fr --device cpu --json "${HUB[@]}"
expect_rc 0
expect_eq "$(model)" "English" "bad French ref: English"
printf '%s' "$commit" >"$F"
run "$TTSM" resolve chatterbox --repo-id "ResembleAI/chatterbox@../../../etc" "${HUB[@]}"
expect_rc 6
expect_err "unsafe revision"
# A revision may name the commit itself.
run "$TTSM" resolve chatterbox --repo-id "Thomcles/Chatterbox-TTS-French@$commit" --json --model French "${HUB[@]}"
expect_rc 0
expect_eq "$(js 'd["components"][0]["path"].split("/snapshots/")[1].split("/")[0]')" "$commit" "commit revision"
# refs/main points at a snapshot that is not there: not in the cache.
printf '%040d' 0 >"$F"
run "$TTSM" load chatterbox --model French --device cpu "${HUB[@]}"
expect_rc 0 # falls back to English, which is in the cache
run "$TTSM" resolve chatterbox --model French "${HUB[@]}"
expect_rc 3
printf '%s' "$commit" >"$F"

# ---- .no_exist markers -------------------------------------------------------------
N=$(snap models--akhbar--chatterbox-tts-norwegian)
NX="$H/models--akhbar--chatterbox-tts-norwegian/.no_exist/$(basename "$N")"
mkdir -p "$NX"
rm "$N/conds.pt" && touch "$NX/conds.pt" # the optional file the repo lacks
run "$TTSM" load chatterbox --language no --device cpu --json "${HUB[@]}"
expect_rc 0
expect_eq "$(js '" ".join(c["name"] for c in d["model"]["components"])')" "t3_cfg s3gen ve tokenizer" "no conds"
run "$TTSM" resolve chatterbox --language no "${HUB[@]}"
expect_rc 0
expect_out "conds                  tensors  (optional) MISSING"
expect_out "searched hub akhbar/chatterbox-tts-norwegian@main (marked absent in .no_exist)"
# Marked absent wins over a file, as in huggingface_hub (every alternative marked).
touch "$NX/ve.safetensors" "$NX/ve.pt"
run "$TTSM" resolve chatterbox --language no "${HUB[@]}"
expect_rc 3
expect_out "ve                     tensors  MISSING"
rm "$NX/ve.safetensors" "$NX/ve.pt"
# Markers under the repo subfolder (havok2's finetuned_by_h2).
K=$(snap models--havok2--Kartoffelbox-v0.1_0.65h2)
KX="$H/models--havok2--Kartoffelbox-v0.1_0.65h2/.no_exist/$(basename "$K")/finetuned_by_h2"
mkdir -p "$KX" && touch "$KX/t3_cfg.safetensors" "$KX/t3_cfg.pt"
run "$TTSM" resolve chatterbox --model "German (havok2)" "${HUB[@]}"
expect_rc 3
expect_out "searched hub havok2/Kartoffelbox-v0.1_0.65h2@main (marked absent in .no_exist)"
run "$TTSM" load chatterbox --model "German (havok2)" --device cpu --json "${HUB[@]}"
expect_eq "$(model)" "German" "marked absent: German"
rm -r "$H/models--havok2--Kartoffelbox-v0.1_0.65h2/.no_exist"
# A marker in the primary repo sends that file to the next repo.
V=$(snap models--microsoft--VibeVoice-1.5B)
mkdir -p "$H/models--microsoft--VibeVoice-1.5B/.no_exist/$(basename "$V")"
touch "$H/models--microsoft--VibeVoice-1.5B/.no_exist/$(basename "$V")/preprocessor_config.json"
run "$TTSM" resolve vibevoice "${HUB[@]}"
expect_rc 3
expect_out "searched hub microsoft/VibeVoice-1.5B@main (marked absent in .no_exist)"

# ---- an eighth engine: a manifest in a folder, no code ---------------------------------
mkdir -p "$TMP/engines"
cat >"$TMP/engines/kokoro.json" <<'EOF'
{
  "schema": 1,
  "name": "kokoro",
  "aliases": ["Kokoro-82M"],
  "description": "Kokoro 82M: StyleTTS 2 style TTS with voice packs; a manifest and no code",
  "runtime": "pytorch",
  "model_types": ["tts"],
  "capabilities": {
    "supports_voice_conversion": false, "has_fallback": false, "can_corrupt": false,
    "requires_special_init": false, "language_selects_model": false,
    "single_instance": false, "recovery": "none"
  },
  "devices": ["cpu", "cuda"],
  "languages": ["en", "ja", "zh"],
  "identity_params": [],
  "folder": "kokoro",
  "legacy_folders": [],
  "default_model": "Kokoro-82M",
  "models": [
    {
      "name": "Kokoro-82M",
      "repos": [{"id": "hexgrad/Kokoro-82M"}],
      "components": [
        {"name": "model", "kind": "tensors", "files": ["kokoro-v1_0.pth"]},
        {"name": "config", "kind": "json", "files": ["config.json"]},
        {"name": "voice", "kind": "tensors", "subfolder": "voices", "files": ["af_heart.pt"]}
      ]
    }
  ]
}
EOF
run "$TTSM" engines
expect_rc 0
grep -q kokoro <<<"$OUT" && fail "kokoro without TTSM_ENGINES_PATH"
"$PY" "$GEN" "$TMP/k" --manifests "$TMP/engines" --engines kokoro >/dev/null || fail "gen kokoro"
K8="$TMP/k/comfy/TTS/kokoro/Kokoro-82M"
[ -f "$K8/kokoro-v1_0.pth" ] && [ -f "$K8/voices/af_heart.pt" ] && [ -f "$K8/config.json" ] ||
  fail "kokoro store"
export TTSM_ENGINES_PATH="$TMP/engines"
run "$TTSM" engines --json
expect_eq "$(js '[(e["name"], e["source"]) for e in d["engines"] if e["name"] == "kokoro"]')" \
  "[('kokoro', '$TMP/engines/kokoro.json')]" "the eighth engine, from its folder"
run "$TTSM" load Kokoro-82M --device cpu --json --models-dir "$TMP/k/comfy" --hf-cache "$TMP/no-hub"
expect_rc 0
expect_eq "$(js '[(c["name"], c["kind"], c["tensors"]) for c in d["model"]["components"]]')" \
  "[('model', 'tensors', 3), ('config', 'json', 0), ('voice', 'tensors', 3)]" "kokoro components"
run "$TTSM" load kokoro --device cpu --json --models-dir "$TMP/no-root" --hf-cache "$TMP/k/hub"
expect_rc 0
expect_out "$TMP/k/hub/models--hexgrad--Kokoro-82M/snapshots/"
expect_out "/voices/af_heart.pt"
run "$TTSM" ls --models-dir "$TMP/k/comfy" --hf-cache "$TMP/no-hub"
grep -E '^kokoro +Kokoro-82M +tts +- +[0-9.]+ KiB +just now +complete +'"$TMP/k/comfy"'$' <<<"$OUT" >/dev/null || fail "ls kokoro"
PASSED=$((PASSED + 1))
mv "$K8/voices/af_heart.pt" "$TMP/voice"
run "$TTSM" load kokoro --device cpu --models-dir "$TMP/k/comfy" --hf-cache "$TMP/no-hub"
expect_rc 3
expect_err "ttsm: kokoro/Kokoro-82M: file not found: af_heart.pt (searched: $K8/voices"
printf '{"broken": ' >"$K8/voices/af_heart.pt"
run "$TTSM" load kokoro --device cpu --models-dir "$TMP/k/comfy" --hf-cache "$TMP/no-hub"
expect_rc 6
expect_err "ttsm: $K8/voices/af_heart.pt: "
done_testing
