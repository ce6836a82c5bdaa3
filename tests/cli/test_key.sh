#!/usr/bin/env bash
# `ttsm key`: device resolution in keys, device errors and exit codes, the
# spec's vectors checked against xxhsum (an independent XXH3), usage errors.
source "$(dirname "$0")/lib.sh"
export TTSM_CUDA_DRIVER=/nonexistent/libcuda.so.1   # this machine has no GPU

run "$TTSM" key chatterbox --device auto; expect_rc 0; auto=$OUT
run "$TTSM" key chatterbox --device cpu; expect_rc 0; cpu=$OUT
expect_eq "$auto" "$cpu" "auto is cpu without a GPU"
[[ "$auto" =~ ^[0-9a-f]{32}$ ]] || fail "key is not 32 hex digits: $auto"

run "$TTSM" key chatterbox --device cuda:0
expect_rc 4
expect_err "device not available: 'cuda:0' does not exist (devices here: cpu)"
run "$TTSM" key chatterbox --device gpu; expect_rc 4; expect_err "did you mean 'cuda'"

# With the stand-in driver, auto, cuda and cuda:0 are one key.
TTSM_CUDA_DRIVER=$FAKECUDA run "$TTSM" key chatterbox --device auto; a=$OUT
TTSM_CUDA_DRIVER=$FAKECUDA run "$TTSM" key chatterbox --device cuda; b=$OUT
TTSM_CUDA_DRIVER=$FAKECUDA run "$TTSM" key chatterbox --device cuda:0; c=$OUT
expect_eq "$a" "$b" "auto/cuda"; expect_eq "$b" "$c" "cuda/cuda:0"; expect_ne "$a" "$cpu" "cuda/cpu"

run "$TTSM" key chatterbox --language English --explain
expect_rc 0; expect_out "language:2:en"; expect_out "key: "
run "$TTSM" key chatterbox --model-path /nonexistent/v1; expect_rc 3; expect_err "No such file"
run "$TTSM" key; expect_rc 2; expect_err "missing ENGINE"
run "$TTSM" key x --bogus; expect_rc 2; expect_err "unknown option '--bogus'"
run "$TTSM" key x --param novalue; expect_rc 2
run "$TTSM" key x --param a=1 --param a=2; expect_rc 2; expect_err "repeats params[0].key"
run "$TTSM" key --help; expect_rc 0; expect_out "examples:"

# Every vector in docs/cache-key.md: our key equals xxhsum -H2 of the
# canonical string, and ttsm reproduces both from the config.
python3 - "$TTSM_SRC/docs/cache-key.md" >"$TMP/vectors.tsv" <<'PY' || fail "cannot read vectors"
import json, sys
doc = open(sys.argv[1], encoding="utf-8").read()
block = doc.split("```json\n", 1)[1].split("\n```", 1)[0]
flags = {"model_name": "--model", "model_type": "--type", "device": "--device",
         "language": "--language", "model_path": "--model-path", "repo_id": "--repo-id"}
for v in json.loads(block):
    c = v["config"]
    args = [c["engine"]]
    for k, f in flags.items():
        if k in c:
            args += [f, c[k]]
    for k, val in c.get("params", {}).items():
        args += ["--param", f"{k}={val}"]
    print("\t".join([v["key"], v["canonical"].encode().hex()] + args))
PY
n=0
while IFS=$'\t' read -r key canon_hex args_line; do
  IFS=$'\t' read -r -a args <<<"$args_line"
  theirs=$(python3 -c 'import sys; sys.stdout.buffer.write(bytes.fromhex(sys.argv[1]))' "$canon_hex" | xxhsum -H2 - | cut -d' ' -f1)
  expect_eq "$theirs" "$key" "xxhsum of vector $n"
  run "$TTSM" key "${args[@]}"; expect_rc 0
  expect_eq "$OUT" "$key" "ttsm key for vector $n"
  n=$((n + 1))
done <"$TMP/vectors.tsv"
[ "$n" -ge 10 ] || fail "only $n vectors"

# The content vectors ("One set of bytes, one entry"): each id is xxhsum -H2
# of its content string, and that string is built from base and components.
python3 - "$TTSM_SRC/docs/cache-key.md" >"$TMP/content.tsv" <<'PY' || fail "cannot read content vectors"
import sys
doc = open(sys.argv[1], encoding="utf-8").read()
import json
block = doc.split("### Content vectors", 1)[1].split("```json\n", 1)[1].split("\n```", 1)[0]
def field(n, v):
    return "%s:%d:%s\n" % (n, len(v.encode()), v)
for v in json.loads(block):
    s = "ttsm-content-v1\n" + field("base", v["base"])
    for c in v["components"]:
        s += field("component", c["name"]) + field("kind", c["kind"]) + field("file", c["file"])
    assert s == v["content"], "content string of %s" % v["id"]
    print(v["id"] + "\t" + s.encode().hex())
PY
m=0
while IFS=$'\t' read -r id hex; do
  theirs=$(python3 -c 'import sys; sys.stdout.buffer.write(bytes.fromhex(sys.argv[1]))' "$hex" | xxhsum -H2 - | cut -d' ' -f1)
  expect_eq "$theirs" "$id" "xxhsum of content vector $m"
  m=$((m + 1))
done <"$TMP/content.tsv"
[ "$m" -ge 4 ] || fail "only $m content vectors"
done_testing
