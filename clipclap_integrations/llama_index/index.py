"""``ClipClapIndex``: text, image and audio nodes in one vector store, embedded by content."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from llama_index.core.callbacks.base import CallbackManager
from llama_index.core.constants import DEFAULT_CHUNK_SIZE
from llama_index.core.data_structs.data_structs import IndexDict
from llama_index.core.indices.vector_store.base import VectorStoreIndex
from llama_index.core.ingestion import run_transformations
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.node_parser.text.sentence import SENTENCE_CHUNK_OVERLAP
from llama_index.core.schema import BaseNode, Document, TransformComponent
from llama_index.core.settings import Settings
from llama_index.core.storage.storage_context import StorageContext
from llama_index.core.vector_stores.types import BasePydanticVectorStore

from ..errors import ClipClapInputError
from .embedding import ClipClapEmbedding
from .loading import media_node_from_document, repaired_media_nodes
from .node_embedding import aembed_nodes, embed_nodes
from .nodes import has_content, tagged
from .retriever import ClipClapRetriever
from .splitter import ClipTextSplitter

logger = logging.getLogger(__name__)


class ClipClapIndex(VectorStoreIndex):
    """A ``VectorStoreIndex`` that embeds every node by its own content into one store.

    Text nodes are embedded as text, ``ImageNode``s by their image, ``AudioNode``s by their
    sound, and ``Node``/``Document``s by their ``image_resource`` or ``audio_resource``
    (nodes without text are kept; an image or sound that a text splitter turned into a
    text node with no text is made a media node again, with a warning). Text is split by
    ``ClipTextSplitter`` (chunks that fit CLIP's 77 tokens) unless transformations are given
    or set in ``Settings``. Each stored node gets ``metadata["modality"]``, which
    ``ClipClapRetriever`` filters on, so any vector store with metadata filters works
    (``SimpleVectorStore``, ``ChromaVectorStore``, ...). ``from_documents`` sends documents
    that hold an image or a sound straight to nodes, and text documents through the usual
    transformations.

    A node that cannot be embedded (a truncated image, a sound that does not decode) is
    reported (a warning naming it and why) and left out, and the rest is indexed, as the
    ``clipclap index`` command does; ``raise_on_error=True`` raises ``ClipClapInputError``
    on the first such node instead.

    Example:
        embed_model = ClipClapEmbedding("antflydb/clipclap")
        index = ClipClapIndex(nodes, embed_model=embed_model, storage_context=storage_context)
        hits = index.as_retriever(similarity_top_k=3).text_to_audio("a dog barking")
    """

    def __init__(
        self,
        nodes: Sequence[BaseNode] | None = None,
        embed_model: ClipClapEmbedding | None = None,
        *,
        raise_on_error: bool = False,
        **kwargs: Any,
    ) -> None:
        self.raise_on_error = raise_on_error
        model = embed_model if embed_model is not None else _default_embed_model()
        if not isinstance(model, ClipClapEmbedding):
            raise TypeError(f"ClipClapIndex needs a ClipClapEmbedding, got {type(model).__name__}")
        kwargs["transformations"] = kwargs.get("transformations") or _default_transformations(model)
        super().__init__(nodes=nodes, embed_model=model, **kwargs)

    @property
    def embed_model(self) -> ClipClapEmbedding:
        """The ``ClipClapEmbedding`` that embeds nodes and queries."""
        assert isinstance(self._embed_model, ClipClapEmbedding)
        return self._embed_model

    def as_retriever(self, **kwargs: Any) -> ClipClapRetriever:
        """A ``ClipClapRetriever``; pass ``similarity_top_k``, ``modalities``, ``filters``..."""
        kwargs.setdefault("callback_manager", self._callback_manager)
        kwargs.setdefault("object_map", self._object_map)
        return ClipClapRetriever(self, **kwargs)

    # -- building ---------------------------------------------------------------------------
    @classmethod
    def from_documents(
        cls,
        documents: Sequence[Document],
        storage_context: StorageContext | None = None,
        show_progress: bool = False,
        callback_manager: CallbackManager | None = None,
        transformations: list[TransformComponent] | None = None,
        **kwargs: Any,
    ) -> ClipClapIndex:
        """Index documents: media documents as one node each, text ones transformed (by
        ``transformations``, else as the class docstring says)."""
        storage_context = storage_context or StorageContext.from_defaults()
        callback_manager = callback_manager or Settings.callback_manager
        model = kwargs.get("embed_model")
        if model is None:
            model = kwargs["embed_model"] = _default_embed_model()
        transformations = transformations or _default_transformations(model)
        with callback_manager.as_trace("index_construction"):
            for doc in documents:
                storage_context.docstore.set_document_hash(doc.id_, doc.hash)
            nodes = _documents_to_nodes(documents, transformations, show_progress, **kwargs)
            return cls(
                nodes=nodes,
                storage_context=storage_context,
                callback_manager=callback_manager,
                show_progress=show_progress,
                transformations=transformations,
                **kwargs,
            )

    @classmethod
    def from_vector_store(
        cls, vector_store: BasePydanticVectorStore, embed_model: Any = None, **kwargs: Any
    ) -> ClipClapIndex:
        """Open the index over a store that keeps text and already holds nodes (e.g. Chroma)."""
        index = super().from_vector_store(vector_store, embed_model=embed_model, **kwargs)
        assert isinstance(index, ClipClapIndex)
        return index

    @classmethod
    def from_storage(
        cls,
        storage_context: StorageContext,
        embed_model: ClipClapEmbedding | None = None,
        index_id: str | None = None,
        **kwargs: Any,
    ) -> ClipClapIndex:
        """Reload an index persisted with ``index.storage_context.persist(dir)``.

        (``load_index_from_storage`` would return a plain ``VectorStoreIndex``.)
        """
        struct = storage_context.index_store.get_index_struct(index_id)
        if struct is None:
            raise ValueError(f"no index {index_id!r} in the storage context")
        return cls(
            index_struct=struct, storage_context=storage_context, embed_model=embed_model, **kwargs
        )

    def insert(self, document: Document, **insert_kwargs: Any) -> None:
        """Insert a document (one node if it holds an image or a sound)."""
        media = media_node_from_document(document)
        if media is None:
            super().insert(document, **insert_kwargs)
            return
        with self._callback_manager.as_trace("insert"):
            self.insert_nodes([media], **insert_kwargs)
            self.docstore.set_document_hash(document.id_, document.hash)

    async def ainsert(self, document: Document, **insert_kwargs: Any) -> None:
        """Async ``insert``."""
        media = media_node_from_document(document)
        if media is None:
            await super().ainsert(document, **insert_kwargs)
            return
        with self._callback_manager.as_trace("ainsert"):
            await self.ainsert_nodes([media], **insert_kwargs)
            await self.docstore.aset_document_hash(document.id_, document.hash)

    def build_index_from_nodes(self, nodes: Sequence[BaseNode], **insert_kwargs: Any) -> IndexDict:
        """Build from nodes, keeping image and audio nodes that have no text."""
        nodes = repaired_media_nodes(nodes, "ClipClapIndex")
        kept = [node for node in nodes if has_content(node)]
        if len(kept) != len(nodes):
            logger.warning("skipped %d nodes with no text, image or audio", len(nodes) - len(kept))
        return self._build_index_from_nodes(kept, **insert_kwargs)

    def _add_nodes_to_index(
        self,
        index_struct: IndexDict,
        nodes: Sequence[BaseNode],
        show_progress: bool = False,
        **insert_kwargs: Any,
    ) -> None:
        tagged_nodes = [tagged(node) for node in repaired_media_nodes(nodes, "ClipClapIndex")]
        super()._add_nodes_to_index(index_struct, tagged_nodes, show_progress, **insert_kwargs)

    async def _async_add_nodes_to_index(
        self,
        index_struct: IndexDict,
        nodes: Sequence[BaseNode],
        show_progress: bool = False,
        **insert_kwargs: Any,
    ) -> None:
        tagged_nodes = [tagged(node) for node in repaired_media_nodes(nodes, "ClipClapIndex")]
        await super()._async_add_nodes_to_index(
            index_struct, tagged_nodes, show_progress, **insert_kwargs
        )

    def _get_node_with_embedding(
        self, nodes: Sequence[BaseNode], show_progress: bool = False
    ) -> list[BaseNode]:
        left = list(nodes)
        while True:
            try:
                vectors = embed_nodes(left, self.embed_model, show_progress=show_progress)
            except ClipClapInputError as exc:
                left = self._without_bad_node(left, exc)
                continue
            return [_with_embedding(node, v) for node, v in zip(left, vectors, strict=True)]

    async def _aget_node_with_embedding(
        self, nodes: Sequence[BaseNode], show_progress: bool = False
    ) -> list[BaseNode]:
        left = list(nodes)
        while True:
            try:
                vectors = await aembed_nodes(left, self.embed_model, show_progress=show_progress)
            except ClipClapInputError as exc:
                left = self._without_bad_node(left, exc)
                continue
            return [_with_embedding(node, v) for node, v in zip(left, vectors, strict=True)]

    def _without_bad_node(self, nodes: list[BaseNode], exc: ClipClapInputError) -> list[BaseNode]:
        """``nodes`` less the one ``exc`` names, reported; ``exc`` itself if it must stop."""
        if self.raise_on_error or exc.index is None or not 0 <= exc.index < len(nodes):
            raise exc
        logger.warning(
            "ClipClapIndex: skipped %s: %s (the other nodes are indexed; "
            "raise_on_error=True stops at the first bad node)",
            exc.item_description or f"node {nodes[exc.index].node_id!r}",
            exc.reason,
        )
        return nodes[: exc.index] + nodes[exc.index + 1 :]


def _with_embedding(node: BaseNode, vector: list[float]) -> BaseNode:
    copy = node.model_copy()
    copy.embedding = vector
    return copy


def _default_embed_model() -> Any:
    """``Settings.embed_model`` if it is a ClipClapEmbedding (without resolving OpenAI)."""
    configured = getattr(Settings, "_embed_model", None)
    return configured if configured is not None else ClipClapEmbedding()


def _default_transformations(model: Any) -> list[TransformComponent]:
    """``Settings.transformations`` if the user configured them, else a CLIP-sized splitter.

    LlamaIndex fills ``Settings.transformations`` with ``SentenceSplitter()`` (1024 tokens)
    the first time anything reads it, so that exact default counts as not configured.
    """
    configured = Settings.transformations
    untouched = (
        len(configured) == 1
        and type(configured[0]) is SentenceSplitter
        and configured[0].chunk_size == DEFAULT_CHUNK_SIZE
        and configured[0].chunk_overlap == SENTENCE_CHUNK_OVERLAP
    )
    if untouched and isinstance(model, ClipClapEmbedding):
        return [ClipTextSplitter.from_embed_model(model)]
    return configured


def _documents_to_nodes(
    documents: Sequence[Document],
    transformations: list[TransformComponent],
    show_progress: bool,
    **kwargs: Any,
) -> list[BaseNode]:
    media: list[BaseNode] = []
    texts: list[Document] = []
    for doc in documents:
        node = media_node_from_document(doc)
        if node is None:
            texts.append(doc)
        else:
            media.append(node)
    if texts:
        media += run_transformations(texts, transformations, show_progress=show_progress, **kwargs)
    return media
