#!/usr/bin/env bash
# `ttsm say`: a real WAV from espeak-ng (rate, length, loudness checked with
# Python's standard wave module), text from standard input, -o -, errors.
source "$(dirname "$0")/lib.sh"

check_wav() { # FILE MIN_SECONDS
  python3 - "$1" "$2" <<'PY' || fail "bad WAV $1"
import array, math, sys, wave
w = wave.open(sys.argv[1])
assert w.getnchannels() == 1 and w.getsampwidth() == 2, "not 16-bit mono"
rate, n = w.getframerate(), w.getnframes()
a = array.array("h", w.readframes(n))
assert len(a) == n, "short data chunk"
secs = n / rate
rms = math.sqrt(sum(x * x for x in a) / max(1, n))
assert rate == 22050, rate
assert secs > float(sys.argv[2]), secs
assert rms > 300, rms
print(f"{sys.argv[1]}: {secs:.2f} s at {rate} Hz, rms {rms:.0f}")
PY
  PASSED=$((PASSED + 1))
}

run "$TTSM" say "Hello from ttsm, the model loading core." -o "$TMP/hello.wav"
expect_rc 0; expect_err "wrote $TMP/hello.wav"
check_wav "$TMP/hello.wav" 1.0

echo "Guten Morgen, wie geht es dir?" >"$TMP/text"
run sh -c "'$TTSM' say -l German -o - <'$TMP/text' >'$TMP/de.wav'"
expect_rc 0
check_wav "$TMP/de.wav" 0.5

run "$TTSM" say "x" -l qq -o "$TMP/x.wav"; expect_rc 3; expect_err "language not found"
[ ! -e "$TMP/x.wav" ] || fail "a failed say left a file"
run "$TTSM" say "x" --rate 5 -o "$TMP/x.wav"; expect_rc 2; expect_err "rate 5"
run "$TTSM" say "" -o "$TMP/x.wav"; expect_rc 2; expect_err "the text is empty"
run "$TTSM" say "x" -e no-such-engine -o "$TMP/x.wav"; expect_rc 3; expect_err "engine not found"
run "$TTSM" say "x" -o /nonexistent/dir/x.wav; expect_rc 7; expect_err "cannot write"
# espeak-ng's own voice ids, its identifiers and names all work.
for v in en-us gmw/en-US en-US "English (America)"; do
  run "$TTSM" say "Howdy partner" --voice "$v" -o "$TMP/v.wav"
  expect_rc 0
  check_wav "$TMP/v.wav" 0.3
done
# A near miss suggests the right voice first.
run "$TTSM" say "x" --voice en-uss -o "$TMP/x.wav"
expect_rc 3; expect_err 'no espeak-ng voice named "en-uss" (close: en-us (English (America))'
run "$TTSM" say --list-voices; expect_rc 0
grep -E '^en-us +English \(America\) +gmw/en-US ' <<<"$OUT" >/dev/null || fail "en-us listed"
PASSED=$((PASSED + 1))
run "$TTSM" say --list-voices --json; expect_rc 0
python3 -c '
import json, sys
d = json.load(sys.stdin)
v = [x for x in d["voices"] if "en-us" in x["languages"]]
assert d["engine"] == "espeak-ng" and v and v[0]["id"] == "gmw/en-US", v
assert len(d["voices"]) > 50
' <<<"$OUT" || fail "--list-voices --json"
PASSED=$((PASSED + 1))
run "$TTSM" say --bogus 1; expect_rc 2
run "$TTSM" say --help; expect_rc 0; expect_out "examples:"
done_testing
