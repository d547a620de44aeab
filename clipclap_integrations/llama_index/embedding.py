"""``ClipClapEmbedding``: a LlamaIndex ``MultiModalEmbedding`` for text, images and audio."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from typing import Any

from llama_index.core.base.embeddings.base import Embedding
from llama_index.core.bridge.pydantic import (
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
)
from llama_index.core.embeddings.multi_modal_base import MultiModalEmbedding
from llama_index.core.schema import BaseNode, ImageType

from ..embedder import ClipClapEmbedder
from ..options import option_default
from ..runtime.hub import default_model
from ..types import Modality
from .batching import aembed_in_batches, embed_in_batches
from .fields import check_option, option_fields
from .loading import repaired_media_nodes
from .node_embedding import aembed_nodes, embed_nodes
from .nodes import node_modality_of, tag_node_in_place

OPTION_FIELDS = option_fields()

AudioType = Any
"""Anything ``ClipClapEmbedder.embed_audio`` takes: a path or URL string, ``pathlib.Path``,
bytes, ``BytesIO``, a ``(samples, sample_rate)`` tuple, a 1-D 48 kHz array or ``Audio(...)``."""


class ClipClapEmbedding(MultiModalEmbedding):
    """CLIPCLAP for LlamaIndex: text, images and audio in one 512-d, L2-normalized space.

    Runs locally with onnxruntime; no API key. Use it with ``ClipClapIndex`` to index and
    retrieve text, images and audio in one store; or as BOTH ``embed_model=`` and
    ``image_embed_model=`` of ``MultiModalVectorStoreIndex`` (text and images only; without
    ``image_embed_model=`` that index loads LlamaIndex's own CLIP package). Images may be
    anything the core accepts (paths, URLs, ``BytesIO``, bytes, PIL images, arrays); audio
    likewise (see ``AudioType``).

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
    # Every option of the core, generated from EmbedderOptions (type, default, description).
    __annotations__.update(OPTION_FIELDS[0])
    vars().update(OPTION_FIELDS[1])

    embed_batch_size: int = Field(
        default=option_default("batch_size"),
        gt=0,
        le=2048,
        description="Items per LlamaIndex embedding batch and per model run.",
    )

    # Fields may be changed after construction (validated): the core follows them. An
    # unknown keyword (a typo, an option of another class) is an error, not ignored.
    model_config = ConfigDict(validate_assignment=True, extra="forbid")

    _embedder: ClipClapEmbedder = PrivateAttr()
    _embedder_options: dict[str, Any] = PrivateAttr()

    def __init__(
        self,
        model_name: str | os.PathLike[str] | None = None,
        *,
        model: str | os.PathLike[str] | None = None,
        **kwargs: Any,
    ) -> None:
        if model is not None and model_name is not None and model != model_name:
            raise ValueError(
                f"model={os.fspath(model)!r} and model_name={os.fspath(model_name)!r} "
                "name two models: give one (model is model_name's other name)"
            )
        name = model if model is not None else model_name
        if name is not None:
            kwargs["model_name"] = os.fspath(name)
        super().__init__(**kwargs)
        self._embedder_options = self._core_options()
        self._embedder = ClipClapEmbedder(**self._embedder_options)  # a bad model fails here

    @field_validator(*OPTION_FIELDS[0])
    @classmethod
    def _valid_option(cls, value: Any, info: ValidationInfo) -> Any:
        return check_option(str(info.field_name), value)

    def _core_options(self) -> dict[str, Any]:
        options = {name: getattr(self, name) for name in OPTION_FIELDS[0]}
        return {"model": self.model_name, "batch_size": self.embed_batch_size, **options}

    @classmethod
    def class_name(cls) -> str:
        return "ClipClapEmbedding"

    @property
    def model(self) -> str:
        """The model folder or Hub repo id: ``model_name`` under the name the core and
        ``ClipClapEmbedding(model=...)`` use."""
        return self.model_name

    @model.setter
    def model(self, value: str | os.PathLike[str]) -> None:
        self.model_name = os.fspath(value)

    @property
    def embedder(self) -> ClipClapEmbedder:
        """The core ``ClipClapEmbedder`` (numpy in, numpy out), rebuilt if a field changed."""
        options = self._core_options()
        if options != self._embedder_options:  # sessions are shared: rebuilding is cheap
            self._embedder = ClipClapEmbedder(**options)
            self._embedder_options = options
        return self._embedder

    @property
    def dim(self) -> int:
        """Size of every vector (512 for CLIPCLAP)."""
        return self.embedder.dim

    def detect(self, item: Any) -> Modality:
        """The modality the core sees in ``item`` (a plain string is text)."""
        return self.embedder.detect(item)

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
        return self.embedder.embed_text(list(texts)).tolist()

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return await asyncio.to_thread(self._get_text_embeddings, texts)

    # -- images -----------------------------------------------------------------------------
    def _get_image_embedding(self, img_file_path: ImageType) -> Embedding:
        return self._get_image_embeddings([img_file_path])[0]

    async def _aget_image_embedding(self, img_file_path: ImageType) -> Embedding:
        return (await self._aget_image_embeddings([img_file_path]))[0]

    def _get_image_embeddings(self, img_file_paths: list[Any]) -> list[Embedding]:
        return self.embedder.embed_images(list(img_file_paths)).tolist()

    async def _aget_image_embeddings(self, img_file_paths: list[Any]) -> list[Embedding]:
        return await asyncio.to_thread(self._get_image_embeddings, img_file_paths)

    # -- audio (not part of LlamaIndex's interface; the same shape as the image methods) ------
    def _get_audio_embeddings(self, audios: list[AudioType]) -> list[Embedding]:
        return self.embedder.embed_audio(list(audios)).tolist()

    async def _aget_audio_embeddings(self, audios: list[AudioType]) -> list[Embedding]:
        return await asyncio.to_thread(self._get_audio_embeddings, audios)

    def get_audio_embedding(self, audio: AudioType) -> Embedding:
        """Embed one sound."""
        return self.get_embedding_batch(Modality.AUDIO, [audio])[0]

    async def aget_audio_embedding(self, audio: AudioType) -> Embedding:
        """Embed one sound without blocking the event loop."""
        return (await self.aget_embedding_batch(Modality.AUDIO, [audio]))[0]

    def get_audio_embedding_batch(
        self, audios: Sequence[AudioType], show_progress: bool = False
    ) -> list[Embedding]:
        """Embed many sounds, ``embed_batch_size`` per call, in input order."""
        return self.get_embedding_batch(Modality.AUDIO, audios, show_progress)

    async def aget_audio_embedding_batch(
        self, audios: Sequence[AudioType], show_progress: bool = False
    ) -> list[Embedding]:
        """Embed many sounds in worker threads, ``embed_batch_size`` per call, in input order."""
        return await self.aget_embedding_batch(Modality.AUDIO, audios, show_progress)

    # -- LlamaIndex's image methods, with the same events and error positions as audio ------
    def get_image_embedding(self, img_file_path: ImageType) -> Embedding:
        """Embed one image."""
        return self.get_embedding_batch(Modality.IMAGE, [img_file_path])[0]

    async def aget_image_embedding(self, img_file_path: ImageType) -> Embedding:
        """Embed one image without blocking the event loop."""
        return (await self.aget_embedding_batch(Modality.IMAGE, [img_file_path]))[0]

    def get_image_embedding_batch(
        self, img_file_paths: list[ImageType], show_progress: bool = False
    ) -> list[Embedding]:
        """Embed many images, ``embed_batch_size`` per call, in input order."""
        return self.get_embedding_batch(Modality.IMAGE, img_file_paths, show_progress)

    async def aget_image_embedding_batch(
        self, img_file_paths: list[ImageType], show_progress: bool = False
    ) -> list[Embedding]:
        """Embed many images in worker threads, ``embed_batch_size`` per call, in input order."""
        return await self.aget_embedding_batch(Modality.IMAGE, img_file_paths, show_progress)

    # -- any one modality -------------------------------------------------------------------
    def get_embedding_batch(
        self, modality: Modality | str, items: Sequence[Any], show_progress: bool = False
    ) -> list[Embedding]:
        """Embed many items of one modality, ``embed_batch_size`` per call, in input order.

        One callback event per batch (media described in its chunks); a bad item raises
        ``ClipClapInputError`` with its position in ``items``. The image and audio methods and
        ``embed_nodes`` run through here; ``get_text_embedding_batch`` stays LlamaIndex's own
        (with its ``embeddings_cache`` and ``rate_limiter``, and errors placed in their batch).
        """
        modality = node_modality_of(modality)  # a video is not one node: refused
        embed = {
            Modality.TEXT: self._get_text_embeddings,
            Modality.IMAGE: self._get_image_embeddings,
            Modality.AUDIO: self._get_audio_embeddings,
        }[modality]
        return embed_in_batches(
            self, items, embed, show_progress=show_progress, what=modality.value
        )

    async def aget_embedding_batch(
        self, modality: Modality | str, items: Sequence[Any], show_progress: bool = False
    ) -> list[Embedding]:
        """``get_embedding_batch`` with the batches run together in worker threads."""
        modality = node_modality_of(modality)  # a video is not one node: refused
        embed = {
            Modality.TEXT: self._aget_text_embeddings,
            Modality.IMAGE: self._aget_image_embeddings,
            Modality.AUDIO: self._aget_audio_embeddings,
        }[modality]
        return await aembed_in_batches(
            self, items, embed, show_progress=show_progress, what=modality.value
        )

    # -- nodes as a transformation (IngestionPipeline): embed each node by its own content --
    def __call__(self, nodes: Sequence[BaseNode], **kwargs: Any) -> Sequence[BaseNode]:
        """Set ``node.embedding`` from each node's text, image or audio (and tag its modality).

        An image or sound that a text splitter earlier in the pipeline turned into a text node
        with no text is made a media node again, or left out if its file is gone (warned).
        """
        nodes = repaired_media_nodes(nodes, "ClipClapEmbedding")
        vectors = embed_nodes(nodes, self, show_progress=kwargs.get("show_progress", False))
        return _embedded_in_place(nodes, vectors)

    async def acall(self, nodes: Sequence[BaseNode], **kwargs: Any) -> Sequence[BaseNode]:
        nodes = repaired_media_nodes(nodes, "ClipClapEmbedding")
        vectors = await aembed_nodes(nodes, self, show_progress=kwargs.get("show_progress", False))
        return _embedded_in_place(nodes, vectors)


def _embedded_in_place(nodes: Sequence[BaseNode], vectors: list[Embedding]) -> Sequence[BaseNode]:
    for node, vector in zip(nodes, vectors, strict=True):
        tag_node_in_place(node)
        node.embedding = vector
    return nodes
