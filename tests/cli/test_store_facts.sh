#!/usr/bin/env bash
# test_store_facts.sh - the manifests against the real repositories: for
# each model the suite's downloaders fetch (issue 16, ENGINES.md), the file
# ttsm finds in the hub cache is the one at that repo's real path, at the
# pinned revision where there is one, and the file it finds in a models
# root is at the suite's local path. The store is generated from the
# manifests, so a wrong manifest makes a store that agrees with it; the
# table below is written from the facts, not from the manifests. Then Higgs
# Audio's pinned revision against a main in the new layout, RVC voices with
# no, one and two indexes, content-vec's repos, the legacy folders.
. "$(dirname "$0")/store_lib.sh"

"$PY" - "$TTSM" "$STORE" "$TMP" <<'PY' || fail "facts table"
import json, subprocess, sys
ttsm, store, tmp = sys.argv[1:4]
GEN, TOK = "10840182ca4ad5d9d9113b60b9bb3c1ef1ba3f84", "9d4988fbd4ad07b4cac3a5fa462741a41810dbec"
D = "datasets--SayanoAI--RVC-Studio"
# (engine, model, type, component): (hub repo folder, pinned commit or None,
# path in the repo, path below the models root)
FACTS = {
    ("chatterbox", "Russian", "tts", "t3_cfg"): ("models--niobures--Chatterbox-TTS", None, "ru/chatterbox-ru-t3k/t3_cfg.safetensors", "TTS/chatterbox/Russian/t3_cfg.safetensors"),
    ("chatterbox", "Italian", "tts", "model"): ("models--niobures--Chatterbox-TTS", None, "it,en/chatterbox_italian_final.pt", "TTS/chatterbox/Italian/chatterbox_italian_final.pt"),
    ("chatterbox", "German (havok2)", "tts", "t3_cfg"): ("models--havok2--Kartoffelbox-v0.1_0.65h2", None, "finetuned_by_h2/t3_cfg.safetensors", "TTS/chatterbox/German (havok2)/t3_cfg.safetensors"),
    ("chatterbox_official_23lang", "Official 23-Lang", "tts", "cangjie"): ("models--ResembleAI--chatterbox", None, "Cangjie5_TC.json", "TTS/chatterbox_official_23lang/Official 23-Lang/Cangjie5_TC.json"),
    ("chatterbox_official_23lang", "Official 23-Lang", "tts", "t3"): ("models--ResembleAI--chatterbox", None, "t3_mtl23ls_v2.safetensors", "TTS/chatterbox_official_23lang/Official 23-Lang/t3_mtl23ls_v2.safetensors"),
    ("f5tts", "F5TTS_Base", "tts", "model"): ("models--SWivid--F5-TTS", None, "F5TTS_Base/model_1200000.safetensors", "TTS/F5-TTS/F5TTS_Base/model_1200000.safetensors"),
    ("f5tts", "F5TTS_v1_Base", "tts", "model"): ("models--SWivid--F5-TTS", None, "F5TTS_v1_Base/model_1250000.safetensors", "TTS/F5-TTS/F5TTS_v1_Base/model_1250000.safetensors"),
    ("f5tts", "E2TTS_Base", "tts", "model"): ("models--SWivid--E2-TTS", None, "E2TTS_Base/model_1200000.safetensors", "TTS/F5-TTS/E2TTS_Base/model_1200000.safetensors"),
    ("f5tts", "E2TTS_Base", "tts", "vocab"): ("models--SWivid--E2-TTS", None, "E2TTS_Base/vocab.txt", "TTS/F5-TTS/E2TTS_Base/vocab.txt"),
    ("f5tts", "F5-DE", "tts", "model"): ("models--aihpi--F5-TTS-German", None, "F5TTS_Base/model_365000.safetensors", "TTS/F5-TTS/F5-DE/model_365000.safetensors"),
    ("f5tts", "F5-DE", "tts", "vocab"): ("models--aihpi--F5-TTS-German", None, "vocab.txt", "TTS/F5-TTS/F5-DE/vocab.txt"),
    ("f5tts", "F5-ES", "tts", "model"): ("models--jpgallegoar--F5-Spanish", None, "model_1200000.safetensors", "TTS/F5-TTS/F5-ES/model_1200000.safetensors"),
    ("f5tts", "F5-ES", "tts", "vocab"): ("models--jpgallegoar--F5-Spanish", None, "vocab.txt", "TTS/F5-TTS/F5-ES/vocab.txt"),
    ("f5tts", "F5-FR", "tts", "model"): ("models--RASPIAUDIO--F5-French-MixedSpeakers-reduced", None, "model_last_reduced.pt", "TTS/F5-TTS/F5-FR/model_last_reduced.pt"),
    ("f5tts", "F5-FR", "tts", "vocab"): ("models--RASPIAUDIO--F5-French-MixedSpeakers-reduced", None, "vocab.txt", "TTS/F5-TTS/F5-FR/vocab.txt"),
    ("f5tts", "F5-JP", "tts", "model"): ("models--Jmica--F5TTS", None, "JA_21999120/model_21999120.pt", "TTS/F5-TTS/F5-JP/model_21999120.pt"),
    ("f5tts", "F5-JP", "tts", "vocab"): ("models--Jmica--F5TTS", None, "JA_21999120/vocab_updated.txt", "TTS/F5-TTS/F5-JP/vocab_updated.txt"),
    ("f5tts", "F5-IT", "tts", "model"): ("models--alien79--F5-TTS-italian", None, "model_159600.safetensors", "TTS/F5-TTS/F5-IT/model_159600.safetensors"),
    ("f5tts", "F5-IT", "tts", "vocab"): ("models--alien79--F5-TTS-italian", None, "vocab.txt", "TTS/F5-TTS/F5-IT/vocab.txt"),
    ("f5tts", "F5-TH", "tts", "model"): ("models--VIZINTZOR--F5-TTS-THAI", None, "model_1000000.pt", "TTS/F5-TTS/F5-TH/model_1000000.pt"),
    ("f5tts", "F5-TH", "tts", "vocab"): ("models--VIZINTZOR--F5-TTS-THAI", None, "vocab.txt", "TTS/F5-TTS/F5-TH/vocab.txt"),
    ("f5tts", "F5-PT-BR", "tts", "model"): ("models--firstpixel--F5-TTS-pt-br", None, "pt-br/model_last.safetensors", "TTS/F5-TTS/F5-PT-BR/model_last.safetensors"),
    ("f5tts", "F5-PT-BR", "tts", "vocab"): ("models--SWivid--F5-TTS", None, "F5TTS_Base/vocab.txt", "TTS/F5-TTS/F5-PT-BR/vocab.txt"),
    ("f5tts", "F5-Polish", "tts", "model"): ("models--Gregniuki--F5-tts_English_German_Polish", None, "multi3/model_900000.pt", "TTS/F5-TTS/F5-Polish/model_900000.pt"),
    ("f5tts", "F5-Polish", "tts", "vocab"): ("models--Gregniuki--F5-tts_English_German_Polish", None, "multi3/vocab.txt", "TTS/F5-TTS/F5-Polish/vocab.txt"),
    ("f5tts", "F5-Hindi-Small", "tts", "model"): ("models--SPRINGLab--F5-Hindi-24KHz", None, "model_2500000.safetensors", "TTS/F5-TTS/F5-Hindi-Small/model_2500000.safetensors"),
    ("f5tts", "F5-Hindi-Small", "tts", "vocab"): ("models--SPRINGLab--F5-Hindi-24KHz", None, "vocab.txt", "TTS/F5-TTS/F5-Hindi-Small/vocab.txt"),
    ("f5tts", "F5-DE", "tts", "vocoder"): ("models--charactr--vocos-mel-24khz", None, "pytorch_model.bin", "TTS/F5-TTS/vocos/pytorch_model.bin"),
    ("f5tts", "F5-DE", "tts", "vocoder_config"): ("models--charactr--vocos-mel-24khz", None, "config.yaml", "TTS/F5-TTS/vocos/config.yaml"),
    ("higgs_audio", "higgs-audio-v2-3B", "tts", "generation"): ("models--bosonai--higgs-audio-v2-generation-3B-base", GEN, "model.safetensors.index.json", "TTS/HiggsAudio/higgs-audio-v2-3B/generation/model.safetensors.index.json"),
    ("higgs_audio", "higgs-audio-v2-3B", "tts", "generation_config"): ("models--bosonai--higgs-audio-v2-generation-3B-base", GEN, "config.json", "TTS/HiggsAudio/higgs-audio-v2-3B/generation/config.json"),
    ("higgs_audio", "higgs-audio-v2-3B", "tts", "text_tokenizer"): ("models--bosonai--higgs-audio-v2-generation-3B-base", GEN, "tokenizer.json", "TTS/HiggsAudio/higgs-audio-v2-3B/generation/tokenizer.json"),
    ("higgs_audio", "higgs-audio-v2-3B", "tts", "audio_tokenizer_config"): ("models--bosonai--higgs-audio-v2-tokenizer", TOK, "config.json", "TTS/HiggsAudio/higgs-audio-v2-3B/tokenizer/config.json"),
    ("higgs_audio", "higgs-audio-v2-3B", "tts", "audio_tokenizer"): ("models--bosonai--higgs-audio-v2-tokenizer", TOK, "model.pth", "TTS/HiggsAudio/higgs-audio-v2-3B/tokenizer/model.pth"),
    ("index_tts", "IndexTTS-2", "tts", "w2v_bert"): ("models--facebook--w2v-bert-2.0", None, "model.safetensors", "TTS/IndexTTS/w2v-bert-2.0/model.safetensors"),
    ("index_tts", "IndexTTS-2", "tts", "w2v_bert_config"): ("models--facebook--w2v-bert-2.0", None, "config.json", "TTS/IndexTTS/w2v-bert-2.0/config.json"),
    ("index_tts", "IndexTTS-2", "tts", "w2v_bert_preprocessor"): ("models--facebook--w2v-bert-2.0", None, "preprocessor_config.json", "TTS/IndexTTS/w2v-bert-2.0/preprocessor_config.json"),
    ("rvc", "Claire", "vc", "voice"): (D, None, "RVC/Claire.pth", "TTS/RVC/Claire.pth"),
    ("rvc", "Mae_v2", "vc", "voice"): (D, None, "RVC/Mae_v2.pth", "TTS/RVC/Mae_v2.pth"),
    ("rvc", "Sayano", "vc", "index"): (D, None, "RVC/.index/added_IVF1063_Flat_nprobe_1_Sayano_v2.index", "TTS/RVC/.index/added_IVF1063_Flat_nprobe_1_Sayano_v2.index"),
    ("rvc", "Fuji", "vc", "index"): (D, None, "RVC/.index/added_IVF985_Flat_nprobe_1_Fuji_v2.index", "TTS/RVC/.index/added_IVF985_Flat_nprobe_1_Fuji_v2.index"),
    ("rvc", "Monika", "vc", "index"): (D, None, "RVC/.index/Monika_v2_40k.index", "TTS/RVC/.index/Monika_v2_40k.index"),
    ("rvc", "Monika", "vc", "rmvpe"): ("models--lj1995--VoiceConversionWebUI", None, "rmvpe.pt", "TTS/RVC/rmvpe.pt"),
    ("rvc", "content-vec-best", "hubert", "hubert"): ("models--SayanoAI--RVC-models", None, "content-vec-best.safetensors", "TTS/hubert/content-vec-best.safetensors"),
    ("rvc", "japanese-hubert-base", "hubert", "hubert"): ("models--prj-beatrice--japanese-hubert-base-phoneme-ctc-v4", None, "model.safetensors", "TTS/hubert/hubert_base_jp/hubert_base_jp.safetensors"),
    ("rvc", "japanese-hubert-base", "hubert", "config"): ("models--prj-beatrice--japanese-hubert-base-phoneme-ctc-v4", None, "config.json", "TTS/hubert/hubert_base_jp/config.json"),
    ("rvc", "japanese-hubert-base", "hubert", "preprocessor_config"): ("models--prj-beatrice--japanese-hubert-base-phoneme-ctc-v4", None, "preprocessor_config.json", "TTS/hubert/hubert_base_jp/preprocessor_config.json"),
    ("rvc", "hubert-base-korean", "hubert", "hubert"): ("models--team-lucid--hubert-base-korean", None, "model.safetensors", "TTS/hubert/hubert_base_kr/hubert_base_kr.safetensors"),
    ("rvc", "hubert-base-korean", "hubert", "preprocessor_config"): ("models--team-lucid--hubert-base-korean", None, "preprocessor_config.json", "TTS/hubert/hubert_base_kr/preprocessor_config.json"),
    ("rvc", "chinese-hubert-base", "hubert", "hubert"): ("models--TencentGameMate--chinese-hubert-base", None, "pytorch_model.bin", "TTS/hubert/chinese_hubert_base/chinese-hubert-base.pt"),
    ("rvc", "chinese-hubert-base", "hubert", "config"): ("models--TencentGameMate--chinese-hubert-base", None, "config.json", "TTS/hubert/chinese_hubert_base/config.json"),
    ("rvc", "hubert-large-ls960-ft", "hubert", "hubert"): ("models--facebook--hubert-large-ls960-ft", None, "pytorch_model.bin", "TTS/hubert/hubert_large/hubert_large.pt"),
    ("rvc", "hubert-large-ls960-ft", "hubert", "preprocessor_config"): ("models--facebook--hubert-large-ls960-ft", None, "preprocessor_config.json", "TTS/hubert/hubert_large/preprocessor_config.json"),
    ("rvc", "MelBandRoformer_fp16", "separator_roformer", "separator"): ("models--Kijai--MelBandRoFormer_comfy", None, "MelBandRoformer_fp16.safetensors", "TTS/MELBAND/MelBandRoformer_fp16.safetensors"),
    ("rvc", "model_bs_roformer_ep_317_sdr_12.9755", "separator_roformer", "separator"): (D, None, "UVR/model_bs_roformer_ep_317_sdr_12.9755.ckpt", "TTS/UVR/model_bs_roformer_ep_317_sdr_12.9755.ckpt"),
    ("rvc", "UVR-MDX-NET-vocal_FT", "separator_mdx", "separator"): (D, None, "MDXNET/UVR-MDX-NET-vocal_FT.onnx", "TTS/MDXNET/UVR-MDX-NET-vocal_FT.onnx"),
    ("rvc", "MDX23C-8KFFT-InstVoc_HQ", "separator_mdx", "separator"): (D, None, "karafan/MDX23C-8KFFT-InstVoc_HQ.ckpt", "TTS/karafan/MDX23C-8KFFT-InstVoc_HQ.ckpt"),
    ("rvc", "HP5-vocals+instrumentals", "separator_vr", "separator"): (D, None, "UVR/HP5-vocals+instrumentals.pth", "TTS/UVR/HP5-vocals+instrumentals.pth"),
    ("vibevoice", "VibeVoice-1.5B", "tts", "tokenizer"): ("models--Qwen--Qwen2.5-1.5B", None, "tokenizer.json", "TTS/vibevoice/vibevoice-1.5B/tokenizer.json"),
    ("vibevoice", "VibeVoice-1.5B", "tts", "model"): ("models--microsoft--VibeVoice-1.5B", None, "model.safetensors.index.json", "TTS/vibevoice/vibevoice-1.5B/model.safetensors.index.json"),
    ("vibevoice", "VibeVoice-Large", "tts", "tokenizer"): ("models--Qwen--Qwen2.5-7B", None, "tokenizer.json", "TTS/vibevoice/vibevoice-7B/tokenizer.json"),
    ("vibevoice", "VibeVoice-Large", "tts", "config"): ("models--aoi-ot--VibeVoice-Large", None, "config.json", "TTS/vibevoice/vibevoice-7B/config.json"),
}
# index_tts: qwen0.6bemo4-merge/ holds all eleven files.
QWEN = ["Modelfile", "added_tokens.json", "chat_template.jinja", "config.json",
        "generation_config.json", "merges.txt", "model.safetensors", "special_tokens_map.json",
        "tokenizer.json", "tokenizer_config.json", "vocab.json"]
