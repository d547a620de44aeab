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
from ..runtime.digests import content_sha256
from ..runtime.model import CLAP_WINDOW_S
from ..types import Modality
from .embedding import embed_dataset
from .model import ModelRef
from .reading import list_files, read_media
from .writing import write_chroma


def stored_files(collection: Any) -> dict[str, dict[str, Any]]:
    """source path -> {"ids", "parts" (expected), "hashes", "windows", "audio"} of the
    records the collection holds."""
    state: dict[str, dict[str, Any]] = {}
    offset, page = 0, 1000
    while True:
        got = collection.get(include=["metadatas"], limit=page, offset=offset)
        ids, metas = got["ids"], got["metadatas"] or []
        for rid, meta in zip(ids, metas, strict=False):
            record = read_record(rid, meta)
            if record.source is None:
                continue
            entry = state.setdefault(
                record.source,
                {
                    "ids": [],
                    "parts": record.parts,
                    "hashes": set(),
                    "windows": set(),
                    "audio": False,
                },
            )
            entry["ids"].append(rid)
            entry["hashes"].add(record.file_hash)
            if record.modality == Modality.AUDIO.value:
                entry["audio"] = True
                entry["windows"].add(record.window_s)
        if len(ids) < page:
            return state
        offset += page


def is_current(entry: dict[str, Any], content_hash: str, window_s: float) -> bool:
    """Whether a file's stored records are whole, of this content and (sounds) this window."""
    if entry["hashes"] != {content_hash} or entry["parts"] != len(entry["ids"]):
        return False
    if not entry["audio"]:
        return True
    known = {w for w in entry["windows"] if w is not None} or {CLAP_WINDOW_S}
    return all(math.isclose(w, window_s, rel_tol=1e-6, abs_tol=1e-6) for w in known)


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
    existing = stored_files(collection)
    files = list_files(paths)
    todo: list[str] = []
    hashes: dict[str, str] = {}  # of files with records
    for source in files:
        old = existing.get(source)
        if old is not None:
            try:
                hashes[source] = content_sha256(Path(source))
                if is_current(old, hashes[source], window_s):
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
                    delete_stale(collection, source, hashes.get(source), window_s)
            elif source in failed:
                reason = failed[source]
                if old:
                    collection.delete(ids=old["ids"])
                    reason += " (the records of its earlier version were removed)"
                report.failed.append((source, reason))
            else:
                report.ignored += 1  # neither media nor text
    if prune:
        seen = set(files)
        roots = [str(Path(p).expanduser().resolve()) for p in paths]
        for source, entry in existing.items():
            under = any(source == r or source.startswith(r.rstrip(os.sep) + os.sep) for r in roots)
            if under and source not in seen:
                collection.delete(ids=entry["ids"])
                report.removed.append(source)
    return report


def delete_stale(collection: Any, source: str, content_hash: str | None, window_s: float) -> None:
    """Once a replaced file's new records are written: delete its records of another content
    or (sounds) another window."""
    got = collection.get(where={"source": source}, include=["metadatas"])
    stale = []
    for rid, meta in zip(got["ids"], got["metadatas"] or [], strict=False):
        record = read_record(rid, meta)
        other_window = record.modality == Modality.AUDIO.value and not math.isclose(
            record.window_s or CLAP_WINDOW_S, window_s, rel_tol=1e-6, abs_tol=1e-6
        )
        if record.file_hash != content_hash or other_window:
            stale.append(rid)
    if stale:
        collection.delete(ids=stale)
