#!/usr/bin/env bash
# test_store_load.sh - every engine, model and model type loads on cpu from the
# generated store in the ComfyUI layout and in the hub-cache layout, as itself
# (no fallback) and with every tensor; the generator is deterministic and
# small; `ttsm ls` and `ttsm resolve` report what is installed and where each
# file comes from (models root, legacy folder, explicit path, hub cache).
. "$(dirname "$0")/store_lib.sh"

# ---- the generator: same bytes every run, small --------------------------
"$PY" "$GEN" "$TMP/store2" >/dev/null || fail "second gen_store.py run"
diff -r --no-dereference "$STORE" "$TMP/store2" >/dev/null || fail "two runs differ"
PASSED=$((PASSED + 1))
bytes=$(find "$STORE" -type f -printf '%s\n' | awk '{s += $1} END {print s}')
[ "$bytes" -lt 2000000 ] || fail "store holds $bytes bytes"
PASSED=$((PASSED + 1))
"$PY" "$GEN" "$TMP/store2" >/dev/null 2>&1 && fail "writing into a non-empty folder"
"$PY" "$GEN" "$TMP/store3" --engines nosuch >/dev/null 2>&1 && fail "unknown engine accepted"
"$PY" "$GEN" "$TMP/store3" --engines rvc --layout hub >/dev/null || fail "--engines rvc --layout hub"
[ ! -e "$TMP/store3/comfy" ] && [ -d "$TMP/store3/hub/datasets--SayanoAI--RVC-Studio" ] &&
  [ ! -e "$TMP/store3/hub/models--ResembleAI--chatterbox" ] || fail "--engines/--layout ignored"
PASSED=$((PASSED + 1))
# Hub entries are relative symlinks into the repo's own blobs/, like huggingface_hub's.
n_links=$(find "$STORE/hub" -type l | wc -l)
n_bad=$(find "$STORE/hub" -type l -lname '/*' | wc -l)
[ "$n_links" -gt 100 ] && [ "$n_bad" -eq 0 ] || fail "$n_links links, $n_bad absolute"
PASSED=$((PASSED + 1))

# ---- the load matrix ------------------------------------------------------
# For each engine (from `ttsm engines --json`), model and type the model
# serves, and each layout: exit 0, the entry is the model asked for, every
# component comes from that layout's file that the generator wrote (hub: the
# snapshot entry, not the blob), with as many tensors as it wrote, and the
# components are exactly the manifest's for that type and default params.
"$PY" - "$TTSM" "$STORE" "$TMP" <<'PY' || fail "load matrix"
import json, os, subprocess, sys
ttsm, store, tmp = sys.argv[1:4]
files = json.load(open(os.path.join(store, "store.json")))["files"]
by_path = {}
for f in files:
    for layout in ("comfy", "hub"):
        if layout in f:
            by_path.setdefault(os.path.join(store, f[layout]), f)
engines = json.loads(subprocess.run([ttsm, "engines", "--json"], capture_output=True,
                                    text=True, check=True).stdout)["engines"]
failures, runs, seen, no_repo = [], 0, set(), set()
for e in engines:
    m = e["manifest"]
    if not m:
        continue
    defaults = {k: v["default"] for k, v in m.get("params", {}).items()}
    for model in m["models"]:
        comps = model["components"]
        comps = [x for c in ([comps] if isinstance(comps, str) else comps)
                 for x in (m["component_sets"][c] if isinstance(c, str) else [c])]
        system = model.get("system_dirs", [])
        for t in model.get("types", [m["model_types"][0]]):
            want = sorted({c["name"] for c in comps
                           if t in c.get("types", [t])
                           and all(defaults.get(k) == v for k, v in c.get("when", {}).items())})
            has_repo = bool(model.get("repos")) or all(
                c.get("repo") or c.get("borrow") or c.get("shared") for c in comps)
            if not has_repo and not system:
                no_repo.add((m["name"], model["name"]))
            for layout in ("comfy", "hub"):
                where = (["--models-dir", store + "/comfy", "--hf-cache", tmp + "/no-hub"]
                         if layout == "comfy" else
                         ["--models-dir", tmp + "/no-root", "--hf-cache", store + "/hub"])
                r = subprocess.run([ttsm, "load", m["name"], "--model", model["name"], "--type",
                                    t, "--device", "cpu", "--json"] + where,
                                   capture_output=True, text=True)
                runs += 1
                tag = "%s/%s (%s, %s)" % (m["name"], model["name"], t, layout)
                if system:  # found in the system folder whatever the layout
                    if not any(os.path.isdir(d) for d in system):
                        continue  # this machine lacks the data: nothing to compare
                    expect_files = False
                elif layout == "hub" and not has_repo:
                    if r.returncode != 3:
                        failures.append("%s: no repo, want exit 3, got %d" % (tag, r.returncode))
                    continue
                else:
                    expect_files = True
                if r.returncode != 0:
                    failures.append("%s: exit %d: %s" % (tag, r.returncode, r.stderr.strip()))
                    continue
                d = json.loads(r.stdout)
                if d["entries"][0]["model"] != model["name"]:
                    failures.append("%s: loaded %s" % (tag, d["entries"][0]["model"]))
                got = sorted(c["name"] for c in d["model"]["components"])
                if got != want:
                    failures.append("%s: components %s, want %s" % (tag, got, want))
                for c in d["model"]["components"]:
                    f = by_path.get(c["path"])
                    if not expect_files:
                        if not any(c["path"].startswith(s + "/") for s in system):
                            failures.append("%s: %s from %s" % (tag, c["name"], c["path"]))
                        continue
                    if f is None or not c["path"].startswith(os.path.join(store, layout) + "/"):
                        failures.append("%s: %s from %s, not a %s store file" %
                                        (tag, c["name"], c["path"], layout))
                    elif layout == "hub" and "/snapshots/" not in c["path"]:
                        failures.append("%s: %s resolved into blobs: %s" % (tag, c["name"], c["path"]))
                    elif f["component"] != c["name"] or (f["kind"] == "tensors") != (c["kind"] == "tensors"):
                        failures.append("%s: %s is the generator's %s" % (tag, c["name"], f["component"]))
                    elif f["tensors"] is not None and f["tensors"] != c["tensors"]:
                        failures.append("%s: %s has %d tensors, written %d" %
                                        (tag, c["name"], c["tensors"], f["tensors"]))
                seen.add((m["name"], t))
