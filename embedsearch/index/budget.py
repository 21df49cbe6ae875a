"""Memory sizes: parsing ``--max-memory`` values and the default budget.

Sizes use binary units like faiss and autofaiss do: ``500M`` is 500 MiB, ``4G`` is 4 GiB.

Example:
    >>> parse_memory("500M")
    524288000
    >>> format_bytes(3 * 2**30)
    '3.0 GiB'
"""

from __future__ import annotations

import re

from embedsearch.errors import InputError

_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*$", re.IGNORECASE)

# Share of the currently available RAM an index may take when --max-memory is not given:
# the rest is left for the query process, the sample used for training and the OS cache.
DEFAULT_RAM_FRACTION = 0.5


def parse_memory(value: str | float) -> int:
    """``"500M"``, ``"4G"``, ``"1.5GB"``, ``"30MiB"`` or a plain byte count -> bytes."""
    if isinstance(value, (int, float)):
        if value <= 0:
            raise InputError(f"--max-memory must be positive, got {value}")
        return int(value)
    match = _SIZE.match(str(value))
    if not match:
        raise InputError(f"--max-memory {value!r} is not a size: use e.g. 500M, 4G or 1.5G")
    number, unit = float(match.group(1)), match.group(2).upper()
    size = int(number * _UNITS[unit])
    if size <= 0:
        raise InputError(f"--max-memory must be positive, got {value!r}")
    return size


def default_max_memory() -> int:
    """Half of the RAM available right now (psutil), the default index memory budget."""
    import psutil

    return int(psutil.virtual_memory().available * DEFAULT_RAM_FRACTION)


def format_bytes(size: float) -> str:
    """Human-readable binary size (``'30.0 MiB'``)."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(size) < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def require_room(n: int, dim: int, budget: int) -> None:
    """Refuse a budget below the smallest index of ``n`` vectors of ``dim``, naming that minimum.

    A build under such a budget could only ignore it (the smallest PQ index still needs its
    codes and centroids) or answer badly; ``--max-memory 10`` (10 bytes, not 10 GiB) is a typo.

    Example:
        >>> require_room(60, 512, 2**30)
        >>> require_room(60, 512, 10)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        embedsearch.errors.InputError: --max-memory 10 B is below the smallest index of ...
    """
    from embedsearch.index.plan import choose_index

    smallest = choose_index(n, dim, budget, "auto")
    if not smallest.fits:
        need = format_bytes(smallest.estimated_bytes)
        raise InputError(
            f"--max-memory {format_bytes(budget)} is below the smallest index of {n:,} vectors "
            f"of dim {dim} ({smallest.factory}, about {need}): give at least {need} "
            "(e.g. 500M, 4G; a plain number is bytes)"
        )
