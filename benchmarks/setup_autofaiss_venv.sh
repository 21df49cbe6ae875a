#!/usr/bin/env bash
# Baseline environment for benchmarks/index_bench.py: autofaiss in its OWN virtualenv.
# autofaiss needs numpy<2, and its compressed index kinds (OPQ/PQ) break on faiss 1.15,
# so it gets faiss-cpu 1.8 there. Never installed into the project's environment.
#   usage: bash benchmarks/setup_autofaiss_venv.sh [VENV_DIR]   (default /root/venv-autofaiss)
set -euo pipefail
VENV="${1:-/root/venv-autofaiss}"
PY="${PYTHON:-python3.11}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet --upgrade pip
"$VENV/bin/pip" install --quiet "numpy<2" "faiss-cpu==1.8.0" "autofaiss" "pyarrow<17" psutil packaging
"$VENV/bin/python" -c "import autofaiss, faiss, numpy; print('autofaiss ok: faiss', faiss.__version__, 'numpy', numpy.__version__)"
