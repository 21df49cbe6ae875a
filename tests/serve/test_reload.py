"""Hot reload: an index dir republished on disk is served without a restart, and requests already
in flight finish on the old one."""

from __future__ import annotations

import threading
import time


def test_republished_index_is_served_after_reload(
    tmp_path, publish_vectors, serve_config, make_client
) -> None:
    publish_vectors(tmp_path / "vec", 40, 0, "old")
    client = make_client(serve_config(tmp_path / "vec"))
    assert (
        client.get("/api/indexes/vec/search", params={"id": 1, "k": 1}).json()["hits"][0]["source"]
        == "old/1.png"
    )
    publish_vectors(tmp_path / "vec", 60, 1, "new")  # build_index publishes by renaming a whole dir
    registry = client.app.state.server.registry
    assert registry.reload_changed() == ["vec"]
    assert client.get("/api/indexes").json()["indexes"][0]["rows"] == 60
    assert (
        client.get("/api/indexes/vec/search", params={"id": 1, "k": 1}).json()["hits"][0]["source"]
        == "new/1.png"
    )


def test_in_flight_request_finishes_on_the_old_index(
    tmp_path, publish_vectors, serve_config, make_client
) -> None:
    publish_vectors(tmp_path / "vec", 40, 0, "old")
    client = make_client(serve_config(tmp_path / "vec"))
    state = client.app.state.server
    entered, release = threading.Event(), threading.Event()
    process = state.batcher.process

    def held(items):  # the worker holds the first batch until the index has been replaced
        entered.set()
        release.wait(10)
        return process(items)

    state.batcher.process = held
    answers = {}
    thread = threading.Thread(
        target=lambda: answers.update(
            r=client.get("/api/indexes/vec/search", params={"id": 2, "k": 3})
        )
    )
    thread.start()
    assert entered.wait(10)
    publish_vectors(tmp_path / "vec", 60, 1, "new")  # the old dir is deleted by the publish
    assert state.registry.reload_changed() == ["vec"]
    state.batcher.process = process
    release.set()
    thread.join(10)
    response = answers["r"]
    assert response.status_code == 200
    assert [h["source"] for h in response.json()["hits"]][0] == "old/2.png"
    assert (
        client.get("/api/indexes/vec/search", params={"id": 2, "k": 1}).json()["hits"][0]["source"]
        == "new/2.png"
    )


def test_watcher_reloads_without_being_asked(
    tmp_path, publish_vectors, serve_config, make_client
) -> None:
    publish_vectors(tmp_path / "vec", 40, 0, "old")
    client = make_client(serve_config(tmp_path / "vec", reload_check_s=0.05))
    publish_vectors(tmp_path / "vec", 50, 1, "new")
    deadline = time.monotonic() + 15
    while client.get("/api/indexes").json()["indexes"][0]["rows"] != 50:
        assert time.monotonic() < deadline, "the republished index was not picked up"
        time.sleep(0.05)
    assert client.get("/api/health").json()["reloads"] == 1


def test_a_broken_replacement_keeps_the_old_index_serving(
    tmp_path, publish_vectors, serve_config, make_client
) -> None:
    publish_vectors(tmp_path / "vec", 40, 0, "old")
    client = make_client(serve_config(tmp_path / "vec"))
    (tmp_path / "vec" / "index.json").write_text("{ not json")
    registry = client.app.state.server.registry
    assert registry.reload_changed() == []
    assert "index.json" in client.get("/api/health").json()["reload_errors"]["vec"]
    assert (
        client.get("/api/indexes/vec/search", params={"id": 1, "k": 1}).json()["hits"][0]["source"]
        == "old/1.png"
    )
