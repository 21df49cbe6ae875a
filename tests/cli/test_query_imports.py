"""A query imports only what inference needs (issue 17.3: start-up is mostly imports).

torchvision alone (it imports ``torch._dynamo`` and sympy) cost more than ``import torch`` at
every ``query --image``; training, plotting and dataset libraries cost without serving a
query. Each probe runs one real query in a fresh interpreter and lists what got imported.
Timings: ``benchmarks/startup.py``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

# Never needed to answer a query with a SimCLR run dir.
NOT_FOR_IMAGE_QUERIES = (
    "torchvision",
    "torch._dynamo",
    "torch._inductor",
    "sympy",
    "open_clip",
    "matplotlib",
    "sklearn",
    "scipy",
    "skimage",
    # the training loop (torch-heavy); embedsearch.train.presets is a torch-free table that
    # `pretrain simclr --help` reads when the CLI registers its commands
    "embedsearch.train.loop",
)
PROBE = """
import sys
from embedsearch.cli.app import run_app
code = run_app({argv!r})
print("EXIT:" + str(code))
print("LOADED:" + ",".join(sorted(m for m in {watched!r} if m in sys.modules)))
"""


def _imports_of_query(argv: list[str], watched: tuple[str, ...]) -> list[str]:
    code = PROBE.format(argv=["query", *argv], watched=watched)
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert "EXIT:0" in result.stdout, result.stderr[-2000:]
    line = [x for x in result.stdout.splitlines() if x.startswith("LOADED:")][-1]
    return [m for m in line[len("LOADED:") :].split(",") if m]


@pytest.fixture(scope="module")
def run_dir_index(tmp_path_factory) -> tuple[Path, Path]:
    """(index made with a resnet18 run dir, one of its images)."""
    from PIL import Image

    from embedsearch.cli.app import run_app
    from embedsearch.encoders import load_encoder
    from embedsearch.encoders.rundir import save_run_dir

    root = tmp_path_factory.mktemp("startup")
    (root / "images").mkdir()
    for i, colour in enumerate(["red", "green", "blue"]):
        Image.new("RGB", (40, 30), colour).save(root / "images" / f"{i}.png")
    enc = load_encoder("simclr:resnet18", image_size=32)
    run = save_run_dir(root / "run", enc.config, enc.model.state_dict())
    assert (
        run_app(["embed", str(root / "images"), "--model", str(run), "--out", str(root / "e")]) == 0
    )
    assert run_app(["index", str(root / "e"), "--out", str(root / "index")]) == 0
    return root / "index", root / "images" / "0.png"


def test_image_query_with_a_run_dir_imports_no_torchvision_dynamo_or_training(
    run_dir_index,
) -> None:
    index, image = run_dir_index
    watched = NOT_FOR_IMAGE_QUERIES + ("torch",)
    loaded = _imports_of_query([str(index), "--image", str(image), "-k", "2"], watched)
    assert loaded == ["torch"]  # torch itself is needed, and proves the model ran


def test_id_query_imports_no_torch(run_dir_index) -> None:
    index, _ = run_dir_index
    loaded = _imports_of_query(
        [str(index), "--id", "0", "-k", "2"], ("torch",) + NOT_FOR_IMAGE_QUERIES
    )
    assert loaded == []
