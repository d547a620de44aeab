"""What this package writes to Chroma: THE record schema, in one place.

Both writers (``add_media``/``upsert_media`` and the folder indexer behind ``clipclap index``)
build ``Record`` values; ``metadata()`` turns every one of them into its metadata dict,
``mime_type()`` is the one MIME rule and ``write_batches()`` the one way they are sent.
``read_record()`` interprets what is stored (also what earlier versions and a plain
``collection.add`` wrote), for ``clipclap search`` and the indexer's re-runs.

Metadata keys (the README's Chroma section has the same table):

* every record: ``modality`` ("text", "image", "audio", "video"); ``mime_type`` when known.
* records of an indexed file: ``source`` (absolute path), ``file_name``, ``file_hash``
  (sha256 of the content), ``parts`` (how many records the file has), ``kind`` ("file",
  "window", "chunk" or "moment"); sounds ``start_s``/``end_s`` and ``window_s``; text chunks
  ``chunk``, ``char_start``/``char_end``.
* video records (``add_media`` and the indexer alike): a video is its moments, kind
  ``moment`` with ``track`` ("frames": a sampled frame; "audio": a soundtrack window) and
  ``start_s``/``end_s``, plus one whole-video record (kind ``file``, no ``track``, ``start_s``
  0 and ``end_s`` the video's end); all carry ``window_s`` (the soundtrack's window) and
  ``frame_every_s`` (the frame interval they were made with). The moments ``add_media`` /
  ``upsert_media`` write also carry ``whole_id``, the id of their whole-video record: an
  upsert finds an earlier version's moments by it (and removes those it did not rewrite).

Ids: ``add_media`` ``<modality>-<content hash>`` unless given (the same content, one record);
a video's moments ``<that id>-frames-<k>`` / ``<that id>-audio-<k>``; the indexer
``<path hash>-<content hash>-<part>`` (part ``image``, ``audio``, ``window-<k>``,
``chunk-<k>``, ``video``, ``frames-<k>``, ``audio-<k>``), so a file's records are found,
replaced and pruned by path and content.
"""

from __future__ import annotations

import hashlib
import mimetypes
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..inputs import Item, Media, Waveform
from ..runtime.digests import feed_file
from ..types import Audio, Image, Modality, Video, VideoMoments


@dataclass(frozen=True)
class FileOrigin:
    """The indexed file a record comes from."""

    path: str  # absolute
    file_hash: str  # sha256 of the content
    parts: int  # how many records the file has: fewer stored means written partly


@dataclass(frozen=True)
class Span:
    """Which part of its file a record stands for."""

    kind: str  # "file" (the whole file), "window" (of a sound), "chunk" (of a text) or
    # "moment" (of a video)
    start_s: float | None = None
    end_s: float | None = None
    window_s: float | None = None  # the window length the sound was indexed with
    chunk: int | None = None
    char_start: int | None = None
    char_end: int | None = None
    track: str | None = None  # a video's moment: "frames" or "audio"
    frame_every_s: float | None = None  # a video's records: the frame interval used


@dataclass
class Record:
    """One record as written: id, vector, what Chroma stores beside it, our metadata."""

    id: str
    modality: Modality
    embedding: np.ndarray | None = None  # set once embedded
    mime_type: str | None = None
    document: str | None = None  # the text of a text record
    uri: str | None = None  # where media was read from: a path or URL
    file: FileOrigin | None = None
    span: Span | None = None
    extra: Mapping[str, Any] | None = None  # the caller's own metadata, over ours
    whole_id: str | None = None  # a video moment of add_media: its whole-video record's id


COMMON_KEYS = ("modality", "mime_type")
FILE_KEYS = ("source", "file_name", "file_hash", "parts")
SPAN_KEYS = tuple(f.name for f in fields(Span))
VIDEO_KEYS = ("whole_id",)
METADATA_KEYS = COMMON_KEYS + FILE_KEYS + SPAN_KEYS + VIDEO_KEYS
MOMENT_TRACKS = ("frames", "audio")


