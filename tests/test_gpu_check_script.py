"""`benchmarks/gpu_check.py --smoke`: the GPU check runs on the CPU too, so it cannot rot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_section_of_the_gpu_check_runs_in_smoke_mode(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    env["MPLBACKEND"] = "Agg"
    subprocess.run(
        [sys.executable, "gpu_check.py", "--smoke", "--out", str(tmp_path)],
        cwd=ROOT / "benchmarks",
        env=env,
        check=True,
        capture_output=True,
        timeout=600,
    )
    rows = json.loads((tmp_path / "summary.json").read_text())["rows"]
    assert [(row[0], row[1] == "FAILED") for row in rows] == [
        ("embed tiny-clip fp32", False),
        ("model only fp32 (pre-decoded)", False),
        ("train SimCLR resnet18 fp32", False),
        ("train CLIP tiny-clip fp32", False),
        ("faiss cpu IVF16 train+add", False),
        ("faiss cpu search nprobe 16", False),
    ]
