"""Fault injection over the write and read paths (issue 18): kills, corruption, concurrent
writers, a full disk and awkward inputs, on generated data. Prints a table case -> outcome.

Outcomes: ``completed`` (right result), ``refused`` (exit 2, one ``error:`` line, no traceback),
``lost rows``, ``duplicated rows``, ``silent wrong``, ``traceback``, ``hang`` (timed out).
Goal: 0 lost, 0 duplicated, 0 silent wrong, 0 tracebacks, 0 hangs.

    python benchmarks/fault_injection.py [--seconds 900] [--embed-kills 16] [--writer-kills 20]

Disk full uses a 20 MB tmpfs when the process may mount one (root), else it is skipped (said).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow.dataset as ds

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": f"{ROOT}:{os.environ.get('PYTHONPATH', '')}"}
CLI = [sys.executable, "-m", "embedsearch"]
EMBED_ARGS = ["--model", "simclr:resnet18", "--image-size", "32", "--workers", "0"]
RESULTS: list[tuple[str, str, str]] = []


def run(args: list[str], timeout: float = 300, **kw) -> tuple[int, str]:
    """(exit code, stderr); -1 for a hang."""
    try:
        p = subprocess.run(
            args, capture_output=True, text=True, timeout=timeout, env=ENV, errors="replace", **kw
        )
    except subprocess.TimeoutExpired:
        return -1, "timed out"
    return p.returncode, p.stderr + p.stdout


def refusal(code: int, err: str) -> str:
    if code == -1:
        return "hang"
    if "Traceback" in err:
        return "traceback"
    if code == 2 and any(line.startswith("error: ") for line in err.splitlines()):
        return "refused"
    return f"exit {code}"


def record(case: str, outcome: str, detail: str = "") -> None:
    RESULTS.append((case, outcome, detail.strip().splitlines()[-1][:110] if detail else ""))
    print(f"{outcome:16} {case}  {RESULTS[-1][2]}", flush=True)


def write_images(folder: Path, n: int, seed: int = 0) -> list[Path]:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        base = rng.integers(0, 255, (4, 4, 3), dtype=np.uint8)
        path = folder / f"img_{i:04d}.png"
        Image.fromarray(base).resize((40, 48), Image.Resampling.BICUBIC).save(path)
        paths.append(path)
    return paths


def unit(n: int, dim: int = 32, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def rows_of(emb: Path) -> tuple[int, int, int]:
    """(rows, unique ids, unique sources) of the live rows, read as a dataset reader would."""
    from embedsearch.store import EmbeddingDir
    from embedsearch.store.reader import iter_batches

    d = EmbeddingDir.open(emb)
    ids, sources = [], []
    for batch in iter_batches(d, ["id", "source"]):
        ids += batch.column("id").to_pylist()
        sources += batch.column("source").to_pylist()
    return len(ids), len(set(ids)), len(set(sources))


def judge_rows(case: str, emb: Path, expected: int) -> None:
    try:
        rows, ids, sources = rows_of(emb)
    except Exception as e:  # noqa: BLE001 -- any failure to read back is the finding
        record(case, "silent wrong", f"cannot read back: {e}")
        return
    if rows > ids or rows > sources:
        record(case, "duplicated rows", f"{rows} rows, {ids} ids, {sources} sources")
    elif rows < expected:
        record(case, "lost rows", f"{rows} of {expected}")
    else:
        record(case, "completed", f"{rows} rows")


# -- kills ----------------------------------------------------------------------------------
WRITER_KILL = textwrap.dedent(
    """
    import os, sys, numpy as np
    from embedsearch.store import write_embedding_dir
    from embedsearch.store import embedding_dir as ed
    out, kill_at = sys.argv[1], int(sys.argv[2])
    calls = [0]
    real_replace, real_write = os.replace, ed.Manifest.write
    def counted(fn):
        def wrapper(*a, **k):
            calls[0] += 1
            if calls[0] == kill_at:
                os._exit(9)
            return fn(*a, **k)
        return wrapper
    os.replace = counted(real_replace)
    ed.Manifest.write = counted(real_write)
    v = np.random.default_rng(0).normal(size=(40, 8)).astype(np.float32)
    for start in range(0, 40, 10):
        write_embedding_dir(out, v[start:start + 10], ids=np.arange(start, start + 10),
                            sources=[f"s{i}" for i in range(start, start + 10)],
                            model="m", shard_rows=4)
    """
)


def writer_kills(work: Path, count: int) -> None:
    """Kill a writer at its k-th rename/manifest write; the dir must read back consistently."""
    for k in range(1, count + 1):
        out = work / f"writer-kill-{k}"
        code, err = run([sys.executable, "-c", WRITER_KILL, str(out), str(k)], timeout=60)
        case = f"kill writer at commit step {k}"
        if "Traceback" in err:
            record(case, "traceback", err)
            continue
        from embedsearch.store import EmbeddingDir

        if out.exists() and not EmbeddingDir.is_embedding_dir(out):
            # killed before the first manifest: nothing committed; the dir must be reusable
            EmbeddingDir.create_or_open(
                out,
                model="m",
                model_options={},
                fingerprint="m",
                modality="image",
                dim=8,
                source="arrays",
            )
        try:
            rows, ids, sources = rows_of(out) if out.exists() else (0, 0, 0)
        except Exception as e:  # noqa: BLE001
            record(case, "silent wrong", str(e))
            continue
        outcome = "duplicated rows" if rows > ids else "completed"
        record(case, outcome, f"exit {code}, {rows} committed rows readable")


IMAGES_KILLED = 120


def wait_for(condition: Callable[[], bool], proc: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline and proc.poll() is None and not condition():
        time.sleep(0.02)


def embed_kills(work: Path, count: int, rng: random.Random) -> None:
    """kill -9 `embed` at random moments, then rerun: every input exactly once."""
    images = work / "kill-images"
    write_images(images, IMAGES_KILLED)
    out = work / "kill-emb"
    cmd = [*CLI, "embed", str(images), "--out", str(out), *EMBED_ARGS, "--shard-rows", "4"]
    cmd += ["--batch-size", "2"]
    for i in range(count):
        before = len(list(out.glob("part-*.parquet")))
        proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        # kill mid-write: once this run has committed a shard, at a random moment after
        wait_for(lambda b=before: len(list(out.glob("part-*.parquet"))) > b, proc)
        time.sleep(rng.uniform(0.0, 0.5))
        proc.kill()
        proc.wait()
        try:
            rows, ids, sources = rows_of(out) if out.exists() else (0, 0, 0)
            outcome = "duplicated rows" if rows > min(ids, sources) else "completed"
            record(f"kill -9 embed #{i + 1} (state after kill)", outcome, f"{rows} rows committed")
        except Exception as e:  # noqa: BLE001
            record(f"kill -9 embed #{i + 1} (state after kill)", "silent wrong", str(e))
    code, err = run(cmd)
    if code != 0:
        record("rerun embed after kills", refusal(code, err), err)
    judge_rows(f"rerun embed after {count} kills", out, IMAGES_KILLED)


def _publish_kill_script() -> str:
    """The test suite's script that publishes a dir and dies at a named point."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("kill", ROOT / "tests" / "test_publish_kill.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.KILL_AT)


