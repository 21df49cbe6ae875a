#!/usr/bin/env bash
# The one-shot GPU check, for when a CUDA machine is lent: run it from a clean checkout, no edits.
#
#   bash benchmarks/gpu_check.sh            # ~5-8 minutes; results in gpu_check_results/
#
# 1. an environment: the Python that already imports embedsearch and torch with CUDA, else a new
#    virtualenv with `pip install -e ".[test]"` (as the README says);
# 2. the `-m gpu` tests;
# 3. benchmarks/gpu_check.py: ViT-B-32 embed throughput (bf16, fp16) vs pre-decoded tensors,
#    SimCLR and CLIP training with AMP, faiss (CPU side always; GPU side when faiss has it);
# 4. faiss on the GPU: in a second virtualenv, try the GPU faiss wheel from the package registry
#    (faiss-gpu-cu12); when it does not install, the summary says so.
# Each step has its own time limit, so the whole run stays under 8 minutes; a failing step is
# reported and the next one runs.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${GPU_CHECK_OUT:-gpu_check_results}
mkdir -p "$out"
export MPLBACKEND=Agg
start=$(date +%s)
elapsed() { echo "$(($(date +%s) - start)) s"; }

python=${GPU_CHECK_PYTHON:-python3}
if ! "$python" -c "import embedsearch, torch; assert torch.cuda.is_available()" 2>/dev/null; then
    venv=${GPU_CHECK_VENV:-/tmp/embedsearch-gpu-venv}
    echo "== installing into $venv (pip install -e .[test])"
    python3 -m venv "$venv"
    timeout 240 "$venv/bin/pip" install --quiet -e ".[test]" || echo "install failed or timed out"
    python="$venv/bin/python"
fi
"$python" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"

echo "== pytest -m gpu ($(elapsed))"
timeout 150 "$python" -m pytest -m gpu -q -p no:cacheprovider -o addopts="" \
    --import-mode=importlib tests 2>&1 | tail -n 15 | tee "$out/gpu_tests.txt"

echo "== benchmarks/gpu_check.py ($(elapsed))"
(cd benchmarks && timeout 240 "$python" gpu_check.py --out "../$out") 2>&1 | tee "$out/gpu_check.txt"

echo "== faiss GPU wheel ($(elapsed))"
fvenv=${GPU_CHECK_FAISS_VENV:-/tmp/embedsearch-faiss-gpu-venv}
if [ ! -x "$fvenv/bin/python" ]; then
    python3 -m venv "$fvenv"
fi
if timeout 90 "$fvenv/bin/pip" install --quiet faiss-gpu-cu12 2>"$out/faiss_gpu_install.txt"; then
    (cd benchmarks && timeout 60 "$fvenv/bin/python" gpu_check.py --faiss-only --out "../$out") \
        2>&1 | tee "$out/faiss_gpu.txt"
else
    echo "faiss-gpu-cu12 did not install from the package registry: $(tail -n 1 "$out/faiss_gpu_install.txt")" \
        | tee "$out/faiss_gpu.txt"
fi
echo "== done in $(elapsed); results in $out/"