failures, checked, cache = [], 0, {}
for (eng, model, mtype, comp), (rdir, pin, rpath, lpath) in sorted(FACTS.items()):
    for layout in ("hub", "comfy"):
        key = (eng, model, mtype, layout)
        if key not in cache:
            where = (["--models-dir", tmp + "/no-root", "--hf-cache", store + "/hub"] if layout == "hub"
                     else ["--models-dir", store + "/comfy", "--hf-cache", tmp + "/no-hub"])
            r = subprocess.run([ttsm, "resolve", eng, "--model", model, "--type", mtype, "--json"] + where,
                               capture_output=True, text=True)
            cache[key] = json.loads(r.stdout) if r.returncode == 0 else r.stderr
        d = cache[key]
        tag = "%s/%s %s (%s)" % (eng, model, comp, layout)
        if isinstance(d, str):
            failures.append("%s: resolve failed: %s" % (tag, d.strip()[:300]))
            continue
        paths = {c["name"]: c["path"] for c in d["components"]}
        got = paths.get(comp)
        if layout == "hub":
            if not got or "/hub/%s/snapshots/" % rdir not in got:
                failures.append("%s: %s, want repo %s" % (tag, got, rdir))
                continue
            commit, path = got.split("/hub/%s/snapshots/" % rdir, 1)[1].split("/", 1)
            if path != rpath or (pin and commit != pin):
                failures.append("%s: %s@%s, want %s%s" % (tag, path, commit, rpath,
                                                        "@" + pin if pin else ""))
        elif got != "%s/comfy/%s" % (store, lpath):
            failures.append("%s: %s, want %s" % (tag, got, lpath))
        checked += 1
