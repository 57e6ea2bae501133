"""Aliases for names that moved in 0.2, kept for one release (removed in 0.3).

An old module becomes a few lines::

    from geounet._deprecated import moved_to
    __getattr__ = moved_to(__name__, {"name": "geounet.new.module", ...})

Accessing ``old_module.name`` then warns (``DeprecationWarning``, naming the new
place) and returns the object from its new module, imported on first use, so the
old module imports nothing of geounet itself.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from importlib import import_module
from typing import Any


def moved_to(old: str, names: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that forwards moved names with a deprecation warning.

    Args:
        old: The old module's ``__name__``.
        names: Old attribute name -> new module path (``"new.module"``) or
            ``"new.module:new_name"`` when the name changed too.

    Returns:
        The ``__getattr__`` function to assign in the old module.

    Raises:
        AttributeError: (from the returned function) for a name not in ``names``.
    """

    def __getattr__(name: str) -> Any:
        if name not in names:
            raise AttributeError(f"module {old!r} has no attribute {name!r}")
        module, _, new_name = names[name].partition(":")
        new_name = new_name or name
        warnings.warn(f"{old}.{name} moved to {module}.{new_name}; {old} will be removed in "
                      "geounet 0.3", DeprecationWarning, stacklevel=2)
        return getattr(import_module(module), new_name)

    return __getattr__
