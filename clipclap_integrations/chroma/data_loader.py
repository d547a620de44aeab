"""What Chroma's ``uris=`` become: ``ClipClapDataLoader`` and the ``AudioArray`` it returns.

Chroma passes a data loader's output to the embedding function unvalidated, and knows nothing
of sound: a loader that returns images as RGB arrays and sounds as ``AudioArray`` (an array
that says it is audio) makes ``add(uris=...)``, ``query(query_uris=...)`` and
``include=["data"]`` work for both. A video URI loads as a ``Video`` wrapper of its file (or
fetched bytes), checked readable but not decoded: the embedding function gives it its
whole-video vector (``add(uris=...)`` stores that one record; ``add_media`` stores the
moments too).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import numpy as np
from chromadb.api.types import DataLoader, Loadable, URIs

from ..errors import ClipClapInputError
from ..inputs import Item, Media, classify, numeric_array, resolve_remote
from ..media.audio import decode_audio, pcm_to_float
from ..media.image import open_image, to_rgb
from ..media.video import probe_video
from ..options import EmbedderOptions
from ..types import Audio, Modality, Video


class AudioArray(np.ndarray):
    """Decoded sound as ``ClipClapDataLoader`` returns it: float32 samples plus ``sample_rate``.

    Samples are ``(frames,)`` for mono (``(channels, frames)`` if the decoder keeps channels),
    at the file's own rate. The embedding function recognizes it as audio, where a plain
    array of ndim >= 2 would be an image. Integer PCM (int16, int32, int8, uint8) is scaled to
    [-1, 1) as soundfile reads it; other integer types are refused as ambiguous.
    """

    sample_rate: int

    def __new__(cls, samples: Any, sample_rate: int) -> AudioArray:
        obj = pcm_to_float(numeric_array(samples, "audio samples")).view(cls)
        obj.sample_rate = int(sample_rate)
        return obj

    def __array_finalize__(self, obj: Any) -> None:
        self.sample_rate = getattr(obj, "sample_rate", 0)

    def __reduce__(self) -> Any:
        return (AudioArray, (np.asarray(self), self.sample_rate))

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.shape[-1] / self.sample_rate if self.sample_rate else 0.0


def as_core_input(value: Any) -> Any:
    """What to hand the core for one input of the adapter: an ``AudioArray`` as the sound it
    is (a bare array of ndim >= 2 would be an image), anything else as it is."""
    if isinstance(value, AudioArray):
        return Audio(np.asarray(value), sample_rate=value.sample_rate)
    return value


def _short(uri: str) -> str:
    """A URI for an error message: whole, except the payload of a long data: URI."""
    return repr(uri[:60] + "..." if uri[:5].lower() == "data:" and len(uri) > 80 else uri)


class ClipClapDataLoader(DataLoader[Loadable]):
    """Loads ``uris`` of images, sounds and videos for Chroma, concurrently.

    Accepts local paths and ``file://`` URLs (unless ``allow_local_files=False``: give the
    collection's embedding function the same setting), ``data:`` URIs and (with
    ``allow_remote``) http(s) URLs. Images become HxWx3 uint8 RGB arrays (upright,
    transparency on white: what the model sees); sounds become ``AudioArray`` (float32
    samples with ``.sample_rate``); videos ``Video`` wrappers of their file or fetched bytes
    (headers read, nothing decoded: the embedding function embeds them whole). ``None``
    entries (records stored without a URI) stay ``None``. A URI that cannot be loaded raises
    ``ClipClapInputError`` naming it.
    """

    # the options of the core that reading URIs applies
    OPTIONS = (
        "allow_remote",
        "allow_private_urls",
        "allow_local_files",
        "max_remote_bytes",
        "remote_timeout",
        "max_image_pixels",
        "max_audio_seconds",
    )

    def __init__(self, *, max_workers: int | None = None, **options: Any) -> None:
        """``options``: those in ``OPTIONS``, as ``EmbedderOptions`` declares them."""
        others = sorted(set(options) - set(self.OPTIONS))
        if others:
            raise TypeError(
                f"ClipClapDataLoader got unexpected keyword argument(s) {', '.join(others)} "
                f"(it takes max_workers and {', '.join(self.OPTIONS)})"
            )
        opts = EmbedderOptions(**options)
        self.options = opts.input_options()
        self.max_workers = max_workers or min(8, (os.cpu_count() or 1) + 2)
        self.max_image_pixels = opts.max_image_pixels
        self.max_audio_seconds = opts.max_audio_seconds

    def __call__(self, uris: URIs) -> list[Any]:  # type: ignore[override]
        if isinstance(uris, str) or not isinstance(uris, Sequence):
            raise TypeError(f"uris must be a list of strings, got {type(uris).__name__}")
        positions = [i for i, u in enumerate(uris) if u is not None]
        items = [self._locate(i, uris[i]) for i in positions]
        resolve_remote(items, positions, self.options)  # errors name index and URI
        out: list[Any] = [None] * len(uris)
        if not items:
            return out
        workers = min(self.max_workers, len(items))
        with ThreadPoolExecutor(workers, thread_name_prefix="clipclap-load") as pool:
            loaded = list(pool.map(self._load_or_error, positions, items))
        for i, got in zip(positions, loaded, strict=True):
            if isinstance(got, ClipClapInputError):
                raise got
            out[i] = got
        return out

    def _locate(self, index: int, uri: Any) -> Item:
        if not isinstance(uri, str):
            raise ClipClapInputError(
                f"a URI must be a string, got {type(uri).__name__}", index=index, item=repr(uri)
            )
        try:
            item = classify(uri, self.options)
        except ClipClapInputError as exc:
            raise ClipClapInputError(exc.reason, index=index, item=_short(uri)) from None
        if item.modality is Modality.TEXT:
            if not uri.strip():  # Path("") is the current folder, which exists
                reason = "an empty URI (expected a path, file://, data: or http(s) URI)"
            elif uri[:5].lower() == "data:":
                reason = "the data: URI holds text, not an image or a sound"
            elif not self.options.allow_local_files:  # never look at the disk
                reason = "reading local files is disabled (allow_local_files=False)"
            elif Path(uri).expanduser().is_dir():
                reason = "a folder, not an image or sound file"
            elif Path(uri).expanduser().exists():
                reason = "the file is neither an image nor a sound that can be recognized"
            else:
                reason = "no such file (expected a path, file://, data: or http(s) URI)"
            raise ClipClapInputError(reason, index=index, item=_short(uri))
        item.description = _short(uri)
        return item

    def _load_or_error(self, index: int, item: Item) -> Any:
        try:
            payload = cast(Media, item.payload)  # local or fetched: always encoded media here
            if item.modality is Modality.IMAGE:
                image = open_image(payload.source, max_pixels=self.max_image_pixels)
                return np.asarray(to_rgb(image))
            if item.modality is Modality.VIDEO:
                probe_video(payload.source)  # readable (and PyAV there), or an error naming it
                return Video(payload.source)
            samples, rate = decode_audio(payload.source, max_seconds=self.max_audio_seconds)
            return AudioArray(samples[0] if samples.shape[0] == 1 else samples, rate)
        except ClipClapInputError as exc:
            return ClipClapInputError(exc.reason, index=index, item=item.description)

    def __repr__(self) -> str:
        o = self.options
        return (
            f"ClipClapDataLoader(allow_remote={o.allow_remote}, "
            f"allow_private_urls={o.allow_private_urls}, "
            f"allow_local_files={o.allow_local_files})"
        )
