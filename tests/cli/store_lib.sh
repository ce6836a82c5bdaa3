# store_lib.sh - shared by the test_store_*.sh tests: generates the miniature
# model store (tests/fixtures/gen_store.py, docs/test-store.md) in the test's
# temporary folder and isolates ttsm from the user's models and hub cache.
. "$(dirname "$0")/lib.sh"

PY=/usr/bin/python3
GEN="$TTSM_SRC/tests/fixtures/gen_store.py"
unset TTSM_MODELS_PATH HF_HUB_CACHE HF_HOME TTSM_ENGINES_PATH
export HOME="$TMP/home"
mkdir -p "$HOME"
OUT="" ERR="" # for fail() before the first run
TMP=$(realpath "$TMP") # resolved paths are canonical; compare like with like
STORE="$TMP/store"
"$PY" "$GEN" "$STORE" || { echo "FAIL: gen_store.py" >&2; exit 1; }
# Each layout alone: the other place points nowhere.
COMFY=(--models-dir "$STORE/comfy" --hf-cache "$TMP/no-hub")
HUB=(--models-dir "$TMP/no-root" --hf-cache "$STORE/hub")

# js EXPR: evaluates a Python expression over the JSON in $OUT (as `d`).
js() { "$PY" -c 'import json,sys; d=json.loads(sys.stdin.read()); print(eval(sys.argv[1]))' "$1" <<<"$OUT"; }

# snap REPO: the snapshot folder of hub repo folder REPO (models--org--name).
snap() { echo "$STORE/hub/$1/snapshots/$(cat "$STORE/hub/$1/refs/main")"; }
