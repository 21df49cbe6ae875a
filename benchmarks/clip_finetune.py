"""Fine-tuning path: ``pretrain clip --model ViT-B-32 --pretrained PATH`` on a saved state dict.

There is no network here, so an open_clip architecture at a *different* random init
stands in for pretrained weights: it is saved as a plain state-dict file, one epoch of
``embedsearch pretrain clip`` (the real CLI, in a subprocess) fine-tunes from it, and the
script checks that training started from that file (final weights stay close to it and
far from the default seeded init) and changed it. The run dir is then used as a model.

    flock /tmp/embedsearch-bench.lock python benchmarks/clip_finetune.py --model ViT-B-32

With network, the same path from real weights is:

    embedsearch pretrain clip pairs.csv --out runs/ft --model ViT-B-32 \
        --pretrained laion2b_s34b_b79k
    embedsearch embed photos/ --model runs/ft --out emb/
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from embedsearch.data.shapes import make_shapes_corpus
from embedsearch.encoders import load_encoder
from embedsearch.encoders.openclip import create_clip_model
from embedsearch.encoders.weights import load_weights_file
from embedsearch.train.metrics import read_metrics


def relative_distance(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """||a - b|| / ||b|| over all floating-point tensors."""
    num = sum(
        float((a[k].float() - b[k].float()).norm() ** 2) for k in b if b[k].is_floating_point()
    )
    den = sum(float(b[k].float().norm() ** 2) for k in b if b[k].is_floating_point())
    return (num / den) ** 0.5


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="ViT-B-32")
    parser.add_argument("-n", type=int, default=48, help="pairs (25%% held out)")
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        pairs = make_shapes_corpus(tmp / "shapes", n=args.n, seed=0).pairs
        default_model, _ = create_clip_model(args.model)
        default_init = {k: v.clone() for k, v in default_model.state_dict().items()}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(1234)  # a different init stands in for downloaded weights
            import open_clip

            stand_in = open_clip.create_model(args.model).state_dict()
        torch.save(stand_in, tmp / "weights.pt")
        tic = time.perf_counter()
        command = [
            sys.executable,
            "-m",
            "embedsearch",
            "pretrain",
            "clip",
            str(pairs),
            "--out",
            str(tmp / "run"),
            "--model",
            args.model,
            "--pretrained",
            str(tmp / "weights.pt"),
            "--epochs",
            "1",
            "--batch-size",
            str(args.batch_size),
            "--val-fraction",
            "0.25",
        ]
        print("$", " ".join(command[1:]), flush=True)
        subprocess.run(command, check=True)
        seconds = time.perf_counter() - tic
        tuned = load_weights_file(tmp / "run" / "model.safetensors")
        changed = sum(not torch.equal(tuned[k], stand_in[k]) for k in stand_in)
        to_file, to_default = (
            relative_distance(tuned, stand_in),
            relative_distance(tuned, default_init),
        )
        metrics = read_metrics(tmp / "run")[-1]
        encoder = load_encoder(str(tmp / "run"))
        vectors = encoder.embed_texts(["a red circle", "a blue star"])
    print(f"\n| {args.model}, 1 epoch, --pretrained PATH | value |")
    print("|---|---|")
    print(f"| tensors changed by fine-tuning | {changed} of {len(stand_in)} |")
    print(f"| relative distance to the --pretrained file | {to_file:.2e} |")
    print(f"| relative distance to the default random init | {to_default:.2f} |")
    print(f"| pairs/s (training steps) | {metrics['images_per_s']:.2f} |")
    print(f"| wall seconds (start-up, train, eval, save) | {seconds:.0f} |")
    print(f"| run dir embeds texts | shape {tuple(vectors.shape)} |")
    ok = changed > 0 and to_file < 0.05 and to_default > 0.5
    print(f"\nstarted from the file and changed it: {'yes' if ok else 'NO'}")


if __name__ == "__main__":
    main()
