"""How a decoder's failures reach the caller: as ``ClipClapInputError`` with a reason."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ..errors import ClipClapInputError


def brief(exc: BaseException) -> str:
    """An exception's text, or its type's name, cut to 160 characters for a message."""
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


@contextmanager
def decoding(
    what: str, broken: Callable[[Exception], str], *, verb: str = "decode"
) -> Iterator[None]:
    """Inside, our own ``ClipClapInputError`` passes through; running out of memory is the
    input error "the ``what`` is too large to ``verb`` in memory"; any other failure of the
    decoder is the input error ``broken(exc)``."""
    try:
        yield
    except ClipClapInputError:
        raise
    except MemoryError:
        raise ClipClapInputError(f"the {what} is too large to {verb} in memory") from None
    except Exception as exc:
        raise ClipClapInputError(broken(exc)) from None
