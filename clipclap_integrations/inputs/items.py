"""What an input becomes: the typed item and its payloads, the read-time options, and the
small rules every reader shares (a stated modality against a forced one, valid text, how an
input is named in an error message)."""

from __future__ import annotations

import io
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ClipClapInputError
from ..types import Audio, Image, Modality, Text, Video
from .sniff import HEAD_BYTES, sniff_bytes


@dataclass(frozen=True)
class InputOptions:
    """Limits and switches applied while reading inputs (``EmbedderOptions.input_options()``
    makes one from the user's options, where their defaults are written)."""

    allow_remote: bool
    allow_private_urls: bool
    allow_local_files: bool
    strict_paths: bool
    max_remote_bytes: int
    remote_timeout: float
    remote_workers: int = 8  # URLs fetched at once


@dataclass(frozen=True)
class Media:
    """Encoded media: bytes in memory or a local file, with its MIME type when known."""

    data: bytes | None = None
    path: Path | None = None
    mime: str | None = None

    @property
    def source(self) -> bytes | Path:
        return self.data if self.data is not None else self.path  # type: ignore[return-value]


@dataclass(frozen=True)
class Waveform:
    """Decoded sound: samples (1-D, or 2-D with a channel axis) and their sample rate."""

    samples: np.ndarray
    sample_rate: int


@dataclass(frozen=True)
class RemoteURL:
    """An http(s) URL to fetch. ``stated``: its modality came from a wrapper, part or
    ``modality=`` (decode it as that, whatever it holds) rather than from its extension."""

    url: str
    stated: bool = False


@dataclass
class Item:
    """One input after classification: its modality and a loadable payload."""

    modality: Modality | None  # None: a remote URL whose modality its content will tell
    payload: Any  # str | Media | PIL image | np.ndarray | Waveform | RemoteURL
    description: str = ""


def check_modality(stated: Modality, forced: Modality | None, what: str) -> None:
    """Refuse an input that states one modality when the call asked for another."""
    if forced is not None and forced is not stated:
        raise ClipClapInputError(f"{what} is {stated.value}, but {forced.value} was asked for")


def check_text(text: str) -> str:
    """``text`` as a plain ``str`` (even from a subclass such as ``numpy.str_``), refused when
    it is not valid Unicode: unpaired surrogates cannot be encoded, nor tokenized."""
    text = str.__str__(text)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ClipClapInputError(
            "the text is not valid Unicode (it holds unpaired surrogate code points)"
        ) from None
    return text


def text_item(text: str) -> Item:
    return Item(Modality.TEXT, check_text(text))


def is_pil_image(obj: Any) -> bool:
    """A PIL image, of any subclass (plugins such as pillow-heif's, or the caller's own).

    PIL is not imported here: an object cannot be a PIL image unless ``PIL.Image`` is loaded.
    """
    pil_image = sys.modules.get("PIL.Image")
    return pil_image is not None and isinstance(obj, pil_image.Image)


def shorten(text: str, limit: int = 60) -> str:
    """``text`` cut to ``limit`` characters (with "..."), to quote it in a message."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe(item: Any) -> str:
    """A short human description of an input, for error messages (never raises)."""
    try:
        return _describe(item)
    except Exception:
        return f"<{type(item).__name__}>"


def _describe(item: Any) -> str:
    if isinstance(item, str):
        return repr(shorten(str(item)))
    if isinstance(item, bytes | bytearray | memoryview):
        data = bytes(item[:HEAD_BYTES]) if not isinstance(item, memoryview) else b""
        kind = sniff_bytes(data) if data else None
        size = item.nbytes if isinstance(item, memoryview) else len(item)
        return f"<{size:,} bytes{', ' + kind[1] if kind else ''}>"
    if isinstance(item, np.ndarray):
        return f"<array {item.dtype} {tuple(item.shape)}>"
    if isinstance(item, os.PathLike):
        return repr(shorten(os.fsdecode(os.fspath(item)), 80))
    if isinstance(item, Text):
        return f"Text({_describe(item.text)})"
    if isinstance(item, Image):
        return f"Image({_describe(item.source)})"
    if isinstance(item, Video):
        return f"Video({_describe(item.source)})"
    if isinstance(item, Audio):
        rate = f", sample_rate={item.sample_rate!r}" if item.sample_rate is not None else ""
        return f"Audio({_describe(item.source)}{rate})"
    if isinstance(item, dict):
        kind = item.get("type", "dict")
        return f"<{shorten(kind if isinstance(kind, str) else repr(kind), 30)} part>"
    if isinstance(item, tuple):
        if len(item) == 2 and any(isinstance(x, np.ndarray) for x in item):
            arr = item[0] if isinstance(item[0], np.ndarray) else item[1]
            other = item[1] if arr is item[0] else item[0]
            return f"<waveform {arr.dtype} {tuple(arr.shape)}, rate {shorten(repr(other), 20)}>"
        return f"<tuple of {len(item)}>"
    if isinstance(item, list | set | frozenset):
        return f"<{type(item).__name__} of {len(item)}>"
    if is_pil_image(item):
        return f"<PIL {item.mode} {item.size[0]}x{item.size[1]}>"
    if isinstance(item, io.IOBase) or hasattr(item, "read"):
        name = getattr(item, "name", None)
        label = type(item).__name__
        return f"<{label} {shorten(repr(name), 60)}>" if isinstance(name, str) else f"<{label}>"
    return f"<{type(item).__name__}>"
