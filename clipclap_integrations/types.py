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
class AudioSegments:
    """Vectors of the windows of one recording, with each window's start and end in seconds."""

    vectors: NDArray[np.float32]  # (K, dim), L2-normalized rows
    starts: NDArray[np.float64]  # (K,) seconds
    ends: NDArray[np.float64]  # (K,) seconds

    def __len__(self) -> int:
        return len(self.starts)
