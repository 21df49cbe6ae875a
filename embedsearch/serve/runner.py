"""``run_server``: check the binding, open the indexes, and serve with uvicorn until interrupted.

Example:
    >>> run_server(ServeConfig(indexes=(Path("indexes/photos"),)))   # doctest: +SKIP
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from embedsearch.serve.config import ServeConfig, check_binding


def run_server(config: ServeConfig, announce: Callable[[str], None] | None = None) -> None:
    """Serve ``config`` (blocks). ``announce`` prints start-up lines (default: stderr)."""
    import uvicorn

    from embedsearch.serve.app import create_app

    say = announce or (lambda line: print(line, file=sys.stderr))
    warning = check_binding(config)  # refuses an open bind before anything is loaded
    if warning:
        say(warning)
    app = create_app(config)
    state = app.state.server
    for gen in state.registry.generations():
        say(
            f"index {gen.name}: {gen.searcher.ntotal:,} rows, {gen.info.get('kind')}, "
            f"model {gen.info.get('model')}"
        )
    host = f"[{config.host}]" if ":" in config.host else config.host
    say(f"serving on http://{host}:{config.port}/  (API docs: /docs)")
    uvicorn.run(
        app,
        host=config.host,
        port=config.port,
        log_level="warning",
        access_log=False,
        timeout_keep_alive=30,
        limit_concurrency=1024,
    )
