"""``read_media``: a folder as a Ray dataset of the records ``clipclap index`` would write.

The driver lists the files (the indexer's ``walk``: same order, same paths); Ray tasks then
expand each file into its records as ``chroma.file_plan`` plans them for the indexer: a sound
its whole-sound record plus one per window when longer than one window, a text file one per
chunk, an image one (not decoded here: once, when embedded). Nothing is embedded yet: rows
say what to embed (the path and span; a chunk's text). A video is one row (``kind`` "video")
until embedded: its moments are found as it is decoded, so the actor that embeds it makes its
records then.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..chroma.file_plan import VideoPlan, plan_file, plan_records
from ..chroma.indexer import valid_utf8, walk
from ..embedder import ClipClapEmbedder
from ..inputs.files import file_kind
from ..runtime.digests import content_sha256
from ..runtime.model import CLAP_WINDOW_S
from ..types import Modality
from .model import ModelRef, model_ref
from .rows import error_row, record_row, record_table

VIDEO_KIND = "video"  # the kind of a video's row until it is embedded into its records
READ_CPUS = 0.25  # read tasks take a quarter of a CPU: actors holding whole CPUs never starve them


def list_files(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    onerror: Callable[[Path, OSError], None] | None = None,
) -> list[str]:
    """The files under ``paths`` as the folder indexer walks them (absolute, resolved);
    ``onerror(folder, error)`` hears of a folder that cannot be listed."""
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    return [str(p) for p in walk(list(paths), onerror=onerror)]


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
    if modality is Modality.VIDEO:  # its moments are found as it is decoded, when embedded
        return [video_row(source, content_hash, mime, window_s, embedder)]
    # rows are prepared where they are embedded: a picture is decoded once, there (a bad one
    # fails there), a sound decoded here only for its windows' places
    planned = plan_file(embedder, path, modality, mime, window_s, prepare=False)
    if isinstance(planned, str):
        return [error_row(source, planned, modality)]
    assert not isinstance(planned, VideoPlan)  # a video is one row (above)
    records = plan_records(source, content_hash, modality, mime, planned)
    return [record_row(r, p.name) for r, p in zip(records, planned, strict=True)]


def video_row(
    source: str, content_hash: str, mime: str | None, window_s: float, embedder: ClipClapEmbedder
) -> dict[str, Any]:
    """A video's one row before it is embedded (no id, ``kind`` "video"): ``embed_dataset``
    turns it into its records (its moments and the whole video), found as it is decoded."""
    row = error_row(source, "", Modality.VIDEO)
    row.update(
        error=None,
        part="video",
        kind=VIDEO_KIND,
        mime_type=mime,
        file_hash=content_hash,
        window_s=float(window_s),
        frame_every_s=float(embedder.options.frame_every_s),
        uri=source,
    )
    return row


def load_audio(embedder: ClipClapEmbedder, path: Path | str) -> Any:
    """A sound file as the model's mono waveform (what ``embed_audio_segments`` windows)."""
    item = embedder.classify([path], Modality.AUDIO)[0]
    return embedder.pipelines[Modality.AUDIO].load(item, 0)  # type: ignore[attr-defined]