def metadata(record: Record) -> dict[str, Any]:
    """The metadata of every record this package writes (a new key for all of them: here)."""
    meta: dict[str, Any] = {"modality": record.modality.value}
    if record.mime_type:
        meta["mime_type"] = record.mime_type
    if record.file is not None:
        meta["source"] = record.file.path
        meta["file_name"] = Path(record.file.path).name
        meta["file_hash"] = record.file.file_hash
        meta["parts"] = record.file.parts
    if record.span is not None:
        meta.update({k: v for k, v in asdict(record.span).items() if v is not None})
    if record.extra:
        meta.update(record.extra)
    if record.whole_id is not None:  # not the caller's to change: it finds stale moments
        meta["whole_id"] = record.whole_id
    return meta


def mime_type(
    modality: Modality, declared: str | None = None, name: str | None = None, image: Any = None
) -> str | None:
    """The one MIME rule: text is ``text/plain``; media have the type their content or source
    declared (sniffed bytes, a ``data:`` URI, a server), else the one their file name or URL
    suggests, else a PIL image's format; None when nothing tells."""
    if modality is Modality.TEXT:
        return "text/plain"
    if declared:
        return declared.split(";")[0].strip()
    if name:
        path = urllib.parse.urlsplit(name).path if "://" in name else name
        guessed = mimetypes.guess_type(path)[0]
        if guessed:
            return guessed
    fmt = getattr(image, "format", None)  # a PIL image opened from a file
    if isinstance(fmt, str):
        from PIL import Image as PILImage

        return PILImage.MIME.get(fmt)
    return None


# -- records of add_media / upsert_media --------------------------------------------------------
def content_digest(item: Item) -> str:
    """A content hash: the same text, file bytes, pixels or samples give the same id."""
    assert item.modality is not None  # remote URLs are resolved by now
    h = hashlib.sha256(item.modality.value.encode() + b"\0")
    payload = item.payload
    if isinstance(payload, str):
        h.update(payload.encode("utf-8"))
    elif isinstance(payload, Media) and payload.data is not None:
        h.update(payload.data)
    elif isinstance(payload, Media) and payload.path is not None:
        feed_file(h, payload.path)
    elif isinstance(payload, Waveform):
        samples = np.ascontiguousarray(payload.samples)
        h.update(f"{payload.sample_rate}|{samples.dtype}|{samples.shape}|".encode())
        h.update(samples.tobytes())
    elif isinstance(payload, np.ndarray):
        arr = np.ascontiguousarray(payload)
        h.update(f"{arr.dtype}|{arr.shape}|".encode())
        h.update(arr.tobytes())
    else:  # a PIL image
        h.update(f"{payload.mode}|{payload.size}|".encode())
        h.update(payload.tobytes())
    return h.hexdigest()[:32]


def source_uri(raw: Any, item: Item) -> str | None:
    """The URI to store: an http(s) or file: URL as given, the absolute path of media read
    from a file; None for media given in memory or as a data: URI."""
    payload = item.payload
    if not isinstance(payload, Media):
        return None
    if isinstance(raw, Image | Audio | Video):
        raw = raw.source
    if isinstance(raw, str):
        url = raw.strip()
        if url[:8].lower().startswith(("http://", "https://", "file:/")):
            return url  # as given
    if payload.path is not None:
        return str(payload.path.expanduser().resolve())
    return None


def item_record(raw: Any, item: Item) -> Record:
    """The record of one classified input (``raw`` as given), id ``<modality>-<content
    hash>``. Made while the item still holds its content (fetched bytes are released once
    embedded)."""
    assert item.modality is not None  # remote URLs are resolved by now
    payload = item.payload
    uri = source_uri(raw, item)
    declared = payload.mime if isinstance(payload, Media) else None
    return Record(
        id=f"{item.modality.value}-{content_digest(item)}",
        modality=item.modality,
        mime_type=mime_type(item.modality, declared, uri, payload),
        document=payload if item.modality is Modality.TEXT else None,
        uri=uri,
    )


# -- video records: the moments and the whole ----------------------------------------------
def moment_span(
    track: str, start_s: float, end_s: float, window_s: float, frame_every_s: float
) -> Span:
    """The span of one moment of a video (``track`` "frames" or "audio")."""
    return Span(
        "moment",
        float(start_s),
        float(end_s),
        window_s=float(window_s),
        track=track,
        frame_every_s=float(frame_every_s),
    )


