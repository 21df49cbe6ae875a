"""End-to-end ``embed`` throughput vs the same model on pre-decoded tensors, side by side.

Images: >= 2,000 generated 256² JPEGs embedded with ``simclr:resnet18`` at 32, 64 and 224 px;
the baseline runs the same encoder, batch size and threads over tensors decoded beforehand
(so it measures the model alone). Texts: an open_clip text tower, end to end vs pre-tokenised.
Goal (issue 2): ratio >= 0.9 at 64 px on a 2-core CPU.

    python benchmarks/embed_throughput.py [--images 2000] [--sizes 32 64 224] [--workers 1]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from embedsearch.runtime import prefer_huge_pages

# As the `embedsearch` command does, before torch is imported (both sides get it).
prefer_huge_pages()

import torch  # noqa: E402  (after prefer_huge_pages, which must run before torch loads)
from common import machine, make_jpeg_folder, print_table  # noqa: E402

from embedsearch.data.decode import load_image  # noqa: E402
from embedsearch.data.sources import iter_image_files  # noqa: E402
from embedsearch.embedding import embed  # noqa: E402
from embedsearch.encoders import load_encoder  # noqa: E402


def model_only_images_per_second(folder: Path, image_size: int, batch_size: int) -> float:
    """The baseline: decode everything first (untimed), then time only the forward passes."""
    encoder = load_encoder("simclr:resnet18", image_size=image_size).to("cpu")
    tensors = [
        encoder.preprocess(load_image(p, draft_size=image_size)) for p in iter_image_files(folder)
    ]
    batches = [torch.stack(tensors[i : i + batch_size]) for i in range(0, len(tensors), batch_size)]
    encoder.embed_images(batches[0])  # warm-up, like the first batch of embed
    started = time.perf_counter()
    for batch in batches:
        encoder.embed_images(batch)
    return len(tensors) / (time.perf_counter() - started)


def embed_images_per_second(
    folder: Path, image_size: int, batch_size: int, workers: int | None
) -> float:
    """End to end: listing, reading, hashing, decoding, model, Parquet writing, manifest."""
    out = Path(tempfile.mkdtemp()) / "emb"
    started = time.perf_counter()
    summary = embed(
        folder,
        model="simclr:resnet18",
        out=out,
        image_size=image_size,
        batch_size=batch_size,
        workers=workers,
        device="cpu",
    )
    seconds = time.perf_counter() - started
    shutil.rmtree(out.parent)
    return summary.embedded / seconds


def text_rates(spec: str, n: int, batch_size: int) -> tuple[float, float]:
    """(end-to-end texts/s through ``embed``, pre-tokenised model-only texts/s)."""
    texts = [
        f"a photo of object number {i} with a {['red', 'green', 'blue'][i % 3]} tint"
        for i in range(n)
    ]
    tmp = Path(tempfile.mkdtemp())
    (tmp / "docs.txt").write_text("\n".join(texts))
    started = time.perf_counter()
    embed(tmp / "docs.txt", model=spec, out=tmp / "emb", batch_size=batch_size, device="cpu")
    end_to_end = n / (time.perf_counter() - started)
    encoder = load_encoder(spec).to("cpu")
    tokens = [encoder.tokenizer(texts[i : i + batch_size]) for i in range(0, n, batch_size)]
    started = time.perf_counter()
    with torch.inference_mode():
        for batch in tokens:
            encoder.model.encode_text(batch)
    model_only = n / (time.perf_counter() - started)
    shutil.rmtree(tmp)
    return end_to_end, model_only


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 224])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="alternating (embed, model-only) pairs; the median pair is reported",
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="embed --workers (default: embed's own default)"
    )
    parser.add_argument(
        "--texts", type=int, default=2000, help="texts per text-tower row (0: skip them)"
    )
    parser.add_argument(
        "--data", type=Path, default=Path(tempfile.gettempdir()) / "embedsearch-bench-jpegs"
    )
    args = parser.parse_args()

    print(f"machine: {machine()}")
    folder = make_jpeg_folder(args.data, args.images)
    rows = []
    for size in args.sizes:
        # Alternate the two measurements and compare each pair: this VM's speed drifts over
        # minutes, so a ratio of back-to-back runs is fairer than best-of-each; report the median
        # pair.
        pairs = []
        for _ in range(args.repeats):
            e2e = embed_images_per_second(folder, size, args.batch_size, args.workers)
            model = model_only_images_per_second(folder, size, args.batch_size)
            pairs.append((e2e / model, e2e, model))
            print(
                f"  {size} px pair {len(pairs)}: embed {e2e:.2f}/s, model only {model:.2f}/s, "
                f"ratio {e2e / model:.3f}",
                flush=True,
            )
        ratio, e2e, model = sorted(pairs)[len(pairs) // 2]
        rows.append([f"simclr:resnet18 @ {size} px (images)", args.images, e2e, model, ratio])
        print_table(
            ["workload", "items", "embed items/s", "model-only items/s", "ratio"],
            rows[-1:],
            flush=True,
        )
    for spec in ("tiny-clip", "openclip:ViT-B-32") if args.texts else ():
        e2e, model = text_rates(spec, args.texts, args.batch_size)
        rows.append([f"{spec} text tower (texts)", args.texts, e2e, model, e2e / model])
    print_table(["workload", "items", "embed items/s", "model-only items/s", "ratio"], rows)


if __name__ == "__main__":
    main()
