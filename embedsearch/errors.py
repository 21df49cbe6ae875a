"""Exceptions whose message is meant for the user.

The CLI prints ``error: <message>`` on one line and exits with code 2 for any
:class:`EmbedsearchError`; everything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class EmbedsearchError(Exception):
    """Base class: bad input or usage that the user can fix. The message says how."""


class InputError(EmbedsearchError):
    """A path, table, column or file that cannot be used as input."""


class ModelError(EmbedsearchError):
    """A model spec that cannot be parsed or loaded, or weights that are refused."""


class FormatError(EmbedsearchError):
    """An embedding, run or index dir that is missing, corrupt or from another format version."""


class MismatchError(EmbedsearchError):
    """Vectors from different models or dims that must not be mixed."""
