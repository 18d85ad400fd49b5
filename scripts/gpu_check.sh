#!/usr/bin/env bash
# The GPU proof in one go, on a machine with a CUDA GPU and no network (see scripts/prepare_gpu_carry.sh):
# install the carried wheels, build the CUDA kernels, run the GPU tests, then the GPU benchmarks.
# Writes $OUT/gpu-results.json, $OUT/gpu-tests.log and $OUT/gpu-bench.log ($OUT defaults to ./gpu-out).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu-out}"; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="/tmp/colja-site:$PWD" COLJA_CACHE_DIR=/tmp/colja-cache HF_HUB_OFFLINE=1
if [ -d .gpu-carry/whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/colja-site .gpu-carry/whl/*.whl
fi
SHARED="${COLJA_SHARED:-../shared}"; [ -d "$SHARED" ] && export COLJA_SHARED="$SHARED"
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"
  time python3 -c "from colja.kernels import _build; print(_build.require_module('cuda')); print(_build.backend_info('cuda'))"
} 2>&1 | tee "$OUT/gpu-build.log"
# every CUDA kernel against its PyTorch reference, GPU build vs CPU build, GPU search vs CPU search
timeout 300 python3 -m pytest -q -m gpu -p no:cacheprovider tests/kernels/test_cuda.py tests/gpu 2>&1 | tee "$OUT/gpu-tests.log"
tests=${PIPESTATUS[0]}
timeout 240 python3 benchmarks/gpu.py --gen .gpu-carry/gen_data.py --sizes 10000,50000 --out "$OUT/gpu-results.json" \
  2>&1 | tee "$OUT/gpu-bench.log"
bench=${PIPESTATUS[0]}
echo "tests exit $tests, benchmark exit $bench"
exit $(( tests || bench ))
