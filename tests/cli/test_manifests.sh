#!/usr/bin/env bash
# test_manifests.sh - reads every manifest in engines/ and fails on a '*' in
# a repo file name (a name a pull would fetch) unless the component marks it
# "deliberate_pattern": several F5-TTS repos hold 5.4 GB training
# checkpoints and many steps beside the one a model needs, and a pattern
# would fetch them. The check is written apart from the library's own
# validation, and both are shown to catch a pattern and to accept a marked
# one.
. "$(dirname "$0")/lib.sh"

CHECK=$(cat <<'PY'
import json, os, sys

def repo_patterns(m):
    """(model, component, repo, name) for each '*' in a repo file name that
    is not marked deliberate."""
    sets = m.get("component_sets", {})
    holders = list(m["models"]) + [dict(v, name=k) for k, v in m.get("shared", {}).items()]
    out = []
    for md in holders:
        comps = md.get("components", [])
        comps = [x for c in ([comps] if isinstance(comps, str) else comps)
                 for x in (sets[c] if isinstance(c, str) else [c])]
        for c in comps:
            if not c.get("files"):
                continue
            repos = [c["repo"]] if c.get("repo") else md.get("repos", [])
            for r in repos:
                for name in c.get("repo_files", {}).get(r["id"], c["files"]):
                    if "*" in name and not c.get("deliberate_pattern"):
                        out.append((md["name"], c["name"], name, r["id"]))
    return out

bad = 0
for d in sys.argv[1:]:
    for f in sorted(os.listdir(d)):
        if f.endswith(".json"):
            for hit in repo_patterns(json.load(open(os.path.join(d, f), encoding="utf-8"))):
                print("%s: %s/%s: %r in repo %s is a pattern" % ((f,) + hit))
                bad += 1
print("%d pattern(s) in repo file names" % bad)
sys.exit(1 if bad else 0)
PY
)

# Every shipped manifest: exact repo file names only.
run python3 -c "$CHECK" "$TTSM_SRC/engines"
expect_rc 0
expect_out "0 pattern(s) in repo file names"
n=$(ls "$TTSM_SRC"/engines/*.json | wc -l)
[ "$n" -ge 8 ] || fail "only $n manifests"
PASSED=$((PASSED + 1))

# The check and the library both catch the pattern F5-TTS once had...
mkdir -p "$TMP/bad" "$TMP/ok"
python3 - "$TTSM_SRC/engines/f5tts.json" "$TMP" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
m["models"][0]["components"][0]["files"] = ["model_*.safetensors"]
json.dump(m, open(sys.argv[2] + "/bad/f5tts.json", "w"), indent=1)
m["models"][0]["components"][0]["deliberate_pattern"] = True
json.dump(m, open(sys.argv[2] + "/ok/f5tts.json", "w"), indent=1)
PY
run python3 -c "$CHECK" "$TMP/bad"
expect_rc 1
expect_out "f5tts.json: F5TTS_Base/model: 'model_*.safetensors' in repo SWivid/F5-TTS is a pattern"
TTSM_ENGINES_PATH="$TMP/bad" run "$TTSM" engines
expect_rc 6
expect_err "$TMP/bad/f5tts.json: invalid manifest: models[0].components[0]: component \"model\": \"model_*.safetensors\" in repo SWivid/F5-TTS is a pattern"
expect_err "set \"deliberate_pattern\": true"
# ...and both accept it when it is marked deliberate.
run python3 -c "$CHECK" "$TMP/ok"
expect_rc 0
TTSM_ENGINES_PATH="$TMP/ok" run "$TTSM" engines --json
expect_rc 0
expect_eq "$(python3 -c 'import json,sys; print([e["source"] for e in json.load(sys.stdin)["engines"] if e["name"] == "f5tts"][0])' <<<"$OUT")" \
  "$TMP/ok/f5tts.json" "the marked manifest replaces the built-in one"
done_testing
