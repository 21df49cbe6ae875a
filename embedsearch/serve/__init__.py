"""``embedsearch serve``: a JSON API and one static page over index dirs, from one process.

- :mod:`~embedsearch.serve.config`: :class:`ServeConfig`, limits, binding rules
- :mod:`~embedsearch.serve.registry`: the served indexes, reopened when republished (hot reload)
- :mod:`~embedsearch.serve.batcher` + :mod:`~embedsearch.serve.execute`: micro-batching on a
  worker thread
- :mod:`~embedsearch.serve.routes` + :mod:`~embedsearch.serve.app`: the API and the page
- :mod:`~embedsearch.serve.security`, :mod:`~embedsearch.serve.sources`: token/host/body guard,
  images served by key from their source folders only

Example:
    >>> from embedsearch.serve import ServeConfig, run_server                     # doctest: +SKIP
    >>> run_server(ServeConfig(indexes=(Path("indexes/photos"),), port=8000))     # doctest: +SKIP
"""

from __future__ import annotations

from embedsearch.serve.config import BatchPolicy, Limits, ServeConfig
from embedsearch.serve.runner import run_server

__all__ = ["BatchPolicy", "Limits", "ServeConfig", "run_server", "create_app"]


def __getattr__(name: str):  # the app pulls in FastAPI: only when asked for
    if name == "create_app":
        from embedsearch.serve.app import create_app

        return create_app
    raise AttributeError(f"module 'embedsearch.serve' has no attribute {name!r}")
