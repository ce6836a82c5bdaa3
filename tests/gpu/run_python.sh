#!/usr/bin/env bash
# run_python.sh - the Python binding on a GPU (a few minutes): builds libttsm,
# then runs tests/python/test_cuda.py (every fixture loaded to cuda:0 and
# taken by torch.from_dlpack as CUDA tensors, streams, budgets, lifetimes, a
# CUDA nn.Module) and test_dlpack.py with TTSM_REQUIRE_CUDA=1, so a missing
# CUDA makes it fail instead of skip. PYTHON picks an interpreter whose torch
# has CUDA (default python3). Without a CUDA driver it says so and exits 2.
# Put what it reports in docs/python.md ("GPU").
set -euo pipefail
cd "$(dirname "$0")/../.."
py=${PYTHON:-python3}
if ! ldconfig -p 2>/dev/null | grep -q 'libcuda\.so\.1' && [ ! -e /usr/lib/x86_64-linux-gnu/libcuda.so.1 ]; then
  echo "gpu python check: no CUDA driver (libcuda.so.1) on this machine" >&2
  exit 2
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
"$py" -c 'import torch, sys; print("torch", torch.__version__, "cuda", torch.version.cuda); sys.exit(0 if torch.cuda.is_available() else 3)' || {
  echo "gpu python check: $py's torch cannot use CUDA (set PYTHON)" >&2
  exit 2
}
cmake -S . -B build-gpu-py -DCMAKE_BUILD_TYPE=Release -DTTSM_WERROR=OFF >/dev/null
cmake --build build-gpu-py -j"$(nproc)" --target ttsm ttsm_cli fakecuda >/dev/null
export TTSM_LIBRARY=$PWD/build-gpu-py/libttsm.so TTSM=$PWD/build-gpu-py/ttsm TTSM_SRC=$PWD \
       TTSM_BUILD=$PWD/build-gpu-py TTSM_REQUIRE_CUDA=1
cd tests/python
"$py" -m unittest -v test_cuda test_dlpack
