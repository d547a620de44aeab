"""Turning whatever a user passes into a typed item of one modality.

Rules, in order of evidence (the README has them as a table):
1. Wrappers (``Text``, ``Image``, ``Audio``) and chat-style dict parts state the modality.
2. Python type: PIL images and arrays with ndim >= 2 are images; 1-D arrays and
   ``(array, sample_rate)`` tuples are audio.
3. Bytes-like objects and open binary files are recognized by their magic numbers.
4. ``pathlib.Path`` and strings naming an existing file: by content, then by extension.
5. ``data:`` URIs by MIME type; ``file://`` URLs like paths; ``http(s)://`` URLs by extension,
   else by the response's Content-Type and content.
6. Every other string is text (``strict_paths=True`` refuses strings that look like missing
   media files instead).
"""

from __future__ import annotations

import base64
import binascii
import io
import urllib.parse
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ClipClapInputError
from .sniff import modality_of_extension, modality_of_mime, sniff_bytes
from .types import Audio, Image, Modality, Text

_MAX_PATH_LENGTH = 4096
_SNIFF_BYTES = 64


@dataclass(frozen=True)
class InputOptions:
    """Limits and switches applied while reading inputs."""

    allow_remote: bool = True
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
    url: str


@dataclass
class Item:
    """One input after classification: its modality and a loadable payload."""

    modality: Modality | None  # None: a remote URL whose modality its content will tell
    payload: Any  # str | Media | PIL image | np.ndarray | Waveform | RemoteURL
    description: str = ""


def describe(item: Any) -> str:
    """A short human description of an input, for error messages."""
    if isinstance(item, str):
        text = item if len(item) <= 60 else item[:57] + "..."
        return repr(text)
    if isinstance(item, bytes | bytearray | memoryview):
        return f"<{len(item)} bytes>"
    if isinstance(item, np.ndarray):
        return f"<array {item.dtype} {tuple(item.shape)}>"
    if isinstance(item, Path):
        return repr(str(item))
    if isinstance(item, Text | Image | Audio):
        inner = item.text if isinstance(item, Text) else item.source
        return f"{type(item).__name__}({describe(inner)})"
    if isinstance(item, dict):
        return f"<{item.get('type', 'dict')} part>"
    if isinstance(item, tuple):
        return f"<tuple of {len(item)}>"
    mode, size = getattr(item, "mode", None), getattr(item, "size", None)
    if mode is not None and isinstance(size, tuple):
        return f"<PIL {mode} {size[0]}x{size[1]}>"
    return f"<{type(item).__name__}>"


def _is_pil(obj: Any) -> bool:
    module = type(obj).__module__
    if not module.startswith("PIL"):
        return False
    from PIL import Image as PILImage

    return isinstance(obj, PILImage.Image)


def _sniff_file(path: Path) -> tuple[Modality, str] | None:
    try:
        with open(path, "rb") as f:
            return sniff_bytes(f.read(_SNIFF_BYTES))
    except OSError:
        return None


def _existing_file(text: str) -> Path | None:
    if not text or len(text) > _MAX_PATH_LENGTH or "\n" in text or "\0" in text:
        return None
    try:
        path = Path(text).expanduser()
        return path if path.is_file() else None
    except (OSError, ValueError):
        return None


def _file_media(path: Path, forced: Modality | None, *, from_path_object: bool) -> Item:
    """A local file as media of the forced modality, or of the modality its content shows."""
    if not path.exists():
        raise ClipClapInputError(f"no such file: {path}")
    if not path.is_file():
        raise ClipClapInputError(f"not a file: {path}")
    sniffed = _sniff_file(path)
    by_ext = modality_of_extension(path.name)
    modality = forced or (sniffed[0] if sniffed else by_ext)
    if modality is None or modality is Modality.TEXT:
        if forced is Modality.TEXT:
            return Item(Modality.TEXT, str(path))
        raise ClipClapInputError(
            "the file is neither an image nor audio that can be recognized "
            + ("" if from_path_object else "(wrap it in Text(...) to embed the string itself)")
        )
    return Item(modality, Media(path=path, mime=sniffed[1] if sniffed else None))


def _bytes_media(data: bytes, forced: Modality | None, mime: str | None = None) -> Item:
    sniffed = sniff_bytes(data[:_SNIFF_BYTES])
    modality = forced or (sniffed[0] if sniffed else None) or modality_of_mime(mime)
    if modality is None or modality is Modality.TEXT:
        if not data:
            raise ClipClapInputError("empty bytes")
        raise ClipClapInputError(
            "bytes that are neither a recognizable image nor audio "
            "(wrap them in Image(...) or Audio(...) to force one)"
        )
    return Item(modality, Media(data=data, mime=(sniffed[1] if sniffed else mime)))


