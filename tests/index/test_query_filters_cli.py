"""``embedsearch query --where/--min-score``: filtered rows through the CLI, one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

LICENSES = ("cc0", "by", "by-sa", "cc0")


@pytest.fixture(scope="module")
def small_index(tmp_path_factory):
    """400 generated rows with a ``license`` and a ``year`` column, in an HNSW index."""
    from embedsearch.index import build_index
    from embedsearch.store.arrays import write_embedding_dir

    root = tmp_path_factory.mktemp("query-filters")
    rng = np.random.default_rng(3)
    ids = np.arange(400)
    write_embedding_dir(
        root / "emb",
        rng.standard_normal((400, 16)).astype(np.float32),
        ids=ids,
        sources=[f"photos/{i}.jpg" for i in ids],
        metadata={
            "license": [LICENSES[i % 4] for i in ids],
            "year": [2000 + int(i) % 25 for i in ids],
        },
        model="synthetic",
    )
    build_index([root / "emb"], root / "idx", kind="hnsw")
    return root / "idx"


def hits_of(stdout: str) -> list[dict]:
    (answer,) = json.loads(stdout)
    return answer["hits"]


def test_where_keeps_only_matching_rows(small_index, run_cli) -> None:
    result = run_cli(
        "query", small_index, "--id", "1", "-k", "20", "--format", "json",
        "--where", "license = 'by' AND year >= 2010",
    )  # fmt: skip
    assert {(h["license"], h["year"] >= 2010) for h in hits_of(result.stdout)} == {("by", True)}


def test_where_still_gives_k_hits(small_index, run_cli) -> None:
    result = run_cli(
        "query", small_index, "--id", "1", "-k", "20", "--format", "json",
        "--where", "license = 'by' AND year >= 2010",
    )  # fmt: skip
    assert len(hits_of(result.stdout)) == 20


def test_where_says_how_many_rows_it_keeps(small_index, run_cli) -> None:
    result = run_cli(
        "query", small_index, "--id", "1", "--format", "json", "--where", "license = 'cc0'"
    )
    assert "keeps 200 of 400 rows" in result.stderr


def test_min_score_drops_lower_hits(small_index, run_cli) -> None:
    result = run_cli("query", small_index, "--id", "1", "-k", "50", "--format", "json",
                     "--min-score", "0.3")  # fmt: skip
    assert min(h["score"] for h in hits_of(result.stdout)) >= 0.3


def test_unknown_column_exits_2(small_index, run_cli) -> None:
    result = run_cli("query", small_index, "--id", "1", "--where", "licence = 'cc0'")
    assert result.exit_code == 2


def test_unknown_column_is_named_in_one_line(small_index, run_cli) -> None:
    result = run_cli("query", small_index, "--id", "1", "--where", "licence = 'cc0'")
    assert result.stderr.strip().splitlines() == [
        'error: bad --where "licence = \'cc0\'": column "licence" not found (did you mean '
        '"license"?); columns: id, source, license, year'
    ]


def test_a_type_error_exits_2_without_a_traceback(small_index, run_cli) -> None:
    result = run_cli("query", small_index, "--id", "1", "--where", "year = 'recent'")
    assert (result.exit_code, "Traceback" in result.stderr) == (2, False)
