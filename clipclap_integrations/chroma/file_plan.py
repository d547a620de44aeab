"""The plan of one file: which records it makes and the prepared model input of each.

The one answer, shared by the folder indexer (and whoever else makes a file's records, such
as a Ray job), to "what records does this file become": an image one record; a sound one
whole-file record (the normalized mean of its windows, the ``"mean"`` long-audio policy) plus,
when longer than one window, one per window; a text file one record per sentence-aware chunk
that fits CLIP's 77-token window. Each planned part carries a ``Part`` (a prepared row, or the
mean of other parts) for a ``PartRunner``; ``plan_records`` makes the records (without
vectors), so vectors computed anywhere give the same records.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple, cast

from ..embedder import ClipClapEmbedder
from ..errors import ClipClapInputError
from ..inputs import Item, Media, describe
from ..inputs.files import read_text_file
from ..media.audio import duration_windows
from ..media.chunking import chunk_text
from ..modalities import AudioPipeline, ImagePipeline
from ..modalities.parts import Part
from ..types import Modality
from .records import Record, Span, file_records

MAX_TEXT_BYTES = 10 * 1024 * 1024


class PlannedPart(NamedTuple):
    """One record's worth of a file: its name (the id's last part), which part of the file
    it stands for, its document (text chunks), and what to embed."""

    name: str
    span: Span
    document: str | None
    part: Part


def plan_file(
    embedder: ClipClapEmbedder,
    path: Path,
    modality: Modality,
    mime: str | None,
    window_s: float,
) -> list[PlannedPart] | str:
    """The planned parts of one file, or why it cannot be indexed (decoding and
    preprocessing are done here: call it ahead, in worker threads). A bad ``window_s``
    raises ``ValueError``."""
    item = Item(modality, Media(path=path, mime=mime), describe(path))
    try:
        if modality is Modality.IMAGE:
            image = cast(ImagePipeline, embedder.pipelines[Modality.IMAGE])
            return [PlannedPart("image", Span("file"), None, Part(modality, image.load(item, 0)))]
        if modality is Modality.AUDIO:
            return _sound(cast(AudioPipeline, embedder.pipelines[Modality.AUDIO]), item, window_s)
    except ClipClapInputError as exc:
        return exc.reason
    return _text(embedder, path)


def _sound(audio: AudioPipeline, item: Item, window_s: float) -> list[PlannedPart]:
    """The whole sound, and its windows when there are several (all full: the last ends at
    the end of the sound). Each part records ``window_s``: another window, another index."""
    audio.check_window(window_s)
    wave = audio.load(item, 0)
    rate = audio.folder.audio.sample_rate
    bounds = duration_windows(wave.shape[0], rate, window_s, None)
    pre = audio.preprocessor
    window = float(window_s)
    rows = [pre([wave[a:b]])[0] for a, b in bounds]  # one at a time, as embed_audio_segments
    end = bounds[-1][1] / rate
    whole = Span("file", start_s=0.0, end_s=float(end), window_s=window)
    if len(bounds) == 1:
        return [PlannedPart("audio", whole, None, Part(Modality.AUDIO, rows[0]))]
    mean = Part(Modality.AUDIO, None, mean_of=tuple(range(1, len(bounds) + 1)))
    return [PlannedPart("audio", whole, None, mean)] + [
        PlannedPart(
            f"window-{k}",
            Span("window", float(a / rate), float(b / rate), window),
            None,
            Part(Modality.AUDIO, rows[k]),
        )
        for k, (a, b) in enumerate(bounds)
    ]


def _text(embedder: ClipClapEmbedder, path: Path) -> list[PlannedPart] | str:
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
    return [
        PlannedPart(
            f"chunk-{k}",
            Span("chunk", chunk=k, char_start=c.start, char_end=c.end),
            c.text,
            Part(Modality.TEXT, c.text),
        )
        for k, c in enumerate(chunks)
    ]


def plan_records(
    path: str,
    content_hash: str,
    modality: Modality,
    mime: str | None,
    planned: list[PlannedPart],
) -> list[Record]:
    """The records of a planned file (ids and metadata; ``embedding`` None, to be set)."""
    return file_records(path, content_hash, modality, mime, planned)
