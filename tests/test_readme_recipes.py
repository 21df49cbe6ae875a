"""The README's shell recipes do what they say (issue 12.4)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

README = Path(__file__).parent.parent / "README.md"


def readme_line(pattern: str) -> str:
    lines = [line for line in README.read_text().splitlines() if re.search(pattern, line)]
    assert lines, f"README has no line matching {pattern!r}"
    return lines[0]


@pytest.mark.skipif(shutil.which("xargs") is None, reason="needs xargs")
def test_remove_recipe_deletes_names_with_backslashes_and_spaces_literally(tmp_path) -> None:
    command = readme_line(r"rm -- .*dups/remove\.txt").removeprefix("$ ").split("  #")[0]
    names = [" leading space.jpg", "back\\slash.jpg", "trailing space .jpg", "quote'd.jpg"]
    (tmp_path / "dups").mkdir()
    for name in [*names, "keep.jpg"]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "dups" / "remove.txt").write_text("".join(n + "\n" for n in names))
    subprocess.run(["bash", "-c", command], cwd=tmp_path, check=True, timeout=30)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dups", "keep.jpg"]


def test_readme_installs_cpu_torch_wheels_before_the_package() -> None:
    line = readme_line(r"download\.pytorch\.org/whl/cpu")
    assert "pip install torch torchvision --index-url" in line
