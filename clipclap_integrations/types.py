"""Modalities and the wrapper types that let a user state an input's modality explicitly."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np
from numpy.typing import NDArray

# CLAP's sample rate: the model's audio, and a bare waveform given without one
CLAP_SAMPLE_RATE = 48_000


class Modality(str, Enum):
    """What kind of content an input is; every modality maps into the same vector space."""

    TEXT = "text"
    IMAGE = "image"
    AUDIO = "audio"
    VIDEO = "video"  # composed: frames are images, the soundtrack is audio

    def __str__(self) -> str:
        return self.value

    @classmethod
    def parse(cls, value: Modality | str) -> Modality:
        """``Modality`` from an enum member or its name (case-insensitive)."""
        if isinstance(value, Modality):
            return value
        try:
            return cls(str(value).lower())
        except ValueError:
            choices = ", ".join(m.value for m in cls)
            raise ValueError(f"unknown modality {value!r}; expected one of: {choices}") from None


@dataclass(frozen=True)
class Text:
    """A string that is always embedded as text, even if it names an existing file."""

    text: str


@dataclass(frozen=True)
class Image:
    """Anything holding an image: path, URL, data URI, bytes, file object, PIL image, array."""

    source: Any


@dataclass(frozen=True)
class Audio:
    """Anything that holds sound: a path, URL, data URI, bytes, file object or a waveform.

    For a waveform (1-D mono, or 2-D multichannel) give ``sample_rate``; without it a bare
    waveform is taken to be 48 kHz.
    """

    source: Any
    sample_rate: int | None = None


@dataclass(frozen=True)
class Video:
    """Anything holding a video: a path, URL, data URI, bytes or file object (decoded with
    PyAV, the ``video`` extra). Forces a container to be read as a video: its sampled frames
    and its soundtrack, not only its sound."""

    source: Any


@dataclass(frozen=True)
class AudioSegments:
    """Vectors of the windows of one recording, with each window's start and end in seconds."""

    vectors: NDArray[np.float32]  # (K, dim), L2-normalized rows
    starts: NDArray[np.float64]  # (K,) seconds
    ends: NDArray[np.float64]  # (K,) seconds

    def __len__(self) -> int:
        return len(self.starts)


@dataclass(frozen=True)
class VideoMoments:
    """Vectors of the moments of one video, with their times and tracks, and the video's
    whole vector.

    A ``frames`` moment is one sampled frame standing for [start, end); an ``audio`` moment
    is one window of the soundtrack. ``whole`` is the normalized sum of the normalized mean
    of the frame vectors and the normalized mean of the soundtrack window vectors (the frame
    mean alone for a video without sound, or whose sound is digital silence).
    """

    vectors: NDArray[np.float32]  # (N, dim), L2-normalized rows
    starts: NDArray[np.float64]  # (N,) seconds
    ends: NDArray[np.float64]  # (N,) seconds
    tracks: tuple[str, ...]  # (N,) "frames" or "audio"
    whole: NDArray[np.float32]  # (dim,)

    def __len__(self) -> int:
        return len(self.starts)

    def track(self, name: str) -> NDArray[np.bool_]:
        """A mask of the moments of one track ("frames" or "audio")."""
        return np.asarray([t == name for t in self.tracks], dtype=bool)
