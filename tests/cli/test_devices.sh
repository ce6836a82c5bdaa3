#!/usr/bin/env bash
# `ttsm devices`: the listing, its JSON form, and the stand-in CUDA driver.
source "$(dirname "$0")/lib.sh"
export TTSM_CUDA_DRIVER=/nonexistent/libcuda.so.1

run "$TTSM" devices; expect_rc 0; expect_out "cpu"; expect_out "host memory"
expect_out "cuda: none (no CUDA driver"
run "$TTSM" devices --json; expect_rc 0
python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["devices"][0]["name"]=="cpu"; assert d["devices"][0]["total_bytes"]>0; assert d["cuda"]["available"] is False; assert "no CUDA driver" in d["cuda"]["reason"]' <<<"$OUT" || fail "bad JSON"
PASSED=$((PASSED + 1))

TTSM_CUDA_DRIVER=$FAKECUDA run "$TTSM" devices --json; expect_rc 0
python3 -c 'import json,sys; d=json.load(sys.stdin); n=[x["name"] for x in d["devices"]]; assert n==["cpu","cuda:0","cuda:1"], n; assert d["devices"][2]["total_bytes"]==16<<30; assert d["cuda"]["available"] is True and d["cuda"]["reason"] is None' <<<"$OUT" || fail "bad fake JSON"
PASSED=$((PASSED + 1))
FAKE_CUDA_MODE=memfail TTSM_CUDA_DRIVER=$FAKECUDA run "$TTSM" devices
expect_rc 4; expect_err "cuMemGetInfo"
run "$TTSM" devices --bogus; expect_rc 2
run "$TTSM" devices --help; expect_rc 0; expect_out "examples:"
run "$TTSM" --help; expect_rc 0; expect_out "devices"; expect_out "key"
run "$TTSM" nosuchcommand; expect_rc 2; expect_err "unknown command"
run "$TTSM" --version; expect_rc 0; expect_out "ttsm 0."
done_testing
