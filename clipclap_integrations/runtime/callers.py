"""Attributing warnings to the user's code rather than to this package's internals."""

from __future__ import annotations

import sys

_PACKAGE = __name__.partition(".")[0] + "."  # the top-level package


def outside_stacklevel() -> int:
    """The ``stacklevel`` that attributes a warning to the first caller outside this package."""
    frame = sys._getframe(1)
    level = 1
    while frame is not None and frame.f_globals.get("__name__", "").startswith(_PACKAGE):
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    return level
