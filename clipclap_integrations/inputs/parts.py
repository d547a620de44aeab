"""Chat-style dict parts (OpenAI, Anthropic, LangChain, Gemini shapes), ``data:`` URIs and
base64, read without touching the file system or the network."""

from __future__ import annotations

import base64
import binascii
import codecs
import re
import urllib.parse
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ClipClapInputError
from ..types import Modality
from .arrays import waveform_item
from .binary import bytes_item
from .items import Item, check_modality, shorten, text_item
from .sniff import HEAD_BYTES, modality_of_mime, sniff_bytes

_DATA_URI = re.compile(
    r"data:(?P<mime>[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+)?(?P<params>(?:;[^;,\s]*)*),",
    re.IGNORECASE,
)
_B64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_B64_URLSAFE = re.compile(r"[A-Za-z0-9_-]*={0,2}")
_FORMAT_MIME = {
    "wav": "audio/wav",
    "wave": "audio/wav",
    "mp3": "audio/mpeg",
    "mpeg": "audio/mpeg",
    "flac": "audio/flac",
    "ogg": "audio/ogg",
    "opus": "audio/ogg",
    "m4a": "audio/mp4",
    "mp4": "audio/mp4",
    "aac": "audio/aac",
    "aiff": "audio/aiff",
    "webm": "audio/webm",
}
# ``{"type": "video_url", "video_url": {"url": ...}}`` (vLLM, Qwen-VL style) names a video
# ``format: "pcm16"`` of an ``input_audio`` part: headerless 16-bit signed little-endian mono
# PCM at 24 kHz, as OpenAI defines "pcm16" (its Realtime API's audio format).
PCM16_SAMPLE_RATE = 24_000


@dataclass(frozen=True)
class Link:
    """A part's media named by a string (URL, ``data:`` URI, path), to classify as
    ``modality``; None: whatever it names, as long as it is media, not text."""

    url: str
    modality: Modality | None


def is_data_uri(text: str) -> bool:
    """Whether ``text`` begins as a well-formed ``data:`` URI (MIME type, parameters, comma)."""
    return _DATA_URI.match(text) is not None


def parse_data_uri(
    uri: str, max_bytes: int | None = None
) -> tuple[str | None, dict[str, str], bytes]:
    """(MIME type, parameters, decoded bytes) of a ``data:`` URI; refused before it is
    decoded when its payload would decode to more than ``max_bytes`` (a URL's own limit,
    ``max_remote_bytes``: a data: URI is a download that came inline)."""
    match = _DATA_URI.match(uri)
    if match is None:
        raise ClipClapInputError("a malformed data: URI")
    mime = match.group("mime")
    params: dict[str, str] = {}
    base64_encoded = False
    for param in match.group("params").split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "base64" and not value:
            base64_encoded = True
        elif key:
            params[key.strip().lower()] = urllib.parse.unquote(value.strip())
    payload = uri[match.end() :]
    if max_bytes is not None:  # counted without a copy, before decoding anything
        size = _base64_size(payload) if base64_encoded else len(payload) - 2 * payload.count("%")
        _check_data_size(size, max_bytes)
    data = _b64decode(payload) if base64_encoded else urllib.parse.unquote_to_bytes(payload)
    if max_bytes is not None:
        _check_data_size(len(data), max_bytes)
    return (mime.lower() if mime else None), params, data


def _base64_size(text: str) -> int:
    """The size ``text`` decodes to as base64 (a %XX escape is one character), counted
    without a copy."""
    chars = len(text) - 2 * text.count("%") - sum(text.count(c) for c in " \t\r\n=")
    return chars * 3 // 4


def _check_data_size(size: int, max_bytes: int, what: str = "the data: URI") -> None:
    if size > max_bytes:
        raise ClipClapInputError(
            f"{what} holds {size:,} bytes, over the limit of {max_bytes:,} "
            "(max_remote_bytes, which applies to inline data as to downloads)"
        )


