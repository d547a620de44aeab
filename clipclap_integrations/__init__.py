"""CLIPCLAP embeddings for text, images and audio in one vector space.

``ClipClapEmbedder`` is the core; the Chroma and LlamaIndex adapters live in
``clipclap_integrations.chroma`` and ``clipclap_integrations.llama_index`` (optional extras,
imported only when asked for).
"""

from __future__ import annotations

from .embedder import ClipClapEmbedder
from .errors import (
    ClipClapError,
    ClipClapInputError,
    DatabaseGoneError,
    HubUnreachableWarning,
    IncompleteWriteError,
    ModelChangedError,
    ModelFolderError,
    ModelNotAvailableError,
    NonFiniteVectorError,
    OnnxFormatError,
)
from .options import EmbedderOptions
from .runtime.hub import DEFAULT_MODEL
from .types import Audio, AudioSegments, Image, Modality, Text, Video, VideoMoments

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_MODEL",
    "Audio",
    "AudioSegments",
    "ClipClapEmbedder",
    "ClipClapError",
    "ClipClapInputError",
    "DatabaseGoneError",
    "EmbedderOptions",
    "HubUnreachableWarning",
    "Image",
    "IncompleteWriteError",
    "Modality",
    "ModelChangedError",
    "ModelFolderError",
    "ModelNotAvailableError",
    "NonFiniteVectorError",
    "OnnxFormatError",
    "Text",
    "Video",
    "VideoMoments",
    "__version__",
]