for layout, base in (("hub", "/snapshots/"), ("comfy", "/TTS/IndexTTS/IndexTTS-2/")):
    where = (["--models-dir", tmp + "/no-root", "--hf-cache", store + "/hub"] if layout == "hub"
             else ["--models-dir", store + "/comfy", "--hf-cache", tmp + "/no-hub"])
    d = json.loads(subprocess.run([ttsm, "resolve", "index_tts", "--json"] + where,
                                  capture_output=True, text=True).stdout)
    got = sorted(c["path"].split(base, 1)[1].split("/", 1)[-1] if layout == "hub"
                 else c["path"].split(base, 1)[1]
                 for c in d["components"] if "qwen0.6bemo4-merge/" in c["path"])
    want = sorted(("qwen0.6bemo4-merge/" + f) for f in QWEN)
    if got != want:
        failures.append("index_tts qwen0.6bemo4-merge (%s): %s" % (layout, got))
    checked += 1
for x in failures:
    print("FAIL:", x, file=sys.stderr)
print("%d facts checked" % checked)
sys.exit(1 if failures else 0)
PY
PASSED=$((PASSED + 1))

# ---- Higgs Audio: the pinned commits, whatever refs/main says ----------------
G="$STORE/hub/models--bosonai--higgs-audio-v2-generation-3B-base"
T="$STORE/hub/models--bosonai--higgs-audio-v2-tokenizer"
GEN=10840182ca4ad5d9d9113b60b9bb3c1ef1ba3f84 TOK=9d4988fbd4ad07b4cac3a5fa462741a41810dbec
G_MAIN=$(cat "$G/refs/main") T_MAIN=$(cat "$T/refs/main")
# The store holds main in the Transformers-5 layout beside each pinned snapshot.
[ "$G_MAIN" != "$GEN" ] && [ -L "$G/snapshots/$G_MAIN/model.safetensors" ] &&
  [ -L "$G/snapshots/$G_MAIN/config.json" ] && [ -L "$G/snapshots/$G_MAIN/chat_template.jinja" ] &&
  [ -L "$T/snapshots/$T_MAIN/config.json" ] && [ -L "$T/snapshots/$T_MAIN/preprocessor_config.json" ] ||
  fail "the store lacks the new-layout main"