for x in failures:
    print("FAIL:", x, file=sys.stderr)
print("%d loads, %d engine/type pairs" % (runs, len(seen)))
# Every engine with a store and each of its model types was loaded.
pairs = {(e["name"], t) for e in engines if e["manifest"] for t in e["model_types"]
         if not all(md.get("system_dirs") for md in e["manifest"]["models"])}
missing = pairs - seen
if missing:
    print("FAIL: never loaded:", sorted(missing), file=sys.stderr)
# Every model loads from the hub too, but the one docs/engines.md names as
# having no Hub repo (a GitHub-release checkpoint).
if no_repo != {("rvc", "htdemucs")}:
    print("FAIL: models without a repo:", sorted(no_repo), file=sys.stderr)
    failures.append("no_repo")
sys.exit(1 if failures or missing else 0)
PY
PASSED=$((PASSED + 1))

# Language and params pick the model and its files (canonical config).
run "$TTSM" load chatterbox --language German --device cpu --json "${COMFY[@]}"
expect_rc 0
expect_eq "$(js 'd["entries"][0]["model"]')" "German" "chatterbox German"
run "$TTSM" load f5tts --language es --device cpu --json "${HUB[@]}"
expect_rc 0
expect_eq "$(js 'd["entries"][0]["model"]')" "F5-ES" "f5tts es"
run "$TTSM" load chatterbox_official_23lang --param model_version=v1 --device cpu --json "${COMFY[@]}"
expect_rc 0
expect_eq "$(js '" ".join(sorted(c["path"].rsplit("/",1)[1] for c in d["model"]["components"]))')" \
  "Cangjie5_TC.json conds.pt mtl_tokenizer.json s3gen.pt t3_23lang.safetensors ve.pt" "23-lang v1 files"
run "$TTSM" load chatterbox_official_23lang --language fr --device cpu --json "${HUB[@]}"
expect_rc 0
expect_out "t3_mtl23ls_v2.safetensors"
expect_out "grapheme_mtl_merged_expanded_v1.json"
run "$TTSM" load ChatterBox --type vc --device cpu --json "${COMFY[@]}"
expect_rc 0
expect_eq "$(js '" ".join(sorted(c["name"] for c in d["model"]["components"]))')" \
  "conds s3gen ve" "voice conversion needs no t3 or tokenizer"

