"""Embedding nodes by their own content: text as text, images and sounds as media."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Protocol

from llama_index.core.base.embeddings.base import Embedding
from llama_index.core.schema import BaseNode

from ..errors import ClipClapInputError
from ..types import Modality
from .nodes import node_content, node_modality


class ModalityEmbedding(Protocol):
    """What embedding nodes needs of a model (``ClipClapEmbedding`` is one): many items of one
    modality in, one vector each out, a bad item's position counted over ``items``."""

    def get_embedding_batch(
        self, modality: Modality, items: Sequence[Any], show_progress: bool = False
    ) -> list[Embedding]: ...

    async def aget_embedding_batch(
        self, modality: Modality, items: Sequence[Any], show_progress: bool = False
    ) -> list[Embedding]: ...


def _groups(nodes: Sequence[BaseNode], skip_embedded: bool) -> dict[Modality, list[int]]:
    """The positions of the nodes to embed, per modality (modalities with none left out)."""
    groups: dict[Modality, list[int]] = {m: [] for m in Modality}
    for i, node in enumerate(nodes):
        if not (skip_embedded and node.embedding is not None):
            groups[node_modality(node)].append(i)
    return {modality: rows for modality, rows in groups.items() if rows}


def _contents(nodes: Sequence[BaseNode], rows: list[int]) -> list[Any]:
    out = []
    for i in rows:
        try:
            out.append(node_content(nodes[i]))
        except ValueError as exc:  # ClipClapInputError, or a media node with no source
            reason = exc.reason if isinstance(exc, ClipClapInputError) else str(exc)
            raise ClipClapInputError(reason, index=i, item=f"node {nodes[i].node_id!r}") from None
    return out


def _name_the_node(
    exc: ClipClapInputError, nodes: Sequence[BaseNode], rows: list[int]
) -> ClipClapInputError:
    """``exc`` (positioned in one modality's list) positioned in ``nodes``, naming the node."""
    if exc.index is None or not 0 <= exc.index < len(rows):
        return exc
    row = rows[exc.index]
    item = f"node {nodes[row].node_id!r}"
    if exc.item_description:
        item += f", {exc.item_description}"
    return ClipClapInputError(exc.reason, index=row, item=item)


def embed_nodes(
    nodes: Sequence[BaseNode],
    embed_model: ModalityEmbedding,
    show_progress: bool = False,
    skip_embedded: bool = True,
) -> list[Embedding]:
    """One vector per node from its own text, image or sound, batched per modality.

    A node that cannot be embedded raises ``ClipClapInputError`` naming its position in
    ``nodes`` and its id.
    """
    out: list[Any] = [n.embedding if skip_embedded else None for n in nodes]
    for modality, rows in _groups(nodes, skip_embedded).items():
        items = _contents(nodes, rows)
        try:
            vectors = embed_model.get_embedding_batch(modality, items, show_progress)
        except ClipClapInputError as exc:
            raise _name_the_node(exc, nodes, rows) from None
        for i, vector in zip(rows, vectors, strict=True):
            out[i] = vector
    return out


async def aembed_nodes(
    nodes: Sequence[BaseNode],
    embed_model: ModalityEmbedding,
    show_progress: bool = False,
    skip_embedded: bool = True,
) -> list[Embedding]:
    """``embed_nodes`` without blocking the event loop; the modalities run concurrently."""
    out: list[Any] = [n.embedding if skip_embedded else None for n in nodes]
    groups = list(_groups(nodes, skip_embedded).items())

    async def one(modality: Modality, rows: list[int]) -> list[Embedding]:
        items = _contents(nodes, rows)
        try:
            return await embed_model.aget_embedding_batch(modality, items, show_progress)
        except ClipClapInputError as exc:
            raise _name_the_node(exc, nodes, rows) from None

    results = await asyncio.gather(*(one(m, rows) for m, rows in groups))
    for (_, rows), vectors in zip(groups, results, strict=True):
        for i, vector in zip(rows, vectors, strict=True):
            out[i] = vector
    return out
