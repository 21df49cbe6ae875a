"""Process-level settings made once, before torch is imported (torch-free module).

PyTorch's CPU allocator hands large tensors back to the OS when they are freed, so every
forward pass touches fresh pages; transparent huge pages cut those page faults (measured in
``benchmarks/RESULTS.md``, issue 2, "Throughput").
"""

from __future__ import annotations

import os
import sys

HUGE_PAGES_ENV = "THP_MEM_ALLOC_ENABLE"


def prefer_huge_pages() -> bool:
    """Ask PyTorch to back its large CPU tensors with transparent huge pages.

    Only works before ``torch`` is imported (PyTorch reads the variable once); a value the
    user already set (``THP_MEM_ALLOC_ENABLE=0`` to opt out) is kept. Returns whether the
    setting can still take effect. The ``embedsearch`` command calls it first thing; Python
    scripts that want it call it before importing torch.

    Example:
        >>> import embedsearch.runtime as rt
        >>> rt.prefer_huge_pages()   # doctest: +SKIP
        True
    """
    if "torch" in sys.modules:
        return False
    os.environ.setdefault(HUGE_PAGES_ENV, "1")
    return True
