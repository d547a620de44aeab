"""The modality table: one pipeline per modality, each turning classified items into vectors.

A new input kind is one entry here plus its pipeline module (and its decoding in ``media/``);
the embedder dispatches through this table and nothing else.
"""

from __future__ import annotations

from ..types import Modality
from .audio import AudioPipeline
from .base import ModalityPipeline
from .image import ImagePipeline
from .text import TextPipeline
from .video import VideoPipeline

PIPELINES: dict[Modality, type[ModalityPipeline]] = {
    Modality.TEXT: TextPipeline,
    Modality.IMAGE: ImagePipeline,
    Modality.AUDIO: AudioPipeline,
    Modality.VIDEO: VideoPipeline,  # composed: frames through IMAGE's model, sound AUDIO's
}

__all__ = [
    "PIPELINES",
    "AudioPipeline",
    "ImagePipeline",
    "ModalityPipeline",
    "TextPipeline",
    "VideoPipeline",
]
