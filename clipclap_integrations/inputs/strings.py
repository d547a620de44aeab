"""Strings and paths: a string is a ``data:`` URI, a ``file:`` URL, an http(s) URL, the path
of an existing file, or text (the rules are the README's table). Only this module opens
paths while classifying."""

from __future__ import annotations

import os
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from ..errors import ClipClapInputError
from ..types import Modality
from .files import media_file_kind
from .items import InputOptions, Item, Media, RemoteURL, shorten, text_item
from .parts import Link, data_uri_item, is_data_uri
from .sniff import modality_of_extension

_MAX_PATH_LENGTH = 4096
_NO_LOCAL_FILES = "reading local files is disabled (allow_local_files=False)"


def path_item(given: os.PathLike[Any], forced: Modality | None, options: InputOptions) -> Item:
    """A ``Path`` (any ``os.PathLike``): the file's media, or its name when text is forced.
    Unlike a string, a path never falls back to text."""
    path = Path(os.fsdecode(os.fspath(given)))
    if forced is Modality.TEXT:
        return text_item(str(path))
    if not options.allow_local_files:
        raise ClipClapInputError(_NO_LOCAL_FILES)
    return _file_media(path.expanduser(), forced)


def string_item(text: str, forced: Modality | None, options: InputOptions) -> Item:
    """A string as a ``data:`` URI, ``file:`` URL, http(s) URL (not fetched here) or existing
    file, else as text; with a forced image or audio modality it must name media."""
    if forced is Modality.TEXT:
        return text_item(text)
    local = options.allow_local_files
    stripped = text.strip()
    head = stripped[:8].lower()
    single_token = bool(stripped) and not any(c.isspace() for c in stripped)
    if head.startswith("data:"):
        if is_data_uri(stripped):
            return data_uri_item(stripped, forced, options.max_remote_bytes)
        if forced is not None:
            raise ClipClapInputError("a malformed data: URI")
    elif head.startswith("file:/"):  # file:/x, file:///x, file://localhost/x
        file_path = file_url_path(stripped)
        named = single_token or forced is not None  # not text that begins with "file:/"
        if named and not local:
            raise ClipClapInputError(_NO_LOCAL_FILES)
        if local and (named or _existing(str(file_path), regular=False)):
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
        path = _existing(text) or (_existing(stripped) if stripped != text else None)
    if forced is not None:  # Image("x.png") / Audio("x.wav"): must be media somewhere
        if path is None:
            other = _existing(text, regular=False)
            if other is not None:  # a directory, a device, a FIFO: say which
                return _file_media(other, forced)
            raise ClipClapInputError(
                f"no such file: {shorten(text, 200)!r} ({_article(forced)} {forced.value} must be "
                "given as a path, URL, data: URI, bytes, file object or decoded data)"
            )
        return _file_media(path, forced)
    if path is not None:
        try:
            kind = media_file_kind(path)
        except OSError:
            kind = None
        if kind is not None:
            return Item(kind[0], Media(path=path, mime=kind[1]))
    elif options.strict_paths and _looks_like_media_name(text):
        raise ClipClapInputError(
            "looks like a media file name but no such file exists (strict_paths=True; wrap "
            "it in Text(...) to embed the string)"
        )
    return text_item(text)


def link_item(link: Link, options: InputOptions) -> Item:
    """The media a dict part names by URL or path; a part with no stated modality must name
    media (a media part is never text by accident)."""
    found = string_item(link.url, link.modality, options)
    if link.modality is None and found.modality is Modality.TEXT:
        raise ClipClapInputError(
            _NO_LOCAL_FILES
            if not options.allow_local_files
            else "the media part's file_uri is neither an image nor a sound "
            "(no such file, or not media; give mime_type for a URL without one)"
        )
    return found


def file_url_path(url: str) -> Path:
    """The local path a ``file:`` URL names (on this host)."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        raise ClipClapInputError("a malformed file: URL") from None
    if parts.netloc not in ("", "localhost"):
        raise ClipClapInputError(f"a file: URL on another host ({parts.netloc}) is not readable")
    return Path(urllib.request.url2pathname(parts.path))


def _article(modality: Modality) -> str:
    return "an" if modality in (Modality.IMAGE, Modality.AUDIO) else "a"


def _existing(text: str, *, regular: bool = True) -> Path | None:
    """``text`` as a path when it names an existing regular file (with ``regular=False``:
    anything that exists), else None (never raises)."""
    if not text or len(text) > _MAX_PATH_LENGTH or "\0" in text or (regular and "\n" in text):
        return None
    try:  # bad encodings, unknown ~user, permission errors, ... are no file
        path = Path(text).expanduser()
        return path if (path.is_file() if regular else path.exists()) else None
    except Exception:
        return None


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
            raise ClipClapInputError(f"no such file: {shorten(str(path), 200)}")
        if path.is_dir():
            raise ClipClapInputError(f"a directory, not a file: {shorten(str(path), 200)}")
        if not path.is_file():
            raise ClipClapInputError(f"not a regular file: {shorten(str(path), 200)}")
        kind = media_file_kind(path)
    except ClipClapInputError:
        raise
    except (OSError, ValueError) as exc:
        raise ClipClapInputError(f"cannot read the file ({shorten(str(exc), 160)})") from None
    modality = forced or (kind[0] if kind else None)
    if modality is None:
        raise ClipClapInputError(
            "the file is neither an image nor audio (nor video) that can be recognized (no "
            "known magic number or extension; wrap it in Image(...), Audio(...) or Video(...) "
            "to force one)"
        )
    return Item(modality, Media(path=path, mime=kind[1] if kind else None))
