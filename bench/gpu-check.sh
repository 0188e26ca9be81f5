#!/usr/bin/env bash
# GPU check: run on a CUDA machine in a folder (default /tmp/g) holding
# target/release/jagged, target/release/jagged-bench, efficientnet_lite0.onnx with its
# card, the sample images with labels.csv, and ONNX Runtime 1.31.1's CUDA build from the
# onnxruntime-gpu wheel: either libonnxruntime.so.1.31.1 and the provider libraries, or
# split tar parts (part.*) holding core.so.xz and cuda.so.xz, which are reassembled. Checks
# that jagged's CUDA path classifies correctly (TF32 and strict fp32) and measures
# the worker's compute step against bare ORT CUDA at two batch sizes (rendering on host
# threads, then inside the model's graph on the GPU, with bytes per inference; then again
# with fixed device buffers and CUDA graphs), and the CPU
# side for reference. Then, where the machine has PostgreSQL's server binaries and a
# Python with numpy, Pillow and onnxruntime-gpu (a `venv` folder here, or wheels in
# `wheels/` installed offline into one), a whole sweep on CUDA against
# bench/python_baseline.py on the same GPU (`jagged-bench python --device cuda`; put
# python_baseline.py beside the binaries). Logs go to $OUT (or ./gpu-check-out).
set -uo pipefail
G=${1:-/tmp/g}
OUT=${OUT:-$PWD/gpu-check-out}
mkdir -p "$OUT"
cd "$G" || exit 1
if [ ! -f libonnxruntime.so.1.31.1 ]; then
  cat part.* | tar x && rm part.* && xz -T0 -d cuda.so.xz core.so.xz \
    && mv cuda.so libonnxruntime_providers_cuda.so && mv core.so libonnxruntime.so.1.31.1 || exit 1
fi
export ORT_DYLIB_PATH=$G/libonnxruntime.so.1.31.1
export LD_LIBRARY_PATH=$G:/usr/local/cuda-13.0/targets/x86_64-linux/lib:/usr/lib/x86_64-linux-gnu
export JAGGED_LOG=warn
cores=$(nproc)
{
  nvidia-smi -L
  echo "== predict chelsea.png: cuda (tf32), cuda --strict-fp32, cpu"
  ./jagged models predict efficientnet_lite0.onnx chelsea.png --device cuda
  ./jagged models predict efficientnet_lite0.onnx chelsea.png --device cuda --strict-fp32
  ./jagged models predict efficientnet_lite0.onnx chelsea.png --threads "$cores"
  for b in 32 256; do
    echo "== compute step vs bare ORT, cuda, batch $b (default host threads)"
    ./jagged-bench compute --device cuda --batch "$b" --threads "$cores" --bare-secs 5 --reps 3 \
      --model efficientnet_lite0.onnx --images .
  done
  for b in 32 256; do
    echo "== compute step vs bare ORT, cuda, batch $b, fixed device buffers with CUDA graphs (host rendering)"
    ./jagged-bench compute --device cuda --cuda-graph --batch "$b" --threads "$cores" --bare-secs 5 --reps 3 \
      --model efficientnet_lite0.onnx --images .
  done
  for grid in circular subpixel rotate; do
    echo "== compute step vs bare ORT, cuda, batch 32, $grid grid (host, then in the graph)"
    ./jagged-bench compute --device cuda --grid "$grid" --batch 32 --threads "$cores" --bare-secs 5 --reps 3 \
      --model efficientnet_lite0.onnx --images .
  done
  echo "== compute step vs bare ORT, cuda, batch 32, two host threads"
  ./jagged-bench compute --device cuda --batch 32 --threads "$cores" --bare-secs 5 --reps 3 --host-threads 2 \
    --model efficientnet_lite0.onnx --images .
  echo "== compute step vs bare ORT, cpu ($cores threads), batch 32"
  ./jagged-bench compute --device cpu --batch 32 --threads "$cores" --bare-secs 5 --reps 1 \
    --model efficientnet_lite0.onnx --images .
  echo "== whole sweep on cuda vs the Python implementation on the same GPU"
  if [ ! -x venv/bin/python3 ] && [ -d wheels ]; then
    python3 -m venv venv && venv/bin/python3 -m pip install -q --no-index --find-links wheels numpy pillow onnxruntime-gpu
  fi
  if [ ! -x venv/bin/python3 ]; then
    echo "skipped: no Python with onnxruntime-gpu (a venv/ here, or wheels/ to install from)"
  elif ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && [ -z "${JAGGED_PG_BIN:-}" ]; then
    echo "skipped: no PostgreSQL server binaries (set JAGGED_PG_BIN)"
  else
    ./jagged-bench python --device cuda --batch 32 --threads "$cores" --python venv/bin/python3 --script python_baseline.py \
      --model efficientnet_lite0.onnx --images .
  fi
} 2>&1 | tee "$OUT/gpu-check.log"
