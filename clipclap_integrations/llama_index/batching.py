"""Embedding in batches as LlamaIndex does, for media too: events, progress, whole-call places.

``MultiModalEmbedding.get_image_embedding_batch`` would do for images, but it puts the raw items
in its callback events (bytes and ``BytesIO`` break handlers that count tokens) and an error
keeps its place in the batch. These loops describe media in the events and count an error's
place over the whole call. ``ClipClapEmbedding.get_embedding_batch`` (images, audio, and the
text of nodes) runs through them; LlamaIndex's own loop keeps ``get_text_embedding_batch``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from llama_index.core.callbacks.schema import CBEventType, EventPayload
from llama_index.core.utils import get_tqdm_iterable

from ..errors import ClipClapInputError
from ..inputs import describe

BatchEmbed = Callable[[list[Any]], list[Embedding]]
"""Embeds one batch (at most ``embed_batch_size`` items), e.g. ``_get_image_embeddings``."""

AsyncBatchEmbed = Callable[[list[Any]], Awaitable[list[Embedding]]]


def embed_in_batches(
    model: BaseEmbedding,
    items: Sequence[Any],
    embed: BatchEmbed,
    *,
    show_progress: bool = False,
    what: str,
) -> list[Embedding]:
    """``embed`` over ``items``, ``model.embed_batch_size`` at a time, one event per batch."""
    out: list[Embedding] = []
    batches = _batches(items, model.embed_batch_size)
    for batch in get_tqdm_iterable(batches, show_progress, f"Generating {what} embeddings"):
        with model.callback_manager.event(
            CBEventType.EMBEDDING, payload={EventPayload.SERIALIZED: model.to_payload()}
        ) as event:
            try:
                vectors = embed(batch)
            except ClipClapInputError as exc:
                raise _shifted(exc, len(out)) from None
            event.on_end(
                payload={EventPayload.CHUNKS: _chunks(batch), EventPayload.EMBEDDINGS: vectors}
            )
        out.extend(vectors)
    return out


async def aembed_in_batches(
    model: BaseEmbedding,
    items: Sequence[Any],
    embed: AsyncBatchEmbed,
    *,
    show_progress: bool = False,
    what: str,
) -> list[Embedding]:
    """``embed_in_batches`` with the batches awaited together (``embed`` runs each in a thread)."""
    size = model.embed_batch_size

    async def one(number: int, batch: list[Any]) -> list[Embedding]:
        with model.callback_manager.event(
            CBEventType.EMBEDDING, payload={EventPayload.SERIALIZED: model.to_payload()}
        ) as event:
            try:
                vectors = await embed(batch)
            except ClipClapInputError as exc:
                raise _shifted(exc, number * size) from None
            event.on_end(
                payload={EventPayload.CHUNKS: _chunks(batch), EventPayload.EMBEDDINGS: vectors}
            )
        return vectors

    jobs = [one(k, batch) for k, batch in enumerate(_batches(items, size))]
    if show_progress:
        from tqdm.asyncio import tqdm_asyncio

        nested = await tqdm_asyncio.gather(*jobs, desc=f"Generating {what} embeddings")
    else:
        nested = await asyncio.gather(*jobs)
    return [vector for batch in nested for vector in batch]


def _chunks(batch: list[Any]) -> list[str]:
    """Event payload chunks: strings as they are, media described (handlers expect text)."""
    return [item if isinstance(item, str) else describe(item) for item in batch]


def _batches(items: Sequence[Any], size: int) -> list[list[Any]]:
    if isinstance(items, str | bytes):
        raise TypeError("expected a list of items (wrap a single item in a list)")
    items = list(items)
    return [items[i : i + size] for i in range(0, len(items), size)]


def _shifted(exc: ClipClapInputError, offset: int) -> ClipClapInputError:
    """``exc`` with its position counted from the start of the whole call."""
    return exc.at(exc.index + offset) if exc.index is not None and offset else exc
