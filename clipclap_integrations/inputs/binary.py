"""Encoded media given as bytes or as a binary file object: recognized by its content (magic
numbers), else by a MIME type the caller or a server declared. Nothing is decoded here."""

from __future__ import annotations

import io
import os
import stat
from typing import Any

from ..errors import ClipClapInputError
from ..types import Modality
from .containers import settle
from .items import InputOptions, Item, Media
from .sniff import HEAD_BYTES, modality_of_mime, sniff_bytes

_STREAM_CHUNK = 1 << 16
MEDIA = (Modality.IMAGE, Modality.AUDIO, Modality.VIDEO)


def bytes_item(
    data: bytes, forced: Modality | None, mime: str | None = None, *, declared: bool = False
) -> Item:
    """Encoded bytes as media: the forced modality, else (declared) MIME type, else content."""
    if forced is Modality.TEXT:
        raise ClipClapInputError("bytes cannot be embedded as text (decode them to a str)")
    if not data:
        raise ClipClapInputError("empty (0 bytes)")
    sniffed = sniff_bytes(data[:HEAD_BYTES])
    by_mime = modality_of_mime(mime)
    by_mime = by_mime if by_mime in MEDIA else None
    if forced is None and by_mime is Modality.VIDEO and (sniffed is None or declared):
        sniffed = (Modality.VIDEO, mime if sniffed is None else sniffed[1])
    if forced is None and sniffed is not None:
        sniffed = settle(sniffed, data)  # a video container: video, or only sound?
    if forced is not None:
        modality: Modality | None = forced
    elif declared and by_mime is not None and by_mime is not Modality.VIDEO:
        modality = by_mime
    else:
        modality = (sniffed[0] if sniffed else None) or by_mime
    if modality is None:
        raise ClipClapInputError(
            f"bytes that are neither a recognizable image, audio nor video (they start with "
            f"{data[:12]!r}; wrap them in Image(...), Audio(...) or Video(...) to force one)"
        )
    return Item(modality, Media(data=data, mime=sniffed[1] if sniffed else mime))


def stream_item(stream: Any, forced: Modality | None, options: InputOptions) -> Item:
    """A binary file object's whole content (from its start if it can seek) as media.

    A regular file is read whole; a BytesIO is taken whole; anything else (pipes, sockets,
    devices, custom objects) is read in pieces, given up on at once if its first bytes are no
    known media (unless a modality is forced), and refused past ``max_remote_bytes``: a stream
    such as ``/dev/zero`` never ends. The caller's position is restored when it can seek.
    """
    if isinstance(stream, io.TextIOBase):
        raise ClipClapInputError("a text-mode file object: open the file in binary mode ('rb')")
    if isinstance(stream, io.BytesIO):
        try:
            return bytes_item(stream.getvalue(), forced)
        except ValueError as exc:  # a closed BytesIO
            raise ClipClapInputError(f"the file object cannot be read ({exc})") from None
    position = None
    try:
        try:
            regular = stat.S_ISREG(os.fstat(stream.fileno()).st_mode)
        except Exception:
            regular = False
        try:
            if stream.seekable():
                position = stream.tell()
                stream.seek(0)
        except Exception:
            position = None
        if regular:
            data = _checked_chunk(stream.read())
        else:
            limit = options.max_remote_bytes
            first = _checked_chunk(_read_some(stream, _STREAM_CHUNK))
            if forced is None and first and sniff_bytes(first[:HEAD_BYTES]) is None:
                return bytes_item(first, None)  # raises: not media, whatever follows
            chunks, total = [first], len(first)
            while first:
                chunk = _checked_chunk(_read_some(stream, _STREAM_CHUNK))
                if not chunk:
                    break
                total += len(chunk)
                if total > limit:
                    raise ClipClapInputError(
                        f"the stream holds more than {limit:,} bytes (max_remote_bytes)"
                    )
                chunks.append(chunk)
            data = b"".join(chunks)
        if position is not None:
            stream.seek(position)
    except ClipClapInputError:
        raise
    except Exception as exc:
        raise ClipClapInputError(f"the file object cannot be read ({exc})") from None
    return bytes_item(data, forced)


def _read_some(stream: Any, n: int) -> Any:
    try:
        return stream.read(n)
    except TypeError:  # a read() that takes no size: all we can do is call it once
        return stream.read()


def _checked_chunk(data: Any) -> bytes:
    if isinstance(data, str):
        raise ClipClapInputError("a text-mode file object: open the file in binary mode ('rb')")
    if data is None:  # a non-blocking stream with nothing ready
        return b""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ClipClapInputError(f"the file object's read() gave {type(data).__name__}, not bytes")
    return bytes(data)
