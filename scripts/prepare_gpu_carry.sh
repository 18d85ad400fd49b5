#!/usr/bin/env bash
# Prepare what scripts/gpu_check.sh needs on a GPU machine that has no network:
# the Python wheels its image lacks (for its Python 3.12) and the benchmark data generator,
# in .gpu-carry/ (ignored by git). Then call the device tool with carry [".gpu-carry"] and
#   bash scripts/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.gpu-carry/' .git/info/exclude 2>/dev/null || echo '/.gpu-carry/' >> "$(git rev-parse --git-path info/exclude)"
mkdir -p .gpu-carry/whl
# faiss-cpu, bitarray: colja's core; fugashi: MeCab (unidic-lite is an 47 MB sdist, too big to carry:
# the text tests skip there and the GPU paths are tested on generated vectors)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d .gpu-carry/whl faiss-cpu bitarray fugashi
cp ../shared/bench/gen_data.py .gpu-carry/gen_data.py 2>/dev/null || cp "${COLJA_SHARED:-../shared}/bench/gen_data.py" .gpu-carry/
du -sh .gpu-carry