def data_uri_item(uri: str, forced: Modality | None, max_bytes: int | None = None) -> Item:
    """A ``data:`` URI by its MIME type, then its content; no MIME type or ``text/*`` is text.
    ``max_bytes``: see ``parse_data_uri``."""
    mime, params, data = parse_data_uri(uri, max_bytes)
    declared = modality_of_mime(mime)
    textual = declared is Modality.TEXT or (mime is None and not sniff_bytes(data[:HEAD_BYTES]))
    if forced is None and textual:
        return text_item(_decode_text(data, params.get("charset")))
    if forced is None and mime is not None and declared is None:
        sniffed = sniff_bytes(data[:HEAD_BYTES])
        if sniffed is None:
            raise ClipClapInputError(f"a data: URI of type {mime}, neither image, audio nor text")
    return bytes_item(data, forced, mime, declared=True)


def _b64decode(text: str) -> bytes:
    """Standard or URL-safe base64, padding optional, whitespace and %-escapes tolerated."""
    s = "".join(text.split())
    if "%" in s:
        s = urllib.parse.unquote(s)
    if _B64.fullmatch(s) is None:
        if _B64_URLSAFE.fullmatch(s) is None:
            raise ClipClapInputError("invalid base64 data (characters outside the alphabet)")
        s = s.replace("-", "+").replace("_", "/")
    s = s.rstrip("=")
    if len(s) % 4 == 1:
        raise ClipClapInputError("invalid base64 data (truncated)")
    try:
        return base64.b64decode(s + "=" * (-len(s) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ClipClapInputError("invalid base64 data") from None


def _decode_text(data: bytes, charset: str | None) -> str:
    encoding = "utf-8"
    if charset:
        try:
            encoding = codecs.lookup(charset).name
        except LookupError:
            raise ClipClapInputError(f"unknown charset {shorten(charset, 40)!r}") from None
        if encoding == "ascii":  # RFC 2397's default, in practice UTF-8 more often than not
            encoding = "utf-8"
    try:
        return data.decode(encoding)
    except (UnicodeDecodeError, ValueError):
        raise ClipClapInputError(f"the text is not valid {encoding}") from None


def _part_url(value: Any, kind: str) -> str:
    url = value.get("url") if isinstance(value, dict) else value
    if not isinstance(url, str):
        raise ClipClapInputError(f"the {kind} part needs a URL string")
    return url


def _part_data(data: Any, kind: str, max_bytes: int | None) -> bytes:
    """A part's inline data, capped like a data: URI (before decoding, then exactly)."""
    if isinstance(data, str):
        if max_bytes is not None:
            _check_data_size(_base64_size(data), max_bytes, f"the {kind} part")
        data = _b64decode(data)
    elif isinstance(data, bytes | bytearray | memoryview):
        data = bytes(data)
    else:
        raise ClipClapInputError(f"the {kind} part needs base64 'data'")
    if max_bytes is not None:
        _check_data_size(len(data), max_bytes, f"the {kind} part")
    return data


def _media_part(
    part: dict[str, Any], target: Modality, kind: str, max_bytes: int | None
) -> Item | Link:
    """``image`` / ``audio`` parts: Anthropic ``source`` blocks and LangChain content blocks."""
    source = part.get("source")
    if isinstance(source, dict):  # {"type": "base64", "media_type", "data"} | {"type": "url"}
        if source.get("type") == "url" or "url" in source:
            return Link(_part_url(source, kind), target)
        data = _part_data(source.get("data"), kind, max_bytes)
        mime = source.get("media_type") or source.get("mime_type")
        return bytes_item(data, target, mime if isinstance(mime, str) else None)
    mime = part.get("mime_type") or part.get("media_type")
    mime = mime if isinstance(mime, str) else None
    if isinstance(part.get("url"), str):
        return Link(part["url"], target)
    if part.get("source_type") == "url" and isinstance(part.get("data"), str):
        return Link(part["data"], target)
    if "base64" in part:  # base64 by name, even when given as bytes of base64 text
        value = part["base64"]
        if isinstance(value, bytes | bytearray):
            value = bytes(value).decode("ascii", "replace")
        return bytes_item(_part_data(value, kind, max_bytes), target, mime)
    if "data" in part:
        return bytes_item(_part_data(part["data"], kind, max_bytes), target, mime)
    raise ClipClapInputError(f"the {kind} part needs 'url', 'base64', 'data' or 'source'")


def _pcm16(data: bytes) -> Item:
    if not data:
        raise ClipClapInputError("empty (0 bytes)")
    if len(data) % 2:
        raise ClipClapInputError(
            f"pcm16 audio must be whole 16-bit samples, got an odd number of bytes ({len(data):,})"
        )
    return waveform_item(np.frombuffer(data, dtype="<i2").astype(np.int16), PCM16_SAMPLE_RATE)


def part_item(
    part: dict[Any, Any], forced: Modality | None, max_bytes: int | None = None
) -> Item | Link:
    """A dict part as an item, or as the ``Link`` it names its media by; inline data over
    ``max_bytes`` is refused."""
    kind = part.get("type")
    if kind is None:  # untyped parts: infer the type from the one key that says it
        for key in ("image_url", "audio_url", "video_url", "input_audio", "text"):
            if key in part:
                kind = key
                break
    if not isinstance(kind, str):
        raise ClipClapInputError(
            "a dict input needs a 'type' (text, image_url, audio_url, video_url, input_audio, "
            "media, image or audio)"
        )
    kind = kind.lower()
    if kind in ("text", "input_text"):
        check_modality(Modality.TEXT, forced, f"a {kind} part")
        text = part.get("text")
        if not isinstance(text, str):
            raise ClipClapInputError(f"the {kind} part needs a string 'text'")
        return text_item(text)
    if kind in ("image_url", "input_image", "audio_url", "video_url"):
        target = {"audio_url": Modality.AUDIO, "video_url": Modality.VIDEO}.get(
            kind, Modality.IMAGE
        )
        check_modality(target, forced, f"an {kind} part")
        value = part.get(f"{target.value}_url", part.get("url"))
        return Link(_part_url(value, kind), target)
    if kind == "input_audio":
        check_modality(Modality.AUDIO, forced, "an input_audio part")
        value = part.get("input_audio")
        if not isinstance(value, dict):
            raise ClipClapInputError("an input_audio part needs {'data': <base64>, 'format': ...}")
        fmt = value.get("format")
        data = _part_data(value.get("data"), kind, max_bytes)
        if isinstance(fmt, str) and fmt.lower() == "pcm16":
            return _pcm16(data)
        mime = _FORMAT_MIME.get(fmt.lower(), f"audio/{fmt}") if isinstance(fmt, str) else None
        return bytes_item(data, Modality.AUDIO, mime)
    if kind in ("image", "audio"):
        target = Modality(kind)
        check_modality(target, forced, f"an {kind} part")
        return _media_part(part, target, kind, max_bytes)
    if kind == "media":
        mime = part.get("mime_type", part.get("mimeType"))
        mime = mime if isinstance(mime, str) else None
        declared = modality_of_mime(mime)
        if forced is None and declared is Modality.TEXT:
            return text_item(_decode_text(_part_data(part.get("data"), kind, max_bytes), None))
        if declared in (Modality.IMAGE, Modality.AUDIO, Modality.VIDEO):
            check_modality(declared, forced, f"a media part of type {mime}")
        url = part.get("file_uri", part.get("url"))
        if "data" not in part and isinstance(url, str):
            return Link(url, forced or declared)
        data = _part_data(part.get("data"), kind, max_bytes)
        return bytes_item(data, forced, mime, declared=True)
    raise ClipClapInputError(
        f"unsupported part type {shorten(kind, 40)!r} (expected text, image_url, audio_url, "
        "video_url, input_audio, media, image or audio)"
    )
