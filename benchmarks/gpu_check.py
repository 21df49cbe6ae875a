"""One-shot GPU check: what a lent CUDA machine measures in a few minutes, as one table.

Each section runs on its own and reports a row (or why it failed), so one broken part does
not hide the others:

- embed throughput of ``openclip:ViT-B-32`` (random weights: the tag needs a download) in
  bf16 and fp16, end to end from JPEG files (``embedsearch.embedding.embed``), against the
  same model on pre-decoded tensors already on the GPU: the ratio says whether decoding and
  preprocessing starve the GPU;
- SimCLR and CLIP training throughput with AMP (bf16), from the loops' own metrics;
- FAISS on the GPU when the installed faiss has GPU support (``--faiss-only`` is what
  ``gpu_check.sh`` runs in a separate environment where it tries a GPU faiss wheel).

``--smoke`` runs every section on the CPU with tiny sizes: it is what the test suite runs,
so the script cannot rot between GPU loans.

    python benchmarks/gpu_check.py --out gpu_check_results        # on the GPU machine
    python benchmarks/gpu_check.py --smoke --out /tmp/smoke          # anywhere, ~1 minute
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class Sizes:
    """How much work each section does (the full run must fit the 8-minute budget)."""

    device: str
    images: int
    image_px: int
    clip_model: str
    precisions: tuple[str, ...]
    train_images: int
    simclr_px: int
    simclr_batch: int
    clip_pairs: int
    clip_batch: int
    faiss_rows: int
    epochs: int


FULL = Sizes(
    device="cuda",
    images=4096,
    image_px=256,
    clip_model="openclip:ViT-B-32",
    precisions=("bf16", "fp16"),
    train_images=4096,
    simclr_px=96,
    simclr_batch=256,
    clip_pairs=4096,
    clip_batch=256,
    faiss_rows=1_000_000,
    epochs=2,  # the second epoch is timed: no warm-up in it
)
SMOKE = Sizes(
    device="cpu",
    images=8,
    image_px=64,
    clip_model="tiny-clip",
    precisions=("fp32",),
    train_images=16,
    simclr_px=32,
    simclr_batch=8,
    clip_pairs=16,
    clip_batch=8,
    faiss_rows=20_000,
    epochs=1,
)

Row = list[object]


def embed_rows(sizes: Sizes, work: Path) -> list[Row]:
    """End-to-end ``embed`` images/s vs the model alone on pre-decoded tensors."""
    import torch
    from common import make_jpeg_folder

    from embedsearch.data.decode import load_image
    from embedsearch.embedding import embed
    from embedsearch.encoders import load_encoder

    folder = make_jpeg_folder(work / "jpegs", sizes.images, size=sizes.image_px)
    rows: list[Row] = []
    for precision in sizes.precisions:
        out = work / f"emb-{precision}"
        summary = embed(
            folder,
            model=sizes.clip_model,
            out=out,
            device=sizes.device,
            precision=precision,  # type: ignore[arg-type]
            batch_size=256 if sizes.device == "cuda" else 4,
        )
        end_to_end = summary.embedded / summary.seconds
        encoder = load_encoder(sizes.clip_model).to(sizes.device, precision)
        pixels = torch.stack(
            [encoder.preprocess(load_image(p)) for p in sorted(folder.glob("*.jpg"))]
        )
        encoder.embed_images(pixels[:64])  # warm-up: kernels, autocast caches
        if sizes.device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        encoder.embed_images(pixels)
        if sizes.device == "cuda":
            torch.cuda.synchronize()
        model_only = len(pixels) / (time.perf_counter() - start)
        rows.append([f"embed {sizes.clip_model} {precision}", end_to_end, "images/s", ""])
        rows.append(
            [
                f"model only {precision} (pre-decoded)",
                model_only,
                "images/s",
                f"embed/model {end_to_end / model_only:.2f}",
            ]
        )
    return rows


def train_rows(sizes: Sizes, work: Path) -> list[Row]:
    """SimCLR and CLIP training images/s with AMP, from each loop's metrics.jsonl."""
    from common import make_jpeg_folder

    from embedsearch.data.shapes import make_shapes_corpus
    from embedsearch.train.clip import pretrain_clip
    from embedsearch.train.metrics import read_metrics
    from embedsearch.train.simclr import pretrain_simclr

    precision = "bf16" if sizes.device == "cuda" else "fp32"
    folder = make_jpeg_folder(work / "train-jpegs", sizes.train_images, size=sizes.simclr_px)
    pretrain_simclr(
        folder,
        out=work / "simclr",
        image_size=sizes.simclr_px,
        epochs=sizes.epochs,
        batch_size=sizes.simclr_batch,
        device=sizes.device,
        precision=precision,
    )
    corpus = make_shapes_corpus(work / "shapes", n=sizes.clip_pairs, seed=0)
    clip_arch = sizes.clip_model.removeprefix("openclip:")
    pretrain_clip(
        corpus.pairs,
        out=work / "clip",
        model=clip_arch,
        epochs=sizes.epochs,
        batch_size=sizes.clip_batch,
        val_fraction=0.0,
        device=sizes.device,
        precision=precision,
    )
    rows: list[Row] = []
    for name, run in (("SimCLR resnet18", "simclr"), (f"CLIP {clip_arch}", "clip")):
        last = read_metrics(work / run)[-1]
        rows.append([f"train {name} {precision}", last["images"] / last["seconds"], "images/s", ""])
    return rows


