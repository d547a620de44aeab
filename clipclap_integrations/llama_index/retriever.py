"""``ClipClapRetriever``: search one vector store across text, images and audio."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from llama_index.core.base.embeddings.base import Embedding
from llama_index.core.constants import DEFAULT_SIMILARITY_TOP_K
from llama_index.core.indices.multi_modal.base import MultiModalVectorStoreIndex
from llama_index.core.indices.vector_store.base import VectorStoreIndex
from llama_index.core.indices.vector_store.retrievers import VectorIndexRetriever
from llama_index.core.schema import BaseNode, NodeWithScore, QueryBundle, QueryType
from llama_index.core.vector_stores.simple import SimpleVectorStore
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryResult,
)

from ..types import Audio, Image, Modality, Text
from .embedding import ClipClapEmbedding
from .loading import recovered_media_node
from .nodes import (
    MODALITY_KEY,
    NODE_MODALITIES,
    node_content,
    node_modality,
    node_modality_of,
    restore_audio_nodes,
)

logger = logging.getLogger(__name__)

ModalitiesArg = Modality | str | Iterable[Modality | str] | None
ALL_MODALITIES: tuple[Modality, ...] = NODE_MODALITIES


def parse_modalities(value: ModalitiesArg) -> tuple[Modality, ...]:
    """``None`` -> all; one name -> that one; names -> those (order kept, duplicates dropped)."""
    if value is None:
        return ALL_MODALITIES
    if isinstance(value, Modality | str):
        return (node_modality_of(value),)
    out = tuple(dict.fromkeys(node_modality_of(v) for v in value))
    if not out:
        raise ValueError("modalities is empty: name at least one of text, image, audio")
    return out


class DirectedSearch(Protocol):
    """``retriever.text_to_audio(query, similarity_top_k=None)`` and the other pairs."""

    def __call__(self, query: Any, similarity_top_k: int | None = None) -> list[NodeWithScore]: ...


class AsyncDirectedSearch(Protocol):
    """``await retriever.atext_to_audio(query, similarity_top_k=None)`` and the other pairs."""

    async def __call__(
        self, query: Any, similarity_top_k: int | None = None
    ) -> list[NodeWithScore]: ...


def _with_directed_searches(cls: type[ClipClapRetriever]) -> type[ClipClapRetriever]:
    """Give ``cls`` a ``<query>_to_<target>`` method and its async ``a<query>_to_<target>``
    for every pair of modalities: ``any_to_any`` with both modalities fixed."""
    for source, target in itertools.product(NODE_MODALITIES, repeat=2):
        for method in _directed_search(cls, source, target):
            setattr(cls, method.__name__, method)
    return cls


def _directed_search(
    cls: type[ClipClapRetriever], source: Modality, target: Modality
) -> tuple[Callable[..., Any], Callable[..., Any]]:
    def search(
        self: ClipClapRetriever, query: Any, similarity_top_k: int | None = None
    ) -> list[NodeWithScore]:
        return self.any_to_any(
            query, target, query_modality=source, similarity_top_k=similarity_top_k
        )

    async def asearch(
        self: ClipClapRetriever, query: Any, similarity_top_k: int | None = None
    ) -> list[NodeWithScore]:
        return await self.aany_to_any(
            query, target, query_modality=source, similarity_top_k=similarity_top_k
        )

    name = f"{source.value}_to_{target.value}"
    search.__doc__ = (
        f"{target.value.capitalize()} nodes nearest ``query``, embedded as {source.value}."
    )
    asearch.__doc__ = f"``{name}`` without blocking the event loop."
    for method, method_name in ((search, name), (asearch, f"a{name}")):
        method.__name__ = method_name
        method.__qualname__ = f"{cls.__name__}.{method_name}"
    return search, asearch


@dataclass(frozen=True)
class _Plan:
    """How to embed a query: ``kind`` is a modality, ``"agg"`` (query strings) or ``"vector"``."""

    kind: Modality | str
    payload: Any
    query_str: str = ""


@_with_directed_searches
class ClipClapRetriever(VectorIndexRetriever):
    """Retrieves text, image and audio nodes from one store, with a query of any modality.

    ``retrieve(query)`` embeds a text query (or ``QueryBundle.image_path`` as an image) and
    returns the nearest nodes of ``modalities``. The ``x_to_y`` methods force the query's
    modality and filter the results to one target modality; ``any_to_any`` detects the query's
    modality (a string naming an image or sound file is that medium, other strings are text)
    and searches the modalities you name. Filtering uses the ``modality`` metadata that
    ``ClipClapIndex`` stores, so it works with any vector store that supports metadata filters.

    Queries may be strings, ``Text``/``Image``/``Audio`` wrappers, anything the core takes
    (paths, URLs, bytes, ``BytesIO``, PIL images, ``(samples, rate)`` pairs), a node (its own
    content is the query) or a ``QueryBundle``.

    Args:
        index: a ``ClipClapIndex``, or a ``VectorStoreIndex`` whose nodes carry the
            ``modality`` tag (``ClipClapEmbedding`` run as a transformation sets it; so does
            ``tag_node_in_place``); then pass ``embed_model``. Untagged nodes in the docstore
            and a ``MultiModalVectorStoreIndex`` (images in a second store) are refused.
        similarity_top_k: results per query (per call: ``similarity_top_k=``).
        modalities: what ``retrieve`` returns (default: all three).
        image_similarity_top_k: results of ``text_to_image_retrieve`` and
            ``image_to_image_retrieve`` (as in ``MultiModalVectorIndexRetriever``; default
            ``similarity_top_k``).
        filters: extra metadata filters, combined (AND) with the modality filter.
        **kwargs: passed on to ``VectorIndexRetriever``.
    """

    def __init__(
        self,
        index: VectorStoreIndex,
        similarity_top_k: int = DEFAULT_SIMILARITY_TOP_K,
        modalities: ModalitiesArg = None,
        image_similarity_top_k: int | None = None,
        **kwargs: Any,
    ) -> None:
        if isinstance(index, MultiModalVectorStoreIndex):
            raise TypeError(
                "ClipClapRetriever searches one vector store, and a MultiModalVectorStoreIndex "
                "keeps its images in a second one: use that index's own as_retriever(), or "
                "build a ClipClapIndex (one store for text, images and audio)"
            )
        super().__init__(index, similarity_top_k=similarity_top_k, **kwargs)
        _refuse_untagged_nodes(index)
        if not isinstance(self._embed_model, ClipClapEmbedding):
            raise TypeError(
                "ClipClapRetriever needs a ClipClapEmbedding: "
                "pass embed_model=ClipClapEmbedding(...)"
            )
        self._clipclap: ClipClapEmbedding = self._embed_model
        self._modalities = parse_modalities(modalities)
        self._image_top_k = image_similarity_top_k

    @property
    def modalities(self) -> tuple[Modality, ...]:
        """The modalities ``retrieve`` returns."""
        return self._modalities

    # -- LlamaIndex's retrieve() / aretrieve() ----------------------------------------------
    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return self.any_to_any(query_bundle)

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return await self.aany_to_any(query_bundle)

    # -- any modality to any modality -------------------------------------------------------
    def any_to_any(
        self,
        query: Any,
        modalities: ModalitiesArg = None,
        *,
        query_modality: Modality | str | None = None,
        similarity_top_k: int | None = None,
    ) -> list[NodeWithScore]:
        """Nodes of ``modalities`` (default: the retriever's) nearest ``query``.

        ``query_modality`` forces how the query is read (otherwise it is detected).
        """
        plan = self._plan(query, query_modality)
        targets = self._modalities if modalities is None else parse_modalities(modalities)
        return self._search(plan.query_str, self._embed(plan), targets, similarity_top_k)

    async def aany_to_any(
        self,
        query: Any,
        modalities: ModalitiesArg = None,
        *,
        query_modality: Modality | str | None = None,
        similarity_top_k: int | None = None,
    ) -> list[NodeWithScore]:
        """``any_to_any`` without blocking the event loop."""
        plan = self._plan(query, query_modality)
        targets = self._modalities if modalities is None else parse_modalities(modalities)
        vector = await self._aembed(plan)
        return await self._asearch(plan.query_str, vector, targets, similarity_top_k)

    # -- the directed pairs, made by _with_directed_searches; declared here for type checkers --
    if TYPE_CHECKING:
        text_to_text: DirectedSearch
        text_to_image: DirectedSearch
        text_to_audio: DirectedSearch
        image_to_text: DirectedSearch
        image_to_image: DirectedSearch
        image_to_audio: DirectedSearch
        audio_to_text: DirectedSearch
        audio_to_image: DirectedSearch
        audio_to_audio: DirectedSearch
        atext_to_text: AsyncDirectedSearch
        atext_to_image: AsyncDirectedSearch
        atext_to_audio: AsyncDirectedSearch
        aimage_to_text: AsyncDirectedSearch
        aimage_to_image: AsyncDirectedSearch
        aimage_to_audio: AsyncDirectedSearch
        aaudio_to_text: AsyncDirectedSearch
        aaudio_to_image: AsyncDirectedSearch
        aaudio_to_audio: AsyncDirectedSearch

    # -- MultiModalVectorIndexRetriever's names, for code written against it -----------------
    def text_retrieve(self, str_or_query_bundle: QueryType) -> list[NodeWithScore]:
        """Same as ``text_to_text``."""
        return self.text_to_text(str_or_query_bundle)

    def text_to_image_retrieve(self, str_or_query_bundle: QueryType) -> list[NodeWithScore]:
        """Same as ``text_to_image`` (``image_similarity_top_k`` results)."""
        return self.text_to_image(str_or_query_bundle, self._image_top_k)

    def image_to_image_retrieve(self, str_or_query_bundle: QueryType) -> list[NodeWithScore]:
        """Same as ``image_to_image`` (a string is an image path or URL)."""
        return self.image_to_image(str_or_query_bundle, self._image_top_k)

    async def atext_retrieve(self, str_or_query_bundle: QueryType) -> list[NodeWithScore]:
        return await self.atext_to_text(str_or_query_bundle)

    async def atext_to_image_retrieve(self, str_or_query_bundle: QueryType) -> list[NodeWithScore]:
        return await self.atext_to_image(str_or_query_bundle, self._image_top_k)

    async def aimage_to_image_retrieve(self, str_or_query_bundle: QueryType) -> list[NodeWithScore]:
        return await self.aimage_to_image(str_or_query_bundle, self._image_top_k)

    # -- internals ---------------------------------------------------------------------------
    def _plan(self, query: Any, query_modality: Modality | str | None) -> _Plan:
        forced = Modality.parse(query_modality) if query_modality is not None else None
        if isinstance(query, QueryBundle):
            return _bundle_plan(query, forced)
        if isinstance(query, BaseNode):
            media = recovered_media_node(query)  # raises if its file is gone
            if media is not None:
                logger.warning(
                    "ClipClapRetriever: the query node %r is an image or sound that a text "
                    "splitter made an empty text node of: searched by its media",
                    query.node_id,
                )
                query = media
            modality, item = node_modality(query), node_content(query)
        elif isinstance(query, Text):
            modality, item = Modality.TEXT, query.text
        elif isinstance(query, Image):
            modality, item = Modality.IMAGE, query
        elif isinstance(query, Audio):
            modality, item = Modality.AUDIO, query
        else:
            modality, item = forced or self._clipclap.detect(query), query
        if forced is not None and modality is not forced:
            raise ValueError(f"the query is {modality.value}, not {forced.value}")
        if modality is Modality.TEXT:
            if not isinstance(item, str):
                raise TypeError(f"a text query must be a string, got {type(item).__name__}")
            return _Plan(modality, item, item)
        return _Plan(modality, item)

    def _embed(self, plan: _Plan) -> Embedding:
        model = self._clipclap
        if plan.kind == "vector":
            return list(plan.payload)
        if plan.kind == "agg":
            return model.get_agg_embedding_from_queries(plan.payload)
        if plan.kind is Modality.TEXT:
            return model.get_query_embedding(plan.payload)
        return model.get_embedding_batch(plan.kind, [plan.payload])[0]

    async def _aembed(self, plan: _Plan) -> Embedding:
        model = self._clipclap
        if plan.kind == "vector":
            return list(plan.payload)
        if plan.kind == "agg":
            return await model.aget_agg_embedding_from_queries(plan.payload)
        if plan.kind is Modality.TEXT:
            return await model.aget_query_embedding(plan.payload)
        return (await model.aget_embedding_batch(plan.kind, [plan.payload]))[0]

    def _store_query(
        self,
        query_str: str,
        embedding: Embedding,
        modalities: tuple[Modality, ...],
        similarity_top_k: int | None,
    ) -> VectorStoreQuery:
        top_k = self._similarity_top_k if similarity_top_k is None else similarity_top_k
        if top_k < 1:
            raise ValueError(f"similarity_top_k must be at least 1, got {top_k}")
        filters, node_ids = self._modality_filters(modalities), self._scope()
        nested = filters is not None and any(
            isinstance(f, MetadataFilters) for f in filters.filters
        )
        if nested and isinstance(self._vector_store, SimpleVectorStore):
            # It cannot nest filters (the user's OR/NOT inside the modality AND): select the
            # modality by node id instead, and keep the user's filters as they are.
            wanted = {m.value for m in modalities}
            allowed = None if node_ids is None else set(node_ids)
            node_ids = [
                node_id
                for node_id, meta in self._vector_store.data.metadata_dict.items()
                if (meta or {}).get(MODALITY_KEY) in wanted
                and (allowed is None or node_id in allowed)
            ]
            filters = self._filters
        return VectorStoreQuery(
            query_embedding=embedding,
            similarity_top_k=top_k,
            node_ids=node_ids,
            doc_ids=self._doc_ids,
            query_str=query_str,
            mode=self._vector_store_query_mode,
            alpha=self._alpha,
            filters=filters,
            sparse_top_k=self._sparse_top_k,
            hybrid_top_k=self._hybrid_top_k,
        )

    def _scope(self) -> list[str] | None:
        """The node ids to search: those given, else this index's own nodes, read at query
        time (a shared store can hold other indexes' nodes; later inserts are included)."""
        if self._node_ids is not None:
            return list(self._node_ids)
        if self._vector_store.stores_text:  # the index keeps no node list: the whole store
            return None
        return list(self._index.index_struct.nodes_dict.values())

    def _modality_filters(self, modalities: tuple[Modality, ...]) -> MetadataFilters | None:
        """The user's filters AND ``modality`` in ``modalities`` (no filter for all three)."""
        if set(modalities) == set(ALL_MODALITIES):
            return self._filters
        values = [m.value for m in modalities]
        own = (
            MetadataFilter(key=MODALITY_KEY, value=values[0])
            if len(values) == 1
            else MetadataFilter(key=MODALITY_KEY, value=values, operator=FilterOperator.IN)
        )
        base = self._filters
        if base is None:
            return MetadataFilters(filters=[own])
        if base.condition in (None, FilterCondition.AND):
            return MetadataFilters(filters=[*base.filters, own], condition=FilterCondition.AND)
        return MetadataFilters(filters=[base, own], condition=FilterCondition.AND)

    def _search(
        self,
        query_str: str,
        embedding: Embedding,
        modalities: tuple[Modality, ...],
        similarity_top_k: int | None,
    ) -> list[NodeWithScore]:
        query = self._store_query(query_str, embedding, modalities, similarity_top_k)
        result = self._vector_store.query(query, **self._kwargs)
        fetch = self._determine_nodes_to_fetch(result)
        fetched = self._docstore.get_nodes(fetch, raise_error=False) if fetch else []
        return self._finish(result, fetched)

    async def _asearch(
        self,
        query_str: str,
        embedding: Embedding,
        modalities: tuple[Modality, ...],
        similarity_top_k: int | None,
    ) -> list[NodeWithScore]:
        query = self._store_query(query_str, embedding, modalities, similarity_top_k)
        result = await self._vector_store.aquery(query, **self._kwargs)
        fetch = self._determine_nodes_to_fetch(result)
        fetched = await self._docstore.aget_nodes(fetch, raise_error=False) if fetch else []
        return self._finish(result, fetched)

    def _finish(
        self, result: VectorStoreQueryResult, fetched: list[BaseNode]
    ) -> list[NodeWithScore]:
        if fetched or result.nodes is None:
            result.nodes = list(self._insert_fetched_nodes_into_query_result(result, fetched))
        return restore_audio_nodes(self._convert_nodes_to_scored_nodes(result))


_TAG_CHECK_LIMIT = 1000


def _refuse_untagged_nodes(index: VectorStoreIndex) -> None:
    """Modality filters need the ``modality`` tag: refuse an index whose nodes lack it.

    Only this index's nodes are looked at (a shared docstore may hold other indexes' nodes),
    at most the first ``_TAG_CHECK_LIMIT`` of them, so building a retriever stays cheap on a
    large index. Only nodes the docstore holds can be checked (a store that keeps text, like
    Chroma, leaves it empty).
    """
    node_ids = list(itertools.islice(index.index_struct.nodes_dict.values(), _TAG_CHECK_LIMIT))
    nodes = index.docstore.get_nodes(node_ids, raise_error=False) if node_ids else []
    untagged = [
        node.node_id for node in nodes if node is not None and MODALITY_KEY not in node.metadata
    ]
    if untagged:
        raise ValueError(
            f"{len(untagged)} of the {len(nodes)} node(s) of this index checked (e.g. "
            f"{untagged[0]!r}) have no {MODALITY_KEY!r} metadata, so modality filters would "
            "never find them: build the index with ClipClapIndex, or run ClipClapEmbedding "
            "over the nodes as a transformation (it tags them), or tag them with "
            "tag_node_in_place()"
        )


def _bundle_plan(bundle: QueryBundle, forced: Modality | None) -> _Plan:
    if bundle.embedding is not None:
        return _Plan("vector", bundle.embedding, bundle.query_str)
    if forced in (None, Modality.IMAGE) and bundle.image_path:
        return _Plan(Modality.IMAGE, Image(bundle.image_path))
    if forced in (None, Modality.TEXT) and bundle.embedding_strs:
        return _Plan("agg", bundle.embedding_strs, bundle.query_str)
    want = forced.value if forced is not None else "text or an image_path"
    raise ValueError(f"the QueryBundle has no {want} to embed (and no embedding)")