def whole_video_span(end_s: float, window_s: float, frame_every_s: float) -> Span:
    """The span of a video's whole record: from 0 to the end of its last moment."""
    return Span(
        "file", 0.0, float(end_s), window_s=float(window_s), frame_every_s=float(frame_every_s)
    )


def video_records(
    whole: Record, moments: VideoMoments, window_s: float, frame_every_s: float
) -> list[Record]:
    """``add_media``'s records of one video: ``whole`` (its id, URI, MIME type and the
    caller's metadata, given) with the whole-video vector, then one record per moment, id
    ``<whole id>-<track>-<k>`` (k counted in its track), the same URI, MIME type and metadata,
    and ``whole_id`` naming the whole record."""
    end = float(moments.ends.max()) if len(moments) else 0.0
    whole.embedding = moments.whole
    whole.span = whole_video_span(end, window_s, frame_every_s)
    out = [whole]
    counts: dict[str, int] = {}
    for vector, start, stop, track in zip(
        moments.vectors, moments.starts, moments.ends, moments.tracks, strict=True
    ):
        k = counts[track] = counts.get(track, -1) + 1
        out.append(
            Record(
                id=f"{whole.id}-{track}-{k}",
                modality=Modality.VIDEO,
                embedding=vector,
                mime_type=whole.mime_type,
                uri=whole.uri,
                span=moment_span(track, start, stop, window_s, frame_every_s),
                extra=whole.extra,
                whole_id=whole.id,
            )
        )
    return out


def is_moment_of(record_id: str, whole_id: str) -> bool:
    """Whether ``record_id`` is a moment id of the video record ``whole_id``
    (``<whole_id>-frames-<k>`` or ``<whole_id>-audio-<k>``)."""
    if not record_id.startswith(f"{whole_id}-"):
        return False
    track, _, k = record_id[len(whole_id) + 1 :].rpartition("-")
    return track in MOMENT_TRACKS and k.isascii() and k.isdigit()


def stale_moments(
    ids: Sequence[str], metadatas: Sequence[Mapping[str, Any] | None], written: set[str]
) -> list[str]:
    """Of stored records (ids and metadata, as ``collection.get`` gives them), the moments of
    an earlier version of a video: tied to a whole record by ``whole_id``, with a moment id of
    it, and not among the ids just ``written``."""
    stale = []
    for record_id, meta in zip(ids, metadatas, strict=True):
        whole = (meta or {}).get("whole_id")
        if isinstance(whole, str) and record_id not in written and is_moment_of(record_id, whole):
            stale.append(record_id)
    return stale


# -- records of the folder indexer ----------------------------------------------------------
class PartLike(Protocol):
    """What a file's record is made from: a ``FilePart``, or a planned part (no vector yet)."""

    @property
    def name(self) -> str: ...  # the id's last part: "image", "audio", "window-<k>", "chunk-<k>"
    @property
    def span(self) -> Span: ...
    @property
    def document(self) -> str | None: ...


@dataclass(frozen=True)
class FilePart:
    """One record's worth of an indexed file, before it is a record."""

    name: str  # the id's last part: "image", "audio", "window-<k>", "chunk-<k>"
    embedding: np.ndarray
    span: Span
    document: str | None = None


def file_records(
    path: str,
    file_hash: str,
    modality: Modality,
    declared_mime: str | None,
    parts: Sequence[PartLike],
) -> list[Record]:
    """The records of one indexed file: media store the path as their URI, text its chunks.
    A part's ``embedding`` (if it has one) becomes the record's; else the record has none yet."""
    origin = FileOrigin(path, file_hash, len(parts))
    path_hash = hashlib.sha256(path.encode()).hexdigest()[:16]
    mime = mime_type(modality, declared_mime, path)
    return [
        Record(
            id=f"{path_hash}-{file_hash[:16]}-{part.name}",
            modality=modality,
            embedding=getattr(part, "embedding", None),
            mime_type=mime,
            document=part.document,
            uri=None if modality is Modality.TEXT else path,
            file=origin,
            span=part.span,
        )
        for part in parts
    ]