PASSED=$((PASSED + 1))
commits() { js '" ".join(sorted({c["path"].split("/snapshots/")[1].split("/")[0] for c in d["model"]["components"]}))'; }
run "$TTSM" load higgs_audio --device cpu --json "${HUB[@]}"
expect_rc 0
expect_eq "$(commits)" "$GEN $TOK" "both case: every file from the pinned snapshots"
expect_eq "$(js 'len(d["model"]["components"])')" "8" "all eight components"
# Only main is there (the pinned snapshots are not): not found, and nothing
# taken from main, not even the config.json both mains hold.
mv "$G/snapshots/$GEN" "$TMP/gen_pin"
mv "$T/snapshots/$TOK" "$TMP/tok_pin"
run "$TTSM" resolve higgs_audio --json "${HUB[@]}"
expect_rc 3
expect_eq "$(js '[c["path"] for c in d["components"] if c["path"]]')" "[]" "main-only case: no file from main"
expect_eq "$(js 'd["missing"]')" "8" "main-only case: all eight missing"
run "$TTSM" resolve higgs_audio "${HUB[@]}"
expect_out "searched hub bosonai/higgs-audio-v2-generation-3B-base@$GEN (pinned revision not in cache: refs/main is ${G_MAIN:0:12}, which is not used)"
expect_out "searched hub bosonai/higgs-audio-v2-tokenizer@$TOK (pinned revision not in cache: refs/main is ${T_MAIN:0:12}, which is not used)"
run "$TTSM" load higgs_audio --device cpu "${HUB[@]}"
expect_rc 3
expect_err "higgs_audio/higgs-audio-v2-3B: file not found: model.safetensors.index.json"
# One pinned snapshot back: its files, and still nothing from the other's main.
mv "$TMP/gen_pin" "$G/snapshots/$GEN"
run "$TTSM" resolve higgs_audio --json "${HUB[@]}"
expect_rc 3
expect_eq "$(js '" ".join(c["name"] for c in d["components"] if not c["path"])')" \
  "audio_tokenizer_config audio_tokenizer" "the tokenizer's main config.json is not taken"
