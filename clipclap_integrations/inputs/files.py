"""What kind of file a path is: the one rule shared by the folder indexer, the LlamaIndex
readers and node loaders (the core's own path detection, which never takes a file for text,
uses the same signatures through ``sniff``)."""

from __future__ import annotations

import codecs
from pathlib import Path

from ..types import Modality
from .containers import settle
from .sniff import HEAD_BYTES, modality_of_extension, sniff_bytes

TEXT_EXTENSIONS = frozenset({".txt", ".md", ".markdown", ".rst", ".text"})


def _reads_as_text(head: bytes) -> bool:
    """Whether the first bytes of a file are text: UTF-8 (with or without a BOM) or UTF-16
    with a BOM, and no control characters but whitespace and escape."""
    encoding = "utf-16" if head.startswith((b"\xff\xfe", b"\xfe\xff")) else "utf-8-sig"
    try:  # incremental: a character cut at the end of ``head`` is not an error
        text = codecs.getincrementaldecoder(encoding)().decode(head, final=False)
    except UnicodeDecodeError:
        return False
    return not any(c < " " and c not in "\t\n\r\f\v\x1b" for c in text)


def kind_of(name: str, head: bytes) -> tuple[Modality, str | None] | None:
    """The modality (and MIME type, when the content tells) of a file called ``name`` whose
    first bytes are ``head``; None for a file that is neither media nor text.

    A text name (``.txt``, ``.md``, ...) whose first bytes read as text is text, even when they
    happen to begin like a media signature ("ID3", "OggS", "fLaC", ...); otherwise content
    decides, then the extension. Binary content under a text name is still text (reading it
    then reports it as not readable text).
    """
    is_text_name = Path(name).suffix.lower() in TEXT_EXTENSIONS
    if is_text_name and _reads_as_text(head):
        return Modality.TEXT, "text/plain"
    media = media_kind(name, head)
    if media is not None:
        return media
    if is_text_name:
        return Modality.TEXT, "text/plain"
    return None


def media_kind(name: str, head: bytes) -> tuple[Modality, str | None] | None:
    """Image, audio or video by content (with its MIME type), else by extension; None if
    neither. A video container is only provisionally video here (``containers.settle``)."""
    sniffed = sniff_bytes(head)
    if sniffed:
        return sniffed
    by_ext = modality_of_extension(name)
    return (by_ext, None) if by_ext is not None else None


def media_file_kind(path: Path) -> tuple[Modality, str | None] | None:
    """``media_kind`` of a file on disk (never text: for paths given as media), a video
    container settled as video or audio by its streams."""
    with open(path, "rb") as f:
        return settle(media_kind(path.name, f.read(HEAD_BYTES)), path, path.name)


def file_kind(path: Path) -> tuple[Modality, str | None] | None:
    """``kind_of`` for a file on disk. Raises ``OSError`` for a file that cannot be read (a
    dangling link, no permission)."""
    with open(path, "rb") as f:
        head = f.read(HEAD_BYTES)
    return settle(kind_of(path.name, head), path, path.name)


def read_text_file(path: Path, errors: str = "strict") -> str:
    """A text file's text: UTF-16 or UTF-8 with a byte order mark, else UTF-8 (``errors``
    as for ``bytes.decode``)."""
    data = path.read_bytes()
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", errors)
    return data.decode("utf-8-sig", errors)
