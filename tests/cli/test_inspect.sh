#!/usr/bin/env bash
# `ttsm inspect`: the human and JSON forms on safetensors files and a sharded
# index, --tensors, --io, exit codes by error category, and the help.
source "$(dirname "$0")/lib.sh"
FIX=$TTSM_SRC/tests/fixtures/safetensors
TP=$TTSM_SRC/tests/data/third_party

# Human form.
run "$TTSM" inspect "$TP/safetensors/hf-safetensors_samples_overall.safetensors"
expect_rc 0; expect_out "format:      safetensors"; expect_out "tensors:     9"
expect_out "total bytes: 168"; expect_out "dtypes:      U8 1, I8 1, U16 1"
expect_out 'test (str) = "a"'
grep -q "tensor list" <<<"$OUT" && fail "tensors listed without --tensors"
run "$TTSM" inspect "$TP/safetensors/burn_mnist.safetensors" --tensors
expect_rc 0; expect_out "total bytes: 1507768 (1.4 MiB)"; expect_out "F32 18, I64 2"
expect_out "  norm1.num_batches_tracked  I64 []  8 bytes  file 0 offset 1528"
expect_out "  conv1.weight  F32 [8, 1, 3, 3]  288 bytes  file 0 offset"

# Long metadata values are shortened; hostile bytes never reach the terminal.
printf -v long '%*s' 300 ''; long=${long// /x}
python3 - "$TMP/long.safetensors" "$long" <<'PY'
import json, struct, sys
h = json.dumps({"__metadata__": {"long": sys.argv[2], "esc": "\x1b[2Jbell\x07"},
                "w\x1b]0;t": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}).encode()
h += b" " * (-len(h) % 8)
open(sys.argv[1], "wb").write(struct.pack("<Q", len(h)) + h + b"\x01")
PY
run "$TTSM" inspect "$TMP/long.safetensors" --tensors; expect_rc 0
expect_out '(302 bytes)'; expect_out '"xxxxxxxx'
grep -q "$long" <<<"$OUT" && fail "long value not shortened"
grep -q $'\x1b' <<<"$OUT" && fail "escape byte printed"
PASSED=$((PASSED + 1))

# JSON form: long metadata values (64 KiB of text and more) are written as
# the reader's own JSON, not parsed into a tree (a 2^24-byte GGUF array took
# 700 MB that way); the result is the same JSON, also when a string of the
# file mimics the placeholder a long value stands as while the rest is dumped.
python3 - "$TMP" <<'PY'
import struct, sys
def s(b): return struct.pack("<Q", len(b)) + b
def kv_arr(k, et, vals, pack):
    return s(k) + struct.pack("<IIQ", 9, et, len(vals)) + b"".join(pack(v) for v in vals)
def kv_str(k, v): return s(k) + struct.pack("<I", 8) + s(v)
def gguf(path, kvs):
    b = b"GGUF" + struct.pack("<IQQ", 3, 0, len(kvs)) + b"".join(kvs)
    open(path, "wb").write(b + b"\0" * (-len(b) % 32))
big = kv_arr(b"big.u8", 0, [i % 256 for i in range(70000)], lambda v: bytes([v]))
toks = kv_arr(b"tok", 8, [("t\"%d\u00e9" % i).encode() for i in range(9000)], s)
gguf(sys.argv[1] + "/raw.gguf", [big, toks, kv_str(b"small", b"x")])
gguf(sys.argv[1] + "/mimic.gguf", [big, kv_str(b"m", b"\x01ttsm-raw-0")])
PY
for f in raw mimic; do
  run "$TTSM" inspect "$TMP/$f.gguf" --json; expect_rc 0
  python3 -c '
import json, sys
d = json.load(sys.stdin)["metadata"]
assert d["big.u8"] == {"type": "array[u8]", "value": [i % 256 for i in range(70000)]}, "big.u8"
if "tok" in d:
    assert d["tok"]["value"] == ["t\"%d\u00e9" % i for i in range(9000)], "tok"
    assert d["small"] == {"type": "str", "value": "x"}
else:
    assert d["m"]["value"] == "\x01ttsm-raw-0", d["m"]
' <<<"$OUT" || fail "$f.gguf: JSON differs"
done

# JSON form: the shared schema, exactly these keys in this order.
run "$TTSM" inspect --json --tensors "$FIX/ok_zero_size_tensors.safetensors"; expect_rc 0
printf '%s' "$OUT" >"$TMP/out.json"
python3 - "$FIX/ok_zero_size_tensors.safetensors" "$TMP/out.json" <<'PY' || fail "bad JSON"
import json, os, sys
d = json.load(open(sys.argv[2]))
assert list(d) == ["path", "format", "version", "io_mode", "files", "tensor_count",
                   "total_bytes", "dtypes", "metadata", "tensors"], list(d)
assert d["path"] == sys.argv[1] and d["format"] == "safetensors" and d["version"] == 0
assert d["io_mode"] == "mmap"
assert d["files"] == [{"path": sys.argv[1], "size": os.path.getsize(sys.argv[1])}]
assert d["tensor_count"] == 5 and d["total_bytes"] == 20
assert d["dtypes"] == {"U8": 1, "BF16": 1, "F32": 2, "F64": 1}, d["dtypes"]
assert d["metadata"] == {}
names = [t["name"] for t in d["tensors"]]
assert names == ["empty_first", "w", "empty_mid", "v", "empty_last"], names
t = d["tensors"][2]
assert list(t) == ["name", "dtype", "shape", "strides", "contiguous", "nbytes", "file",
                   "offset", "storage", "storage_offset"], list(t)
assert t["dtype"] == "BF16" and t["shape"] == [3, 0, 2] and t["strides"] == [2, 2, 1]
assert t["contiguous"] is True and t["nbytes"] == 0 and t["file"] == 0
w = d["tensors"][1]
assert d["tensors"][3]["offset"] == w["offset"] + 16 and w["storage_offset"] == 0
assert len({x["storage"] for x in d["tensors"]}) == 5
PY
PASSED=$((PASSED + 1))
run "$TTSM" inspect "$FIX/ok_metadata_strings.safetensors" --json; expect_rc 0
python3 -c '
import json,sys; d=json.load(sys.stdin)
assert "tensors" not in d
assert d["metadata"]["note"] == {"type": "str", "value": "caf\u00e9 \"q\" \\ \n\u0000end"}, d["metadata"]
assert d["metadata"][""]["value"] == "empty key"' <<<"$OUT" || fail "bad metadata JSON"
PASSED=$((PASSED + 1))

# Sharded index: the shards are the files; metadata keeps its JSON types.
run "$TTSM" inspect "$FIX/index/ok.safetensors.index.json" --json --tensors --io read; expect_rc 0
python3 -c '
import json,sys; d=json.load(sys.stdin)
assert d["format"] == "safetensors-sharded" and d["io_mode"] == "read"
assert [f["path"].rsplit("/",1)[1] for f in d["files"]] == ["shard-a.safetensors", "shard-b.safetensors"]
m = d["metadata"]
assert m["total_size"] == {"type": "i64", "value": 20} and m["ratio"]["value"] == 0.5
assert m["flag"] == {"type": "bool", "value": True} and m["none"]["value"] is None
assert m["list"]["value"] == [1, "two"] and m["obj"]["value"] == {"k": "v"}
assert [(t["name"], t["file"]) for t in d["tensors"]] == [("a.0", 0), ("a.1", 0), ("b.0", 1)]' <<<"$OUT" || fail "bad sharded JSON"
PASSED=$((PASSED + 1))
run "$TTSM" inspect "$FIX/index/ok.safetensors.index.json"
expect_rc 0; expect_out "format:      safetensors-sharded"; expect_out "files:       2"
expect_out "total_size (i64) = 20"

# Errors: exit codes by category, the message names file and rule.
run "$TTSM" inspect "$FIX/bad_overlapping_tensors.safetensors"
expect_rc 6; expect_err "bad_overlapping_tensors.safetensors: overlapping tensors: tensor 'b'"
run "$TTSM" inspect "$TP/safetensors/safetensors-cpp_abuse_attempt_1.safetensors" --json
expect_rc 6; expect_err "header length exceeds file"; expect_eq "$OUT" "" "no JSON on failure"
run "$TTSM" inspect "$TP/safetensors_index/pygmalion-7b.model.safetensors.index.json"
expect_rc 3; expect_err "missing shard: 'model-00001-of-00007.safetensors'"
run "$TTSM" inspect "$TMP/nope.safetensors"; expect_rc 3; expect_err "file not found"
run "$TTSM" inspect "$TMP"; expect_rc 7; expect_err "is a directory"
# A FIFO is refused without waiting for a writer (it used to block forever).
mkfifo "$TMP/pipe.safetensors"
run timeout 10 "$TTSM" inspect "$TMP/pipe.safetensors"
expect_rc 7; expect_err "pipe.safetensors: cannot open: not a regular file: it is a FIFO (named pipe)"

# Usage.
run "$TTSM" inspect; expect_rc 2; expect_err "missing FILE"
run "$TTSM" inspect a b; expect_rc 2; expect_err "unexpected argument 'b'"
run "$TTSM" inspect --io "$FIX/ok_scalar.safetensors"; expect_rc 2; expect_err "--io wants mmap or read"
run "$TTSM" inspect --io; expect_rc 2; expect_err "--io needs a value"
run "$TTSM" inspect --bogus x; expect_rc 2; expect_err "unknown option '--bogus'"
run "$TTSM" inspect --io=read "$FIX/ok_scalar.safetensors"; expect_rc 0; expect_out "io mode:     read"
run "$TTSM" inspect --help; expect_rc 0; expect_out "examples:"; expect_out "--tensors"
expect_out "--io read"
run "$TTSM" help inspect; expect_rc 0; expect_out "usage: ttsm inspect FILE"
done_testing
