#!/usr/bin/env bash
# test_store_errors.sh - for every required file of each engine's default
# model, in both layouts of the generated store: removing it is exit 3
# (TTSM_ERR_NOT_FOUND) naming the file; truncating it or overwriting it with
# garbage is exit 6 (TTSM_ERR_FORMAT) naming it, invalid JSON with its line
# and column. Blobs are only checked for readability, so only their removal
# is an error. Optional files may be missing. Shards of a sharded checkpoint
# count as required files.
. "$(dirname "$0")/store_lib.sh"

"$PY" - "$TTSM" "$STORE" "$TMP" <<'PY' || fail "missing/corrupt sweep"
import json, os, shutil, subprocess, sys
ttsm, store, tmp = sys.argv[1:4]
failures, counts, per_engine = [], {}, {}
engines = json.loads(subprocess.run([ttsm, "engines", "--json"], capture_output=True,
                                    text=True, check=True).stdout)["engines"]


def load(engine, where):
    r = subprocess.run([ttsm, "load", engine, "--device", "cpu", "--json"] + where,
                       capture_output=True, text=True)
    return r.returncode, r.stderr


def check(tag, engine, where, want_rc, needles):
    rc, err = load(engine, where)
    counts[want_rc] = counts.get(want_rc, 0) + 1
    per_engine.setdefault(engine, {}).setdefault(want_rc, 0)
    per_engine[engine][want_rc] += 1
    if rc != want_rc:
        failures.append("%s: exit %d, want %d: %s" % (tag, rc, want_rc, err.strip()[:400]))
        return
    for n in needles:
        if n not in err:
            failures.append("%s: message lacks %r: %s" % (tag, n, err.strip()[:400]))


