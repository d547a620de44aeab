"""Indexing folders of media and text into a Chroma collection, incrementally.

Every file becomes records in one collection: an image one record; a sound one whole-file
record plus one per 10 s window when it is longer; a text file one record per chunk that fits
CLIP's 77-token window. Records carry the file's path and content hash, so a re-run skips
unchanged files, replaces changed ones and (with ``prune``) removes deleted ones. A file's
records are written in one call, after all of them are embedded: an interrupted run leaves
each file either fully indexed or not at all, and resumes without duplicates.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .chunking import chunk_text
from .embedder import ClipClapEmbedder
from .errors import ClipClapInputError
from .sniff import modality_of_extension, sniff_bytes
from .types import Modality

TEXT_EXTENSIONS = frozenset({".txt", ".md", ".markdown", ".rst", ".text"})
MAX_TEXT_BYTES = 10 * 1024 * 1024


@dataclass
class IndexReport:
    """What one indexing run did."""

    added: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    ignored: int = 0  # files that are neither media nor text
    records: int = 0  # records written

    def summary(self) -> str:
        parts = [
            f"{len(self.added)} added",
            f"{len(self.replaced)} replaced",
            f"{len(self.unchanged)} unchanged",
            f"{len(self.removed)} removed",
            f"{len(self.failed)} failed",
            f"{self.ignored} ignored",
            f"{self.records} records written",
        ]
        return ", ".join(parts)


@dataclass(frozen=True)
class SourceFile:
    path: Path
    modality: Modality
    mime: str | None


def file_kind(path: Path) -> tuple[Modality, str | None] | None:
    """The modality of a file to index (content first, then extension), or None to ignore.

    Raises ``OSError`` for a file that cannot be read (a dangling link, no permission).
    """
    with open(path, "rb") as f:
        head = f.read(64)
    sniffed = sniff_bytes(head)
    if sniffed:
        return sniffed
    by_ext = modality_of_extension(path.name)
    if by_ext is not None:
        return by_ext, None
    if path.suffix.lower() in TEXT_EXTENSIONS:
        return Modality.TEXT, "text/plain"
    return None


def read_text_file(path: Path) -> str:
    """A text file's text: UTF-16 or UTF-8 with a byte order mark, else UTF-8."""
    data = path.read_bytes()
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    return data.decode("utf-8-sig")


def walk(paths: Iterable[str | os.PathLike[str]]) -> Iterator[Path]:
    """Files under ``paths`` (recursively, skipping hidden entries), in a stable order."""
    for root in paths:
        root = Path(root).expanduser()
        if root.is_file():
            yield root.resolve()
            continue
        if not root.is_dir():
            raise FileNotFoundError(f"no such file or folder: {root}")
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if not name.startswith("."):
                    path = Path(dirpath) / name
                    real = path.resolve()
                    yield real if real.exists() else path.absolute()  # a dangling link: itself


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _record_id(source: str, content_hash: str, suffix: str) -> str:
    return f"{hashlib.sha256(source.encode()).hexdigest()[:16]}-{content_hash[:16]}-{suffix}"


@dataclass
class _Pending:
    source: SourceFile
    content_hash: str
    replaced: bool