def publish_kills(work: Path) -> None:
    """Die at each point of publishing a dir (exchange and two-rename fallback)."""
    from embedsearch.atomic import recover_dir

    script = _publish_kill_script()
    points = ["before-rename-1", "after-rename-1", "after-rename-2", "before-cleanup"]
    for exchange in ("0", "1"):
        for point in points + (["after-exchange"] if exchange == "1" else []):
            out = work / f"pub-{point}-{exchange}"
            out.mkdir()
            (out / "version").write_text("old")
            code, _ = run([sys.executable, "-c", script, str(out), point, exchange], timeout=60)
            if code != 9:
                shutil.rmtree(out)
                continue  # this way of publishing never reaches that point: no kill happened
            recover_dir(out)
            left = [p.name for p in work.iterdir() if p.name.startswith(f".{out.name}.")]
            ok = (out / "version").is_file() and not left
            how = "exchange" if exchange == "1" else "two renames"
            record(f"kill publish ({how}) at {point}", "completed" if ok else "lost rows", "")


def index_kills(work: Path, count: int, rng: random.Random) -> None:
    """kill -9 `index --overwrite` mid-build: the old index answers, leftovers go next time."""
    from embedsearch.store import write_embedding_dir

    emb = work / "idx-emb"
    write_embedding_dir(emb, unit(20_000, 64), model="m", shard_rows=5000)
    idx = work / "idx"
    run([*CLI, "index", str(emb), "--out", str(idx), "--kind", "flat"])
    for i in range(count):
        proc = subprocess.Popen(
            [*CLI, "index", str(emb), "--out", str(idx), "--overwrite", "--kind", "ivf"],
            env=ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # kill while the new index is being assembled beside the old one
        wait_for(lambda: any(p.name.startswith(".idx.tmp-") for p in work.iterdir()), proc)
        time.sleep(rng.uniform(0.0, 2.0))
        proc.kill()
        proc.wait()
        code, err = run([*CLI, "query", str(idx), "--id", "7", "-k", "1", "--format", "json"])
        hit = code == 0 and '"id": 7' in err.replace('"id":7', '"id": 7')
        record(
            f"kill -9 index #{i + 1}, then query", "completed" if hit else refusal(code, err), ""
        )
    run([*CLI, "index", str(emb), "--out", str(idx), "--overwrite", "--kind", "flat"])
    left = [p.name for p in work.iterdir() if p.name.startswith(".idx.tmp-")]
    record("leftovers after the next build", "completed" if not left else "lost rows", str(left))


# -- corruption -----------------------------------------------------------------------------
def flip(path: Path, count: int = 64) -> None:
    data = bytearray(path.read_bytes())
    start = len(data) // 2 - count // 2
    data[start : start + count] = bytes(b ^ 0xFF for b in data[start : start + count])
    path.write_bytes(bytes(data))


def corruption(work: Path) -> None:
    from embedsearch.store import write_embedding_dir

    def fresh(name: str) -> Path:
        path = work / name
        write_embedding_dir(path, unit(600), model="m", shard_rows=200)
        return path

    manifest = ".embedsearch/manifest.json"
    kinds = {
        "flip 64 bytes in a shard": lambda e: flip(e / "part-00001.parquet"),
        "truncate a shard": lambda e: os.truncate(e / "part-00001.parquet", 100),
        "delete a shard": lambda e: (e / "part-00001.parquet").unlink(),
        "garbage manifest.json": lambda e: (e / manifest).write_text("{not json"),
        "manifest.json a list": lambda e: (e / manifest).write_text("[1, 2]"),
        "manifest dim wrong": lambda e: (e / manifest).write_text(
            (e / manifest).read_text().replace('"dim": 32', '"dim": 31')
        ),
    }
    for kind, damage in kinds.items():
        for command in ("index", "dedup", "info"):
            emb = fresh(f"c-{len(RESULTS)}")
            damage(emb)
            out = work / f"o-{len(RESULTS)}"
            args = {
                "index": ["index", str(emb), "--out", str(out), "--kind", "flat"],
                "dedup": ["dedup", str(emb), "--out", str(out)],
                "info": ["info", str(emb)],
            }[command]
            code, err = run([*CLI, *args])
            outcome = refusal(code, err)
            if command == "info" and code == 0:
                shows = "damaged" in err and "none" not in err.split("damaged shards")[1][:40]
                outcome = "completed" if shows or "shard" not in kind else "silent wrong"
            elif code == 0:
                outcome = "silent wrong"
            record(f"{kind} -> {command}", outcome, err)
    # the index file itself
    for command in ("query", "append"):
        emb = fresh(f"ci-{command}")
        idx = work / f"ci-idx-{command}"
        run([*CLI, "index", str(emb), "--out", str(idx), "--kind", "flat"])
        flip(idx / "index.faiss")
        more = work / f"ci-more-{command}"
        write_embedding_dir(more, unit(20, seed=5), model="m")
        args = (
            ["query", str(idx), "--id", "0"]
            if command == "query"
            else ["index", str(more), "--out", str(idx), "--append"]
        )
        code, err = run([*CLI, *args])
        record(
            f"flip 64 bytes in index.faiss -> {command}",
            refusal(code, err) if code else "silent wrong",
            err,
        )
    for name, text in (("garbage index.json", "{"), ("index.json a list", "[]")):
        emb = fresh(f"cj-{len(RESULTS)}")
        idx = work / f"cj-idx-{len(RESULTS)}"
        run([*CLI, "index", str(emb), "--out", str(idx), "--kind", "flat"])
        (idx / "index.json").write_text(text)
        code, err = run([*CLI, "query", str(idx), "--id", "0"])
        record(f"{name} -> query", refusal(code, err), err)


# -- concurrent writers ----------------------------------------------------------------------
def concurrent(work: Path, trials: int = 2) -> None:
    from embedsearch.store import write_embedding_dir

    images = work / "conc-images"
    write_images(images, 24, seed=3)
    for t in range(trials):
        out = work / f"conc-emb-{t}"
        cmd = [*CLI, "embed", str(images), "--out", str(out), *EMBED_ARGS, "--batch-size", "2"]
        procs = [
            subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            for _ in range(2)
        ]
        errs = [p.communicate(timeout=300)[1].decode(errors="replace") for p in procs]
        codes = [p.returncode for p in procs]
        if any("Traceback" in e for e in errs):
            record(f"two embeds into one dir #{t + 1}", "traceback", errs[0] + errs[1])
            continue
        judge_rows(f"two embeds into one dir #{t + 1} (exits {codes})", out, 24)
    for t in range(trials):
        base = work / f"conc-idx-{t}"
        write_embedding_dir(base / "a", unit(500, seed=1), model="m")
        write_embedding_dir(base / "b", unit(250, seed=2), model="m")
        write_embedding_dir(base / "c", unit(250, seed=3), model="m")
        idx = base / "idx"
        run([*CLI, "index", str(base / "a"), "--out", str(idx)])
        procs = [
            subprocess.Popen(
                [*CLI, "index", str(base / n), "--out", str(idx), "--append"],
                env=ENV,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            for n in ("b", "c")
        ]
        errs = [p.communicate(timeout=300)[1].decode(errors="replace") for p in procs]
        codes = [p.returncode for p in procs]
        info = json.loads((idx / "index.json").read_text())
        expected = 500 + 250 * codes.count(0)
        outcome = "completed" if info["ntotal"] == expected else "lost rows"
        if any("Traceback" in e for e in errs):
            outcome = "traceback"
        record(f"two index --append #{t + 1} (exits {codes})", outcome, f"ntotal {info['ntotal']}")


# -- disk full -------------------------------------------------------------------------------
def disk_full(work: Path) -> None:
    mount = work / "small"
    mount.mkdir()
    if (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(mount)], capture_output=True
        ).returncode
        != 0
    ):
        record("disk full", "skipped", "cannot mount a tmpfs here")
        return
    try:
        images = work / "full-images"
        write_images(images, 40, seed=4)
        filler = mount / "filler"
        with open(filler, "wb") as f:  # leave ~120 kB: a few shards fit, then ENOSPC
            f.write(b"\0" * (20 * 2**20 - 120 * 2**10))
        out = mount / "emb"
        cmd = [*CLI, "embed", str(images), "--out", str(out), *EMBED_ARGS, "--shard-rows", "4"]
        code, err = run(cmd)
        record("disk full during embed", refusal(code, err) if code else "completed", err)
        filler.unlink()
        code, err = run(cmd)
        if code:
            record("rerun embed after freeing space", refusal(code, err), err)
        judge_rows("rerun embed after freeing space", out, 40)
        with open(filler, "wb") as f:
            f.write(b"\0" * (20 * 2**20 - 200 * 2**10))
        from embedsearch.store import write_embedding_dir

        emb = work / "full-src"
        write_embedding_dir(emb, unit(20_000, 64), model="m")
        code, err = run([*CLI, "index", str(emb), "--out", str(mount / "idx"), "--kind", "flat"])
        record("disk full during index", refusal(code, err) if code else "silent wrong", err)
    finally:
        subprocess.run(["umount", str(mount)], check=False)


