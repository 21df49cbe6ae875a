"""Process-level settings made once, before torch is imported (torch-free module).

PyTorch's CPU allocator hands large tensors back to the OS when they are freed, so every
forward pass touches fresh pages. On a 2-core VM, ``embed`` at 64 px spent about a fifth
of its model time in minor page faults (16.9 M faults for 2,000 images, against 3.9 M
when the same model ran alone without decoding in between: glibc's heap behaves
differently once small decoding allocations sit between the large ones). With transparent
huge pages, which PyTorch enables for allocations of 2 MB and more when
``THP_MEM_ALLOC_ENABLE`` is set, the same run took 0.9 M faults
(``benchmarks/embed_throughput.py``, ``benchmarks/RESULTS.md``).
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
