"""``embedsearch demo``: the whole pipeline on a generated corpus, on the CPU, in minutes.

Stages (each a public library call, each showing progress):

1. :func:`~embedsearch.data.shapes.make_shapes_corpus` -- captioned coloured shapes
2. :func:`~embedsearch.train.clip.pretrain_clip` -- the tiny CLIP from scratch (10% held out)
3. :func:`~embedsearch.embedding.embed` -- every image, with its caption and attributes as metadata
4. :func:`~embedsearch.index.build_index` -- a tuned FAISS index dir
5. text queries through :class:`~embedsearch.index.Searcher`, a result-grid PNG, and
   held-out text->image recall@1/5: each held-out caption must find its own image
   among the held-out images (the usual CLIP retrieval protocol; chance is 5 / held-out).

Everything lands in one folder (``corpus/ model/ embeddings/ index/ grid.png demo.json``).

Example:
    >>> result = run_demo("demo-out")               # doctest: +SKIP
    >>> round(result.recall_at_5, 2)                # doctest: +SKIP
    0.71
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from embedsearch.atomic import write_json_atomic
from embedsearch.data.workers import available_cores
from embedsearch.errors import InputError
from embedsearch.progress import NullProgress, Progress

if TYPE_CHECKING:
    from embedsearch.index import Searcher
    from embedsearch.index.query import QueryResult

# (query text, attributes a correct hit has): the table's "match" column checks them.
DEMO_QUERIES: tuple[tuple[str, dict[str, str]], ...] = (
    ("a red circle", {"color": "red", "shape": "circle"}),
    ("a big blue square", {"color": "blue", "shape": "square", "size": "large"}),
    ("a yellow star in the top left", {"color": "yellow", "shape": "star", "position": "top left"}),
    ("a small green triangle", {"color": "green", "shape": "triangle", "size": "small"}),
    (
        "an orange cross on a dark background",
        {"color": "orange", "shape": "cross", "background": "dark"},
    ),
    (
        "a purple circle in the bottom right",
        {"color": "purple", "shape": "circle", "position": "bottom right"},
    ),
)
MARKER = "demo.json"
_PARTS = ("corpus", "model", "embeddings", "index", "grid.png", MARKER)


# What the grid's frames mean (its legend): a hit matching every attribute the query names.
MATCH, MISMATCH, QUERY = "green", "red", "#1f4e99"
GRID_LEGEND = (
    (MATCH, "green: the hit has every attribute the query names"),
    (MISMATCH, "red: some attribute differs"),
    (QUERY, "blue: the query"),
)


@dataclass
class DemoHit:
    """One hit of a demo query; ``match``: it has every attribute the query asks for.

    In ``demo.json`` an object: ``{"source", "caption", "score", "match"}``.
    """

    source: str
    caption: str
    score: float
    match: bool


@dataclass
class DemoQuery:
    """One demo query and its hits."""

    text: str
    hits: list[DemoHit]

    @property
    def precision(self) -> float:
        """Share of the hits whose attributes match everything the query asks for."""
        return sum(h.match for h in self.hits) / len(self.hits) if self.hits else 0.0


@dataclass
class DemoResult:
    """What the demo produced: paths, query hits, held-out recall and stage timings."""

    out: Path
    queries: list[DemoQuery]
    recall_at_1: float
    recall_at_5: float
    held_out: int
    images: int
    epochs: int
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def chance_at_5(self) -> float:
        """Recall@5 of random ranking among the held-out images."""
        return min(1.0, 5 / self.held_out) if self.held_out else 0.0

    @property
    def grid(self) -> Path:
        return self.out / "grid.png"


def run_demo(
    out: str | Path = "embedsearch-demo",
    *,
    n: int = 3000,
    epochs: int = 9,  # held-out recall@5 reaches 1.0 by epoch 8; 10 cost more CPU than the old demo
    batch_size: int | None = None,
    lr: float = 1e-3,
    val_fraction: float = 0.1,
    seed: int = 0,
    k: int = 5,
    workers: int | None = None,
    threads: int | None = None,
    progress: Progress | None = None,
) -> DemoResult:
    """Generate, train, embed, index and search (see the module docstring); returns the results.

    ``out`` must be new, empty, or an earlier demo folder (which is replaced).

    Example:
        >>> r = run_demo("demo-out", n=400, epochs=2)   # doctest: +SKIP
        >>> r.queries[0].hits[0].caption                 # doctest: +SKIP
        'A big red circle in the middle'
    """
    from embedsearch.data.shapes import make_shapes_corpus
    from embedsearch.embedding import embed
    from embedsearch.index import Searcher, build_index
    from embedsearch.index.hit_formats import write_grid
    from embedsearch.train.clip import BATCH_SIZE, pretrain_clip

    out = _prepare_out(Path(out))
    write_json_atomic(out / MARKER, {"status": "running"})  # marks the folder as the demo's
    progress = progress or NullProgress()
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        seconds[stage] = round(time.perf_counter() - clock, 2)
        clock = time.perf_counter()

    corpus = make_shapes_corpus(out / "corpus", n, seed=seed, progress=progress)
    lap("corpus")
    trained = pretrain_clip(
        corpus.pairs,
        out=out / "model",
        epochs=epochs,
        batch_size=batch_size or BATCH_SIZE,
        lr=lr,
        val_fraction=val_fraction,
        seed=seed,
        workers=workers,
        threads=threads or busy_threads(),
        warmup_epochs=0.5,
        progress=progress,
    )
    lap("train")
    embed(
        corpus.pairs,
        model=str(out / "model"),
        out=out / "embeddings",
        image_col="filepath",
        progress=progress,
    )
    lap("embed")
    build_index([out / "embeddings"], out / "index", progress=progress)
    lap("index")
    searcher = Searcher.open(out / "index", device="cpu")
    queries, results = search_demo_queries(searcher, k)
    frames = [[MATCH if hit.match else MISMATCH for hit in query.hits] for query in queries]
    write_grid(results, out / "grid.png", thumb=96, frames=frames, legend=GRID_LEGEND)
    r1, r5, held_out = heldout_recall(searcher, corpus.pairs, val_fraction=val_fraction, seed=seed)
    lap("search")
    result = DemoResult(out, queries, r1, r5, held_out, n, trained.train.epochs, seconds)
    _write_marker(result)
    return result


def busy_threads() -> int | None:
    """1 on a small or busy machine (<= 2 cores, or load average >= cores), else None (torch's
    default).

    The tiny CLIP's matrices are small: a second compute thread gains little, and on a
    loaded machine oversubscribed OpenMP threads spin at every barrier (measured here: two
    threads trained several times slower than one). The DataLoader worker uses the other core.
    """
    cores = available_cores()
    return 1 if cores <= 2 or os.getloadavg()[0] >= cores else None


def _prepare_out(out: Path) -> Path:
    """Refuse a folder with foreign content; clear an earlier demo's parts."""
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file; pass a folder for the demo")
    if out.is_dir() and any(out.iterdir()):
        if not (out / MARKER).is_file():
            raise InputError(
                f"--out {out} is not empty and holds no earlier demo; choose another folder"
            )
        for part in _PARTS:
            path = out / part
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    return out


