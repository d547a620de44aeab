"""What a collection already holds of indexed files, and whether a file's records are current.

The one answer for both writers of indexed files: the folder indexer (``clipclap index``) and
Ray's ``index_folder`` (``--engine ray``), so a collection built by one is understood by the
other's re-runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..runtime.model import CLAP_WINDOW_S
from ..types import Modality
from .records import read_record

PAGE = 1000  # records read per get()


@dataclass
class StoredFile:
    """The records of one indexed file found in a collection."""

    ids: list[str] = field(default_factory=list)
    parts: int | None = None  # how many records the file has (fewer stored: written partly)
    hashes: set[str | None] = field(default_factory=set)  # content hashes seen
    windows: set[float | None] = field(default_factory=set)  # of its sound and video records
    every: set[float | None] = field(default_factory=set)  # frame intervals of video records
    modalities: set[str] = field(default_factory=set)

    def is_current(self, content_hash: str, window_s: float, every_s: float | None) -> bool:
        """Whether these records are whole, of this content and (sounds, videos) made with
        this window and (videos) this frame interval ``every_s``."""
        if self.hashes != {content_hash} or self.parts != len(self.ids):
            return False
        if Modality.VIDEO.value in self.modalities and not same_interval(self.every, every_s):
            return False
        if self.modalities & {Modality.AUDIO.value, Modality.VIDEO.value}:
            return same_window(self.windows, window_s)
        return True


def stored_files(collection: Any) -> dict[str, StoredFile]:
    """Source path -> its ``StoredFile``, for every indexed file's record in ``collection``
    (records of ``add_media`` or a plain ``add`` have no source and are left out)."""
    state: dict[str, StoredFile] = {}
    offset = 0
    while True:
        got = collection.get(include=["metadatas"], limit=PAGE, offset=offset)
        ids, metas = got["ids"], got["metadatas"] or []
        for rid, meta in zip(ids, metas, strict=False):
            record = read_record(rid, meta)
            if record.source is None:
                continue
            entry = state.setdefault(record.source, StoredFile(parts=record.parts))
            entry.ids.append(rid)
            entry.hashes.add(record.file_hash)
            entry.modalities.add(record.modality)
            if record.modality in (Modality.AUDIO.value, Modality.VIDEO.value):
                entry.windows.add(record.window_s)
            if record.modality == Modality.VIDEO.value:
                entry.every.add(record.frame_every_s)
        if len(ids) < PAGE:
            return state
        offset += PAGE


def same_window(stored: set[float | None], window_s: float) -> bool:
    """Whether records made with the ``stored`` windows match ``window_s`` (a record of
    unknown window, from before it was stored, stands for the default of 10 s then)."""
    known = {w for w in stored if w is not None} or {CLAP_WINDOW_S}
    return all(math.isclose(w, window_s, rel_tol=1e-6, abs_tol=1e-6) for w in known)


def same_interval(stored: set[float | None], every_s: float | None) -> bool:
    """Whether video records made with the ``stored`` frame intervals match ``every_s``."""
    return (
        every_s is not None
        and bool(stored)
        and all(
            w is not None and math.isclose(w, every_s, rel_tol=1e-6, abs_tol=1e-6) for w in stored
        )
    )
