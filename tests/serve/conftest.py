"""Fixtures for ``serve``: a small tiny-clip index over captioned shapes (with a symlink that points
outside its folder), a hand-written dedup dir, vector-only indexes, and servers (in-process
TestClient, or uvicorn on a free loopback port in a thread)."""

from __future__ import annotations

import csv
import json
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from embedsearch.serve import ServeConfig

ROWS = 24  # shapes in the tiny-clip index (plus one symlinked row)


@dataclass
class ClipCorpus:
    root: Path
    index: Path
    images: Path  # the source folder
    outside: Path  # an image outside it, reachable only through a symlink inside it
    link_key: int  # the index key of the symlinked row
    dedup: Path


@pytest.fixture(scope="session")
def clip_corpus(tmp_path_factory: pytest.TempPathFactory) -> ClipCorpus:
    """Shapes embedded with tiny-clip from a table (metadata: caption, shape…), flat index."""
    from PIL import Image

    from embedsearch.data.shapes import make_shapes_corpus
    from embedsearch.embedding import embed
    from embedsearch.index import Searcher, build_index

    root = tmp_path_factory.mktemp("serve")
    corpus = make_shapes_corpus(root / "shapes", n=ROWS, seed=3)
    outside = root / "secret" / "private.png"
    outside.parent.mkdir()
    Image.new("RGB", (32, 32), (200, 10, 10)).save(outside)
    link = root / "shapes" / "images" / "link.png"
    link.symlink_to(outside)
    with open(corpus.pairs, "a", newline="") as f:
        csv.writer(f).writerow(
            ["images/link.png", "a link", "square", "red", "big", "center", "light"]
        )
    embed(
        corpus.pairs,
        model="tiny-clip",
        out=root / "emb",
        image_col="filepath",
        workers=0,
        batch_size=16,
    )
    build_index([root / "emb"], root / "index", kind="flat")
    hits = Searcher.open(root / "index").search_image(outside, k=1)
    assert hits[0].source.endswith("link.png")
    dedup = write_dedup_dir(root / "dedup", root / "emb", Searcher.open(root / "index"))
    return ClipCorpus(root, root / "index", root / "shapes" / "images", outside, hits[0].id, dedup)


def write_dedup_dir(out: Path, emb: Path, searcher) -> Path:
    """A dedup result like ``dedup --out`` writes: two groups over rows 0-2 and 5-6."""
    out.mkdir()
    sources = {h.id: h.source for hits in searcher.search_ids(range(8), k=1) for h in hits}
    members = [(0, 0, True), (0, 1, False), (0, 2, False), (1, 5, True), (1, 6, False)]
    pq.write_table(
        pa.table(
            {
                "group": pa.array([g for g, _, _ in members], pa.int64()),
                "id": pa.array([i for _, i, _ in members], pa.int64()),
                "source": [sources[i] for _, i, _ in members],
                "keep": [k for _, _, k in members],
                "dir": pa.array([0] * len(members), pa.int32()),
            }
        ),
        out / "groups.parquet",
    )
    pairs = [(0, 1, 0.99), (0, 2, 0.97), (1, 2, 0.96), (5, 6, 0.98)]
    pq.write_table(
        pa.table(
            {
                "id_a": pa.array([a for a, _, _ in pairs], pa.int64()),
                "id_b": pa.array([b for _, b, _ in pairs], pa.int64()),
                "source_a": [sources[a] for a, _, _ in pairs],
                "source_b": [sources[b] for _, b, _ in pairs],
                "score": pa.array([s for _, _, s in pairs], pa.float32()),
                "exact": [False] * len(pairs),
                "dir_a": pa.array([0] * len(pairs), pa.int32()),
                "dir_b": pa.array([0] * len(pairs), pa.int32()),
            }
        ),
        out / "pairs.parquet",
    )
    summary = {
        "method": "knn",
        "threshold": 0.95,
        "scores": "raw cosine",
        "rows": ROWS + 1,
        "groups": 2,
        "to_remove": 3,
        "kept": ROWS - 2,
        "inputs": [str(emb)],
        "against": [],
    }
    (out / "dedup.json").write_text(json.dumps(summary))
    return out


def build_vector_index(path: Path, n: int, seed: int, prefix: str, dim: int = 16) -> np.ndarray:
    """A flat index of ``n`` generated vectors (sources ``prefix/i.png``), published at ``path``."""
    from embedsearch.index import build_index
    from embedsearch.store.embedding_dir import EmbeddingDir
    from embedsearch.store.writer import ShardWriter

    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    emb = path.parent / f"{path.name}-emb-{prefix}"
    shutil.rmtree(emb, ignore_errors=True)
    d = EmbeddingDir.create_or_open(
        emb,
        model="simclr:resnet18",
        model_options={},
        fingerprint="fp-serve",
        modality="image",
        dim=dim,
        source="synthetic",
    )
    ids = np.arange(n, dtype=np.int64)
    writer = ShardWriter(d, reserve_next_id=n)
    writer.add(
        ids,
        [f"{prefix}/{i}.png" for i in ids],
        [f"h{i}" for i in ids],
        vectors,
        {"label": [int(i % 3) for i in ids]},
    )
    writer.close()
    build_index([emb], path, kind="flat", overwrite=path.exists())
    return vectors


def config_for(*indexes: Path, **kwargs) -> ServeConfig:
    """A config for the test client (its Host header is ``testserver``)."""
    kwargs.setdefault("allowed_hosts", ("testserver",))
    kwargs.setdefault("reload_check_s", 3600.0)  # tests reload by hand unless they test the watcher
    return ServeConfig(indexes=tuple(indexes), **kwargs)


@pytest.fixture
def make_client() -> Iterator[Callable[..., object]]:
    """``make_client(config, raise_server_exceptions=True)`` -> a started TestClient."""
    from fastapi.testclient import TestClient

    from embedsearch.serve import create_app

    clients = []

    def make(config: ServeConfig, raise_server_exceptions: bool = True):
        client = TestClient(create_app(config), raise_server_exceptions=raise_server_exceptions)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture(scope="module")
def clip_client(clip_corpus: ClipCorpus) -> Iterator[object]:
    """One client over the tiny-clip index and the dedup dir, shared by a module's tests."""
    from fastapi.testclient import TestClient

    from embedsearch.serve import create_app

    with TestClient(create_app(config_for(clip_corpus.index, dedup=clip_corpus.dedup))) as client:
        yield client


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LiveServer:
    url: str
    server: object


@pytest.fixture(scope="module")
def live_server(clip_corpus: ClipCorpus) -> Iterator[LiveServer]:
    """uvicorn on 127.0.0.1:<free port> in a thread, serving the tiny-clip index; stopped after."""
    import uvicorn

    from embedsearch.serve import create_app

    port = free_port()
    app = create_app(ServeConfig(indexes=(clip_corpus.index,), dedup=clip_corpus.dedup, port=port))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield LiveServer(f"http://127.0.0.1:{port}", server)
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def serve_config() -> Callable[..., ServeConfig]:
    """The :func:`config_for` helper (test modules cannot import conftest)."""
    return config_for


@pytest.fixture
def publish_vectors() -> Callable[..., np.ndarray]:
    """The :func:`build_vector_index` helper: (path, n, seed, prefix) -> vectors."""
    return build_vector_index