def search_demo_queries(
    searcher: Searcher, k: int = 5
) -> tuple[list[DemoQuery], list[QueryResult]]:
    """Search every :data:`DEMO_QUERIES` text; mark hits whose attributes match the query.

    Returns the marked rows (for ``demo.json`` and the table) and the hits (for the grid).
    """
    from embedsearch.index.query import QueryResult

    texts = [text for text, _ in DEMO_QUERIES]
    queries, results = [], []
    for (text, wanted), hits in zip(DEMO_QUERIES, searcher.search_texts(texts, k=k), strict=True):
        rows = [
            DemoHit(
                h.source,
                str(h.metadata.get("caption", "")),
                h.score,
                all(h.metadata.get(a) == v for a, v in wanted.items()),
            )
            for h in hits
        ]
        queries.append(DemoQuery(text, rows))
        results.append(QueryResult("text", text, hits))
    return queries, results


def heldout_recall(
    searcher: Searcher, pairs: Path, val_fraction: float, seed: int
) -> tuple[float, float, int]:
    """Text->image recall@1/5 of held-out captions among the held-out images, through the index.

    The held-out split is the one training used (:func:`embedsearch.train.clip.heldout_split`).
    Demo-scale: each caption ranks all ``ntotal`` vectors, then non-held-out images are dropped.
    """
    from embedsearch.data.pairs import load_pairs
    from embedsearch.train.clip import heldout_split

    loaded = load_pairs(pairs, check_images=False)
    _, val = heldout_split(loaded, val_fraction, seed)
    held = loaded.subset(val)
    stored = searcher.store.take(searcher.store.keys)
    keys, sources = (stored.column(name).to_pylist() for name in ("key", "source"))
    source_of = dict(zip(keys, sources, strict=True))
    val_sources = set(held.images)
    ranks = []
    for start in range(0, len(held), 256):
        captions = held.captions[start : start + 256]
        _, found = searcher.search_raw(searcher.encoder.embed_texts(captions), k=searcher.ntotal)
        for offset, row in enumerate(found):
            gallery = [
                source_of.get(int(key)) for key in row if source_of.get(int(key)) in val_sources
            ]
            own = held.images[start + offset]
            ranks.append(gallery.index(own) if own in gallery else len(gallery))
    ranks_array = np.asarray(ranks)
    return float((ranks_array < 1).mean()), float((ranks_array < 5).mean()), len(held)


def _write_marker(result: DemoResult) -> None:
    data: dict[str, Any] = {"status": "done", **asdict(result)}
    data["out"] = str(result.out)
    data["chance_at_5"] = result.chance_at_5
    data["precision_at_k"] = {q.text: q.precision for q in result.queries}
    write_json_atomic(result.out / MARKER, data)
