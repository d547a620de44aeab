"""Turning whatever a user passes into a typed item of one modality.

Rules, in order of evidence (the README has them as a table):

1. Explicit typing always wins: ``Text(...)``, ``Image(...)``, ``Audio(..., sample_rate=...)``
   and chat-style dict parts (``{"type": "text" | "image_url" | "audio_url" | "input_audio" |
   "media" | "image" | "audio", ...}``) state the modality; ``modality=`` forces one for a
   whole call (a wrapper or part that states another modality is an error, not a guess).
2. Python type: PIL images are images; arrays with ``ndim >= 2`` are images (HxW, HxWxC or
   CxHxW with C in 1-4); 1-D arrays are 48 kHz audio; ``(samples, sample_rate)`` and
   ``(sample_rate, samples)`` pairs are audio.
3. ``bytes``, ``bytearray``, ``memoryview`` and binary file objects (``BytesIO``,
   ``open(..., "rb")``) are recognized by their magic numbers; a file object is read whole,
   from its start, and left where it was.
4. ``pathlib.Path`` (any ``os.PathLike``) and strings naming an existing file: by content,
   then by extension. A string naming a file that is neither is embedded as text (the
   string); a ``Path`` to it is an error.
5. ``data:`` URIs by their MIME type (then by content; no MIME type or ``text/*`` is text);
   ``file:`` URLs like paths; ``http(s)://`` URLs by the extension of their path, else (after
   fetching) by content, then by the response's Content-Type.
6. Every other string is text. A string that merely looks like a media file name
   (``"cat.jpg"``) is text, unless ``strict_paths=True``, which raises instead.

With ``allow_local_files=False`` nothing looks at the file system: strings are never taken
for paths (rule 4 does not apply: they are text), and a ``Path``, a ``file:`` URL or a wrapper
or part naming a path is an error. For servers embedding untrusted input, with
``allow_remote=False``.

Anything else (``None``, numbers, bare lists, sets, ...) is a ``ClipClapInputError``.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import io
import math
import os
import re
import stat
import sys
import urllib.parse
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ClipClapInputError
from ..media.audio import ambiguous_pcm
from ..types import Audio, Image, Modality, Text
from .sniff import modality_of_extension, modality_of_mime, sniff_bytes

DEFAULT_SAMPLE_RATE = 48_000  # a bare waveform (no rate given) is taken to be 48 kHz
MAX_SAMPLE_RATE = 1_000_000  # no real recording is sampled faster; bounds resampling work
_MAX_PATH_LENGTH = 4096
_SNIFF_BYTES = 64
_DATA_URI = re.compile(
    r"data:(?P<mime>[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+)?(?P<params>(?:;[^;,\s]*)*),",
    re.IGNORECASE,
)
_B64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_B64_URLSAFE = re.compile(r"[A-Za-z0-9_-]*={0,2}")
_PCM_INTEGERS = (np.dtype(np.uint8), np.dtype(np.int8), np.dtype(np.int16), np.dtype(np.int32))
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
# ``format: "pcm16"`` of an ``input_audio`` part: headerless 16-bit signed little-endian mono
# PCM at 24 kHz, as OpenAI defines "pcm16" (its Realtime API's audio format).
PCM16_SAMPLE_RATE = 24_000


@dataclass(frozen=True)
class InputOptions:
    """Limits and switches applied while reading inputs."""

    allow_remote: bool = True
    allow_private_urls: bool = True
    allow_local_files: bool = True
    strict_paths: bool = False
    max_remote_bytes: int = 64 * 1024 * 1024
    remote_timeout: float = 30.0
    remote_workers: int = 8


@dataclass(frozen=True)
class Media:
    """Encoded media: bytes in memory or a local file, with its MIME type when known."""

    data: bytes | None = None
    path: Path | None = None
    mime: str | None = None

    @property
    def source(self) -> bytes | Path:
        return self.data if self.data is not None else self.path  # type: ignore[return-value]


@dataclass(frozen=True)
class Waveform:
    """Decoded sound: samples (1-D, or 2-D with a channel axis) and their sample rate."""

    samples: np.ndarray
    sample_rate: int


@dataclass(frozen=True)
class RemoteURL:
    """An http(s) URL to fetch. ``stated``: its modality came from a wrapper, part or
    ``modality=`` (decode it as that, whatever it holds) rather than from its extension."""

    url: str
    stated: bool = False


@dataclass
class Item:
    """One input after classification: its modality and a loadable payload."""

    modality: Modality | None  # None: a remote URL whose modality its content will tell
    payload: Any  # str | Media | PIL image | np.ndarray | Waveform | RemoteURL
    description: str = ""


# --------------------------------------------------------------------------- descriptions


def describe(item: Any) -> str:
    """A short human description of an input, for error messages (never raises)."""
    try:
        return _describe(item)
    except Exception:
        return f"<{type(item).__name__}>"


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe(item: Any) -> str:
    if isinstance(item, str):
        return repr(_short(str(item)))
    if isinstance(item, bytes | bytearray | memoryview):
        data = bytes(item[:_SNIFF_BYTES]) if not isinstance(item, memoryview) else b""
        kind = sniff_bytes(data) if data else None
        size = item.nbytes if isinstance(item, memoryview) else len(item)
        return f"<{size:,} bytes{', ' + kind[1] if kind else ''}>"
    if isinstance(item, np.ndarray):
        return f"<array {item.dtype} {tuple(item.shape)}>"
    if isinstance(item, os.PathLike):
        return repr(_short(os.fsdecode(os.fspath(item)), 80))
    if isinstance(item, Text):
        return f"Text({_describe(item.text)})"
    if isinstance(item, Image):
        return f"Image({_describe(item.source)})"
    if isinstance(item, Audio):
        rate = f", sample_rate={item.sample_rate!r}" if item.sample_rate is not None else ""
        return f"Audio({_describe(item.source)}{rate})"
    if isinstance(item, dict):
        kind = item.get("type", "dict")
        return f"<{_short(kind if isinstance(kind, str) else repr(kind), 30)} part>"
    if isinstance(item, tuple):
        if len(item) == 2 and any(isinstance(x, np.ndarray) for x in item):
            arr = item[0] if isinstance(item[0], np.ndarray) else item[1]
            other = item[1] if arr is item[0] else item[0]
            return f"<waveform {arr.dtype} {tuple(arr.shape)}, rate {_short(repr(other), 20)}>"
        return f"<tuple of {len(item)}>"
    if isinstance(item, list | set | frozenset):
        return f"<{type(item).__name__} of {len(item)}>"
    if _is_pil(item):
        return f"<PIL {item.mode} {item.size[0]}x{item.size[1]}>"
    if isinstance(item, io.IOBase) or hasattr(item, "read"):
        name = getattr(item, "name", None)
        label = type(item).__name__
        return f"<{label} {_short(repr(name), 60)}>" if isinstance(name, str) else f"<{label}>"
    return f"<{type(item).__name__}>"


def _is_pil(obj: Any) -> bool:
    """A PIL image, of any subclass (plugins such as pillow-heif's, or the caller's own).

    PIL is not imported here: an object cannot be a PIL image unless ``PIL.Image`` is loaded.
    """
    pil_image = sys.modules.get("PIL.Image")
    return pil_image is not None and isinstance(obj, pil_image.Image)


# --------------------------------------------------------------------------- helpers


def _conflict(stated: Modality, forced: Modality | None, what: str) -> None:
    if forced is not None and forced is not stated:
        raise ClipClapInputError(f"{what} is {stated.value}, but {forced.value} was asked for")


def _text_item(text: str) -> Item:
    text = str.__str__(text)  # a plain str, even from a str subclass (numpy.str_, ...)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ClipClapInputError(
            "the text is not valid Unicode (it holds unpaired surrogate code points)"
        ) from None
    return Item(Modality.TEXT, text)


def _sniff_file(path: Path) -> tuple[Modality, str] | None:
    with open(path, "rb") as f:
        return sniff_bytes(f.read(_SNIFF_BYTES))


def _existing_file(text: str) -> Path | None:
    """``text`` as a path when it names an existing regular file, else None (never raises)."""
    if not text or len(text) > _MAX_PATH_LENGTH or "\n" in text or "\0" in text:
        return None
    try:
        path = Path(text).expanduser()
        return path if path.is_file() else None
    except Exception:  # bad encodings, unknown ~user, permission errors, ...
        return None


def _exists(text: str) -> bool:
    if not text or len(text) > _MAX_PATH_LENGTH or "\0" in text:
        return False
    try:
        return Path(text).expanduser().exists()
    except Exception:
        return False


def _looks_like_media_name(text: str) -> bool:
    return (
        0 < len(text) <= _MAX_PATH_LENGTH
        and "\n" not in text
        and modality_of_extension(text.strip()) is not None
    )


def _file_media(path: Path, forced: Modality | None) -> Item:
    """A local file as media of the forced modality, or of the modality its content shows."""
    try:
        if not path.exists():
            raise ClipClapInputError(f"no such file: {_short(str(path), 200)}")
        if path.is_dir():
            raise ClipClapInputError(f"a directory, not a file: {_short(str(path), 200)}")
        if not path.is_file():
            raise ClipClapInputError(f"not a regular file: {_short(str(path), 200)}")
        sniffed = _sniff_file(path)
    except ClipClapInputError:
        raise
    except (OSError, ValueError) as exc:
        raise ClipClapInputError(f"cannot read the file ({_short(str(exc), 160)})") from None
    by_ext = modality_of_extension(path.name)
    if forced is Modality.TEXT:
        raise ClipClapInputError("a file cannot be embedded as text (pass its text as a str)")
    modality = forced or (sniffed[0] if sniffed else by_ext)
    if modality is None:
        raise ClipClapInputError(
            "the file is neither an image nor audio that can be recognized (no known magic "
            "number or extension; wrap it in Image(...) or Audio(...) to force one)"
        )
    return Item(modality, Media(path=path, mime=sniffed[1] if sniffed else None))


def _bytes_media(
    data: bytes, forced: Modality | None, mime: str | None = None, *, declared: bool = False
) -> Item:
    """Encoded bytes as media: the forced modality, else (declared) MIME type, else content."""
    if forced is Modality.TEXT:
        raise ClipClapInputError("bytes cannot be embedded as text (decode them to a str)")
    if not data:
        raise ClipClapInputError("empty (0 bytes)")
    sniffed = sniff_bytes(data[:_SNIFF_BYTES])
    by_mime = modality_of_mime(mime)
    by_mime = by_mime if by_mime in (Modality.IMAGE, Modality.AUDIO) else None
    if forced is not None:
        modality: Modality | None = forced
    elif declared and by_mime is not None:
        modality = by_mime
    else:
        modality = (sniffed[0] if sniffed else None) or by_mime
    if modality is None:
        raise ClipClapInputError(
            f"bytes that are neither a recognizable image nor audio (they start with "
            f"{data[:12]!r}; wrap them in Image(...) or Audio(...) to force one)"
        )
    return Item(modality, Media(data=data, mime=sniffed[1] if sniffed else mime))


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


def parse_data_uri(uri: str) -> tuple[str | None, dict[str, str], bytes]:
    """(MIME type, parameters, decoded bytes) of a ``data:`` URI."""
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
    data = _b64decode(payload) if base64_encoded else urllib.parse.unquote_to_bytes(payload)
    return (mime.lower() if mime else None), params, data


def _data_uri(uri: str, forced: Modality | None) -> Item:
    mime, params, data = parse_data_uri(uri)
    declared = modality_of_mime(mime)
    textual = declared is Modality.TEXT or (mime is None and not sniff_bytes(data[:64]))
    if forced is None and textual:
        return _text_item(_decode_text(data, params.get("charset")))
    if forced is None and mime is not None and declared is None:
        sniffed = sniff_bytes(data[:_SNIFF_BYTES])
        if sniffed is None:
            raise ClipClapInputError(f"a data: URI of type {mime}, neither image, audio nor text")
    return _bytes_media(data, forced, mime, declared=True)


def _decode_text(data: bytes, charset: str | None) -> str:
    encoding = "utf-8"
    if charset:
        try:
            encoding = codecs.lookup(charset).name
        except LookupError:
            raise ClipClapInputError(f"unknown charset {_short(charset, 40)!r}") from None
        if encoding == "ascii":  # RFC 2397's default, in practice UTF-8 more often than not
            encoding = "utf-8"
    try:
        return data.decode(encoding)
    except (UnicodeDecodeError, ValueError):
        raise ClipClapInputError(f"the text is not valid {encoding}") from None


def file_url_path(url: str) -> Path:
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        raise ClipClapInputError("a malformed file: URL") from None
    if parts.netloc not in ("", "localhost"):
        raise ClipClapInputError(f"a file: URL on another host ({parts.netloc}) is not readable")
    return Path(urllib.request.url2pathname(parts.path))


_A_NUMBER = (
    "a single number is neither an image nor audio (a waveform's samples passed as the list "
    "of inputs? wrap the waveform in a list: [samples] or [(samples, sample_rate)])"
)
_NO_LOCAL_FILES = "reading local files is disabled (allow_local_files=False)"


def _string(text: str, forced: Modality | None, options: InputOptions) -> Item:
    if forced is Modality.TEXT:
        return _text_item(text)
    local = options.allow_local_files
    stripped = text.strip()
    head = stripped[:8].lower()
    single_token = bool(stripped) and not any(c.isspace() for c in stripped)
    if head.startswith("data:"):
        if _DATA_URI.match(stripped):
            return _data_uri(stripped, forced)
        if forced is not None:
            raise ClipClapInputError("a malformed data: URI")
    elif head.startswith("file:/"):  # file:/x, file:///x, file://localhost/x
        file_path = file_url_path(stripped)
        if not local and (single_token or forced is not None):
            raise ClipClapInputError(_NO_LOCAL_FILES)
        if local and (single_token or forced is not None or _exists(str(file_path))):
            return _file_media(file_path, forced)
    elif head.startswith(("http://", "https://")) and single_token:
        if not options.allow_remote:
            raise ClipClapInputError("fetching URLs is disabled (allow_remote=False)")
        try:
            url_path = urllib.parse.urlsplit(stripped).path
        except ValueError:
            raise ClipClapInputError("a malformed URL") from None
        if forced is not None:
            return Item(forced, RemoteURL(stripped, stated=True))
        return Item(modality_of_extension(url_path), RemoteURL(stripped))
    path: Path | None = None
    if not local:  # never look at the file system: the string is text, or an error
        if forced is not None:
            raise ClipClapInputError(_NO_LOCAL_FILES)
    else:
        path = _existing_file(text) or (_existing_file(stripped) if stripped != text else None)
    if forced is not None:  # Image("x.png") / Audio("x.wav"): must be media somewhere
        if path is None:
            if _exists(text):  # a directory, a device, a FIFO: say which
                return _file_media(Path(text).expanduser(), forced)
            raise ClipClapInputError(
                f"no such file: {_short(text, 200)!r} (an {forced.value} must be given as a "
                "path, URL, data: URI, bytes, file object or decoded data)"
            )
        return _file_media(path, forced)
    if path is not None:
        try:
            sniffed = _sniff_file(path)
        except OSError:
            sniffed = None
        modality = sniffed[0] if sniffed else modality_of_extension(path.name)
        if modality is not None:
            return Item(modality, Media(path=path, mime=sniffed[1] if sniffed else None))
    elif options.strict_paths and _looks_like_media_name(text):
        raise ClipClapInputError(
            "looks like a media file name but no such file exists (strict_paths=True; wrap "
            "it in Text(...) to embed the string)"
        )
    return _text_item(text)


# --------------------------------------------------------------------------- chat parts


def _part_url(value: Any, kind: str) -> str:
    url = value.get("url") if isinstance(value, dict) else value
    if not isinstance(url, str):
        raise ClipClapInputError(f"the {kind} part needs a URL string")
    return url


def _part_data(data: Any, kind: str) -> bytes:
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    if isinstance(data, str):
        return _b64decode(data)
    raise ClipClapInputError(f"the {kind} part needs base64 'data'")


def _media_part(part: dict[str, Any], target: Modality, kind: str, options: InputOptions) -> Item:
    """``image`` / ``audio`` parts: Anthropic ``source`` blocks and LangChain content blocks."""
    source = part.get("source")
    if isinstance(source, dict):  # {"type": "base64", "media_type", "data"} | {"type": "url"}
        if source.get("type") == "url" or "url" in source:
            return _string(_part_url(source, kind), target, options)
        data = _part_data(source.get("data"), kind)
        mime = source.get("media_type") or source.get("mime_type")
        return _bytes_media(data, target, mime if isinstance(mime, str) else None)
    mime = part.get("mime_type") or part.get("media_type")
    mime = mime if isinstance(mime, str) else None
    if isinstance(part.get("url"), str):
        return _string(part["url"], target, options)
    if part.get("source_type") == "url" and isinstance(part.get("data"), str):
        return _string(part["data"], target, options)
    if "base64" in part:  # base64 by name, even when given as bytes of base64 text
        value = part["base64"]
        if isinstance(value, bytes | bytearray):
            value = bytes(value).decode("ascii", "replace")
        return _bytes_media(_part_data(value, kind), target, mime)
    if "data" in part:
        return _bytes_media(_part_data(part["data"], kind), target, mime)
    raise ClipClapInputError(f"the {kind} part needs 'url', 'base64', 'data' or 'source'")


def _pcm16(data: bytes) -> Item:
    """Raw ``pcm16`` audio: 16-bit signed little-endian mono samples at 24 kHz."""
    if not data:
        raise ClipClapInputError("empty (0 bytes)")
    if len(data) % 2:
        raise ClipClapInputError(
            f"pcm16 audio must be whole 16-bit samples, got an odd number of bytes ({len(data):,})"
        )
    return _waveform(np.frombuffer(data, dtype="<i2").astype(np.int16), PCM16_SAMPLE_RATE)


def _dict_part(part: dict[Any, Any], forced: Modality | None, options: InputOptions) -> Item:
    kind = part.get("type")
    if kind is None:  # untyped parts: infer the type from the one key that says it
        for key in ("image_url", "audio_url", "input_audio", "text"):
            if key in part:
                kind = key
                break
    if not isinstance(kind, str):
        raise ClipClapInputError(
            "a dict input needs a 'type' (text, image_url, audio_url, input_audio, media, "
            "image or audio)"
        )
    kind = kind.lower()
    if kind in ("text", "input_text"):
        _conflict(Modality.TEXT, forced, f"a {kind} part")
        text = part.get("text")
        if not isinstance(text, str):
            raise ClipClapInputError(f"the {kind} part needs a string 'text'")
        return _text_item(text)
    if kind in ("image_url", "input_image"):
        _conflict(Modality.IMAGE, forced, f"an {kind} part")
        value = part.get("image_url", part.get("url"))
        return _string(_part_url(value, kind), Modality.IMAGE, options)
    if kind == "audio_url":
        _conflict(Modality.AUDIO, forced, "an audio_url part")
        value = part.get("audio_url", part.get("url"))
        return _string(_part_url(value, kind), Modality.AUDIO, options)
    if kind == "input_audio":
        _conflict(Modality.AUDIO, forced, "an input_audio part")
        value = part.get("input_audio")
        if not isinstance(value, dict):
            raise ClipClapInputError("an input_audio part needs {'data': <base64>, 'format': ...}")
        fmt = value.get("format")
        data = _part_data(value.get("data"), kind)
        if isinstance(fmt, str) and fmt.lower() == "pcm16":
            return _pcm16(data)
        mime = _FORMAT_MIME.get(fmt.lower(), f"audio/{fmt}") if isinstance(fmt, str) else None
        return _bytes_media(data, Modality.AUDIO, mime)
    if kind in ("image", "audio"):
        target = Modality(kind)
        _conflict(target, forced, f"an {kind} part")
        return _media_part(part, target, kind, options)
    if kind == "media":
        mime = part.get("mime_type", part.get("mimeType"))
        mime = mime if isinstance(mime, str) else None
        declared = modality_of_mime(mime)
        if forced is None and declared is Modality.TEXT:
            return _text_item(_decode_text(_part_data(part.get("data"), kind), None))
        if declared in (Modality.IMAGE, Modality.AUDIO):
            _conflict(declared, forced, f"a media part of type {mime}")
        url = part.get("file_uri", part.get("url"))
        if "data" not in part and isinstance(url, str):
            stated = forced or declared
            if stated is not None:
                return _string(url, stated, options)
            found = _string(url, None, options)
            if found.modality is Modality.TEXT:  # a media part is never text by accident
                raise ClipClapInputError(
                    _NO_LOCAL_FILES
                    if not options.allow_local_files
                    else "the media part's file_uri is neither an image nor a sound "
                    "(no such file, or not media; give mime_type for a URL without one)"
                )
            return found
        return _bytes_media(_part_data(part.get("data"), kind), forced, mime, declared=True)
    raise ClipClapInputError(
        f"unsupported part type {_short(kind, 40)!r} (expected text, image_url, audio_url, "
        "input_audio, media, image or audio)"
    )


# --------------------------------------------------------------------------- streams, arrays


_STREAM_CHUNK = 1 << 16


def _read_some(stream: Any, n: int) -> Any:
    try:
        return stream.read(n)
    except TypeError:  # a read() that takes no size: all we can do is call it once
        return stream.read()


def _stream_media(stream: Any, forced: Modality | None, options: InputOptions) -> Item:
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
            return _bytes_media(stream.getvalue(), forced)
        except ValueError as exc:  # a closed BytesIO
            raise ClipClapInputError(f"the file object cannot be read ({exc})") from None
    regular = False
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
            if forced is None and first and sniff_bytes(first[:_SNIFF_BYTES]) is None:
                return _bytes_media(first, None)  # raises: not media, whatever follows
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
    return _bytes_media(data, forced)


def _checked_chunk(data: Any) -> bytes:
    if isinstance(data, str):
        raise ClipClapInputError("a text-mode file object: open the file in binary mode ('rb')")
    if data is None:  # a non-blocking stream with nothing ready
        return b""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ClipClapInputError(f"the file object's read() gave {type(data).__name__}, not bytes")
    return bytes(data)


def _sample_rate(rate: Any) -> int:
    bad = ClipClapInputError(
        f"the sample rate must be a whole number of Hz in [1, {MAX_SAMPLE_RATE:,}], "
        f"got {_short(repr(rate), 40)}"
    )
    if not _is_rate(rate):
        raise bad
    try:
        value = float(rate)
    except (OverflowError, ValueError):
        raise bad from None
    if not math.isfinite(value) or value != int(value) or not 1 <= value <= MAX_SAMPLE_RATE:
        raise bad
    return int(value)


def numeric_array(value: Any, what: str = "the array") -> np.ndarray:
    """``np.asarray(value)``, refused unless it holds numbers (bool, int or float)."""
    try:
        arr = np.asarray(value)
    except Exception as exc:
        raise ClipClapInputError(f"cannot be read as an array ({_short(str(exc), 100)})") from None
    if arr.dtype.kind not in "biuf":
        raise ClipClapInputError(f"{what} must hold numbers, not {arr.dtype}")
    return arr


def _waveform(samples: Any, rate: Any) -> Item:
    rate = _sample_rate(rate)
    arr = numeric_array(samples)
    if arr.ndim not in (1, 2):
        raise ClipClapInputError(
            f"a waveform must be 1-D (mono) or 2-D (channels x samples or samples x channels), "
            f"got shape {tuple(arr.shape)}"
        )
    if arr.dtype.kind in "iu" and arr.dtype not in _PCM_INTEGERS:
        raise ClipClapInputError(ambiguous_pcm(arr.dtype))
    if arr.size == 0:
        raise ClipClapInputError("the audio is empty (no samples)")
    return Item(Modality.AUDIO, Waveform(arr, rate))


def image_array_layout(shape: tuple[int, ...]) -> str:
    """``"HW"``, ``"HWC"`` or ``"CHW"`` for an image array's shape; raises if none fits.

    Channels last wins (HxWxC, C in 1-4: gray, gray+alpha, RGB, RGBA); channels first (CxHxW)
    is taken only when the last axis cannot be channels.
    """
    if len(shape) == 2:
        return "HW"
    if len(shape) == 3:
        if 1 <= shape[-1] <= 4:
            return "HWC"
        if 1 <= shape[0] <= 4:
            return "CHW"
    hint = ""
    if len(shape) == 4:
        hint = " (a batch? pass each image as its own item)"
    elif len(shape) == 2 and min(shape) <= 8:
        hint = " (multichannel audio? pass (samples, sample_rate))"
    raise ClipClapInputError(
        f"an image array must be HxW, HxWxC or CxHxW with 1-4 channels, got shape "
        f"{tuple(shape)}{hint}"
    )


def _array(value: Any, forced: Modality | None) -> Item:
    arr = numeric_array(value)
    if forced is Modality.TEXT:
        raise ClipClapInputError("an array cannot be embedded as text")
    if arr.ndim == 0:
        raise ClipClapInputError(f"a 0-D array: {_A_NUMBER}")
    if forced is Modality.AUDIO or (forced is None and arr.ndim == 1):
        return _waveform(arr, DEFAULT_SAMPLE_RATE)
    if arr.ndim == 1:
        raise ClipClapInputError("a 1-D array is audio, not an image")
    image_array_layout(arr.shape)
    if 0 in arr.shape:
        raise ClipClapInputError(f"the image has zero size (shape {tuple(arr.shape)})")
    return Item(Modality.IMAGE, arr)


def _is_rate(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


def _is_samples(value: Any) -> bool:
    if isinstance(value, str | bytes | bytearray | dict) or _is_pil(value):
        return False
    return isinstance(value, np.ndarray | list | tuple) or hasattr(value, "__array__")


def _pair(item: tuple[Any, ...], forced: Modality | None) -> Item:
    if len(item) == 2:
        first, second = item
        if _is_samples(first) and _is_rate(second):
            samples, rate = first, second
        elif _is_rate(first) and _is_samples(second):  # (rate, samples): scipy, Gradio
            samples, rate = second, first
        else:
            raise ClipClapInputError(
                f"a pair of {type(first).__name__} and {type(second).__name__}: expected "
                "(samples, sample_rate)"
            )
        if forced is not None:
            _conflict(Modality.AUDIO, forced, "a (samples, sample_rate) pair")
        return _waveform(samples, rate)
    raise ClipClapInputError(f"a tuple of {len(item)} items: expected (samples, sample_rate)")


# --------------------------------------------------------------------------- classification


def classify(item: Any, options: InputOptions, forced: Modality | None = None) -> Item:
    """The modality and payload of one input (remote URLs are not fetched here).

    Raises only ``ClipClapInputError``: any other exception an odd object provokes is turned
    into one.
    """
    try:
        it = _classify(item, options, forced)
    except ClipClapInputError as exc:
        if exc.item_description:
            raise
        raise ClipClapInputError(exc.reason, index=exc.index, item=describe(item)) from None
    except RecursionError:
        raise ClipClapInputError("nested too deeply", item=describe(item)) from None
    except Exception as exc:
        raise ClipClapInputError(
            f"cannot be read ({type(exc).__name__}: {_short(str(exc), 120)})",
            item=describe(item),
        ) from None
    if not it.description:
        it.description = describe(item)
    return it


def _classify(item: Any, options: InputOptions, forced: Modality | None = None) -> Item:
    if isinstance(item, Text):
        _conflict(Modality.TEXT, forced, "Text(...)")
        if not isinstance(item.text, str):
            raise ClipClapInputError(f"Text(...) needs a str, got {type(item.text).__name__}")
        return _text_item(item.text)
    if isinstance(item, Image):
        _conflict(Modality.IMAGE, forced, "Image(...)")
        return _classify(item.source, options, Modality.IMAGE)
    if isinstance(item, Audio):
        _conflict(Modality.AUDIO, forced, "Audio(...)")
        source, rate = item.source, item.sample_rate
        if rate is not None and _is_samples(source) and not isinstance(source, tuple):
            return _waveform(source, rate)
        it = _classify(source, options, Modality.AUDIO)
        if rate is not None and isinstance(it.payload, Waveform):  # Audio((samples, rate), ...)
            stated = _sample_rate(rate)
            if stated != it.payload.sample_rate:
                raise ClipClapInputError(
                    f"two sample rates: Audio(..., sample_rate={stated}) around a (samples, "
                    f"sample_rate) pair of rate {it.payload.sample_rate} (give the rate once)"
                )
        return it
    if isinstance(item, str):
        return _string(item, forced, options)
    if isinstance(item, os.PathLike):
        path = Path(os.fsdecode(os.fspath(item)))
        if forced is Modality.TEXT:
            return _text_item(str(path))
        if not options.allow_local_files:
            raise ClipClapInputError(_NO_LOCAL_FILES)
        return _file_media(path.expanduser(), forced)
    if isinstance(item, bytes | bytearray | memoryview):
        return _bytes_media(bytes(item), forced)
    if isinstance(item, dict):
        return _dict_part(item, forced, options)
    if _is_pil(item):
        _conflict(Modality.IMAGE, forced, "a PIL image")
        return Item(Modality.IMAGE, item)
    if isinstance(item, tuple):
        return _pair(item, forced)
    if isinstance(item, list):
        if forced in (Modality.IMAGE, Modality.AUDIO):  # Image([[...]]), Audio([...])
            return _array(item, forced)
        raise ClipClapInputError(
            "a list is not an input: pass its items as separate inputs, or an array (a numpy "
            "array, or Image(...) / Audio(...) around the list)"
        )
    if isinstance(item, np.ndarray) or hasattr(item, "__array__"):
        return _array(item, forced)
    if _is_rate(item) or isinstance(item, complex | bool):
        raise ClipClapInputError(f"unsupported input type {type(item).__name__}: {_A_NUMBER}")
    if isinstance(item, io.IOBase) or callable(getattr(item, "read", None)):
        return _stream_media(item, forced, options)
    raise ClipClapInputError(
        f"unsupported input type {type(item).__name__} (expected a string, path, bytes, file "
        "object, PIL image, array, (samples, sample_rate) pair, dict part or Text/Image/Audio)"
    )


def _resolve_fetched(item: Item, data: bytes, content_type: str | None) -> Item:
    """The modality and media of a fetched URL: stated, else extension, else content/type."""
    url: RemoteURL = item.payload
    if not data:
        raise ClipClapInputError("the URL served no content")
    if url.stated:
        return _bytes_media(data, item.modality, content_type)
    sniffed = sniff_bytes(data[:_SNIFF_BYTES])
    if item.modality is not None:  # from the URL's extension
        if sniffed is not None and sniffed[0] is not item.modality:
            raise ClipClapInputError(
                f"the URL's extension says {item.modality.value}, but it serves {sniffed[1]} "
                f"(wrap it in {'Audio' if sniffed[0] is Modality.AUDIO else 'Image'}(...) to "
                "embed what it serves)"
            )
        return _bytes_media(data, item.modality, content_type)
    if sniffed is None and modality_of_mime(content_type) not in (Modality.IMAGE, Modality.AUDIO):
        kind = (content_type or "no Content-Type").split(";")[0].strip()
        raise ClipClapInputError(
            f"the URL serves {_short(kind, 60)} content that is neither a recognizable image "
            "nor audio"
        )
    return _bytes_media(data, None, content_type)


def resolve_remote(items: Sequence[Item], indices: Sequence[int], options: InputOptions) -> None:
    """Fetch every remote URL among ``items`` concurrently; set their payload and modality.

    Each distinct URL is fetched once. Raises the ClipClapInputError of the first failing
    item (by position).
    """
    from .remote import fetch

    pending = [
        (i, it) for i, it in zip(indices, items, strict=True) if isinstance(it.payload, RemoteURL)
    ]
    if not pending:
        return
    if not options.allow_remote:
        index, it = pending[0]
        raise ClipClapInputError(
            "fetching URLs is disabled (allow_remote=False)", index=index, item=it.description
        )
    urls = list(dict.fromkeys(it.payload.url for _, it in pending))

    def one(url: str) -> Any:
        try:
            return fetch(
                url,
                timeout=options.remote_timeout,
                max_bytes=options.max_remote_bytes,
                public_only=not options.allow_private_urls,
            )
        except ClipClapInputError as exc:
            return exc
        except Exception as exc:  # pragma: no cover - fetch turns failures into input errors
            return ClipClapInputError(f"the download failed ({type(exc).__name__}: {exc})")

    workers = max(1, min(options.remote_workers, len(urls)))
    if workers == 1:
        results = dict(zip(urls, map(one, urls), strict=True))
    else:
        with ThreadPoolExecutor(workers, thread_name_prefix="clipclap-fetch") as pool:
            results = dict(zip(urls, pool.map(one, urls), strict=True))
    for index, it in pending:
        got = results[it.payload.url]
        try:
            if isinstance(got, ClipClapInputError):
                raise got
            resolved = _resolve_fetched(it, got.data, got.content_type)
        except ClipClapInputError as exc:
            raise ClipClapInputError(exc.reason, index=index, item=it.description) from None
        it.modality, it.payload = resolved.modality, resolved.payload


def input_list(inputs: Any, forced: Modality | None = None) -> Sequence[Any]:
    """``inputs`` when it is unambiguously a list of items; a ``TypeError`` otherwise.

    A list, tuple or other sequence is a list of items; so is a 1-D numpy array of strings
    or objects, a 4-D array (a stack of images, when images are possible) and, when audio
    is asked for, a 2-D array (a stack of 48 kHz mono waveforms). Any other array is refused
    rather than iterated: an image (HxWxC) would give one item per pixel row and a waveform
    one per sample. A string, bytes and a ``(samples, sample_rate)`` pair are single items,
    refused too.
    """
    if isinstance(inputs, np.ndarray):
        if inputs.ndim == 1 and inputs.dtype.kind in "OUT":  # str, objects, StringDType
            return list(inputs)
        numeric = inputs.dtype.kind in "biuf"
        if numeric and inputs.ndim == 4 and forced in (None, Modality.IMAGE):
            return list(inputs)
        if numeric and inputs.ndim == 2 and forced is Modality.AUDIO:
            return list(inputs)
        shape = tuple(inputs.shape)
        raise TypeError(
            f"inputs must be a list of items, got a numpy array of shape {shape} "
            f"({inputs.dtype}): wrap a single image or waveform in a list ([array]); "
            "to embed each entry along the first axis as its own item, pass list(array)"
        )
    if isinstance(inputs, tuple) and len(inputs) == 2:
        first, second = inputs
        if (_is_samples(first) and _is_rate(second)) or (_is_rate(first) and _is_samples(second)):
            raise TypeError(
                "inputs must be a list of items, got a (samples, sample_rate) pair: wrap it "
                "in a list ([(samples, sample_rate)])"
            )
    if isinstance(inputs, str | bytes | bytearray | memoryview) or not isinstance(inputs, Sequence):
        raise TypeError(
            f"inputs must be a list of items, got {type(inputs).__name__} "
            "(wrap a single item in a list)"
        )
    return inputs


def classify_all(
    inputs: Sequence[Any],
    options: InputOptions,
    forced: Modality | None = None,
    *,
    fetch: bool = True,
) -> list[Item]:
    """Classify every input and (with ``fetch``) fetch remote ones; errors name the failing
    position. Without ``fetch`` remote items keep a ``RemoteURL`` payload (see
    ``resolve_remote``) and, unless the URL told, no modality yet."""
    inputs = input_list(inputs, forced)
    items: list[Item] = []
    for index, raw in enumerate(inputs):
        try:
            it = classify(raw, options, forced)
        except ClipClapInputError as exc:
            raise ClipClapInputError(exc.reason, index=index, item=describe(raw)) from None
        items.append(it)
    if fetch:
        resolve_remote(items, range(len(items)), options)
    return items


URLS_PER_FETCH = 32  # URLs downloaded (and held) at a time within one call


def fetch_groups(items: Sequence[Item], per_group: int) -> list[list[int]]:
    """Consecutive row groups holding at most ``per_group`` URLs each (all rows at once
    when there are no more URLs than that)."""
    groups: list[list[int]] = [[]]
    urls = 0
    for i, item in enumerate(items):
        if is_remote(item):
            if urls == per_group:
                groups.append([])
                urls = 0
            urls += 1
        groups[-1].append(i)
    return groups


def is_remote(item: Item) -> bool:
    """Whether ``item`` is a URL still to be fetched."""
    return isinstance(item.payload, RemoteURL)