def parse_data_uri(uri: str) -> tuple[str | None, bytes]:
    """(MIME type, decoded bytes) of a ``data:`` URI."""
    header, sep, payload = uri[5:].partition(",")
    if not sep:
        raise ClipClapInputError("a data: URI without a comma")
    parts = header.split(";")
    mime = parts[0].strip() or None
    try:
        if "base64" in (p.strip().lower() for p in parts[1:]):
            data = base64.b64decode(urllib.parse.unquote(payload), validate=False)
        else:
            data = urllib.parse.unquote_to_bytes(payload)
    except (binascii.Error, ValueError):
        raise ClipClapInputError("a data: URI with invalid base64") from None
    return mime, data


def file_url_path(url: str) -> Path:
    parts = urllib.parse.urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise ClipClapInputError(f"a file: URL on another host ({parts.netloc}) is not readable")
    return Path(urllib.request.url2pathname(parts.path))


def _string(text: str, forced: Modality | None, options: InputOptions) -> Item:
    head = text[:8].lower()
    if forced is Modality.TEXT:
        return Item(Modality.TEXT, text)
    if head.startswith("data:"):
        mime, data = parse_data_uri(text)
        if forced is None and modality_of_mime(mime) is Modality.TEXT:
            return Item(Modality.TEXT, data.decode("utf-8", "replace"))
        return _bytes_media(data, forced, mime)
    if head.startswith("file://"):
        return _file_media(file_url_path(text), forced, from_path_object=True)
    if head.startswith(("http://", "https://")):
        if not options.allow_remote:
            raise ClipClapInputError("fetching URLs is disabled (allow_remote=False)")
        path = urllib.parse.urlsplit(text).path
        return Item(forced or modality_of_extension(path), RemoteURL(text))
    path = _existing_file(text)
    if forced is not None:  # Image("x.png") / Audio("x.wav"): must be a file
        if path is None:
            raise ClipClapInputError(f"no such file: {text}")
        return _file_media(path, forced, from_path_object=True)
    if path is not None:
        sniffed = _sniff_file(path)
        modality = sniffed[0] if sniffed else modality_of_extension(path.name)
        if modality in (Modality.IMAGE, Modality.AUDIO):
            return Item(modality, Media(path=path, mime=sniffed[1] if sniffed else None))
    elif options.strict_paths and modality_of_extension(text) is not None and len(text) < 1024:
        raise ClipClapInputError(
            "looks like a media file name but no such file exists (strict_paths=True)"
        )
    return Item(Modality.TEXT, text)


def _dict_part(part: dict[str, Any], forced: Modality | None, options: InputOptions) -> Item:
    kind = part.get("type")
    if kind in ("text", "input_text"):
        text = part.get("text")
        if not isinstance(text, str):
            raise ClipClapInputError(f"a {kind} part needs a string 'text'")
        return Item(Modality.TEXT, text)
    if kind in ("image_url", "input_image", "audio_url"):
        target = Modality.AUDIO if kind == "audio_url" else Modality.IMAGE
        value = part.get(kind) if kind != "input_image" else part.get("image_url")
        url = value.get("url") if isinstance(value, dict) else value
        if not isinstance(url, str):
            raise ClipClapInputError(f"a {kind} part needs a URL string")
        return _string(url, forced or target, options)
    if kind == "input_audio":
        value = part.get("input_audio")
        data = value.get("data") if isinstance(value, dict) else None
        if not isinstance(data, str):
            raise ClipClapInputError("an input_audio part needs base64 'data'")
        fmt = value.get("format") if isinstance(value, dict) else None
        return _bytes_media(
            _b64(data), forced or Modality.AUDIO, f"audio/{fmt}" if isinstance(fmt, str) else None
        )
    if kind == "media":
        data = part.get("data")
        mime = part.get("mime_type") or part.get("mimeType")
        if not isinstance(data, str):
            raise ClipClapInputError("a media part needs base64 'data'")
        mime = mime if isinstance(mime, str) else None
        target = forced or modality_of_mime(mime)
        if target is Modality.TEXT:
            return Item(Modality.TEXT, _b64(data).decode("utf-8", "replace"))
        return _bytes_media(_b64(data), target, mime)
    raise ClipClapInputError(
        f"unsupported part type {kind!r} (expected text, image_url, audio_url, input_audio "
        "or media)"
    )


def _b64(data: str) -> bytes:
    try:
        return base64.b64decode(data, validate=False)
    except (binascii.Error, ValueError):
        raise ClipClapInputError("invalid base64 data") from None


def _read_stream(stream: Any) -> bytes:
    try:
        data = stream.getvalue() if isinstance(stream, io.BytesIO) else stream.read()
    except (OSError, ValueError) as exc:
        raise ClipClapInputError(f"the file object cannot be read ({exc})") from None
    if not isinstance(data, bytes | bytearray):
        raise ClipClapInputError("the file object does not return bytes (open it in binary mode)")
    return bytes(data)


