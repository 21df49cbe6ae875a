"""Model defaults that several commands must agree on, in one place.

``DEFAULT_IMAGE_SIZES``: the input size of each family whose backbone takes any size, when none
is given. ``embed --model simclr:ARCH`` and ``pretrain simclr`` read the same entry, so a random
baseline and a run dir trained at the defaults see the same pixels; a run dir always uses the
size it recorded. ``UNTRAINED_SPECS``: the specs that load random weights, as ``--help`` and the
README name them.

Example:
    >>> DEFAULT_IMAGE_SIZES["simclr"]
    64
"""

from __future__ import annotations

# simclr: the size of ``pretrain simclr``'s presets (embedsearch.train.presets reads it)
DEFAULT_IMAGE_SIZES: dict[str, int] = {"simclr": 64}
UNTRAINED_SPECS = "simclr:ARCH, openclip:ARCH without /PRETRAINED, tiny, tiny-clip"