class FolderIndexer:
    """Embeds files with a ``ClipClapEmbedder`` and writes them to a Chroma collection."""

    def __init__(
        self,
        collection: Any,
        embedder: ClipClapEmbedder,
        *,
        window_s: float = 10.0,
        batch_files: int = 16,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self.collection = collection
        self.embedder = embedder
        self.window_s = window_s
        self.batch_files = max(1, batch_files)
        self.progress = progress or (lambda n: None)

    # -- state already in the collection ---------------------------------------------------
    def _existing(self) -> dict[str, dict[str, Any]]:
        """source path -> {"hash": content hash, "ids": [...], "parts": expected count}."""
        state: dict[str, dict[str, Any]] = {}
        offset, page = 0, 1000
        while True:
            got = self.collection.get(include=["metadatas"], limit=page, offset=offset)
            ids, metas = got["ids"], got["metadatas"] or []
            for rid, meta in zip(ids, metas, strict=False):
                meta = meta or {}
                src = meta.get("source")
                if not isinstance(src, str):
                    continue
                entry = state.setdefault(src, {"hash": meta.get("file_hash"), "ids": [],
                                               "parts": meta.get("parts"), "hashes": set()})
                entry["ids"].append(rid)
                entry["hashes"].add(meta.get("file_hash"))
            if len(ids) < page:
                return state
            offset += page

    # -- the run ---------------------------------------------------------------------------
    def index(self, paths: Sequence[str | os.PathLike[str]], *, prune: bool = False) -> IndexReport:
        report = IndexReport()
        existing = self._existing()
        seen: set[str] = set()
        todo: dict[Modality, list[_Pending]] = {m: [] for m in Modality}
        for path in walk(paths):
            source = str(path)
            try:
                kind = file_kind(path)
                if kind is not None:
                    content_hash = file_hash(path)
            except OSError as exc:
                seen.add(source)  # unreadable now, maybe not for long: its records stay
                report.failed.append((source, f"cannot read ({exc.strerror or exc})"))
                self.progress(1)
                continue
            if kind is None:  # no longer media or text: --prune removes its records
                report.ignored += 1
                self.progress(1)
                continue
            seen.add(source)
            old = existing.get(source)
            if old and old["hashes"] == {content_hash} and old["parts"] == len(old["ids"]):
                report.unchanged.append(source)
                self.progress(1)
                continue
            pending = _Pending(SourceFile(path, kind[0], kind[1]), content_hash, old is not None)
            todo[kind[0]].append(pending)
            if len(todo[kind[0]]) >= self.batch_files:
                self._flush(kind[0], todo[kind[0]], existing, report)
                todo[kind[0]] = []
        for modality, batch in todo.items():
            if batch:
                self._flush(modality, batch, existing, report)
        if prune:
            roots = [str(Path(p).expanduser().resolve()) for p in paths]
            for source, entry in existing.items():
                under = any(source == r or source.startswith(r.rstrip(os.sep) + os.sep)
                            for r in roots)
                if under and source not in seen:
                    self.collection.delete(ids=entry["ids"])
                    report.removed.append(source)
        return report

    def _flush(self, modality: Modality, batch: list[_Pending],
               existing: dict[str, dict[str, Any]], report: IndexReport) -> None:
        records = {
            Modality.IMAGE: self._image_records,
            Modality.AUDIO: self._audio_records,
            Modality.TEXT: self._text_records,
        }[modality](batch, report)
        for pending, rows in records:
            source = str(pending.source.path)
            old = existing.get(source)
            self._write(pending, rows)
            if old:
                stale = [i for i in old["ids"] if i not in {r["id"] for r in rows}]
                if stale:
                    self.collection.delete(ids=stale)
            (report.replaced if pending.replaced else report.added).append(source)
            report.records += len(rows)
        # A file indexed before whose new content fails: its records describe content that
        # is gone, so they go (the failure is reported).
        done = {str(p.source.path) for p, _ in records}
        for position, (source, reason) in enumerate(report.failed):
            old = existing.get(source)
            if old and source not in done and any(str(p.source.path) == source for p in batch):
                self.collection.delete(ids=old["ids"])
                existing.pop(source)
                report.failed[position] = (
                    source,
                    f"{reason} (the records of its earlier version were removed)",
                )
        self.progress(len(batch))

    def _write(self, pending: _Pending, rows: list[dict[str, Any]]) -> None:
        base = {
            "source": str(pending.source.path),
            "file_name": pending.source.path.name,
            "file_hash": pending.content_hash,
            "modality": pending.source.modality.value,
            "parts": len(rows),
        }
        if pending.source.mime:
            base["mime_type"] = pending.source.mime
        kwargs: dict[str, Any] = {
            "ids": [r["id"] for r in rows],
            "embeddings": np.stack([r["vector"] for r in rows]).astype(np.float32),
            "metadatas": [{**base, **r["meta"]} for r in rows],
        }
        if pending.source.modality is Modality.TEXT:
            kwargs["documents"] = [r["document"] for r in rows]
        else:
            kwargs["uris"] = [str(pending.source.path)] * len(rows)
        self.collection.upsert(**kwargs)

    def _embed_each(self, batch: list[_Pending], embed: Callable[[list[Path]], np.ndarray],
                    report: IndexReport) -> list[tuple[_Pending, np.ndarray]]:
        """Embed a batch; on a bad file, embed the rest and record the failure."""
        try:
            vectors = embed([p.source.path for p in batch])
            return list(zip(batch, vectors, strict=True))
        except ClipClapInputError:
            pass
        out = []
        for p in batch:
            try:
                out.append((p, embed([p.source.path])[0]))
            except ClipClapInputError as exc:
                report.failed.append((str(p.source.path), exc.reason))
        return out

    def _image_records(self, batch, report):
        done = self._embed_each(batch, self.embedder.embed_images, report)
        return [(p, [{"id": _record_id(str(p.source.path), p.content_hash, "image"),
                      "vector": v, "meta": {"kind": "file"}}]) for p, v in done]

    def _audio_records(self, batch, report):
        out = []
        for p in batch:
            try:
                seg = self.embedder.embed_audio_segments(p.source.path, window_s=self.window_s)
            except ClipClapInputError as exc:
                report.failed.append((str(p.source.path), exc.reason))
                continue
            whole = seg.vectors.mean(axis=0)
            whole = whole / max(float(np.linalg.norm(whole)), 1e-12)
            rows = [{"id": _record_id(str(p.source.path), p.content_hash, "audio"),
                     "vector": whole if len(seg) > 1 else seg.vectors[0],
                     "meta": {"kind": "file", "start_s": 0.0, "end_s": float(seg.ends[-1])}}]
            if len(seg) > 1:
                rows += [{"id": _record_id(str(p.source.path), p.content_hash, f"window-{k}"),
                          "vector": seg.vectors[k],
                          "meta": {"kind": "window", "start_s": float(seg.starts[k]),
                                   "end_s": float(seg.ends[k])}}
                         for k in range(len(seg))]
            out.append((p, rows))
        return out

    def _text_records(self, batch, report):
        out = []
        count = self.embedder.text_preprocessor.count_tokens
        for p in batch:
            try:
                if p.source.path.stat().st_size > MAX_TEXT_BYTES:
                    raise ValueError(f"larger than {MAX_TEXT_BYTES // (1024 * 1024)} MB")
                text = read_text_file(p.source.path)
            except (OSError, UnicodeDecodeError, ValueError) as exc:
                report.failed.append((str(p.source.path), f"not readable text ({exc})"))
                continue
            chunks = chunk_text(text, count)
            if not chunks:
                report.failed.append((str(p.source.path), "the text file is empty"))
                continue
            vectors = self.embedder.embed_text([c.text for c in chunks])
            out.append((p, [{"id": _record_id(str(p.source.path), p.content_hash, f"chunk-{k}"),
                             "vector": vectors[k], "document": c.text,
                             "meta": {"kind": "chunk", "chunk": k, "char_start": c.start,
                                      "char_end": c.end}}
                            for k, c in enumerate(chunks)]))
        return out