def _waveform(samples: Any, rate: Any) -> Item:
    if isinstance(rate, bool) or not isinstance(rate, int | np.integer) or int(rate) <= 0:
        raise ClipClapInputError(f"the sample rate must be a positive integer, got {rate!r}")
    arr = np.asarray(samples)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise ClipClapInputError(f"audio samples must be numbers, got {arr.dtype}")
    if arr.ndim not in (1, 2):
        raise ClipClapInputError(f"a waveform must be 1-D or 2-D, got shape {tuple(arr.shape)}")
    return Item(Modality.AUDIO, Waveform(arr, int(rate)))


def classify(item: Any, options: InputOptions, forced: Modality | None = None) -> Item:
    """The modality and payload of one input (remote URLs are not fetched here)."""
    if isinstance(item, Text):
        if not isinstance(item.text, str):
            raise ClipClapInputError("Text(...) needs a string")
        return Item(Modality.TEXT, item.text)
    if isinstance(item, Image):
        return classify(item.source, options, Modality.IMAGE)
    if isinstance(item, Audio):
        if item.sample_rate is not None and not isinstance(item.source, str | Path | bytes):
            return _waveform(item.source, item.sample_rate)
        return classify(item.source, options, Modality.AUDIO)
    if isinstance(item, str):
        return _string(item, forced, options)
    if isinstance(item, Path):
        if forced is Modality.TEXT:
            return Item(Modality.TEXT, str(item))
        return _file_media(item.expanduser(), forced, from_path_object=True)
    if isinstance(item, bytes | bytearray | memoryview):
        return _bytes_media(bytes(item), forced)
    if isinstance(item, dict):
        return _dict_part(item, forced, options)
    if _is_pil(item):
        if forced is Modality.AUDIO:
            raise ClipClapInputError("a PIL image cannot be audio")
        return Item(Modality.IMAGE, item)
    if isinstance(item, tuple) and len(item) == 2 and not isinstance(item[0], str | bytes):
        if forced is Modality.IMAGE:
            raise ClipClapInputError("an (array, sample_rate) pair cannot be an image")
        return _waveform(item[0], item[1])
    if hasattr(item, "read") and not isinstance(item, np.ndarray):
        return _bytes_media(_read_stream(item), forced)
    if isinstance(item, np.ndarray) or hasattr(item, "__array__"):
        try:
            arr = np.asarray(item)
        except Exception as exc:
            raise ClipClapInputError(f"cannot be read as an array ({exc})") from None
        if arr.dtype == object or arr.ndim == 0:
            raise ClipClapInputError("an array input must be numeric with at least one axis")
        if forced is Modality.AUDIO or (forced is None and arr.ndim == 1):
            return _waveform(arr, 48_000)
        if forced is Modality.TEXT:
            raise ClipClapInputError("an array cannot be text")
        return Item(Modality.IMAGE, arr)
    raise ClipClapInputError(
        f"unsupported input type {type(item).__name__} (expected a string, path, bytes, file "
        "object, PIL image, array, (array, sample_rate) pair, dict part or Text/Image/Audio)"
    )


def resolve_remote(items: Sequence[Item], indices: Sequence[int], options: InputOptions) -> None:
    """Fetch every remote URL among ``items`` concurrently; set their payload and modality.

    Raises the ClipClapInputError of the first failing item (by position).
    """
    from .remote import fetch

    pending = [
        (i, it) for i, it in zip(indices, items, strict=True) if isinstance(it.payload, RemoteURL)
    ]
    if not pending:
        return

    def one(entry: tuple[int, Item]) -> ClipClapInputError | None:
        index, it = entry
        try:
            got = fetch(
                it.payload.url, timeout=options.remote_timeout, max_bytes=options.max_remote_bytes
            )
            resolved = _bytes_media(got.data, it.modality, got.content_type)
        except ClipClapInputError as exc:
            return exc.at(index) if exc.index is None else exc
        it.modality, it.payload = resolved.modality, resolved.payload
        return None

    workers = max(1, min(options.remote_workers, len(pending)))
    if workers == 1:
        errors = [one(e) for e in pending]
    else:
        with ThreadPoolExecutor(workers, thread_name_prefix="clipclap-fetch") as pool:
            errors = list(pool.map(one, pending))
    for (index, it), err in zip(pending, errors, strict=True):
        if err is not None:
            raise ClipClapInputError(err.reason, index=index, item=describe(it.payload.url))


def classify_all(
    inputs: Sequence[Any], options: InputOptions, forced: Modality | None = None
) -> list[Item]:
    """Classify every input and fetch remote ones; errors name the failing position."""
    if isinstance(inputs, str | bytes) or not isinstance(inputs, Sequence | np.ndarray):
        raise TypeError(
            f"inputs must be a list of items, got {type(inputs).__name__} "
            "(wrap a single item in a list)"
        )
    items: list[Item] = []
    for index, raw in enumerate(inputs):
        try:
            it = classify(raw, options, forced)
        except ClipClapInputError as exc:
            raise ClipClapInputError(exc.reason, index=index, item=describe(raw)) from None
        it.description = describe(raw)
        items.append(it)
    resolve_remote(items, range(len(items)), options)
    return items