mv "$TMP/tok_pin" "$T/snapshots/$TOK"
# refs/main pointing at the pinned commit changes nothing; no refs at all neither.
printf '%s' "$GEN" >"$G/refs/main"
rm "$T/refs/main"
run "$TTSM" load higgs_audio --device cpu --json "${HUB[@]}"
expect_rc 0
expect_eq "$(commits)" "$GEN $TOK" "pinned snapshots with any refs"
printf '%s' "$G_MAIN" >"$G/refs/main"
printf '%s' "$T_MAIN" >"$T/refs/main"

# ---- RVC voices: no index, one, two ------------------------------------------
R="$STORE/comfy/TTS/RVC"
names() { js '" ".join(c["name"] for c in d["model"]["components"])'; }
index() { js '[c["path"].rsplit("/", 2)[-2] + "/" + c["path"].rsplit("/", 1)[1] for c in d["model"]["components"] if c["name"] == "index"]'; }
for v in Claire Mae_v2; do
  run "$TTSM" load rvc --model "$v" --device cpu --json "${COMFY[@]}"
  expect_rc 0
  expect_eq "$(names)" "voice rmvpe" "$v has no index"
  run "$TTSM" resolve rvc --model "$v" "${HUB[@]}"
  expect_rc 0
  grep -q index <<<"$OUT" && fail "$v: an index component"
