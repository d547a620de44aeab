"""A warning where LlamaIndex's ``MultiModalVectorStoreIndex`` would drop sounds unsaid.

It stores text and images only: an ``AudioNode`` (no text) is skipped as "missing content", a
sound document is split into an empty text node. When ``ClipClapEmbedding`` is one of its
models, nodes that hold a sound are reported, once per index, pointing to ``ClipClapIndex``.
Installed when ``clipclap_integrations.llama_index`` is imported; other models are untouched.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from typing import Any

from llama_index.core.indices.multi_modal.base import MultiModalVectorStoreIndex
from llama_index.core.schema import BaseNode

from .embedding import ClipClapEmbedding
from .loading import stands_for_audio

logger = logging.getLogger(__name__)

WARNED = "_clipclap_audio_warned"
"""Attribute set on an index once it has been warned about."""


def warn_if_audio_is_dropped(index: Any, nodes: Sequence[BaseNode]) -> None:
    """Log one warning per index if ``nodes`` hold sounds it will drop (see module doc)."""
    models = (getattr(index, "_embed_model", None), getattr(index, "image_embed_model", None))
    if getattr(index, WARNED, False) or not any(isinstance(m, ClipClapEmbedding) for m in models):
        return
    audio = [node for node in nodes if stands_for_audio(node)]
    if not audio:
        return
    setattr(index, WARNED, True)
    names = [str(n.metadata.get("file_name") or n.node_id) for n in audio[:3]]
    logger.warning(
        "MultiModalVectorStoreIndex indexes text and images only: %d node(s) holding a sound "
        "(%s%s) are not indexed. ClipClapIndex indexes text, images and audio in one store: "
        "ClipClapIndex(nodes, embed_model=embed_model) or "
        "ClipClapIndex.from_documents(documents, embed_model=embed_model).",
        len(audio),
        ", ".join(names),
        ", ..." if len(audio) > 3 else "",
    )


def _watching(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def watched(self: Any, nodes: Sequence[BaseNode], *args: Any, **kwargs: Any) -> Any:
        warn_if_audio_is_dropped(self, nodes)
        return method(self, nodes, *args, **kwargs)

    watched.__clipclap_watch__ = True  # type: ignore[attr-defined]
    return watched


def install() -> None:
    """Watch the methods every node reaches ``MultiModalVectorStoreIndex`` through (once)."""
    for name in ("build_index_from_nodes", "insert_nodes", "ainsert_nodes"):
        method = getattr(MultiModalVectorStoreIndex, name)
        if not getattr(method, "__clipclap_watch__", False):
            setattr(MultiModalVectorStoreIndex, name, _watching(method))
