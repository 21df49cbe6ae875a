"""``embedsearch serve``: refusals before anything starts, and a real server process answering."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def test_open_bind_without_token_is_refused(run_cli, tmp_path) -> None:
    result = run_cli("serve", tmp_path, "--host", "0.0.0.0")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: --host 0.0.0.0 is reachable from other machines")
    assert "Traceback" not in result.stderr


def test_missing_index_dir_is_a_one_line_error(run_cli, tmp_path) -> None:
    result = run_cli("serve", tmp_path / "nope")
    assert (
        result.exit_code == 2
        and result.stderr.strip() == f"error: {tmp_path / 'nope'} does not exist"
    )


def test_token_and_no_auth_together_are_refused(run_cli, tmp_path) -> None:
    result = run_cli("serve", tmp_path, "--token", "t", "--no-auth")
    assert result.exit_code == 2 and "contradict" in result.stderr


def test_server_process_answers_and_stops(clip_corpus, tmp_path) -> None:
    """`embedsearch serve` as users run it: a subprocess on a free loopback port, then stopped."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")]
        ),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "embedsearch", "serve", str(clip_corpus.index), "--port", str(port)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/api/indexes/index/search?id=3&k=2"
                ) as r:
                    body = json.load(r)
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, (
                    "server did not start"
                )
                time.sleep(0.2)
        assert body["hits"][0]["id"] == 3
    finally:
        process.terminate()
        _, err = process.communicate(timeout=20)
    assert f"serving on http://127.0.0.1:{port}/" in err and "index index: 25 rows" in err
