"""``ClipClapEmbedding``: a LlamaIndex ``MultiModalEmbedding`` for text, images and audio."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal

from llama_index.core.base.embeddings.base import Embedding
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.callbacks.schema import CBEventType, EventPayload
from llama_index.core.embeddings.multi_modal_base import MultiModalEmbedding
from llama_index.core.schema import BaseNode, ImageType
from llama_index.core.utils import get_tqdm_iterable

from ..embedder import ClipClapEmbedder
from ..hub import default_model
from ..types import Modality

AudioType = Any
"""Anything ``ClipClapEmbedder.embed_audio`` takes: a path or URL string, ``pathlib.Path``,
bytes, ``BytesIO``, a ``(samples, sample_rate)`` tuple, a 1-D 48 kHz array or ``Audio(...)``."""


class ClipClapEmbedding(MultiModalEmbedding):
    """CLIPCLAP for LlamaIndex: text, images and audio in one 512-d, L2-normalized space.

    Runs locally with onnxruntime; no API key. Use it as ``embed_model`` and
    ``image_embed_model`` of ``MultiModalVectorStoreIndex``, or with ``ClipClapIndex`` to
    index and retrieve audio as well. Images may be anything the core accepts (paths, URLs,
    ``BytesIO``, bytes, PIL images, arrays); audio likewise (see ``AudioType``).

    Example:
        embed_model = ClipClapEmbedding("antflydb/clipclap")
        embed_model.get_text_embedding("a dog barking")
        embed_model.get_audio_embedding("bark.wav")
    """

    model_name: str = Field(
        default_factory=default_model,
        description="Local CLIPCLAP model folder or Hugging Face Hub repo id "
        "(default: $CLIPCLAP_MODEL, else antflydb/clipclap).",
    )
    revision: str | None = Field(default=None, description="Hub branch, tag or commit to download.")
    cache_dir: str | None = Field(
        default=None, description="Where Hub downloads go (default: the Hugging Face cache)."
    )
    local_files_only: bool | None = Field(
        default=None, description="Never contact the Hub; use the local cache only."
    )
    providers: list[str] | None = Field(
        default=None,
        description="onnxruntime execution providers in order of preference "
        "(default: onnxruntime's choice, normally CPU).",
    )
    threads: int | None = Field(
        default=None, ge=1, description="Intra-op threads per onnxruntime session."
    )
    long_audio: Literal["mean", "first", "center"] = Field(
        default="mean",
        description="Clips over 10 s: the mean of consecutive 10 s windows, or only the "
        "first or the center 10 s.",
    )
    allow_remote: bool = Field(
        default=True, description="Fetch http(s) URLs given as images or audio."
    )
    allow_private_urls: bool = Field(
        default=True,
        description="Fetch URLs whose host is a loopback, private or link-local address "
        "(False for untrusted input).",
    )
    allow_local_files: bool = Field(
        default=True,
        description="Read image and audio paths and file: URLs (False for untrusted input: "
        "query strings are then never looked up on disk).",
    )
    embed_batch_size: int = Field(
        default=32,
        gt=0,
        le=2048,
        description="Items per LlamaIndex embedding batch and per model run.",
    )

    _embedder: ClipClapEmbedder = PrivateAttr()

    def __init__(
        self,
        model_name: str | os.PathLike[str] | None = None,
        *,
        model: str | os.PathLike[str] | None = None,
        **kwargs: Any,
    ) -> None:
        name = model if model is not None else model_name
        if name is not None:
            kwargs["model_name"] = os.fspath(name)
        super().__init__(**kwargs)
        self._embedder = ClipClapEmbedder(
            self.model_name,
            revision=self.revision,
            cache_dir=self.cache_dir,
            local_files_only=self.local_files_only,
            providers=self.providers,
            threads=self.threads,
            batch_size=self.embed_batch_size,
            long_audio=self.long_audio,
            allow_remote=self.allow_remote,
            allow_private_urls=self.allow_private_urls,
            allow_local_files=self.allow_local_files,
        )

    @classmethod
    def class_name(cls) -> str:
        return "ClipClapEmbedding"

    @property
    def embedder(self) -> ClipClapEmbedder:
        """The core ``ClipClapEmbedder`` (numpy in, numpy out)."""
        return self._embedder

    @property
    def dim(self) -> int:
        """Size of every vector (512 for CLIPCLAP)."""
        return self._embedder.dim

    def detect(self, item: Any) -> Modality:
        """The modality the core sees in ``item`` (a plain string is text)."""
        return self._embedder.detect(item)

    # -- text and queries (CLIP has no query instruction: a query is embedded as text) ------
    def _get_query_embedding(self, query: str) -> Embedding:
        return self._get_text_embeddings([query])[0]

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return (await self._aget_text_embeddings([query]))[0]

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._get_text_embeddings([text])[0]

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return (await self._aget_text_embeddings([text]))[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return self._embedder.embed_text(list(texts)).tolist()

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return await asyncio.to_thread(self._get_text_embeddings, texts)

    # -- images -----------------------------------------------------------------------------
    def _get_image_embedding(self, img_file_path: ImageType) -> Embedding:
        return self._get_image_embeddings([img_file_path])[0]

    async def _aget_image_embedding(self, img_file_path: ImageType) -> Embedding:
        return (await self._aget_image_embeddings([img_file_path]))[0]

    def _get_image_embeddings(self, img_file_paths: list[Any]) -> list[Embedding]:
        return self._embedder.embed_images(list(img_file_paths)).tolist()

    async def _aget_image_embeddings(self, img_file_paths: list[Any]) -> list[Embedding]:
        return await asyncio.to_thread(self._get_image_embeddings, img_file_paths)

    # -- audio (not part of LlamaIndex's interface; same shape as the image methods) -------
    def _get_audio_embedding(self, audio: AudioType) -> Embedding:
        return self._get_audio_embeddings([audio])[0]

    async def _aget_audio_embedding(self, audio: AudioType) -> Embedding:
        return (await self._aget_audio_embeddings([audio]))[0]

    def _get_audio_embeddings(self, audios: list[AudioType]) -> list[Embedding]:
        return self._embedder.embed_audio(list(audios)).tolist()

    async def _aget_audio_embeddings(self, audios: list[AudioType]) -> list[Embedding]:
        return await asyncio.to_thread(self._get_audio_embeddings, audios)

    def get_audio_embedding(self, audio: AudioType) -> Embedding:
        """Embed one sound."""
        with self.callback_manager.event(
            CBEventType.EMBEDDING, payload={EventPayload.SERIALIZED: self.to_payload()}
        ) as event:
            vector = self._get_audio_embedding(audio)
            event.on_end(payload={EventPayload.CHUNKS: [audio], EventPayload.EMBEDDINGS: [vector]})
        return vector

    async def aget_audio_embedding(self, audio: AudioType) -> Embedding:
        """Embed one sound without blocking the event loop."""
        with self.callback_manager.event(
            CBEventType.EMBEDDING, payload={EventPayload.SERIALIZED: self.to_payload()}
        ) as event:
            vector = await self._aget_audio_embedding(audio)
            event.on_end(payload={EventPayload.CHUNKS: [audio], EventPayload.EMBEDDINGS: [vector]})
        return vector

    def get_audio_embedding_batch(
        self, audios: Sequence[AudioType], show_progress: bool = False
    ) -> list[Embedding]:
        """Embed many sounds, ``embed_batch_size`` per call, in input order."""
        out: list[Embedding] = []
        batches = self._batches(audios)
        for batch in get_tqdm_iterable(batches, show_progress, "Generating audio embeddings"):
            out.extend(self._embed_batch_with_event(batch, self._get_audio_embeddings))
        return out

    async def aget_audio_embedding_batch(
        self, audios: Sequence[AudioType], show_progress: bool = False
    ) -> list[Embedding]:
        """Embed many sounds in worker threads, ``embed_batch_size`` per call, in input order."""
        batches = self._batches(audios)
        jobs = [self._aembed_batch_with_event(b, self._aget_audio_embeddings) for b in batches]
        if show_progress:
            from tqdm.asyncio import tqdm_asyncio

            nested = await tqdm_asyncio.gather(*jobs, desc="Generating audio embeddings")
        else:
            nested = await asyncio.gather(*jobs)
        return [vector for batch in nested for vector in batch]

    # -- nodes as a transformation (IngestionPipeline): embed each node by its own content --
    def __call__(self, nodes: Sequence[BaseNode], **kwargs: Any) -> Sequence[BaseNode]:
        """Set ``node.embedding`` from each node's text, image or audio (and tag its modality)."""
        from .nodes import embed_nodes, tag_node_in_place

        vectors = embed_nodes(nodes, self, show_progress=kwargs.get("show_progress", False))
        for node, vector in zip(nodes, vectors, strict=True):
            tag_node_in_place(node)
            node.embedding = vector
        return nodes

    async def acall(self, nodes: Sequence[BaseNode], **kwargs: Any) -> Sequence[BaseNode]:
        from .nodes import aembed_nodes, tag_node_in_place

        vectors = await aembed_nodes(nodes, self, show_progress=kwargs.get("show_progress", False))
        for node, vector in zip(nodes, vectors, strict=True):
            tag_node_in_place(node)
            node.embedding = vector
        return nodes

    # -- helpers ----------------------------------------------------------------------------
    def _batches(self, items: Sequence[Any]) -> list[list[Any]]:
        if isinstance(items, str | bytes):
            raise TypeError("expected a list of items (wrap a single item in a list)")
        items = list(items)
        size = self.embed_batch_size
        return [items[i : i + size] for i in range(0, len(items), size)]

    def _embed_batch_with_event(
        self, batch: list[Any], embed: Callable[[list[Any]], list[Embedding]]
    ) -> list[Embedding]:
        with self.callback_manager.event(
            CBEventType.EMBEDDING, payload={EventPayload.SERIALIZED: self.to_payload()}
        ) as event:
            vectors = embed(batch)
            event.on_end(payload={EventPayload.CHUNKS: batch, EventPayload.EMBEDDINGS: vectors})
        return vectors

    async def _aembed_batch_with_event(
        self, batch: list[Any], embed: Callable[[list[Any]], Awaitable[list[Embedding]]]
    ) -> list[Embedding]:
        with self.callback_manager.event(
            CBEventType.EMBEDDING, payload={EventPayload.SERIALIZED: self.to_payload()}
        ) as event:
            vectors = await embed(batch)
            event.on_end(payload={EventPayload.CHUNKS: batch, EventPayload.EMBEDDINGS: vectors})
        return vectors
