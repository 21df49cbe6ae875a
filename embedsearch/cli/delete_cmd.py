"""``embedsearch delete DIR... (--ids ID,... | --sources-from remove.txt)``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from embedsearch.cli.app import app


def _parse_ids(text: str | None) -> list[int]:
    """``"3,5 7"`` -> [3, 5, 7]; a word that is not an integer is a usage error naming it."""
    from embedsearch.errors import InputError

    ids = []
    for word in (text or "").replace(",", " ").split():
        try:
            ids.append(int(word))
        except ValueError as e:
            raise InputError(f"--ids takes integers separated by commas; got {word!r}") from e
    return ids


@app.command("delete")
def delete_command(
    dirs: Annotated[
        list[Path],
        typer.Argument(
            help="Embedding dir(s), or an index dir (its embedding dirs are edited).",
        ),
    ],
    ids: Annotated[
        str | None,
        typer.Option(help="Embedding ids to delete, e.g. 3,5,17 (one embedding dir)."),
    ] = None,
    sources_from: Annotated[
        Path | None,
        typer.Option(
            help="File with one source per line: e.g. the remove.txt that `dedup` wrote.",
        ),
    ] = None,
) -> None:
    """Delete rows by id or by source: readers skip them, `index --append` removes them."""
    from embedsearch.cli.render import stderr, summary_table
    from embedsearch.dedup.inputs import resolve_dirs
    from embedsearch.errors import InputError
    from embedsearch.store.deletions import delete_rows, read_source_list

    wanted_ids = _parse_ids(ids)
    sources = read_source_list(sources_from) if sources_from is not None else []
    if not wanted_ids and sources_from is None:
        raise InputError("name the rows to delete: --ids ID,... or --sources-from FILE")
    emb_dirs = [d for path in dirs for d in resolve_dirs(path)]
    if wanted_ids and len(emb_dirs) > 1:
        raise InputError("--ids names rows of one embedding dir: give exactly one")
    deleted = already = 0
    missing: set[str] | None = None
    for d in emb_dirs:
        result = delete_rows(d, ids=wanted_ids, sources=sources)
        deleted, already = deleted + result.deleted, already + result.already_deleted
        missing = set(result.not_found) if missing is None else missing & set(result.not_found)
    not_found = sorted(missing or ())
    rows = [("deleted", deleted), ("deleted before", already), ("not found", len(not_found))]
    stderr.print(summary_table(f"delete → {', '.join(str(d.path) for d in emb_dirs)}", rows))
    for name in not_found[:10]:
        stderr.print(f"not found: {name}", markup=False, highlight=False)
    if not deleted and not already:
        raise InputError(f"none of the {len(not_found)} named rows is in {dirs[0]}")
    stderr.print("drop them from an index with `embedsearch index EMB_DIR --out INDEX --append`")
