"""Type checks for option values, shared by the core and the Chroma config contract."""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np


def is_int(value: Any) -> bool:
    """An integer (any ``numbers.Integral``: numpy's too), not a bool."""
    return isinstance(value, numbers.Integral | np.integer) and not isinstance(
        value, bool | np.bool_
    )


def is_finite_number(value: Any) -> bool:
    """A finite int or float (numpy's too), not a bool."""
    return (
        isinstance(value, int | float | np.number)
        and not isinstance(value, bool)
        and math.isfinite(value)
    )