for e in engines:
    m = e["manifest"]
    if not m or all(md.get("system_dirs") for md in m["models"]):
        continue  # espeak-ng reads the system's data, not the store
    default = [md for md in m["models"] if md["name"] == m["default_model"]][0]
    for layout in ("comfy", "hub"):
        where = (["--models-dir", store + "/comfy", "--hf-cache", tmp + "/no-hub"]
                 if layout == "comfy" else
                 ["--models-dir", tmp + "/no-root", "--hf-cache", store + "/hub"])
        r = subprocess.run([ttsm, "resolve", m["name"], "--json"] + where,
                           capture_output=True, text=True)
        if r.returncode != 0:
            failures.append("%s %s: resolve exit %d" % (m["name"], layout, r.returncode))
            continue
        required, optional, alternatives = [], [], {}
        for c in json.loads(r.stdout)["components"]:
            alternatives[c["path"]] = [f for f in c["files"] if "*" not in f and
                                       f != os.path.basename(c["path"] or "")]
            # The name the error must give: the file, or its manifest pattern
            # when a '*' stands for a part only the folder knows.
            star = [f for f in c["files"] if "*" in f]
            shown = star[0] if star else os.path.basename(c["path"])
            (optional if c["optional"] else required).append((c["path"], c["kind"], shown))
            if c["path"].endswith(".safetensors.index.json"):
                index = json.load(open(c["path"]))
                for shard in sorted(set(index["weight_map"].values())):
                    required.append((os.path.join(os.path.dirname(c["path"]), shard),
                                     "shard", shard))
        if not required:
            failures.append("%s %s: no required files" % (m["name"], layout))
        for path, kind, shown in required:
            name = os.path.basename(path)
            tag = "%s %s %s" % (m["name"], layout, name)
            real = os.path.realpath(path)  # the blob behind a hub entry
            aside = os.path.join(tmp, "aside")
            # Removed (in the hub: the snapshot entry, then only its blob).
            # A file with a present alternative (the 23-language v1
            # tokenizer) is covered by test_store_fallback.sh: remove both.
            others = [p for p in (os.path.join(os.path.dirname(path), f)
                                  for f in alternatives.get(path, [])) if os.path.lexists(p)]
            for i, p in enumerate([path] + others):
                os.rename(p, aside + str(i))
            check(tag + " removed", m["name"], where, 3,
                  ["missing shard" if kind == "shard" else "file not found", shown])
            for i, p in enumerate([path] + others):
                os.rename(aside + str(i), p)
            if layout == "hub":
                for i, p in enumerate([real] + others):
                    os.rename(p, aside + str(i))
                # A snapshot link whose blob is gone is named as such.
                check(tag + " dangling", m["name"], where, 3,
                      [shown] if "*" in shown or kind == "shard" else
                      ["broken hub cache link", path + " -> ", "blob is gone",
                       "hint: run `ttsm pull %s`: it fetches the blob of" % m["name"]])
                for i, p in enumerate([real] + others):
                    os.rename(aside + str(i), p)
            if kind == "blob":
                continue
            data = open(real, "rb").read()
            bad = {"truncated": data[: len(data) // 2],
                   "garbage": (b"\xde\xad\xbe\xef garbage \x00" * len(data))[: len(data)]}
            for how, b in sorted(bad.items()):
                open(real, "wb").write(b)
                needles = [path + ": "] + (["invalid JSON", "line", "column"]
                                           if kind == "json" else [])
                check("%s %s" % (tag, how), m["name"], where, 6, needles)
            open(real, "wb").write(data)
        for path, kind, shown in optional:
            os.rename(path, os.path.join(tmp, "aside"))
            check("%s %s optional %s" % (m["name"], layout, os.path.basename(path)),
                  m["name"], where, 0, [])
            os.rename(os.path.join(tmp, "aside"), path)
for x in failures:
    print("FAIL:", x, file=sys.stderr)
for eng, c in sorted(per_engine.items()):
    print("%-28s %3d not-found %3d format %d optional-absent" %
          (eng, c.get(3, 0), c.get(6, 0), c.get(0, 0)))
print("checked: %d not-found, %d format, %d optional-absent" %
      (counts.get(3, 0), counts.get(6, 0), counts.get(0, 0)))
sys.exit(1 if failures or counts.get(3, 0) < 80 or counts.get(6, 0) < 80 else 0)
PY
PASSED=$((PASSED + 1))

# The message in full for a few: the file, the rule, the place.
C="$STORE/comfy/TTS/chatterbox/English"
printf '{"version": "1.0",\n "model": [1, 2,,]}\n' >"$TMP/bad.json"
cp "$C/tokenizer.json" "$TMP/tok"
cp "$TMP/bad.json" "$C/tokenizer.json"
run "$TTSM" load chatterbox --device cpu "${COMFY[@]}"
expect_rc 6
expect_err "ttsm: $C/tokenizer.json: invalid JSON:"
expect_err "at line 2, column"
cp "$TMP/tok" "$C/tokenizer.json"
mv "$C/ve.safetensors" "$TMP/ve"
run "$TTSM" load chatterbox --device cpu "${COMFY[@]}"
expect_rc 3
expect_err "ttsm: chatterbox/English: file not found: ve.safetensors|ve.pt (searched: $C; $STORE/comfy/chatterbox/English; hub ResembleAI/chatterbox@main (not in cache $TMP/no-hub))"
# The hint gives the exact place, and the exact pull command with the repo and file it fetches.
expect_err "hint: put ve.safetensors in $C/; or run \`ttsm pull chatterbox\` (or load with downloads on), which fetches ve.safetensors from ResembleAI/chatterbox"
[[ "$ERR" != *"<model>"* && "$ERR" != *"<models root>"* ]] || fail "a placeholder in the hint"
# The command names the model (quoted when it has spaces) and a model type
# other than the engine's first.
run "$TTSM" load chatterbox --model 'German (havok2)' --device cpu --models-dir "$TMP/none" --hf-cache "$TMP/none"
expect_rc 3
expect_err "or run \`ttsm pull chatterbox --model 'German (havok2)'\`"
run "$TTSM" load chatterbox --type vc --device cpu --models-dir "$TMP/none" --hf-cache "$TMP/none"
expect_rc 3
expect_err "or run \`ttsm pull chatterbox --type vc\`"
# The .pt alternative is taken when the .safetensors is absent.
"$PY" "$GEN" "$TMP/alt" --engines chatterbox_official_23lang --layout comfy >/dev/null
cp "$TMP/alt/comfy/TTS/chatterbox_official_23lang/Official 23-Lang/ve.pt" "$C/ve.pt"
run "$TTSM" load chatterbox --device cpu --json "${COMFY[@]}"
expect_rc 0
expect_out "$C/ve.pt"
# Both present: .safetensors first.
mv "$TMP/ve" "$C/ve.safetensors"
run "$TTSM" load chatterbox --device cpu --json "${COMFY[@]}"
expect_rc 0
expect_out "$C/ve.safetensors"
rm "$C/ve.pt"
# A corrupt shard is named, with the index it belongs to.
V="$STORE/comfy/TTS/vibevoice/vibevoice-1.5B"
cp "$V/model-00002-of-00003.safetensors" "$TMP/shard"
printf 'XXXXXXXX' | dd of="$V/model-00002-of-00003.safetensors" bs=1 seek=0 conv=notrunc 2>/dev/null
run "$TTSM" load vibevoice --device cpu "${COMFY[@]}"
expect_rc 6
expect_err "$V/model-00002-of-00003.safetensors: "
expect_err "while reading shard 'model-00002-of-00003.safetensors' of $V/model.safetensors.index.json"
cp "$TMP/shard" "$V/model-00002-of-00003.safetensors"
# In the hub the message names the snapshot entry, not the blob.
S=$(snap models--microsoft--VibeVoice-1.5B)
rm "$S/config.json"
run "$TTSM" load vibevoice --device cpu "${HUB[@]}"
expect_rc 3
expect_err "file not found: config.json (searched: $TMP/no-root/TTS/vibevoice/vibevoice-1.5B; $TMP/no-root/vibevoice/models--microsoft--VibeVoice-1.5B; $S; hub Shinku/VibeVoice-1.5B@main (not in cache $STORE/hub); hub callgg/vibevoice-bf16@main (not in cache))"
S=$(snap models--ResembleAI--chatterbox)
blob=$(realpath "$S/t3_cfg.safetensors")
cp "$blob" "$TMP/t3-blob"
truncate -s 100 "$blob"
run "$TTSM" load chatterbox --device cpu "${HUB[@]}"
expect_rc 6
expect_err "ttsm: $S/t3_cfg.safetensors: "
cp "$TMP/t3-blob" "$blob"

# Shared files are looked for in their own folder, and the hint says so:
# the F5 vocoder in TTS/F5-TTS/vocos, IndexTTS-2's CAM++ in TTS/IndexTTS/campplus.
mv "$STORE/comfy/TTS/F5-TTS/vocos/pytorch_model.bin" "$TMP/vocos"
run "$TTSM" load f5tts --device cpu "${COMFY[@]}"
expect_rc 3
expect_err "file not found: pytorch_model.bin from vocos (searched: $STORE/comfy/TTS/F5-TTS/vocos;"
expect_err "hint: put pytorch_model.bin in $STORE/comfy/TTS/F5-TTS/vocos/; or run \`ttsm pull f5tts\` (or load with downloads on), which fetches pytorch_model.bin from charactr/vocos-mel-24khz"
mv "$TMP/vocos" "$STORE/comfy/TTS/F5-TTS/vocos/pytorch_model.bin"
mv "$STORE/comfy/TTS/IndexTTS/campplus/campplus_cn_common.bin" "$TMP/campplus"
run "$TTSM" load index_tts --device cpu "${COMFY[@]}"
expect_rc 3
expect_err "hint: put campplus_cn_common.bin in $STORE/comfy/TTS/IndexTTS/campplus/; or run \`ttsm pull index_tts\` (or load with downloads on), which fetches campplus_cn_common.bin from funasr/campplus"
mv "$TMP/campplus" "$STORE/comfy/TTS/IndexTTS/campplus/campplus_cn_common.bin"
# No models root at all: the hint says how to name one, with the folder below it.
run "$TTSM" load chatterbox --device cpu --hf-cache "$TMP/no-hub"
expect_rc 3
expect_err "hint: no models root is set: pass --models-dir DIR (or --comfyui) and put t3_cfg.safetensors in DIR/TTS/chatterbox/English/"
# A hub entry whose blob is gone: the link, its target and what to do.
S=$(snap models--ResembleAI--chatterbox)
blob=$(realpath "$S/t3_cfg.safetensors")
mv "$blob" "$TMP/t3-blob"
run "$TTSM" load chatterbox --device cpu "${HUB[@]}"
expect_rc 3
expect_err "ttsm: chatterbox/English: broken hub cache link: t3_cfg: $S/t3_cfg.safetensors -> ../../blobs/"
expect_err "and its blob is gone"
expect_err "hint: run \`ttsm pull chatterbox\`: it fetches the blob of t3_cfg.safetensors from ResembleAI/chatterbox again"
mv "$TMP/t3-blob" "$blob"
done_testing
