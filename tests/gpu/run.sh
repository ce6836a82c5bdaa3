#!/usr/bin/env bash
# run.sh - the prepared GPU check (a few minutes): builds libttsm and
# gpu_check.c, then uploads a generated multi-GiB checkpoint to cuda:0 and
# reports GB/s against a plain pinned cuMemcpyHtoD of the same bytes,
# budgets and eviction. Usage: tests/gpu/run.sh [GIB=4]. Without a CUDA
# driver or device it says so and exits 2. Put its numbers in docs/manager.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
gib=${1:-4}
if ! ldconfig -p 2>/dev/null | grep -q 'libcuda\.so\.1' && [ ! -e /usr/lib/x86_64-linux-gnu/libcuda.so.1 ]; then
  echo "gpu check: no CUDA driver (libcuda.so.1) on this machine" >&2
  exit 2
fi
nvidia-smi --query-gpu=name,memory.total,memory.free --format=csv,noheader 2>/dev/null || true
cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DTTSM_BUILD_TESTS=OFF -DTTSM_WERROR=OFF >/dev/null
# The shared library carries its own dependencies (jansson, espeak-ng, ...).
cmake --build build-gpu -j"$(nproc)" --target ttsm >/dev/null
cc -O2 -std=c11 -Iinclude tests/gpu/gpu_check.c -Lbuild-gpu -lttsm -Wl,-rpath,"$PWD/build-gpu" \
   -lpthread -ldl -o build-gpu/gpu_check
tmp=${TMPDIR:-/tmp}
build-gpu/gpu_check "$gib" "$tmp"
