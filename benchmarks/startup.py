"""Cold start-up of ``embedsearch query`` against ``python -c "import torch"`` (issue 17.3).

Each case is a fresh process (the file cache stays warm: the first-run disk reads are
the same for both sides). Cases run in alternating order, round after round, so load that
comes and goes hits every case alike; the table gives the medians of wall and CPU seconds
(user + system: what the start-up costs, hardly moved by other processes' load) and of each
case's ratio to ``import torch`` in the same round.

Cases: ``import torch``; ``query --image`` on an index built with a resnet18 run dir;
``query --text`` on ``tiny-clip`` and on ``openclip:ViT-B-32`` (random init: nothing is
downloaded); ``query --id`` (no model). ``--tree PATH`` (repeatable) runs the queries with
``PYTHONPATH=PATH`` too (its ``--image`` and tiny-clip ``--text`` queries), so an older
checkout is measured side by side (e.g. ``--tree /work/main``); the indexes are built once,
by this checkout. The table is printed after every round.

    flock /tmp/embedsearch-bench.lock python benchmarks/startup.py --rounds 7
    python benchmarks/startup.py --rounds 1 --profile   # plus the slowest imports per query
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from common import print_table  # noqa: E402


def build_fixtures(root: Path, vit: bool) -> dict[str, Path]:
    """A resnet18 run dir, a few real photos, and one index per model (reused if there)."""
    from PIL import Image
    from skimage import data as skdata

    from embedsearch.cli.app import run_app

    images = root / "photos"
    if not images.is_dir():
        images.mkdir(parents=True)
        for name in ("astronaut", "chelsea", "coffee", "rocket", "camera", "horse", "coins"):
            photo = Image.fromarray(getattr(skdata, name)()).convert("RGB")
            photo.save(images / f"{name}.png")
    run_dir = root / "resnet18-run"
    if not run_dir.is_dir():
        from embedsearch.encoders import load_encoder
        from embedsearch.encoders.rundir import save_run_dir

        enc = load_encoder("simclr:resnet18", image_size=64)
        save_run_dir(run_dir, enc.config, enc.model.state_dict())
    models = {"resnet18": str(run_dir), "tiny-clip": "tiny-clip"}
    if vit:
        models["vit-b-32"] = "openclip:ViT-B-32"
    indexes = {}
    for name, spec in models.items():
        index = root / f"index-{name}"
        if not index.is_dir():
            emb = root / f"emb-{name}"
            for args in (
                ["embed", str(images), "--model", spec, "--out", str(emb)],
                ["index", str(emb), "--out", str(index)],
            ):
                if run_app(args) != 0:
                    raise SystemExit(f"fixture step failed: {args}")
        indexes[name] = index
    indexes["photo"] = images / "chelsea.png"
    return indexes


def cases(fixtures: dict[str, Path], trees: list[str]) -> dict[str, tuple[list[str], dict]]:
    """Name -> (argv, environment) of every timed process."""
    env = dict(os.environ)
    found: dict[str, tuple[list[str], dict]] = {
        "import torch": ([sys.executable, "-c", "import torch"], env)
    }
    for label, tree in trees_with_labels(trees):
        tree_env = {**env, "PYTHONPATH": tree}
        query = [sys.executable, "-m", "embedsearch", "query"]
        photo = str(fixtures["photo"])
        found[f"{label}query --image (resnet18 run dir)"] = (
            [*query, str(fixtures["resnet18"]), "--image", photo, "-k", "3"],
            tree_env,
        )
        found[f"{label}query --text (tiny-clip)"] = (
            [*query, str(fixtures["tiny-clip"]), "--text", "a cat", "-k", "3"],
            tree_env,
        )
        if label:  # another checkout: the two queries this issue is about, to save time
            continue
        if "vit-b-32" in fixtures:
            found[f"{label}query --text (ViT-B-32)"] = (
                [*query, str(fixtures["vit-b-32"]), "--text", "a cat", "-k", "3"],
                tree_env,
            )
        found[f"{label}query --id"] = (
            [*query, str(fixtures["resnet18"]), "--id", "0", "-k", "3"],
            tree_env,
        )
    return found


def trees_with_labels(trees: list[str]) -> list[tuple[str, str]]:
    this = str(HERE.parent)
    return [("", this)] + [(f"[{Path(t).name}] ", t) for t in trees]


def time_once(argv: list[str], env: dict, cwd: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds: user + system of the process) of one run of ``argv``.

    CPU seconds hardly move with other processes' load (waiting for a core is not counted),
    so they compare start-ups on a busy machine; wall seconds are what a user waits.
    """
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        # cwd outside every checkout: ``-m`` puts the cwd before PYTHONPATH on sys.path
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            raise SystemExit(f"{' '.join(argv)} failed:\n{err.read()[-2000:].decode()}")
    return wall, usage.ru_utime + usage.ru_stime


