#!/usr/bin/env bash
# Baseline environment for benchmarks/simclr_invariance.py (and dedup benchmarks): imagededup
# in its OWN virtualenv, never in the project's. imagededup's hashing methods are pure
# numpy/PIL/PyWavelets, but `imagededup.methods` also imports its CNN module (torch); rather
# than download a second multi-GB torch, the venv gets its light dependencies itself and
# sees torch through a .pth file pointing at the dev venv's site-packages, appended last so
# it only supplies what the baseline venv lacks.
#   usage: bash benchmarks/setup_imagededup_venv.sh [VENV_DIR] [TORCH_VENV]
#          (defaults /root/venv-imagededup, /root/venv-es)
set -euo pipefail
VENV="${1:-/root/venv-imagededup}"
TORCH_VENV="${2:-/root/venv-es}"
PY="${PYTHON:-python3.11}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet --upgrade pip
"$VENV/bin/pip" install --quiet --no-deps "imagededup==0.3.3.post2"
"$VENV/bin/pip" install --quiet numpy pillow scipy PyWavelets tqdm matplotlib scikit-learn
SITE=$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
TORCH_SITE=$("$TORCH_VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
echo "import sys; sys.path.append('$TORCH_SITE')" > "$SITE/zz_torch_from_dev_venv.pth"
"$VENV/bin/python" -c "from imagededup.methods import PHash; import imagededup; print('imagededup ok', imagededup.__version__)"