def faiss_rows(sizes: Sizes, work: Path) -> list[Row]:
    """IVF training and search on the GPU vs the CPU, when this faiss has GPU support."""
    import faiss

    gpus = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
    if sizes.device == "cuda" and gpus == 0:
        return [["faiss GPU", "n/a", "", f"faiss {faiss.__version__} has no GPU support here"]]
    rng = np.random.default_rng(0)
    dim, nlist, k = 64, 1024 if sizes.faiss_rows >= 100_000 else 16, 10
    vectors = rng.standard_normal((sizes.faiss_rows, dim), dtype=np.float32)
    queries = vectors[:1000]
    rows: list[Row] = []
    sides = [("cpu", None)] + ([("gpu", faiss.StandardGpuResources())] if gpus else [])
    for side, resources in sides:
        index = faiss.index_factory(dim, f"IVF{nlist},Flat", faiss.METRIC_INNER_PRODUCT)
        if resources is not None:
            index = faiss.index_cpu_to_gpu(resources, 0, index)
        start = time.perf_counter()
        index.train(vectors[: 50 * nlist])
        index.add(vectors)
        build = time.perf_counter() - start
        faiss.ParameterSpace().set_index_parameter(index, "nprobe", 16)
        start = time.perf_counter()
        index.search(queries, k)
        qps = len(queries) / (time.perf_counter() - start)
        rows.append([f"faiss {side} IVF{nlist} train+add", build, "s", f"{len(vectors):,}x{dim}"])
        rows.append([f"faiss {side} search nprobe 16", qps, "queries/s", ""])
    return rows


def _machine() -> str:
    from common import machine

    return machine()


def _faiss_machine() -> str:
    """The faiss-only run happens where only faiss and numpy are installed (no torch)."""
    import faiss

    gpus = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
    return f"faiss {faiss.__version__}, {gpus} GPU(s) visible to faiss"


SECTIONS: dict[str, Callable[[Sizes, Path], list[Row]]] = {
    "embed": embed_rows,
    "train": train_rows,
    "faiss": faiss_rows,
}


def run(sizes: Sizes, work: Path, names: list[str]) -> list[Row]:
    """Every named section's rows; a section that raises becomes one FAILED row."""
    rows: list[Row] = []
    for name in names:
        start = time.perf_counter()
        try:
            rows.extend(SECTIONS[name](sizes, work))
        except Exception as e:  # noqa: BLE001 - a check reports every failure, then goes on
            traceback.print_exc()
            rows.append([name, "FAILED", "", f"{type(e).__name__}: {e}"[:120]])
        print(f"section {name}: {time.perf_counter() - start:.0f} s", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("gpu_check_results"))
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU")
    parser.add_argument("--faiss-only", action="store_true")
    args = parser.parse_args()
    from common import print_table

    sizes = SMOKE if args.smoke else FULL
    shutil.rmtree(args.out / "work", ignore_errors=True)  # embed would skip what a rerun stored
    args.out.mkdir(parents=True, exist_ok=True)
    names = ["faiss"] if args.faiss_only else ["embed", "train", "faiss"]
    rows = run(sizes, args.out / "work", names)
    machine = _faiss_machine() if args.faiss_only else _machine()
    print(machine)
    print_table(["check", "value", "unit", "notes"], rows)
    name = "faiss.json" if args.faiss_only else "summary.json"
    (args.out / name).write_text(json.dumps({"machine": machine, "rows": rows}, default=str))


if __name__ == "__main__":
    main()
