"""``index_folder``: ``clipclap index --engine ray``, the folder indexer's run on Ray.

The driver lists the files and reads what the collection holds: a file with records is hashed
here and left alone when they are whole and of its content (as the local indexer decides, so
either engine resumes the other's runs); the others go through ``read_media``,
``embed_dataset`` and ``write_chroma``. A replaced file's old records go once its new ones are
written; a file whose new version fails loses its old ones (they describe content that is
gone); ``prune`` removes the records of files no longer under the paths.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..chroma.indexer import IndexReport
from ..chroma.records import read_record
from ..chroma.stored import stored_files
from ..options import EmbedderOptions
from ..runtime.digests import content_sha256
from ..runtime.model import CLAP_WINDOW_S
from ..types import Modality
from .embedding import embed_dataset
from .model import ModelRef
from .reading import list_files, read_media
from .writing import write_chroma


def index_folder(
    collection: Any,
    paths: Sequence[str | os.PathLike[str]],
    model: ModelRef,
    *,
    window_s: float = CLAP_WINDOW_S,
    actors: int = 1,
    threads: int = 1,
    prune: bool = False,
) -> IndexReport:
    """Index ``paths`` into ``collection`` on the Ray cluster this process is connected to."""
    report = IndexReport()
    every_s = float(dict(model.options).get("frame_every_s", EmbedderOptions().frame_every_s))
    existing = stored_files(collection)
    unlisted: list[str] = []  # folders that could not be read: nothing under them is pruned

    def folder_failed(folder: Path, exc: OSError) -> None:
        unlisted.extend({str(folder.absolute()), str(folder.resolve())})
        report.failed.append(
            (
                str(folder.resolve()),
                f"cannot read the folder ({exc.strerror or exc}): its files were skipped and "
                "their records kept",
            )
        )

    files = list_files(paths, onerror=folder_failed)
    todo: list[str] = []
    hashes: dict[str, str] = {}  # of files with records
    for source in files:
        old = existing.get(source)
        if old is not None:
            try:
                hashes[source] = content_sha256(Path(source))
                if old.is_current(hashes[source], window_s, every_s):
                    report.unchanged.append(source)
                    continue
            except OSError:
                pass  # read again in Ray, which reports why it cannot
        todo.append(source)
    if todo:
        ds = read_media(todo, model, window_s=window_s)
        ds = embed_dataset(ds, model, actors=actors, threads=threads)
        written = write_chroma(ds, collection)
        report.records = written.written
        done = set(written.files)
        failed = dict(written.failed)
        for source in todo:
            old = existing.get(source)
            if source in done:
                (report.replaced if old else report.added).append(source)
                if old and source in hashes:
                    delete_stale(collection, source, hashes.get(source), window_s, every_s)
            elif source in failed:
                reason = failed[source]
                if old and not reason.startswith("cannot read ("):  # unreadable now: kept
                    collection.delete(ids=old.ids)
                    reason += " (the records of its earlier version were removed)"
                if reason.endswith("not a regular file: not read"):
                    report.skipped.append((source, reason))
                else:
                    report.failed.append((source, reason))
            else:
                report.ignored += 1  # neither media nor text
    if prune:
        seen = set(files)
        roots = [str(Path(p).expanduser().resolve()) for p in paths]
        for source, entry in existing.items():
            under = any(_under(source, r) for r in roots)
            kept = any(_under(source, folder) for folder in unlisted)
            if under and not kept and source not in seen:
                collection.delete(ids=entry.ids)
                report.removed.append(source)
    return report


def delete_stale(
    collection: Any, source: str, content_hash: str | None, window_s: float, every_s: float
) -> None:
    """Once a replaced file's new records are written: delete its records of another content,
    (sounds, videos) another window or (videos) another frame interval."""
    got = collection.get(where={"source": source}, include=["metadatas"])
    stale = []
    for rid, meta in zip(got["ids"], got["metadatas"] or [], strict=False):
        record = read_record(rid, meta)
        timed = record.modality in (Modality.AUDIO.value, Modality.VIDEO.value)
        other_window = timed and not _close(record.window_s or CLAP_WINDOW_S, window_s)
        other_every = record.modality == Modality.VIDEO.value and not _close(
            record.frame_every_s or 0.0, every_s
        )
        if record.file_hash != content_hash or other_window or other_every:
            stale.append(rid)
    if stale:
        collection.delete(ids=stale)


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-6)


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)