# -- inputs (the other half of issue 18, fixed on branch w18b) ------------------------------
def inputs(work: Path) -> None:
    csv = work / "bad.csv"
    csv.write_bytes(b"caption,n\nok caption 0,0\nbad \xff\xfe caption,1\n")
    out = work / "in-csv"
    code, err = run(
        [*CLI, "embed", str(csv), "--out", str(out), "--model", "tiny", "--text-col", "caption"]
    )
    texts = []
    if code == 0:
        texts = ds.dataset(out).to_table(columns=["source"]).column("source").to_pylist()
    garbled = any(t.startswith("b'") for t in texts)
    record(
        "non-UTF-8 byte in a CSV",
        "silent wrong" if garbled else refusal(code, err) if code else "completed",
        err,
    )

    folder = work / "odd-folder"
    write_images(folder, 6, seed=5)
    os.mkfifo(folder / "x.jpg")
    (folder / os.fsdecode(b"bad-\xff.png")).write_bytes((folder / "img_0000.png").read_bytes())
    code, err = run(
        [*CLI, "embed", str(folder), "--out", str(work / "in-odd"), *EMBED_ARGS], timeout=120
    )
    record("FIFO and non-UTF-8 name in a folder", refusal(code, err) if code else "completed", err)

    dup = work / "dup"
    for sub in ("a", "b"):
        write_images(dup / sub, 40, seed=6)
    emb = work / "dup-emb"
    run([*CLI, "embed", str(dup), "--out", str(emb), *EMBED_ARGS])
    for method in ("knn", "semdedup"):
        code, err = run(
            [*CLI, "dedup", str(emb), "--out", str(work / f"dup-{method}"), "--method", method]
        )
        record(
            f"dedup of the same images twice ({method})",
            "completed" if code == 0 else refusal(code, err),
            err,
        )

    from embedsearch.store import write_embedding_dir

    idx_emb = work / "q-emb"
    write_embedding_dir(idx_emb, unit(300), model="m")
    idx = work / "q-idx"
    run([*CLI, "index", str(idx_emb), "--out", str(idx), "--kind", "flat"])
    code, err = run([*CLI, "query", str(idx), "--id", "0", "-k", "2000000000"])
    record("query -k 2000000000", "completed" if code == 0 else refusal(code, err), err)
    queries = work / "queries.txt"
    queries.write_text(str(work / "no-such-image.jpg") + "\n")
    code, err = run([*CLI, "query", str(idx), "--queries", str(queries)])
    # DESIGN's contract: a failed input is reported and the run goes on (exit 1 only with
    # --strict); silent is only an exit 0 that does not name the failed line
    reported = "failed: line 1" in err
    outcome = refusal(code, err) if code else ("refused" if reported else "silent wrong")
    record("query with a missing image path", outcome, err)

    run_dir = work / "bad-run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text('{"format": "embedsearch-run", "dim": -1}')
    (run_dir / "model.safetensors").write_bytes(b"junk")
    code, err = run(
        [*CLI, "embed", str(folder), "--out", str(work / "in-run"), "--model", str(run_dir)],
        timeout=120,
    )
    record("absurd config.json in a run dir", refusal(code, err) if code else "silent wrong", err)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--embed-kills", type=int, default=16)
    parser.add_argument("--writer-kills", type=int, default=20)
    parser.add_argument("--index-kills", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", default="kills,corruption,concurrent,disk,inputs")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    started = time.time()
    work = Path(tempfile.mkdtemp(prefix="fault-"))
    parts = set(args.only.split(","))
    try:
        if "kills" in parts:
            writer_kills(work, args.writer_kills)
            publish_kills(work)
            embed_kills(work, args.embed_kills, rng)
            index_kills(work, args.index_kills, rng)
        if "corruption" in parts:
            corruption(work)
        if "concurrent" in parts:
            concurrent(work)
        if "disk" in parts:
            disk_full(work)
        if "inputs" in parts:
            inputs(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("\n| case | outcome | detail |\n|---|---|---|")
    for case, outcome, detail in RESULTS:
        print(f"| {case} | {outcome} | {detail.replace('|', '/')} |")
    counts = collections.Counter(outcome for _, outcome, _ in RESULTS)
    kills = sum(1 for case, _, _ in RESULTS if case.startswith("kill"))
    print(
        f"\n{len(RESULTS)} cases ({kills} kill points) in {time.time() - started:.0f} s: "
        + ", ".join(f"{n} {o}" for o, n in counts.most_common())
    )


if __name__ == "__main__":
    main()