def slowest_imports(
    argv: list[str], env: dict, cwd: Path, top: int = 12
) -> list[tuple[str, float]]:
    """The ``top`` heaviest imports made at depth <= 1, from ``python -X importtime``."""
    done = subprocess.run(
        [argv[0], "-X", "importtime", *argv[1:]], env=env, cwd=cwd, capture_output=True, text=True
    )
    rows = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line.split("|")
        if len(name) - len(name.lstrip()) <= 3:
            rows.append((name.strip(), int(cumulative) / 1e6))
    return sorted(rows, key=lambda r: -r[1])[:top]


def report(names: list[str], seconds: dict[str, list[tuple[float, float]]]) -> None:
    """Medians of wall and CPU seconds, and of each round's ratio to ``import torch``."""
    rows = []
    for n in names:
        wall = [w for w, _ in seconds[n]]
        cpu = [c for _, c in seconds[n]]
        torch = seconds["import torch"]
        ratio_wall = [w / t for (w, _), (t, _) in zip(seconds[n], torch, strict=True)]
        ratio_cpu = [c / t for (_, c), (_, t) in zip(seconds[n], torch, strict=True)]
        rows.append(
            [
                n,
                statistics.median(wall),
                statistics.median(cpu),
                statistics.median(ratio_wall),
                statistics.median(ratio_cpu),
            ]
        )
    headers = ["case", "wall s", "CPU s", "x torch (wall)", "x torch (CPU)"]
    print_table(headers, rows, True)


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--tree", action="append", default=[], help="also time this checkout")
    parser.add_argument("--no-vit", action="store_true", help="skip openclip:ViT-B-32")
    parser.add_argument("--work", type=Path, default=None, help="fixture folder (kept)")
    parser.add_argument("--profile", action="store_true", help="print the slowest imports")
    args = parser.parse_args()
    root = args.work or Path(tempfile.mkdtemp(prefix="embedsearch-startup-"))
    fixtures = build_fixtures(root, vit=not args.no_vit)
    timed = cases(fixtures, args.tree)
    names = list(timed)
    print(f"load before: {load()}  ({os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M')})")
    seconds: dict[str, list[tuple[float, float]]] = {n: [] for n in names}
    for r in range(args.rounds):
        order = names[r % len(names) :] + names[: r % len(names)]  # rotate who goes first
        this_round = {n: time_once(*timed[n], cwd=root) for n in order}
        for n in names:
            seconds[n].append(this_round[n])
        print(f"round {r + 1}: load {load()}", flush=True)
        report(names, seconds)  # after every round: a cut-short run still reports
    print(f"load after: {load()}")
    if args.profile:
        for n in names[1:]:
            print(f"\nslowest imports, {n}:")
            for module, s in slowest_imports(*timed[n], cwd=root):
                print(f"  {s:6.3f} s  {module}")


if __name__ == "__main__":
    main()