done
run "$TTSM" load rvc --model Fuji --device cpu --json "${HUB[@]}"
expect_eq "$(index)" "['.index/added_IVF985_Flat_nprobe_1_Fuji_v2.index']" "Fuji: its one index"
# Sayano: two, the first preferred; either serves; neither is an error.
cp "$R/.index/added_IVF1063_Flat_nprobe_1_Sayano_v2.index" "$R/.index/Sayano_v2_40k.index"
run "$TTSM" load rvc --model Sayano --device cpu --json "${COMFY[@]}"
expect_eq "$(index)" "['.index/added_IVF1063_Flat_nprobe_1_Sayano_v2.index']" "Sayano: the first of two"
mv "$R/.index/added_IVF1063_Flat_nprobe_1_Sayano_v2.index" "$TMP/idx"
run "$TTSM" load rvc --model Sayano --device cpu --json "${COMFY[@]}"
expect_eq "$(index)" "['.index/Sayano_v2_40k.index']" "Sayano: the second"
rm "$R/.index/Sayano_v2_40k.index"
run "$TTSM" load rvc --model Sayano --device cpu --json "${COMFY[@]}"
expect_rc 0
expect_eq "$(names)" "voice rmvpe" "Sayano without an index"
run "$TTSM" resolve rvc --model Sayano "${COMFY[@]}"
expect_rc 0
expect_out "index                  blob     (optional) MISSING"
mv "$TMP/idx" "$R/.index/added_IVF1063_Flat_nprobe_1_Sayano_v2.index"
# No voice looks for an index named after itself any more.
run "$TTSM" resolve rvc --model Monika --json "${COMFY[@]}"
expect_eq "$(js '[c["files"] for c in d["components"] if c["name"] == "index"]')" "[['Monika_v2_40k.index']]" "Monika's index by its real name"

# ---- legacy folders -----------------------------------------------------------
# VibeVoice-ComfyUI kept the files flat in <root>/vibevoice/models--<org>--<repo>.
L="$TMP/legacy"
mkdir -p "$L/vibevoice"
cp -r "$STORE/comfy/TTS/vibevoice/vibevoice-1.5B" "$L/vibevoice/models--microsoft--VibeVoice-1.5B"
run "$TTSM" resolve vibevoice --json --models-dir "$L" --hf-cache "$TMP/no-hub"
expect_rc 0
expect_eq "$(js '" ".join(sorted({c["origin"] for c in d["components"]}))')" "legacy folder" "vibevoice legacy folder"
expect_out "$L/vibevoice/models--microsoft--VibeVoice-1.5B/tokenizer.json"
mkdir -p "$L/chatterbox_official_23lang"
cp -r "$STORE/comfy/TTS/chatterbox_official_23lang/Official 23-Lang" "$L/chatterbox_official_23lang/"
run "$TTSM" load chatterbox_official_23lang --device cpu --json --models-dir "$L" --hf-cache "$TMP/no-hub"
expect_rc 0
expect_out "$L/chatterbox_official_23lang/Official 23-Lang/t3_mtl23ls_v2.safetensors"
done_testing
