"""``where`` and ``min_score`` in the JSON API: GET and POST search, batches, and one-line 400s
for a bad condition."""

from __future__ import annotations

import pytest


@pytest.fixture
def client(tmp_path, publish_vectors, serve_config, make_client):
    """A served flat index of 90 rows whose ``label`` is ``id % 3``."""
    publish_vectors(tmp_path / "vec", 90, 0, "img")
    return make_client(serve_config(tmp_path / "vec"))


def labels(answer: dict) -> set[int]:
    return {hit["metadata"]["label"] for hit in answer["hits"]}


def test_get_search_filters_by_where(client) -> None:
    answer = client.get(
        "/api/indexes/vec/search", params={"id": 1, "k": 10, "where": "label = 2"}
    ).json()
    assert labels(answer) == {2}


def test_post_search_filters_by_where(client) -> None:
    answer = client.post(
        "/api/indexes/vec/search", json={"id": 1, "k": 10, "where": "label = 0 AND id < 30"}
    ).json()
    assert {h["id"] for h in answer["hits"]} == set(range(0, 30, 3))


def test_post_search_drops_hits_below_min_score(client) -> None:
    answer = client.post(
        "/api/indexes/vec/search", json={"id": 1, "k": 50, "min_score": 0.1}
    ).json()
    assert min(h["score"] for h in answer["hits"]) >= 0.1


def test_get_search_takes_min_score(client) -> None:
    answer = client.get(
        "/api/indexes/vec/search", params={"id": 1, "k": 50, "min_score": 0.1}
    ).json()
    assert min(h["score"] for h in answer["hits"]) >= 0.1


def test_batch_filters_every_query(client) -> None:
    answer = client.post(
        "/api/indexes/vec/search/batch",
        json={"queries": [{"id": 1}, {"id": 5}], "k": 5, "where": "label = 1"},
    ).json()
    assert [labels(result) for result in answer["results"]] == [{1}, {1}]


def test_a_filtered_search_leaves_the_next_plain_one_unfiltered(client) -> None:
    client.post("/api/indexes/vec/search", json={"id": 4, "k": 5, "where": "label = 0"})
    plain = client.post("/api/indexes/vec/search", json={"id": 4, "k": 5}).json()
    assert plain["hits"][0]["id"] == 4  # label 1: the filter of the first search is gone


def test_one_micro_batch_searches_each_filter_apart(client) -> None:
    from embedsearch.serve.execute import Query, process

    gen = client.app.state.server.registry.get("vec")
    outcomes = process(
        [Query(gen, "id", 1, 5, 0, "label = 0"), Query(gen, "id", 1, 5, 0, "label = 2")]
    )
    assert [{h.metadata["label"] for h in hits} for hits in outcomes] == [{0}, {2}]


def test_bad_where_is_a_400(client) -> None:
    response = client.post("/api/indexes/vec/search", json={"id": 1, "where": "lable = 2"})
    assert response.status_code == 400


def test_bad_where_names_the_column(client) -> None:
    response = client.post("/api/indexes/vec/search", json={"id": 1, "where": "lable = 2"})
    assert 'column "lable" not found (did you mean "label"?)' in response.json()["error"]


def test_where_cannot_read_server_files(client, tmp_path) -> None:
    secret = tmp_path / "secret.csv"
    secret.write_text("a\n1\n")
    response = client.get(
        "/api/indexes/vec/search",
        params={"id": 1, "where": f"(SELECT count(*) FROM read_csv('{secret}')) > 0"},
    )
    assert response.status_code == 400
