"""What the tiny CLIP learns per attribute: top-5 precision of shape, colour, size, position.

Trains ``pretrain clip`` on the demo's shapes corpus (3,000 images, seed 0, 10% held out)
once per variant, each in its own process (so its CPU time -- user + sys of the process and
its DataLoader workers -- is measured alone), then lets every held-out caption search the
held-out images and scores its top 5 hits: the share whose shape (colour, size, position)
equals the caption's, all four at once, and text->image recall@5 (the caption's own image
in the top 5). Variants run alternately when ``--repeats`` > 1; the table shows medians.

Variants: ``before`` is the tiny config and ``pretrain clip`` defaults as they were before
issue 20 (copied here); ``conv-step`` the defaults after its first step (the convolutional
tower alone); ``after`` is what ``pretrain clip`` does now with its defaults.
``--probe NAME=JSON`` adds one: JSON keys ``vision`` / ``text`` (tiny-config overrides),
``embed_dim``, ``model`` (other top-level config keys), ``base`` (``before`` or ``after``: what
it starts from), ``train`` (``pretrain_clip`` keyword overrides) and ``word_dropout`` (a
probe: drop each caption word with this probability while training).

    flock /tmp/embedsearch-bench.lock python benchmarks/clip_attributes.py [--repeats 1]
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ATTRIBUTES = ("shape", "color", "size", "position")
# tiny-clip.json and the `pretrain clip` defaults before issue 20.
BEFORE_CONFIG: dict[str, Any] = {
    "embed_dim": 128,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 128, "head_width": 32, "patch_size": 8},
    "text_cfg": {
        "context_length": 32,
        "vocab_size": 49408,
        "width": 128,
        "heads": 4,
        "layers": 2,
    },
}
BEFORE_TRAIN: dict[str, Any] = {
    "epochs": 10,
    "batch_size": 128,
    "lr": None,
    "weight_decay": 0.1,
    "warmup_epochs": 1.0,
    "word_loss": 0.0,
}
# The defaults between the two steps of issue 20: the convolutional tiny-clip at CLIP's initial
# temperature (1/0.07), batch 128, no caption-word loss.
CONV_STEP: dict[str, Any] = {
    "base": "after",
    "model": {"init_logit_scale": math.log(1 / 0.07)},
    "train": {"batch_size": 128, "word_loss": 0.0},
}
VARIANTS: dict[str, dict[str, Any]] = {
    "before": {"base": "before"},
    "conv-step": CONV_STEP,
    "after": {"base": "after"},
}


def variant_settings(spec: dict[str, Any]) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """(model config or None for the shipped one, pretrain_clip keywords) of a variant."""
    before = spec.get("base", "after") == "before"
    config = json.loads(json.dumps(BEFORE_CONFIG)) if before else None
    overrides = {k: spec[k] for k in ("vision", "text", "embed_dim", "model") if k in spec}
    if overrides:
        if config is None:
            from embedsearch.encoders.openclip import shipped_config

            config = shipped_config("tiny-clip")
        assert config is not None
        config["vision_cfg"].update(spec.get("vision", {}))
        config["text_cfg"].update(spec.get("text", {}))
        config["embed_dim"] = spec.get("embed_dim", config["embed_dim"])
        config.update(spec.get("model", {}))
    train = dict(BEFORE_TRAIN) if before else {}
    train.update(spec.get("train", {}))
    return config, train


def run_one(spec: dict[str, Any], pairs: Path, out: Path, threads: int) -> dict[str, Any]:
    """Train one variant into ``out`` and score it (runs in the child process)."""
    import embedsearch.encoders.openclip as openclip_module
    from embedsearch.train.clip import pretrain_clip

    config, train = variant_settings(spec)
    if spec.get("word_dropout"):  # probe: drop caption words at random while training
        _patch_word_dropout(float(spec["word_dropout"]))
    with tempfile.TemporaryDirectory() as configs:
        if config is not None:  # the variant's tiny config stands in for the shipped one
            (Path(configs) / "tiny-clip.json").write_text(json.dumps(config))
            openclip_module.CONFIG_DIR = Path(configs)
        tic = time.perf_counter()
        summary = pretrain_clip(pairs, out=out, model="tiny", threads=threads, **train)
        seconds = time.perf_counter() - tic
    scores = score_run(out, pairs, seed=train.get("seed", 0))  # that seed's held-out split
    scores.update(train_s=seconds, steps=summary.train.steps, epochs=summary.train.epochs)
    return scores


def _patch_word_dropout(rate: float) -> None:
    import numpy as np

    from embedsearch.train import clip

    original = clip.PairsDataset.__getitem__

    def getitem(self: Any, key: Any) -> Any:
        pixels, _, failed = original(self, key)
        index, seed = key if isinstance(key, tuple) else (key, 0)
        rng = np.random.default_rng([seed, index, 7])
        words = self.pairs.captions[(index + failed) % len(self.pairs)].split()
        kept = [w for w in words if rng.random() >= rate] or words
        return pixels, self.tokenizer([" ".join(kept)])[0], failed

    clip.PairsDataset.__getitem__ = getitem  # type: ignore[method-assign]


def score_run(run: Path, pairs: Path, val_fraction: float = 0.1, seed: int = 0) -> dict[str, Any]:
    """Top-5 attribute precision and recall@5 of held-out captions among held-out images."""
    import numpy as np
    import torch

    from embedsearch.data.decode import load_image
    from embedsearch.data.pairs import load_pairs
    from embedsearch.encoders import load_encoder
    from embedsearch.train.clip import heldout_split

    loaded = load_pairs(pairs, check_images=False)
    _, val = heldout_split(loaded, val_fraction, seed)
    with open(pairs, newline="") as f:
        rows = {str((pairs.parent / r["filepath"]).resolve()): r for r in csv.DictReader(f)}
    held = [rows[str(Path(loaded.images[i]).resolve())] for i in val]
    encoder = load_encoder(str(run))
    with torch.no_grad():
        pixels = torch.stack([encoder.preprocess(load_image(loaded.images[i])) for i in val])
        images = encoder.embed_images(pixels)
        texts = encoder.embed_texts([loaded.captions[i] for i in val])
    top5 = np.argsort(-(texts @ images.T), axis=1, kind="stable")[:, :5]
    result: dict[str, Any] = {}
    for attribute in ATTRIBUTES:
        wanted = np.array([r[attribute] for r in held])
        result[attribute] = float((wanted[top5] == wanted[:, None]).mean())
    every = np.ones(top5.shape, dtype=bool)
    for attribute in ATTRIBUTES:
        wanted = np.array([r[attribute] for r in held])
        every &= wanted[top5] == wanted[:, None]
    result["all four"] = float(every.mean())
    result["t2i_r5"] = float((top5 == np.arange(len(val))[:, None]).any(axis=1).mean())
    return result


def chance(pairs: Path) -> dict[str, float]:
    """Top-5 precision of random ranking: the chance two held-out items share the attribute."""
    with open(pairs, newline="") as f:
        rows = list(csv.DictReader(f))
    result = {}
    for attribute in ATTRIBUTES:
        counts: dict[str, int] = {}
        for r in rows:
            counts[r[attribute]] = counts.get(r[attribute], 0) + 1
        result[attribute] = sum((c / len(rows)) ** 2 for c in counts.values())
    return result


def measure(name: str, spec: dict[str, Any], pairs: Path, root: Path, threads: int) -> dict:
    """Run one variant in a child process; add its wall and CPU seconds and the load."""
    out = root / f"run-{name}-{time.time_ns()}"
    result_file = out.with_suffix(".json")
    command = [sys.executable, __file__, "--child", json.dumps(spec), str(pairs), str(out)]
    command += [str(result_file), str(threads)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = os.getloadavg()[0]
    tic = time.perf_counter()
    done = subprocess.run(command, check=False, capture_output=True, text=True)
    wall = time.perf_counter() - tic
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"{name} failed: {done.stderr[-3000:]}")
    result = json.loads(result_file.read_text())
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    result.update(wall_s=wall, cpu_s=cpu, load=(load + os.getloadavg()[0]) / 2)
    print(f"  {name}: {json.dumps({k: round(v, 3) for k, v in result.items()})}", flush=True)
    return result


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        spec, pairs, out, result_file, threads = sys.argv[2:7]
        result = run_one(json.loads(spec), Path(pairs), Path(out), int(threads))
        Path(result_file).write_text(json.dumps(result))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--variants", default="before,after")
    parser.add_argument("--probe", action="append", default=[], help="NAME=JSON (see above)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="torch compute threads per run")
    parser.add_argument("--corpus", type=Path, default=None, help="reuse/keep the corpus here")
    args = parser.parse_args()
    variants = {v: VARIANTS[v] for v in args.variants.split(",") if v}
    for probe in args.probe:
        name, _, spec = probe.partition("=")
        variants[name] = json.loads(spec)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from common import machine

    from embedsearch.data.shapes import make_shapes_corpus

    print(machine(), f"| load at start: {os.getloadavg()[0]:.2f}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = args.corpus or Path(tmp) / "shapes"
        if not (corpus / "pairs.csv").is_file():
            make_shapes_corpus(corpus, 3000, seed=0)
        pairs = corpus / "pairs.csv"
        results: dict[str, list[dict]] = {name: [] for name in variants}
        for _ in range(args.repeats):
            for name, spec in variants.items():
                results[name].append(measure(name, spec, pairs, Path(tmp), args.threads))
        print_results(results, chance(pairs))


def print_results(results: dict[str, list[dict]], chance_of: dict[str, float]) -> None:
    """One row per variant (medians over repeats), chance last."""
    keys = [*ATTRIBUTES, "all four", "t2i_r5", "steps", "train_s", "wall_s", "cpu_s", "load"]
    print("\n| variant | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for name, runs in results.items():
        cells = [statistics.median(r[k] for r in runs) for k in keys]
        print(f"| {name} | " + " | ".join(f"{c:.3f}" if c < 10 else f"{c:.0f}" for c in cells))
    cells = [f"{chance_of[a]:.3f}" for a in ATTRIBUTES] + [""] * (len(keys) - len(ATTRIBUTES))
    print("| chance | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
