"""The JSON API in-process: every endpoint answers what the Searcher answers."""

from __future__ import annotations

import base64
import io
import re
from importlib import resources

import numpy as np
import pytest

from embedsearch.index import Searcher


@pytest.fixture(scope="module")
def searcher(clip_corpus):
    return Searcher.open(clip_corpus.index)


def test_indexes_list_their_summary(clip_client, clip_corpus) -> None:
    (entry,) = clip_client.get("/api/indexes").json()["indexes"]
    assert entry["name"] == "index" and entry["rows"] == 25 and entry["dim"] == 128
    assert (entry["model"], entry["kind"], entry["recall_at_k"]) == ("tiny-clip", "flat", 1.0)


def test_describe_index_carries_index_json(clip_client) -> None:
    body = clip_client.get("/api/indexes/index").json()
    assert (
        body["index_json"]["format"] == "embedsearch-index" and body["index_json"]["ntotal"] == 25
    )


def test_text_search_matches_the_searcher(clip_client, searcher) -> None:
    body = clip_client.get(
        "/api/indexes/index/search", params={"text": "a blue circle", "k": 5}
    ).json()
    expected = searcher.search_text("a blue circle", k=5)
    assert [h["id"] for h in body["hits"]] == [h.id for h in expected]
    assert [h["rank"] for h in body["hits"]] == [1, 2, 3, 4, 5]
    assert body["query"] == {"type": "text", "text": "a blue circle"}
    assert body["hits"][0]["score"] == pytest.approx(expected[0].score, abs=1e-5)


def test_hits_carry_source_key_and_table_metadata(clip_client) -> None:
    hit = clip_client.post(
        "/api/indexes/index/search", json={"text": "a red square", "k": 1}
    ).json()["hits"][0]
    assert hit["key"] == hit["id"] and hit["dir"] == 0 and hit["source"].endswith(".png")
    assert {"caption", "shape", "color"} <= set(hit["metadata"])


def test_uploaded_image_finds_itself(clip_client, clip_corpus) -> None:
    path = sorted(clip_corpus.images.glob("0*.png"))[4]
    response = clip_client.post(
        "/api/indexes/index/search/image?k=3", files={"file": path.open("rb")}
    )
    top = response.json()["hits"][0]
    assert top["source"] == str(path) and top["score"] == pytest.approx(1.0, abs=1e-4)


def test_id_search_puts_the_row_first(clip_client) -> None:
    body = clip_client.get("/api/indexes/index/search", params={"id": 7, "k": 4}).json()
    assert body["hits"][0]["id"] == 7 and body["hits"][0]["score"] == pytest.approx(1.0, abs=1e-4)
    assert body["query"] == {"type": "id", "id": 7, "dir": 0}


def test_vector_search_matches_the_searcher(clip_client, searcher) -> None:
    vector = np.random.default_rng(0).standard_normal(128).astype(np.float32)
    body = clip_client.post(
        "/api/indexes/index/search", json={"vector": vector.tolist(), "k": 6}
    ).json()
    assert [h["id"] for h in body["hits"]] == [h.id for h in searcher.search_vector(vector, k=6)]


def test_batch_answers_in_order_like_single_queries(clip_client, clip_corpus) -> None:
    image = base64.b64encode(sorted(clip_corpus.images.glob("0*.png"))[2].read_bytes()).decode()
    queries = [
        {"text": "a green star"},
        {"id": 3},
        {"image_base64": image},
        {"vector": [0.1] * 128},
    ]
    results = clip_client.post(
        "/api/indexes/index/search/batch", json={"queries": queries, "k": 3}
    ).json()["results"]
    assert [r["query"]["type"] for r in results] == ["text", "id", "image", "vector"]
    for query, result in zip(queries, results, strict=True):
        single = clip_client.post("/api/indexes/index/search", json={**query, "k": 3}).json()
        assert [h["id"] for h in result["hits"]] == [h["id"] for h in single["hits"]]


def test_image_endpoint_serves_a_thumbnail_of_the_row(clip_client) -> None:
    from PIL import Image

    response = clip_client.get("/api/indexes/index/image/5", params={"size": 32})
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(response.content)).size) <= 32


def test_health_counts_batched_queries(clip_client) -> None:
    before = clip_client.get("/api/health").json()
    clip_client.get("/api/indexes/index/search", params={"id": 1})
    after = clip_client.get("/api/health").json()
    assert after["status"] == "ok" and after["queries"] == before["queries"] + 1


def test_openapi_documents_every_endpoint(clip_client) -> None:
    paths = set(clip_client.get("/openapi.json").json()["paths"])
    assert {
        "/api/health",
        "/api/indexes",
        "/api/indexes/{name}/search",
        "/api/indexes/{name}/search/image",
        "/api/indexes/{name}/search/batch",
        "/api/indexes/{name}/image/{key}",
        "/api/dedup",
    } <= paths
    assert clip_client.get("/docs").status_code == 200


def test_page_is_served_with_a_same_origin_policy(clip_client) -> None:
    page = clip_client.get("/")
    assert page.status_code == 200 and 'id="results"' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert clip_client.get("/static/app.js").headers["content-type"].startswith("text/javascript")


def test_page_files_load_nothing_from_elsewhere() -> None:
    static = resources.files("embedsearch.serve") / "static"
    for name in ("index.html", "app.js", "app.css"):
        text = static.joinpath(name).read_text()
        assert not re.search(r"https?://|//cdn|@import", text), name


def test_dedup_groups_list_the_kept_image_first_with_pair_scores(clip_client) -> None:
    body = clip_client.get("/api/dedup", params={"limit": 5}).json()
    assert body["total_groups"] == 2
    first = body["groups"][0]
    assert [m["id"] for m in first["members"]] == [0, 1, 2] and first["members"][0]["keep"]
    assert [m["score_to_kept"] for m in first["members"]] == [
        None,
        pytest.approx(0.99),
        pytest.approx(0.97),
    ]
    assert sorted(p["score"] for p in first["pairs"]) == pytest.approx([0.96, 0.97, 0.99])


def test_dedup_image_serves_grouped_rows_only(clip_client) -> None:
    assert clip_client.get("/api/dedup/image/5").status_code == 200
    assert clip_client.get("/api/dedup/image/9").status_code == 404  # indexed, but in no group
