"""What one indexed file becomes: the parts (vector, span, text) its records are made of.

An image is one part; a sound a whole-file part (the normalized mean of its windows, the
``"mean"`` long-audio policy) plus, when longer than one window, one part per window; a text
file one part per sentence-aware chunk that fits the text model's 77-token window. A file
that cannot be embedded gives the reason instead, and the others go on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..embedder import ClipClapEmbedder
from ..errors import ClipClapInputError
from ..inputs.files import read_text_file
from ..media.chunking import chunk_text
from ..types import Modality
from .records import FilePart, Span

MAX_TEXT_BYTES = 10 * 1024 * 1024
Outcome = list[FilePart] | str  # a file's parts, or why it cannot be indexed


def file_parts(
    embedder: ClipClapEmbedder, modality: Modality, paths: Sequence[Path], window_s: float
) -> list[Outcome]:
    """The outcome of each file of one modality, in order."""
    if modality is Modality.IMAGE:
        return image_parts(embedder, paths)
    if modality is Modality.AUDIO:
        return [audio_parts(embedder, path, window_s) for path in paths]
    return [text_parts(embedder, path) for path in paths]


def image_parts(embedder: ClipClapEmbedder, paths: Sequence[Path]) -> list[Outcome]:
    """All images in one call; if one is bad, each on its own, so the others are indexed."""

    def parts(vector: np.ndarray) -> Outcome:
        return [FilePart("image", vector, Span("file"))]

    try:
        return [parts(v) for v in embedder.embed_images(list(paths))]
    except ClipClapInputError:
        pass
    return [_or_reason(lambda p=path: parts(embedder.embed_images([p])[0])) for path in paths]


def audio_parts(embedder: ClipClapEmbedder, path: Path, window_s: float) -> Outcome:
    """The whole sound, and its windows when there are several (all full: the last ends at
    the end of the sound). Each part records ``window_s``: another window, another index."""

    def parts() -> Outcome:
        seg = embedder.embed_audio_segments(path, window_s=window_s)
        window = float(window_s)
        whole = seg.vectors.mean(axis=0)
        whole = whole / max(float(np.linalg.norm(whole)), 1e-12)
        end = float(seg.ends[-1])
        out = [
            FilePart(
                "audio",
                whole if len(seg) > 1 else seg.vectors[0],
                Span("file", start_s=0.0, end_s=end, window_s=window),
            )
        ]
        if len(seg) > 1:
            out += [
                FilePart(
                    f"window-{k}",
                    seg.vectors[k],
                    Span("window", float(seg.starts[k]), float(seg.ends[k]), window),
                )
                for k in range(len(seg))
            ]
        return out

    return _or_reason(parts)


def text_parts(embedder: ClipClapEmbedder, path: Path) -> Outcome:
    """One part per chunk, with its character offsets in the file's text."""
    try:
        if path.stat().st_size > MAX_TEXT_BYTES:
            raise ValueError(f"larger than {MAX_TEXT_BYTES // (1024 * 1024)} MB")
        text = read_text_file(path)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return f"not readable text ({exc})"
    preprocessor = embedder.text_preprocessor
    chunks = chunk_text(text, preprocessor.count_tokens, token_offsets=preprocessor.token_offsets)
    if not chunks:
        return "the text file is empty"
    vectors = embedder.embed_text([c.text for c in chunks])
    return [
        FilePart(
            f"chunk-{k}",
            vectors[k],
            Span("chunk", chunk=k, char_start=c.start, char_end=c.end),
            document=c.text,
        )
        for k, c in enumerate(chunks)
    ]


def _or_reason(parts: Callable[[], Outcome]) -> Outcome:
    try:
        return parts()
    except ClipClapInputError as exc:
        return exc.reason
