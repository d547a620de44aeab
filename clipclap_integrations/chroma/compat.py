"""Every place the adapter depends on how chromadb is built inside, in one module.

Chroma gives an embedding function no handle on the collection it embeds for:
``EmbeddingFunction.__call__(self, input)`` receives only the input (chromadb 1.x, checked
against its protocol, documentation and issues, 2026-12), and neither ``get_config`` nor
``validate_config_update`` says which collection is being modified. No public route exists,
so the collection is found on the call stack, by the code objects of the chromadb methods
that call us (``CollectionCommon._embed``, ``Collection.modify``, ``AsyncCollection.modify``)
and the frame locals they hold (``self``, ``configuration``). A collection's client and its
attached function are reached through private attributes (``_client``,
``_embedding_function``).

``tests/test_chroma_compat.py`` pins all of this to the supported chromadb range
(``chromadb>=1.0,<2``) and fails loudly when any of it moves. What is public (a collection's
``configuration_json``) is read here too, so the stored form is interpreted in one place.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping
from types import CodeType, FrameType
from typing import Any, cast

from .identity import NAME


def _method_codes(*where: tuple[str, str, str]) -> tuple[CodeType, ...]:
    """Code objects of Chroma methods given as (module, class, method); missing ones skipped
    (the pinned test names each one that is missing)."""
    codes = []
    for module, cls, method in where:
        try:
            found = getattr(getattr(importlib.import_module(module), cls), method)
            codes.append(cast(CodeType, found.__code__))
        except (ImportError, AttributeError):  # pragma: no cover - another chromadb layout
            pass
    return tuple(codes)


# The methods whose frames are searched, as (module, class, method).
EMBED_METHODS = (("chromadb.api.models.CollectionCommon", "CollectionCommon", "_embed"),)
MODIFY_METHODS = (
    ("chromadb.api.models.Collection", "Collection", "modify"),
    ("chromadb.api.models.AsyncCollection", "AsyncCollection", "modify"),
)
EMBED_CODES = _method_codes(*EMBED_METHODS)
MODIFY_CODES = _method_codes(*MODIFY_METHODS)


def _chroma_frame(codes: tuple[CodeType, ...], depth: int) -> FrameType | None:
    """The frame running one of ``codes`` among the ``depth`` callers of our caller."""
    frame: FrameType | None = sys._getframe(2)
    for _ in range(depth):
        if frame is None:
            return None
        if frame.f_code in codes:
            return frame
        frame = frame.f_back
    return None


def calling_collection(ef: Any) -> Any | None:
    """The Chroma collection embedding with ``ef`` right now, if ``ef`` is its own function
    (a function Chroma rebuilt from the stored config is the stored model: nothing to check)."""
    # _embed -> Chroma's __call__ wrapper -> __call__ -> the function's own helpers -> here
    frame = _chroma_frame(EMBED_CODES, 10)
    if frame is None:
        return None
    owner = frame.f_locals.get("self")
    return owner if attached_embedding_function(owner) is ef else None


def modifying_collection(ef: Any) -> Any | None:
    """The Chroma collection whose ``modify(configuration=...)`` is attaching ``ef`` now.

    Chroma writes the new configuration first and validates it after
    (``validate_config_update`` runs once it is stored), so a refused model would stay
    stored; checking while Chroma serializes ``ef`` refuses it before anything is written.
    """
    # get_config <- serialization <- client._modify <- (awaits) <- modify
    frame = _chroma_frame(MODIFY_CODES, 16)
    if frame is None:
        return None
    configuration = frame.f_locals.get("configuration")
    if isinstance(configuration, Mapping) and configuration.get("embedding_function") is ef:
        return frame.f_locals.get("self")
    return None


def attached_embedding_function(collection: Any) -> Any | None:
    """The function a collection was opened with (None if it was given none)."""
    return getattr(collection, "_embedding_function", None)


def stored_config(collection: Any) -> dict[str, Any] | None:
    """The clipclap config stored with a collection; None if it stores no known function.

    Raises ``ValueError`` if it stores another (non-legacy) embedding function. Chroma's
    persisted form is ``{"type": "known", "name": ..., "config": ...}``.
    """
    stored = (collection.configuration_json or {}).get("embedding_function") or {}
    if stored.get("type") != "known":
        return None
    if stored.get("name") != NAME:
        raise ValueError(
            f"collection {collection.name!r} uses the embedding function {stored.get('name')!r}, "
            "not clipclap: its vectors are not CLIPCLAP vectors"
        )
    return cast(dict[str, Any], stored.get("config") or {})


def batch_limit(size: Any) -> int | None:
    """``size`` if it is a usable write limit (a positive int), else None: write at once."""
    return size if isinstance(size, int) and not isinstance(size, bool) and size > 0 else None


def max_batch_size(collection: Any) -> int | None:
    """The most records the collection's client takes in one write (it refuses larger
    batches); None if it cannot say (a duck-typed collection: write everything at once)."""
    try:
        return batch_limit(collection._client.get_max_batch_size())
    except Exception:
        return None


async def amax_batch_size(collection: Any) -> int | None:
    """``max_batch_size`` of an ``AsyncCollection`` (its client's method is a coroutine)."""
    try:
        return batch_limit(await collection._client.get_max_batch_size())
    except Exception:
        return None


def server_address(collection: Any) -> dict[str, Any] | None:
    """How another process reaches the Chroma server a collection lives on (``HttpClient``'s
    keyword arguments, plus the collection's tenant and database), or None when the
    collection is in an embedded database (a ``PersistentClient``: one writer process)."""
    try:
        settings = collection._client.get_settings()
    except Exception:
        return None
    if "fastapi" not in str(getattr(settings, "chroma_api_impl", "")).lower():
        return None
    return {
        "host": settings.chroma_server_host,
        "port": settings.chroma_server_http_port,
        "ssl": bool(settings.chroma_server_ssl_enabled),
        "headers": settings.chroma_server_headers,
        "tenant": collection.tenant,
        "database": collection.database,
    }
