"""Issue 17 item 10: a pretrained tag that is not cached fails at once without network, saying so
in one line, instead of open_clip's ~56 s of retries and an error printed twice."""

from __future__ import annotations

import socket

import pytest

from embedsearch.errors import ModelError

SPEC = "openclip:RN50/openai"


def _refuse_connections(monkeypatch) -> None:
    def unreachable(*args, **kwargs):
        raise OSError("[Errno -2] Name or service not known")

    monkeypatch.setattr(socket, "create_connection", unreachable)


def _no_download_attempt(monkeypatch) -> None:
    import open_clip

    def create_model(name, pretrained=None, **kwargs):
        if pretrained == "openai":
            raise AssertionError("open_clip was asked to download the tag")
        raise RuntimeError("stop here")

    monkeypatch.setattr(open_clip, "create_model", create_model)


def test_unreachable_hub_is_refused_before_open_clip_retries(monkeypatch) -> None:
    from embedsearch.encoders import load_encoder

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    _refuse_connections(monkeypatch)
    _no_download_attempt(monkeypatch)
    with pytest.raises(ModelError, match="not in the local cache and huggingface.co cannot"):
        load_encoder(SPEC)


def test_offline_mode_is_refused_before_open_clip_is_asked(monkeypatch) -> None:
    from embedsearch.encoders import load_encoder

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _no_download_attempt(monkeypatch)
    with pytest.raises(ModelError, match="HF_HUB_OFFLINE is set"):
        load_encoder(SPEC)


def test_the_cli_says_the_offline_error_once(run_cli, tmp_path) -> None:
    (tmp_path / "texts.txt").write_text("a cat\n")
    result = run_cli("embed", tmp_path / "texts.txt", "--model", SPEC, "-o", tmp_path / "emb")
    assert result.stderr.count("not in the local cache") == 1


def test_the_cli_offline_error_is_its_only_line(run_cli, tmp_path) -> None:
    (tmp_path / "texts.txt").write_text("a cat\n")
    result = run_cli("embed", tmp_path / "texts.txt", "--model", SPEC, "-o", tmp_path / "emb")
    assert result.stderr.strip().splitlines() == [
        f"error: {SPEC}: the weights are not in the local cache and "
        "HF_HUB_OFFLINE is set: download it once with network, or pass the weights file as "
        "openclip:RN50/PATH"
    ]
