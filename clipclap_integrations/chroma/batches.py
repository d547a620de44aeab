"""How many records a Chroma client takes in one write (it refuses larger batches).

Free of chromadb imports: the folder indexer and the Chroma adapter both split their writes
by it, and the indexer also works with duck-typed collections.
"""

from __future__ import annotations

from typing import Any


def batch_limit(size: Any) -> int | None:
    """``size`` if it is a usable write limit (a positive int), else None: write at once."""
    return size if isinstance(size, int) and not isinstance(size, bool) and size > 0 else None


def max_batch_size(collection: Any) -> int | None:
    """The most records the collection's client takes in one write; None if it cannot say.

    Chroma's clients expose ``get_max_batch_size()``; a collection reaches its client only
    through ``_client``.
    """
    try:
        return batch_limit(collection._client.get_max_batch_size())
    except Exception:  # another collection type: write everything at once
        return None
