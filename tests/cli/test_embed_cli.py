"""``embed`` and ``info`` commands: exit codes, one-line errors, kill -9 and resume, torchrun."""

from __future__ import annotations

import glob
import json
import signal
import subprocess
import sys
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

ARGS = ["--model", "simclr:resnet18", "--image-size", "32", "--workers", "0", "--batch-size", "4"]


def _rows(out) -> list[dict]:
    tables = [
        pq.read_table(p, columns=["id", "source"])
        for p in sorted(glob.glob(f"{out}/part-*.parquet"))
    ]
    return pa.concat_tables(tables).to_pylist() if tables else []


def test_embed_prints_summary_and_info_describes_the_dir(run_cli, image_folder, tmp_path) -> None:
    result = run_cli("embed", image_folder, "--out", tmp_path / "emb", *ARGS)
    assert result.exit_code == 0
    assert "embedded" in result.stderr
    assert "12" in result.stderr
    assert result.stdout == ""
    info = run_cli("info", tmp_path / "emb", "--json")
    facts = json.loads(info.stdout)
    assert facts["kind"] == "embedding_dir"
    assert facts["rows"] == 12
    assert facts["dim"] == 512


@pytest.mark.parametrize(
    "args, message",
    [
        (["embed", "{missing}", "--model", "simclr:resnet18", "--out", "{out}"], "does not exist"),
        (
            ["embed", "{images}", "--model", "nope:thing", "--out", "{out}"],
            "unknown model 'nope:thing'",
        ),
        (["info", "{images}"], "not a run dir, embedding dir, index dir or dedup dir"),
    ],
)
def test_bad_input_is_one_line_exit_2_without_traceback(
    run_cli, image_folder, tmp_path, args, message
) -> None:
    fill = {"missing": tmp_path / "nope", "out": tmp_path / "emb", "images": image_folder}
    result = run_cli(*[a.format(**fill) for a in args])
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_shows_the_traceback_and_still_exits_2(run_cli, tmp_path, where) -> None:
    args = ["embed", tmp_path / "nope", "--model", "simclr:resnet18", "--out", tmp_path / "o"]
    args = ["--debug", *args] if where == "before" else [*args, "--debug"]
    result = run_cli(*args)
    assert result.exit_code == 2
    assert "Traceback" in result.stderr
    assert "error: " in result.stderr


def test_strict_exits_1_when_something_failed(run_cli, image_folder, tmp_path) -> None:
    (image_folder / "bad.png").write_bytes(b"junk")
    assert run_cli("embed", image_folder, "--out", tmp_path / "a", *ARGS).exit_code == 0
    result = run_cli("embed", image_folder, "--out", tmp_path / "b", *ARGS, "--strict")
    assert result.exit_code == 1
    assert "bad.png" in result.stderr


def test_kill_9_then_rerun_gives_every_input_exactly_once(tmp_path, make_images) -> None:
    images = tmp_path / "images"
    make_images(images, 36)
    out = tmp_path / "emb"
    cmd = [
        sys.executable,
        "-m",
        "embedsearch",
        "embed",
        str(images),
        "--out",
        str(out),
        *ARGS,
        "--shard-rows",
        "4",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(glob.glob(f"{out}/part-*.parquet")) < 2:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = len(_rows(out))
    assert 0 < partial < 36  # killed mid-run, some shards committed
    subprocess.run(
        cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300
    )
    rows = _rows(out)
    assert len(rows) == 36
    assert len({r["id"] for r in rows}) == 36
    assert len({r["source"] for r in rows}) == 36


def test_torchrun_two_ranks_equal_a_single_process_run(tmp_path, make_images) -> None:
    images = tmp_path / "images"
    make_images(images, 20)
    single, multi = tmp_path / "single", tmp_path / "multi"
    base = ["embed", str(images), *ARGS, "--shard-rows", "4"]
    subprocess.run(
        [sys.executable, "-m", "embedsearch", *base, "--out", str(single)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "--master-port",
        "29517",
        "-m",
        "embedsearch",
        *base,
        "--out",
        str(multi),
    ]
    result = subprocess.run(torchrun, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    a = {r["id"]: r["source"] for r in _rows(single)}
    b = _rows(multi)
    assert len(b) == 20
    assert {r["id"]: r["source"] for r in b} == a
    manifest = json.loads((multi / ".embedsearch" / "manifest.json").read_text())
    assert manifest["totals"]["rows"] == 20
    assert len({s["file"] for s in manifest["shards"]}) == len(manifest["shards"])


def test_info_describes_a_run_dir(run_cli, tmp_path) -> None:
    from embedsearch.encoders import load_encoder
    from embedsearch.encoders.rundir import save_run_dir

    enc = load_encoder("simclr:resnet18", image_size=32)
    save_run_dir(tmp_path / "run", enc.config, enc.model.state_dict())
    (tmp_path / "run" / "metrics.jsonl").write_text(
        '{"epoch": 1, "loss": 5.1}\n{"epoch": 2, "loss": 4.2}\n'
    )
    facts = json.loads(run_cli("info", tmp_path / "run", "--json").stdout)
    assert facts["kind"] == "run_dir"
    assert facts["family"] == "simclr"
    assert facts["dim"] == 512
    assert facts["fingerprint"] == enc.fingerprint
    assert facts["epochs_logged"] == 2
