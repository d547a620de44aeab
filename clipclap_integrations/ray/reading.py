"""``read_media``: a folder as a Ray dataset of the records ``clipclap index`` would write.

The driver lists the files (the indexer's ``walk``: same order, same paths); Ray tasks then
expand each file into its records: an image one, a sound its whole-sound record plus one per
window when longer than one window (decoded once to count them), a text file one per chunk
(read and chunked as the indexer does, with the model's tokenizer). Nothing is embedded yet:
rows say what to embed (the path and span; a chunk's text).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..chroma.indexer import MAX_TEXT_BYTES, valid_utf8, walk
from ..chroma.records import FilePart, Span, file_records
from ..embedder import ClipClapEmbedder
from ..errors import ClipClapInputError
from ..inputs.files import file_kind, read_text_file
from ..media.audio import duration_windows
from ..media.chunking import chunk_text
from ..runtime.digests import content_sha256
from ..runtime.model import CLAP_WINDOW_S
from ..types import Modality
from .model import ModelRef, model_ref
from .rows import error_row, record_row, record_table

READ_CPUS = 0.25  # read tasks take a quarter of a CPU: actors holding whole CPUs never starve them
Planned = list[tuple[str, Span, str | None]] | str  # (part name, span, document), or why not


def list_files(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[str]:
    """The files under ``paths`` as the folder indexer walks them (absolute, resolved)."""
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    return [str(p) for p in walk(list(paths))]


def read_media(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    model: Any = None,
    *,
    window_s: float = CLAP_WINDOW_S,
    override_num_blocks: int | None = None,
    **options: Any,
) -> Any:
    """A ``ray.data.Dataset`` with one row per record the folder indexer makes of ``paths``
    (files or folders, walked recursively), plus one row with ``error`` set for each file it
    cannot index. Columns: ``ray.rows.RECORD_SCHEMA``. Every node must see the files at the
    same paths (a shared folder). ``model``: a folder, a Hub repo id (resolved here, pinned),
    an embedder or a ``ModelRef``; ``options`` are the embedder's."""
    import ray.data

    ref = model_ref(model, **options)
    if not 0 < window_s <= CLAP_WINDOW_S:
        raise ValueError(f"window_s must be in (0, {CLAP_WINDOW_S:g}] seconds, got {window_s!r}")
    files = list_files(paths)
    blocks = override_num_blocks or default_blocks(len(files))
    listing = ray.data.from_items([{"path": f} for f in files], override_num_blocks=blocks)
    return listing.map_batches(
        expand_files,
        fn_kwargs={"ref": ref, "window_s": float(window_s)},
        batch_size=None,  # a block at a time: never merge the listing's blocks
        batch_format="pyarrow",
        num_cpus=READ_CPUS,
    )


def default_blocks(files: int) -> int:
    """Blocks of ~16 files (at least 8 blocks when there are that many files): one block
    keeps one actor busy, and many small blocks spread over the actors and nodes."""
    return max(1, min(files, max(8, files // 16)))


def expand_files(batch: pa.Table, ref: ModelRef, window_s: float) -> pa.Table:
    """The record rows of a block of paths."""
    embedder = ref.embedder()
    rows: list[dict[str, Any]] = []
    for path in batch.column("path").to_pylist():
        rows += file_rows(embedder, path, window_s)
    return record_table(rows)


def file_rows(embedder: ClipClapEmbedder, source: str, window_s: float) -> list[dict[str, Any]]:
    """The rows of one file: its records, one error row, or none (neither media nor text)."""
    path = Path(source)
    try:
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode):
            return [error_row(source, "not a regular file: not read")]
        kind = file_kind(path)
        if kind is None:
            return []  # neither media nor text: ignored, as the indexer does
        content_hash = content_sha256(path)
    except OSError as exc:
        return [error_row(source, f"cannot read ({exc.strerror or exc})")]
    modality, mime = kind
    if not valid_utf8(source):
        return [
            error_row(
                source,
                "the path is not valid UTF-8, which Chroma cannot store: rename the file "
                "(or its folder) to index it",
                modality,
            )
        ]
    planned = plan(embedder, path, modality, window_s)
    if isinstance(planned, str):
        return [error_row(source, planned, modality)]
    parts = [FilePart(name, None, span, doc) for name, span, doc in planned]  # type: ignore[arg-type]
    records = file_records(source, content_hash, modality, mime, parts)
    return [record_row(r, p.name) for r, p in zip(records, parts, strict=True)]


def plan(embedder: ClipClapEmbedder, path: Path, modality: Modality, window_s: float) -> Planned:
    """The parts of a file as the indexer makes them (``indexer.file_parts``), unembedded."""
    if modality is Modality.IMAGE:
        return [("image", Span("file"), None)]  # decoded when embedded (a bad one fails there)
    if modality is Modality.AUDIO:
        return audio_plan(embedder, path, window_s)
    return text_plan(embedder, path)


def audio_plan(embedder: ClipClapEmbedder, path: Path, window_s: float) -> Planned:
    """The whole sound, and its windows when there are several (all full)."""
    try:
        wave = load_audio(embedder, path)
    except ClipClapInputError as exc:
        return exc.reason
    rate = embedder.folder.audio.sample_rate
    bounds = duration_windows(wave.shape[0], rate, window_s, None)
    window = float(window_s)
    end = bounds[-1][1] / rate
    planned: list[tuple[str, Span, str | None]] = [
        ("audio", Span("file", start_s=0.0, end_s=end, window_s=window), None)
    ]
    if len(bounds) > 1:
        planned += [
            (f"window-{k}", Span("window", a / rate, b / rate, window), None)
            for k, (a, b) in enumerate(bounds)
        ]
    return planned


def load_audio(embedder: ClipClapEmbedder, path: Path | str) -> Any:
    """A sound file as the model's mono waveform (what ``embed_audio_segments`` windows)."""
    item = embedder.classify([path], Modality.AUDIO)[0]
    return embedder.pipelines[Modality.AUDIO].load(item, 0)  # type: ignore[attr-defined]


def text_plan(embedder: ClipClapEmbedder, path: Path) -> Planned:
    """One part per chunk, with its character offsets in the file's text."""
    try:
        if path.stat().st_size > MAX_TEXT_BYTES:
            raise ValueError(f"larger than {MAX_TEXT_BYTES // (1024 * 1024)} MB")
        text = read_text_file(path)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return f"not readable text ({exc})"
    pre = embedder.text_preprocessor
    chunks = chunk_text(text, pre.count_tokens, token_offsets=pre.token_offsets)
    if not chunks:
        return "the text file is empty"
    return [
        (f"chunk-{k}", Span("chunk", chunk=k, char_start=c.start, char_end=c.end), c.text)
        for k, c in enumerate(chunks)
    ]
