"""Path traversal, token, Host allow-list, binding rules, CORS."""

from __future__ import annotations

import pytest

from embedsearch.errors import InputError
from embedsearch.serve import ServeConfig
from embedsearch.serve.config import check_binding

TRAVERSALS = [
    "../../../../etc/passwd",
    "..%2f..%2f..%2fetc%2fpasswd",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "%252e%252e%252fetc%252fpasswd",
    "%2Fetc%2Fpasswd",
    "/etc/passwd",
    "..%2f..",
    "-1",
    "3.0",
    "0x10",
    "99999999999999999999999",
    "9999999999999999999",  # 19 digits, past int64
]


@pytest.mark.parametrize("attempt", TRAVERSALS)
@pytest.mark.parametrize("prefix", ["/api/indexes/index/image/", "/api/dedup/image/", "/static/"])
def test_traversal_attempts_are_404(clip_client, prefix, attempt) -> None:
    response = clip_client.get(prefix + attempt)
    assert response.status_code == 404, (prefix + attempt, response.text)
    assert "root:" not in response.text


@pytest.mark.parametrize(
    "raw",
    [
        "/api/indexes/index/image/../../../../etc/passwd",
        "/api/indexes/index/image/..%2f..%2f..%2fetc%2fpasswd",
        "/static/../../../../etc/passwd",
        "/static/%2e%2e/%2e%2e/etc/passwd",
        "/api/dedup/image/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    ],
)
def test_raw_traversal_paths_on_the_wire_are_404(live_server, raw) -> None:
    """Sent byte for byte (no client-side ``..`` clean-up), to the real uvicorn server."""
    import http.client

    connection = http.client.HTTPConnection(live_server.url.removeprefix("http://"), timeout=10)
    connection.request("GET", raw)
    response = connection.getresponse()
    body = response.read()
    connection.close()
    assert response.status == 404 and b"root:" not in body


def test_symlink_inside_the_source_folder_pointing_outside_is_404(clip_client, clip_corpus) -> None:
    assert clip_corpus.outside.is_file()  # the target exists, is an image, and its row is indexed
    response = clip_client.get(f"/api/indexes/index/image/{clip_corpus.link_key}")
    assert response.status_code == 404 and response.json()["error"].startswith("no servable image")


def test_a_key_that_is_not_indexed_is_404(clip_client) -> None:
    assert clip_client.get("/api/indexes/index/image/4242").status_code == 404


def test_image_outside_every_root_is_404_even_when_indexed(
    clip_corpus, tmp_path, make_client
) -> None:
    """Rows whose source folder is unknown (no manifest) are served only from an --image-root."""
    import shutil

    from embedsearch.index import build_index

    emb = tmp_path / "emb"
    shutil.copytree(clip_corpus.root / "emb", emb)
    build_index([emb], tmp_path / "index", kind="flat")
    shutil.rmtree(emb)  # the index stays searchable, but no longer knows which folder was embedded
    config = ServeConfig(indexes=(tmp_path / "index",), allowed_hosts=("testserver",))
    assert make_client(config).get("/api/indexes/index/image/2").status_code == 404
    allowed = ServeConfig(
        indexes=(tmp_path / "index",),
        allowed_hosts=("testserver",),
        image_roots=(clip_corpus.images,),
    )
    assert make_client(allowed).get("/api/indexes/index/image/2").status_code == 200


@pytest.fixture
def token_client(clip_corpus, make_client):
    return make_client(ServeConfig(indexes=(clip_corpus.index,), token="s3cret", host="0.0.0.0"))


@pytest.mark.parametrize(
    "path",
    [
        "/api/indexes",
        "/api/health",
        "/api/indexes/index/search?id=1",
        "/api/indexes/index/image/1",
        "/api/dedup",
    ],
)
def test_token_is_required_on_every_api_call(token_client, path) -> None:
    response = token_client.get(path)
    assert response.status_code == 401 and response.headers["www-authenticate"].startswith("Bearer")
    assert token_client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_bearer_token_and_page_cookie_are_accepted(token_client) -> None:
    assert (
        token_client.get("/api/indexes", headers={"Authorization": "Bearer s3cret"}).status_code
        == 200
    )
    assert (
        token_client.get(
            "/api/indexes/index/image/1", cookies={"embedsearch_token": "s3cret"}
        ).status_code
        == 200
    )


def test_page_itself_needs_no_token(token_client) -> None:
    assert token_client.get("/").status_code == 200  # it holds no data; it asks for the token


def test_loopback_without_token_refuses_foreign_host_names(clip_corpus, make_client) -> None:
    client = make_client(ServeConfig(indexes=(clip_corpus.index,)))  # 127.0.0.1, no token
    assert client.get("/api/indexes", headers={"host": "attacker.example"}).status_code == 421
    assert client.get("/api/indexes", headers={"host": "127.0.0.1:8000"}).status_code == 200
    assert client.get("/api/indexes", headers={"host": "localhost:8000"}).status_code == 200


def test_binding_beyond_loopback_needs_a_token_or_no_auth() -> None:
    with pytest.raises(InputError, match="--token T"):
        check_binding(ServeConfig(indexes=(), host="0.0.0.0"))
    assert check_binding(ServeConfig(indexes=(), host="0.0.0.0", token="t")) is None
    assert "WITHOUT authentication" in check_binding(
        ServeConfig(indexes=(), host="0.0.0.0", no_auth=True)
    )
    assert check_binding(ServeConfig(indexes=(), host="127.0.0.1")) is None
    assert check_binding(ServeConfig(indexes=(), host="::1")) is None


def test_cors_only_when_asked(clip_corpus, make_client) -> None:
    origin = {"origin": "http://app.example"}
    plain = make_client(ServeConfig(indexes=(clip_corpus.index,), allowed_hosts=("testserver",)))
    assert "access-control-allow-origin" not in plain.get("/api/indexes", headers=origin).headers
    cors = make_client(
        ServeConfig(
            indexes=(clip_corpus.index,),
            allowed_hosts=("testserver",),
            cors_origins=("http://app.example",),
        )
    )
    assert (
        cors.get("/api/indexes", headers=origin).headers["access-control-allow-origin"]
        == "http://app.example"
    )
