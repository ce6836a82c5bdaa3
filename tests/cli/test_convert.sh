#!/usr/bin/env bash
# test_convert.sh - `ttsm convert`: PyTorch (archive, legacy, ZIP64, deflated)
# to safetensors with byte-identical tensors, strided views made contiguous,
# metadata as strings, refusals (existing OUT, malicious input, C128), exit
# codes, and no partial or temporary files left after a failure.
. "$(dirname "$0")/lib.sh"
FIX="$TTSM_SRC/tests/fixtures/torch"
PY=/usr/bin/python3

# Prints the safetensors header as JSON after checking the framing: 8-byte
# length, header padded to 8 bytes, data offsets tiling the data exactly.
st_header() {
  "$PY" - "$1" <<'PYEOF'
import json, struct, sys
blob = open(sys.argv[1], "rb").read()
n, = struct.unpack("<Q", blob[:8])
assert n % 8 == 0, "header not padded"
h = json.loads(blob[8:8 + n])
spans = sorted(v["data_offsets"] for k, v in h.items() if k != "__metadata__")
end = 0
for b, e in spans:
    assert b == end, "hole at %d" % b
    end = e
assert end == len(blob) - 8 - n, "data not covered"
print(json.dumps(h, sort_keys=True))
PYEOF
}

# Prints tensor NAME of a safetensors file as a list of float32 values.
st_floats() {
  "$PY" - "$1" "$2" <<'PYEOF'
import json, struct, sys
blob = open(sys.argv[1], "rb").read()
n, = struct.unpack("<Q", blob[:8])
h = json.loads(blob[8:8 + n])
b, e = h[sys.argv[2]]["data_offsets"]
data = blob[8 + n + b:8 + n + e]
print(" ".join("%g" % x for x in struct.unpack("<%df" % (len(data) // 4), data)))
PYEOF
}

run "$TTSM" convert --help
expect_rc 0
expect_out "usage: ttsm convert IN OUT.safetensors [options]"; expect_out "-f, --force"
expect_out "examples:"
run "$TTSM" help convert
expect_rc 0
run "$TTSM" convert "$FIX/rvc.pth"
expect_rc 2
expect_err "needs IN and OUT"
run "$TTSM" convert a b c
expect_rc 2
run "$TTSM" convert --bogus a b
expect_rc 2

# An RVC voice: F16 weights plus config values into __metadata__.
run "$TTSM" convert "$FIX/rvc.pth" "$TMP/rvc.safetensors"
expect_rc 0
expect_out "3 tensors"
H=$(st_header "$TMP/rvc.safetensors") || fail "bad safetensors framing"
OUT=$H
expect_out '"sr": "40k"'
expect_out '"f0": "1"'
expect_out '"version": "v2"'
expect_out '"config": "[513,32,192,192,768,2,6,3,0.0,\"1\",[3,7,11]'
expect_out '"weight.enc_p.emb_phone.weight": {"data_offsets": [0, 64], "dtype": "F16", "shape": [4, 8]}'

# Views: the transpose of arange(24).reshape(4, 6) comes out row-major.
run "$TTSM" convert "$FIX/views.pt" "$TMP/views.safetensors"
expect_rc 0
expect_out "4 strided views made contiguous"
run st_floats "$TMP/views.safetensors" transposed
expect_eq "$OUT" "0 6 12 18 1 7 13 19 2 8 14 20 3 9 15 21 4 10 16 22 5 11 17 23" transposed
run st_floats "$TMP/views.safetensors" sliced
expect_eq "$OUT" "8 9 10 14 15 16" sliced
run st_floats "$TMP/views.safetensors" expanded
expect_eq "$OUT" "1.5 2.5 1.5 2.5 1.5 2.5" expanded

# Tied weights get a copy each.
run "$TTSM" convert "$FIX/shared.pt" "$TMP/shared.safetensors"
expect_rc 0
run st_floats "$TMP/shared.safetensors" embed.weight
A=$OUT
run st_floats "$TMP/shared.safetensors" lm_head.weight
expect_eq "$A" "$OUT" "tied copies"

# Legacy, ZIP64 and deflated archives; the third-party files.
for f in legacy.pt zip64.pt deflated.pt "$TTSM_SRC/tests/data/third_party/pytorch/burn_simple_legacy.pt" \
         "$TTSM_SRC/tests/data/third_party/pytorch/torchtune_tiny_fair_checkpoint.pt"; do
  case $f in /*) p=$f ;; *) p=$FIX/$f ;; esac
  run "$TTSM" convert "$p" "$TMP/x.safetensors" --force
  expect_rc 0
  st_header "$TMP/x.safetensors" >/dev/null || fail "bad framing for $f"
done
run st_floats "$TMP/x.safetensors" norm.weight
expect_ne "$OUT" "" "torchtune norm"

# The output of convert converts to itself, byte for byte.
run "$TTSM" convert "$TMP/rvc.safetensors" "$TMP/rvc2.safetensors"
expect_rc 0
cmp -s "$TMP/rvc.safetensors" "$TMP/rvc2.safetensors" || fail "safetensors round trip differs"

# An existing OUT is kept unless --force.
echo keep >"$TMP/exists.safetensors"
run "$TTSM" convert "$FIX/nested.pt" "$TMP/exists.safetensors"
expect_rc 1
expect_err "exists; use --force"
expect_eq "$(cat "$TMP/exists.safetensors")" keep "untouched"
run "$TTSM" convert "$FIX/nested.pt" "$TMP/exists.safetensors" --force
expect_rc 0
st_header "$TMP/exists.safetensors" >/dev/null || fail "forced output is not safetensors"

# Failures leave nothing behind.
mkdir "$TMP/clean"
run "$TTSM" convert "$FIX/malicious/os_system.pt" "$TMP/clean/o.safetensors"
expect_rc 6
expect_err "refusing os.system: checkpoints are read as data"
run "$TTSM" convert "$FIX/dtypes.pt" "$TMP/clean/o.safetensors"
expect_rc 6
expect_err "tensor 'c128' has element type C128, which safetensors cannot store"
run "$TTSM" convert "$FIX/malicious/zip_bomb_ratio.pt" "$TMP/clean/o.safetensors"
expect_rc 6
expect_err "zip bomb"
expect_eq "$(ls -A "$TMP/clean")" "" "no files after failures"
run "$TTSM" convert "$TMP/does-not-exist.pt" "$TMP/clean/o.safetensors"
expect_rc 3
run "$TTSM" convert "$FIX/nested.pt" "$TMP/no/such/dir/o.safetensors"
expect_rc 7
expect_err "temporary file"
[ ! -e "/tmp/ttsm-pwned-fixture-os_system" ] || fail "payload ran"

# Output bounded by the input: a stride-0 view repeats a 1- to 4-byte
# storage 2^34 or 2^62 times (a file of a few hundred bytes asked for 64 GiB
# and more, or wrapped the size). Refused before anything is written.
"$PY" - "$TMP" <<'PYEOF'
import sys, torch
d = sys.argv[1]
torch.save({"w": torch.zeros(1).expand(2**34)}, d + "/s34.pt")
torch.save({"w": torch.zeros(1, dtype=torch.uint8).expand(2**62)}, d + "/s62.pt")
torch.save({"v": torch.zeros(1, dtype=torch.float16).expand(2**62),
            "w": torch.zeros(1, dtype=torch.float16).expand(2**62)}, d + "/wrap.pt")
torch.save({"ok\x1b[31m": torch.zeros(2, dtype=torch.complex128)}, d + "/esc.pt")
PYEOF
run "$TTSM" convert "$TMP/s34.pt" "$TMP/clean/o.safetensors"
expect_rc 6
expect_err "output too large: it would pass its limit of 67108928 bytes of tensor data at tensor 'w' (68719476736 bytes once contiguous), from 4 bytes"
run "$TTSM" convert "$TMP/s62.pt" "$TMP/clean/o.safetensors"
expect_rc 6; expect_err "(4611686018427387904 bytes once contiguous)"
run "$TTSM" convert "$TMP/wrap.pt" "$TMP/clean/o.safetensors" --max-output 16000000T
expect_rc 6; expect_err "it would need more than 2^64 bytes"
expect_eq "$(ls -A "$TMP/clean")" "" "nothing written for a view that asks too much"
# The limit is an option; a real conversion under it works.
run "$TTSM" convert "$FIX/views.pt" "$TMP/clean/v.safetensors" --max-output 64
expect_rc 6; expect_err "limit of 64 bytes"
run "$TTSM" convert "$FIX/views.pt" "$TMP/clean/v.safetensors" --max-output 1K
expect_rc 0
rm -f "$TMP/clean/v.safetensors"
run "$TTSM" convert "$FIX/views.pt" "$TMP/clean/v.safetensors" --max-output 1x
expect_rc 2; expect_err "--max-output wants a size"
# A refusal quoting a name from the file shows no raw escape.
run "$TTSM" convert "$TMP/esc.pt" "$TMP/clean/o.safetensors"
expect_rc 6; expect_err "tensor 'ok?[31m' has element type C128"
if grep -q $'\033' <<<"$ERR"; then fail "an ESC byte reached the terminal"; fi
expect_eq "$(ls -A "$TMP/clean")" "" "no files after the refusals"

done_testing
