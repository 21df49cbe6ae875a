"""Bad input never gets a traceback or a 500: a 4xx with a one-line ``{"error": ...}``."""

from __future__ import annotations

import io
import struct
import zlib

import pytest

from embedsearch.serve import Limits


def one_line_error(response, status: int) -> str:
    assert response.status_code == status, response.text
    message = response.json()["error"]
    assert "\n" not in message and "Traceback" not in message and message
    return message


def bomb_png(width: int = 30_000, height: int = 30_000) -> bytes:
    """A few bytes whose header claims 900M pixels (refused before any decoding)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = struct.pack(">II", width, height)  # IHDR width, height
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


@pytest.mark.parametrize(
    "request_args",
    [
        ("get", "/api/indexes/nope"),
        ("get", "/api/indexes/nope/search?text=x"),
        ("post", "/api/indexes/nope/search", {"json": {"text": "x"}}),
        ("get", "/api/indexes/nope/image/1"),
    ],
    ids=["describe", "search-get", "search-post", "image"],
)
def test_unknown_index_is_404(clip_client, request_args) -> None:
    method, url, *kwargs = request_args
    response = getattr(clip_client, method)(url, **(kwargs[0] if kwargs else {}))
    assert "no index named 'nope'" in one_line_error(response, 404)


@pytest.mark.parametrize("k", [0, -3, 501])
def test_k_outside_the_cap_is_400(clip_client, k) -> None:
    assert "k must be between 1 and 500" in one_line_error(
        clip_client.get("/api/indexes/index/search", params={"text": "x", "k": k}), 400
    )


def test_k_cap_applies_to_image_uploads_too(clip_client, clip_corpus) -> None:
    path = next(clip_corpus.images.glob("0*.png"))
    response = clip_client.post(
        "/api/indexes/index/search/image?k=9999", files={"file": path.open("rb")}
    )
    one_line_error(response, 400)


def test_malformed_json_is_422(clip_client) -> None:
    response = clip_client.post(
        "/api/indexes/index/search",
        content=b'{"text": ',
        headers={"content-type": "application/json"},
    )
    assert one_line_error(response, 422) == "request body is not valid JSON"


@pytest.mark.parametrize(
    "body, fragment",
    [
        ({"text": "a", "id": 3}, "exactly one of"),
        ({}, "exactly one of"),
        ({"text": "a", "k": "many"}, "k:"),
        ({"text": "a", "colour": "red"}, "colour"),
        ({"vector": ["x", 1]}, "vector"),
    ],
    ids=["two-kinds", "none", "k-not-int", "unknown-field", "vector-not-numbers"],
)
def test_invalid_bodies_are_422_naming_the_field(clip_client, body, fragment) -> None:
    assert fragment in one_line_error(clip_client.post("/api/indexes/index/search", json=body), 422)


def test_wrong_vector_dim_is_400(clip_client) -> None:
    response = clip_client.post("/api/indexes/index/search", json={"vector": [0.5] * 12})
    assert (
        one_line_error(response, 400)
        == "vector has 12 numbers; index index holds vectors of dim 128"
    )


def test_infinite_vector_is_400(clip_client) -> None:
    response = clip_client.post("/api/indexes/index/search", json={"vector": [1e39] * 128})
    assert "infinite" in one_line_error(response, 400)


def test_unknown_id_is_400(clip_client) -> None:
    response = clip_client.get("/api/indexes/index/search", params={"id": 123456})
    assert "id 123456 (source dir #0) is not in the index" in one_line_error(response, 400)


def test_empty_text_is_400(clip_client) -> None:
    one_line_error(clip_client.get("/api/indexes/index/search", params={"text": "  "}), 400)


def test_neither_text_nor_id_on_get_is_400(clip_client) -> None:
    one_line_error(clip_client.get("/api/indexes/index/search"), 400)


def test_corrupt_upload_is_400(clip_client) -> None:
    response = clip_client.post(
        "/api/indexes/index/search/image", files={"file": ("x.png", b"not an image")}
    )
    assert "cannot read the uploaded image: not an image" in one_line_error(response, 400)


def test_decompression_bomb_is_refused_before_decoding(clip_client) -> None:
    response = clip_client.post(
        "/api/indexes/index/search/image", files={"file": ("bomb.png", bomb_png())}
    )
    message = one_line_error(response, 400)
    assert "too large" in message or "decompression bomb" in message


def test_missing_upload_field_is_422(clip_client) -> None:
    one_line_error(clip_client.post("/api/indexes/index/search/image", data={"k": "3"}), 422)


def test_bad_base64_in_a_batch_names_the_query(clip_client) -> None:
    body = {"queries": [{"text": "a"}, {"image_base64": "@@@"}], "k": 2}
    assert one_line_error(
        clip_client.post("/api/indexes/index/search/batch", json=body), 400
    ).startswith("query 1:")


def test_unknown_id_in_a_batch_names_the_query(clip_client) -> None:
    body = {"queries": [{"id": 1}, {"id": 2}, {"id": 99999}], "k": 2}
    assert one_line_error(
        clip_client.post("/api/indexes/index/search/batch", json=body), 400
    ).startswith("query 2:")


def test_oversized_batch_is_400(clip_client) -> None:
    body = {"queries": [{"id": 1}] * 257}
    assert "the limit is 256" in one_line_error(
        clip_client.post("/api/indexes/index/search/batch", json=body), 400
    )


def _client_with(clip_corpus, make_client, **limits):
    from embedsearch.serve import ServeConfig

    config = ServeConfig(
        indexes=(clip_corpus.index,), allowed_hosts=("testserver",), limits=Limits(**limits)
    )
    return make_client(config)


def test_upload_over_the_cap_is_400(clip_corpus, make_client) -> None:
    client = _client_with(clip_corpus, make_client, max_upload_bytes=100)
    path = next(clip_corpus.images.glob("0*.png"))
    response = client.post("/api/indexes/index/search/image", files={"file": path.open("rb")})
    assert "over the 100-byte limit" in one_line_error(response, 400)


def test_body_over_the_cap_is_413_before_it_is_read(clip_corpus, make_client) -> None:
    client = _client_with(clip_corpus, make_client, max_body_bytes=1000)
    response = client.post("/api/indexes/index/search", json={"vector": [0.123456789] * 128})
    assert "over the 1,000-byte cap" in one_line_error(response, 413)


def test_chunked_body_without_length_is_411(clip_client) -> None:
    def chunks():
        yield b'{"text": "a"}'

    response = clip_client.post(
        "/api/indexes/index/search", content=chunks(), headers={"content-type": "application/json"}
    )
    one_line_error(response, 411)


def test_request_timeout_is_503(clip_corpus, make_client) -> None:
    import threading

    client = _client_with(clip_corpus, make_client, request_timeout_s=0.2)
    state = client.app.state.server
    release = threading.Event()
    process = state.batcher.process
    state.batcher.process = lambda items: (release.wait(5), process(items))[1]
    try:
        response = client.get("/api/indexes/index/search", params={"id": 1})
    finally:
        release.set()
    assert "not answered within 0.2 s" in one_line_error(response, 503)


def test_a_bug_is_500_without_a_traceback(clip_corpus, make_client) -> None:
    from embedsearch.serve import ServeConfig

    client = make_client(
        ServeConfig(indexes=(clip_corpus.index,), allowed_hosts=("testserver",)),
        raise_server_exceptions=False,
    )

    def broken(items):
        raise ZeroDivisionError("division by zero")

    client.app.state.server.batcher.process = broken
    message = one_line_error(client.get("/api/indexes/index/search", params={"id": 1}), 500)
    assert message == "internal error (ZeroDivisionError); see the server log"


def test_overlong_text_on_get_is_400(clip_client) -> None:
    response = clip_client.get("/api/indexes/index/search", params={"text": "a" * 10_001})
    assert "over 10,000 characters" in one_line_error(response, 400)


def test_dir_beyond_the_key_range_is_422(clip_client) -> None:
    one_line_error(
        clip_client.get("/api/indexes/index/search", params={"id": 1, "dir": 1 << 30}), 422
    )
    one_line_error(
        clip_client.post("/api/indexes/index/search", json={"id": 1, "dir": 1 << 30}), 422
    )


def test_nan_in_metadata_is_sent_as_null() -> None:
    import json

    from embedsearch.serve.routes import json_response

    body = json.loads(json_response({"hits": [{"metadata": {"w": float("nan"), "n": 2.5}}]}).body)
    assert body == {"hits": [{"metadata": {"w": None, "n": 2.5}}]}
