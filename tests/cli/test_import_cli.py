"""`embedsearch import` through the CLI: imported vectors answer --id and --vector queries, and
text/image queries fail in one line."""

from __future__ import annotations

import json

import numpy as np
import pytest


@pytest.fixture
def imported(tmp_path, run_cli):
    x = np.random.default_rng(0).normal(size=(50, 8)).astype(np.float32)
    np.save(tmp_path / "v.npy", x)
    (tmp_path / "names.txt").write_text("".join(f"doc-{i}\n" for i in range(50)))
    args = ["--model", "external:mine", "--sources", tmp_path / "names.txt", "--normalize"]
    result = run_cli("import", tmp_path / "v.npy", *args, "--out", tmp_path / "emb")
    assert result.exit_code == 0, result.stderr
    assert run_cli("index", tmp_path / "emb", "--out", tmp_path / "idx").exit_code == 0
    return tmp_path, x


def test_a_text_query_of_imported_vectors_is_a_one_line_error(imported, run_cli) -> None:
    tmp_path, _ = imported
    result = run_cli("query", tmp_path / "idx", "--text", "a cat")
    assert (result.exit_code, result.stderr.strip().count("\n")) == (2, 0)


def test_a_vector_query_of_imported_vectors_finds_the_row(imported, run_cli) -> None:
    tmp_path, x = imported
    np.save(tmp_path / "q.npy", x[7])
    result = run_cli("query", tmp_path / "idx", "--vector", tmp_path / "q.npy", "--format", "json")
    assert json.loads(result.stdout)[0]["hits"][0]["source"] == "doc-7"


def test_an_id_query_of_imported_vectors_finds_the_row(imported, run_cli) -> None:
    tmp_path, _ = imported
    result = run_cli("query", tmp_path / "idx", "--id", "9", "--format", "json")
    assert json.loads(result.stdout)[0]["hits"][0]["source"] == "doc-9"


def test_import_of_a_ragged_table_is_a_one_line_error_naming_the_row(tmp_path, run_cli) -> None:
    (tmp_path / "t.jsonl").write_text('{"vector": [1, 2]}\n{"vector": [1, 2, 3]}\n')
    result = run_cli(
        "import", tmp_path / "t.jsonl", "--model", "external:m", "--out", tmp_path / "e"
    )
    assert result.exit_code == 2 and "row 2 has 3 values" in result.stderr