# ---- ttsm ls ----------------------------------------------------------------
n_models=$("$TTSM" engines --json | "$PY" -c '
import json, sys
print(sum(1 for e in json.load(sys.stdin)["engines"] if e["manifest"]
          for m in e["manifest"]["models"] if not m.get("system_dirs")))')
run "$TTSM" ls --json "${COMFY[@]}"
expect_rc 0
expect_eq "$(js 'sum(1 for m in d["models"] if m["complete"] and m["installed"] and m["model"] != "espeak-ng-data")')" \
  "$n_models" "every comfy model installed and complete"
expect_eq "$(js 'sum(1 for m in d["models"] if not m["complete"])')" "0" "none incomplete"
run "$TTSM" ls --json "${HUB[@]}"
expect_rc 0
# htdemucs has no Hub repo: it cannot be in the hub.
expect_eq "$(js 'sum(1 for m in d["models"] if m["complete"] and m["model"] != "espeak-ng-data")')" \
  "$((n_models - 1))" "every hub model complete"
expect_eq "$(js '[m["model"] for m in d["models"] if m["model"] == "htdemucs"]')" "[]" "no htdemucs in hub"

# Where a hub model is: its repo, the revision naming the commit, the
# commit; its size is its own files' bytes on disk (the blobs), each once.
commit=$(cat "$STORE/hub/models--ResembleAI--chatterbox/refs/main")
run "$TTSM" ls chatterbox --json "${HUB[@]}"
expect_rc 0
expect_eq "$(js '[m["where"] for m in d["models"] if m["model"] == "English"]')" \
  "[[{'repo': 'ResembleAI/chatterbox', 'revision': 'main', 'commit': '$commit'}]]" "hub where"
want=$("$TTSM" resolve chatterbox "${HUB[@]}" --json | "$PY" -c '
import json, os, sys
d = json.load(sys.stdin)
print(sum(os.path.getsize(c["path"]) for c in d["components"]
          if c["path"] and not c["borrowed"] and not c["shared"]))')
expect_eq "$(js '[m["bytes"] for m in d["models"] if m["model"] == "English"][0]')" "$want" "size on disk"
expect_eq "$(js '[m["modified"][:2] + m["modified"][-1] for m in d["models"] if m["model"] == "English"][0]')" \
  "20Z" "modified, ISO 8601 UTC"
run "$TTSM" ls chatterbox "${HUB[@]}"
grep -E "^chatterbox +English +tts +en +[0-9.]+ KiB +just now +complete +hub ResembleAI/chatterbox@main \(${commit:0:7}\)$" <<<"$OUT" >/dev/null ||
  fail "ls: hub repo, revision and commit"
PASSED=$((PASSED + 1))

mv "$STORE/comfy/TTS/chatterbox/French/t3_cfg.safetensors" "$TMP/t3_fr"
rm -r "$STORE/comfy/TTS/chatterbox/Korean"
mv "$STORE/comfy/TTS/F5-TTS/F5-DE/vocab.txt" "$TMP/vocab_de"
run "$TTSM" ls chatterbox "${COMFY[@]}"
expect_rc 0
expect_out "French"
# Size on disk, age, status and where, as `hf scan-cache` and `ollama list` show them.
grep -E '^chatterbox +French +tts +fr +[0-9.]+ KiB +just now +incomplete \(1 file missing\) +'"$STORE/comfy"'$' <<<"$OUT" >/dev/null ||
  fail "French incomplete"
grep -E '^chatterbox +English +tts +en +[0-9.]+ KiB +just now +complete +'"$STORE/comfy"'$' <<<"$OUT" >/dev/null || fail "English complete"
# Korean's own folder is gone: the English files it borrows do not make it installed.
grep -q Korean <<<"$OUT" && fail "Korean listed without --all"
PASSED=$((PASSED + 3))
run "$TTSM" ls chatterbox --all "${COMFY[@]}"
expect_rc 0
grep -E '^chatterbox +Korean +tts +ko +0 B +- +not installed +-$' <<<"$OUT" >/dev/null || fail "Korean not installed"
# Below the table: what a pull would add to each, and the command.
grep -qxF '  chatterbox/Korean: t3_cfg, tokenizer: ttsm pull chatterbox --model Korean' <<<"$OUT" ||
  fail "what a pull adds to Korean"
grep -qxF '  chatterbox/French: t3_cfg: ttsm pull chatterbox --model French' <<<"$OUT" ||
  fail "what a pull adds to French"
grep -q '  chatterbox/English:' <<<"$OUT" && fail "a complete model needs no pull"
PASSED=$((PASSED + 2))
run "$TTSM" ls f5tts --json "${COMFY[@]}"
expect_eq "$(js '[(m["model"], m["missing"]) for m in d["models"] if not m["complete"]]')" \
  "[('F5-DE', 1)]" "F5-DE lacks its vocab"
rm -r "$STORE/comfy/TTS/F5-TTS/F5-TH"
run "$TTSM" ls f5tts --json "${COMFY[@]}"
expect_eq "$(js '"F5-TH" in [m["model"] for m in d["models"]]')" "False" \
  "the shared vocoder alone does not install F5-TH"
run "$TTSM" ls nosuchengine "${COMFY[@]}"
expect_rc 3
mv "$TMP/t3_fr" "$STORE/comfy/TTS/chatterbox/French/t3_cfg.safetensors"
mv "$TMP/vocab_de" "$STORE/comfy/TTS/F5-TTS/F5-DE/vocab.txt"

# ---- ttsm resolve: where each file comes from --------------------------------
C="$STORE/comfy/TTS/chatterbox"
run "$TTSM" resolve chatterbox --language fr "${COMFY[@]}"
expect_rc 0
expect_out "chatterbox/French (tts): complete"
expect_out "$C/French/t3_cfg.safetensors  [models root]"
expect_out "$C/English/s3gen.safetensors  [models root, from English]"
expect_out "$C/English/tokenizer.json  [models root, from English]"
run "$TTSM" resolve chatterbox --language fr --json "${HUB[@]}"
expect_rc 0
expect_eq "$(js '[(c["name"], c["origin"], c["borrowed"], c["path"].split("/hub/")[1].split("/")[0]) for c in d["components"]][:2]')" \
  "[('t3_cfg', 'hub cache', False, 'models--Thomcles--Chatterbox-TTS-French'), ('s3gen', 'hub cache', True, 'models--ResembleAI--chatterbox')]" \
  "hub origins, French's own repo and English's"
# Missing: every place searched, in order (roots, legacy folders, hub repos).
mv "$C/French/t3_cfg.safetensors" "$TMP/t3_fr"
run "$TTSM" resolve chatterbox --model French "${COMFY[@]}"
expect_rc 3
expect_out "t3_cfg                 tensors  MISSING"
expect_out "      searched $C/French
      searched $STORE/comfy/chatterbox/French
      searched hub Thomcles/Chatterbox-TTS-French@main (not in cache $TMP/no-hub)"
mv "$TMP/t3_fr" "$C/French/t3_cfg.safetensors"
# Legacy folders: <root>/F5-TTS/<model>, <root>/Checkpoints/F5-TTS/<model>.
mkdir -p "$STORE/comfy/Checkpoints/F5-TTS" "$STORE/comfy/F5-TTS"
mv "$STORE/comfy/TTS/F5-TTS/F5TTS_v1_Base" "$STORE/comfy/F5-TTS/"
mv "$STORE/comfy/TTS/F5-TTS/E2TTS_Base" "$STORE/comfy/Checkpoints/F5-TTS/"
run "$TTSM" resolve f5tts --model F5TTS_v1_Base "${COMFY[@]}"
expect_rc 0
expect_out "$STORE/comfy/F5-TTS/F5TTS_v1_Base/model_1250000.safetensors  [legacy folder]"
expect_out "$STORE/comfy/TTS/F5-TTS/vocos/pytorch_model.bin  [models root, from vocos]"
run "$TTSM" load f5tts --model E2TTS_Base --device cpu --json "${COMFY[@]}"
expect_rc 0
expect_out "$STORE/comfy/Checkpoints/F5-TTS/E2TTS_Base/model_1200000.safetensors"
# An explicit folder: the model's own files from it, the shared vocoder from the roots.
run "$TTSM" resolve f5tts --model F5TTS_v1_Base --model-path "$STORE/comfy/F5-TTS/F5TTS_v1_Base" --json "${COMFY[@]}"
expect_rc 0
expect_eq "$(js '[(c["name"], c["origin"]) for c in d["components"]]')" \
  "[('model', 'explicit'), ('vocab', 'explicit'), ('vocoder', 'models root'), ('vocoder_config', 'models root')]" \
  "explicit origins"
# Several roots: the first that has the file wins; TTSM_MODELS_PATH is the default.
run "$TTSM" resolve f5tts --model F5TTS_v1_Base --models-dir "$TMP/none:$STORE/comfy" --hf-cache "$TMP/no-hub"
expect_rc 0
expect_out "[legacy folder]"
TTSM_MODELS_PATH="$STORE/comfy" HF_HUB_CACHE="$STORE/hub" run "$TTSM" resolve vibevoice --json
expect_rc 0
expect_eq "$(js '[c["origin"] for c in d["components"]]')" \
  "['models root', 'models root', 'models root', 'models root']" "TTSM_MODELS_PATH before HF_HUB_CACHE"
HF_HUB_CACHE="$STORE/hub" run "$TTSM" resolve vibevoice --json
expect_eq "$(js '[c["origin"] for c in d["components"]]')" \
  "['hub cache', 'hub cache', 'hub cache', 'hub cache']" "HF_HUB_CACHE"
expect_eq "$(js 'd["components"][3]["path"].split("/hub/")[1].split("/")[0]')" \
  "models--Qwen--Qwen2.5-1.5B" "the tokenizer from its own repo"
HF_HOME="$STORE" run "$TTSM" resolve vibevoice --json --models-dir "$TMP/no-root"
expect_eq "$(js 'd["complete"]')" "True" "HF_HOME/hub"
done_testing