# -- writing -----------------------------------------------------------------------------------
def write_batches(records: Sequence[Record], limit: int | None) -> list[dict[str, Any]]:
    """The keyword arguments of each ``add``/``upsert`` call writing ``records``, at most
    ``limit`` records each (clients refuse larger writes; None: all at once)."""
    step = limit or max(len(records), 1)
    return [_write_arguments(records[i : i + step]) for i in range(0, len(records), step)]


def _write_arguments(part: Sequence[Record]) -> dict[str, Any]:
    return {
        "ids": [r.id for r in part],
        "embeddings": [np.asarray(r.embedding, dtype=np.float32) for r in part],
        "metadatas": [metadata(r) for r in part],
        "documents": [r.document for r in part],
        "uris": [r.uri for r in part],
    }


# -- reading -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class StoredRecord:
    """A stored record as this package understands it, whoever wrote it: the folder indexer,
    ``add_media`` (no ``source``; a URI or a document), an earlier version (no ``window_s``),
    or a plain ``collection.add`` (maybe no metadata at all)."""

    id: str
    modality: str | None = None
    mime_type: str | None = None
    source: str | None = None
    file_hash: str | None = None
    parts: int | None = None
    kind: str | None = None
    start_s: float | None = None
    end_s: float | None = None
    window_s: float | None = None  # stored, or told by a window's length; None: unknown
    chunk: int | None = None
    char_start: int | None = None
    char_end: int | None = None
    track: str | None = None
    frame_every_s: float | None = None
    document: str | None = None
    uri: str | None = None

    @property
    def origin(self) -> str:
        """What the record came from: its file, else its URI, else its text, else its id."""
        return self.source or self.uri or (self.document or "")[:60] or f"id {self.id}"

    @property
    def where(self) -> str:
        """Which part of its origin the record stands for."""
        if self.kind == "chunk":
            return f"chars {self.char_start}-{self.char_end}"
        if self.kind == "window":
            return f"{self.start_s or 0.0:.1f}-{self.end_s or 0.0:.1f} s"
        if self.kind == "moment":
            return f"{clock(self.start_s or 0.0)}-{clock(self.end_s or 0.0)}"
        if self.modality == Modality.AUDIO.value and self.end_s is not None:
            return f"whole ({self.end_s:.1f} s)"
        return "whole"


def read_record(
    record_id: str,
    meta: Mapping[str, Any] | None,
    document: str | None = None,
    uri: str | None = None,
) -> StoredRecord:
    """Interpret a stored record's metadata (values of the wrong type read as missing)."""
    meta = meta or {}
    kind, start, end = _text(meta, "kind"), _seconds(meta, "start_s"), _seconds(meta, "end_s")
    window = _seconds(meta, "window_s")
    if window is None and kind == "window" and start is not None and end is not None:
        window = end - start  # stored before window_s was: windows are all full
    return StoredRecord(
        id=record_id,
        modality=_text(meta, "modality"),
        mime_type=_text(meta, "mime_type"),
        source=_text(meta, "source"),
        file_hash=_text(meta, "file_hash"),
        parts=_whole(meta, "parts"),
        kind=kind,
        start_s=start,
        end_s=end,
        window_s=window,
        chunk=_whole(meta, "chunk"),
        char_start=_whole(meta, "char_start"),
        char_end=_whole(meta, "char_end"),
        track=_text(meta, "track"),
        frame_every_s=_seconds(meta, "frame_every_s"),
        document=document if isinstance(document, str) else None,
        uri=uri if isinstance(uri, str) else None,
    )


def clock(seconds: float) -> str:
    """``mm:ss`` (``h:mm:ss`` from an hour on) of a time in seconds, rounded down."""
    total = max(0, int(seconds + 1e-6))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def _text(meta: Mapping[str, Any], key: str) -> str | None:
    value = meta.get(key)
    return value if isinstance(value, str) else None


def _whole(meta: Mapping[str, Any], key: str) -> int | None:
    value = meta.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _seconds(meta: Mapping[str, Any], key: str) -> float | None:
    value = meta.get(key)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None
