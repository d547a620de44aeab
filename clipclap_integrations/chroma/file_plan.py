"""The plan of one file: which records it makes and the prepared model input of each.

The one answer, shared by the folder indexer (and whoever else makes a file's records, such
as a Ray job), to "what records does this file become": an image one record; a sound one
whole-file record (the normalized mean of its windows, the ``"mean"`` long-audio policy) plus,
when longer than one window, one per window; a text file one record per sentence-aware chunk
that fits CLIP's 77-token window; a video its moments (a sampled frame every
``frame_every_s``, a soundtrack window every ``window_s``) plus one whole-video record,
planned as it is decoded (a ``VideoPlan``: never materialized). Each planned part carries a
``Part`` (a prepared row, or the mean of other parts) for a ``PartRunner``;
``plan_records`` makes the records (without vectors), so vectors computed anywhere give the
same records.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple, cast

from ..embedder import ClipClapEmbedder
from ..errors import ClipClapInputError
from ..inputs import Item, Media, describe
from ..inputs.files import read_text_file
from ..media.audio import duration_windows
from ..media.chunking import chunk_text
from ..modalities import AudioPipeline, ImagePipeline, VideoPipeline
from ..modalities.parts import Part
from ..runtime.ahead import ahead
from ..types import Modality
from .records import Record, Span, file_records, moment_span, whole_video_span

MAX_TEXT_BYTES = 10 * 1024 * 1024


class PlannedPart(NamedTuple):
    """One record's worth of a file: its name (the id's last part), which part of the file
    it stands for, its document (text chunks), and what to embed."""

    name: str
    span: Span
    document: str | None
    part: Part


class VideoPlan:
    """The plan of a video, made as it is decoded: ``parts()`` (iterate it once, as a
    ``PartRunner`` does) decodes and prepares the frames and soundtrack windows ahead in a
    thread of its own and yields their parts, appending each ``PlannedPart`` to
    ``planned`` as it goes (the derived frame and soundtrack means too, unnamed: they are not
    records). Once the parts are embedded, ``planned`` lines up with the vectors."""

    def __init__(
        self,
        pipeline: VideoPipeline,
        item: Item,
        window_s: float,
        frame_every_s: float | None = None,
    ) -> None:
        pipeline.check_window(window_s)
        self.pipeline = pipeline
        self.item = item
        self.window_s = float(window_s)
        every = pipeline.options.frame_every_s if frame_every_s is None else frame_every_s
        self.frame_every_s = float(every)
        self.planned: list[PlannedPart] = []

    def parts(self) -> Iterator[Part]:
        made = self.pipeline.parts(self.item, 0, every_s=self.frame_every_s, window_s=self.window_s)
        counts = {"frames": 0, "audio": 0}
        every, window = self.frame_every_s, self.window_s
        for placed in ahead(made, 2 * self.pipeline.options.batch_size):
            track = placed.track
            if track in counts:
                name = f"{track}-{counts[track]}"
                counts[track] += 1
                span = moment_span(track, placed.start_s, placed.end_s, window, every)
            elif track == "whole":
                name, span = "video", whole_video_span(placed.end_s, window, every)
            else:  # a track's mean: what the whole vector is made of, not a record
                name, span = "", Span("file")
            self.planned.append(PlannedPart(name, span, None, placed.part))
            yield placed.part


def plan_file(
    embedder: ClipClapEmbedder,
    path: Path,
    modality: Modality,
    mime: str | None,
    window_s: float,
    frame_every_s: float | None = None,
    *,
    prepare: bool = True,
) -> list[PlannedPart] | VideoPlan | str:
    """The planned parts of one file, or why it cannot be indexed (decoding and
    preprocessing are done here: call it ahead, in worker threads; a video's are done as its
    ``VideoPlan`` is read, a frame every ``frame_every_s``, default the embedder's option).
    ``prepare=False``: the parts only, without their model rows (a picture is not decoded,
    a sound is decoded for its length but no window's features are made), for a caller that
    prepares the rows elsewhere. A bad ``window_s`` raises ``ValueError``."""
    item = Item(modality, Media(path=path, mime=mime), describe(path))
    if modality is Modality.VIDEO:
        pipeline = cast(VideoPipeline, embedder.pipelines[modality])
        return VideoPlan(pipeline, item, window_s, frame_every_s)
    try:
        if modality is Modality.IMAGE:
            image = cast(ImagePipeline, embedder.pipelines[Modality.IMAGE])
            row = image.load(item, 0) if prepare else None
            return [PlannedPart("image", Span("file"), None, Part(modality, row))]
        if modality is Modality.AUDIO:
            audio = cast(AudioPipeline, embedder.pipelines[Modality.AUDIO])
            return _sound(audio, item, window_s, prepare)
    except ClipClapInputError as exc:
        return exc.reason
    return _text(embedder, path)


def _sound(
    audio: AudioPipeline, item: Item, window_s: float, prepare: bool = True
) -> list[PlannedPart]:
    """The whole sound, and its windows when there are several (all full: the last ends at
    the end of the sound). Each part records ``window_s``: another window, another index."""
    audio.check_window(window_s)
    wave = audio.load(item, 0)
    rate = audio.folder.audio.sample_rate
    bounds = duration_windows(wave.shape[0], rate, window_s, None)
    pre = audio.preprocessor
    window = float(window_s)
    # one at a time, as embed_audio_segments
    rows = [pre([wave[a:b]])[0] if prepare else None for a, b in bounds]
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
    """The records of a planned file (ids and metadata; ``embedding`` None, to be set), one
    per named part (a video's track means are not records)."""
    return file_records(path, content_hash, modality, mime, [p for p in planned if p.name])
