"""LlamaIndex adapter: CLIPCLAP embeddings and retrieval across text, images and audio.

Install with ``pip install "clipclap-integrations[llama-index]"``.

- ``ClipClapEmbedding``: a ``MultiModalEmbedding`` (text, images) with audio methods; works as
  ``embed_model`` and ``image_embed_model`` of ``MultiModalVectorStoreIndex``.
- ``AudioNode``: a node holding a sound, like ``ImageNode``; ``load_media_nodes`` turns a folder
  of mixed media into nodes; ``MediaFileReader`` gives ``SimpleDirectoryReader`` media documents.
- ``ClipClapIndex`` / ``ClipClapRetriever``: text, image and audio nodes in one vector store,
  searched from a query of any modality (``text_to_audio``, ``audio_to_image``, ...).
- ``MultiModalVectorStoreIndex`` with ``ClipClapEmbedding`` warns (once per index) when
  given sounds, which it does not index.
- ``ClipClapVideoReader``: a video as nodes for its moments (frames as ``ImageNode``,
  soundtrack windows as ``AudioNode``, with ``video_path``, ``track``, ``start_s``, ``end_s``),
  already embedded, retrievable like any image or sound node.
- ``ClipTextSplitter``: text chunks that fit CLIP's 77-token window (``ClipClapIndex``'s
  default for text documents).
"""

from __future__ import annotations

from ..errors import missing_extra

try:
    import llama_index.core  # noqa: F401
except ImportError as exc:
    raise missing_extra("llama-index-core", "llama-index") from exc

from .audio_node import AudioNode
from .embedding import AudioType, ClipClapEmbedding
from .index import ClipClapIndex
from .loading import (
    MediaFileReader,
    load_media_nodes,
    media_file_extractor,
    media_node_from_document,
)
from .multimodal_warning import install as _install_multimodal_warning
from .node_embedding import embed_nodes
from .nodes import (
    MODALITY_KEY,
    media_source,
    node_modality,
    restore_audio_nodes,
    tag_node_in_place,
)
from .retriever import ClipClapRetriever, parse_modalities
from .splitter import ClipTextSplitter, ClipTokenCounter
from .video import ClipClapVideoReader

_install_multimodal_warning()  # MultiModalVectorStoreIndex drops sounds: say so

__all__ = [
    "MODALITY_KEY",
    "AudioNode",
    "AudioType",
    "ClipClapEmbedding",
    "ClipClapIndex",
    "ClipClapRetriever",
    "ClipClapVideoReader",
    "ClipTextSplitter",
    "ClipTokenCounter",
    "MediaFileReader",
    "embed_nodes",
    "load_media_nodes",
    "media_file_extractor",
    "media_node_from_document",
    "media_source",
    "node_modality",
    "parse_modalities",
    "restore_audio_nodes",
    "tag_node_in_place",
]
