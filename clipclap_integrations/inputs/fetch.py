"""Remote items of a call: fetching their URLs a group at a time, concurrently, and deciding
what each one served (``remote`` does the safe download of one URL)."""

from __future__ import annotations

import urllib.parse
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..errors import ClipClapInputError
from ..types import Modality
from .binary import bytes_item
from .containers import settle
from .items import InputOptions, Item, RemoteURL, shorten
from .remote import fetch
from .sniff import HEAD_BYTES, modality_of_mime, sniff_bytes

URLS_PER_FETCH = 32  # URLs downloaded (and held) at a time within one call


def is_remote(item: Item) -> bool:
    """Whether ``item`` is a URL still to be fetched."""
    return isinstance(item.payload, RemoteURL)


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


def resolve_remote(items: Sequence[Item], indices: Sequence[int], options: InputOptions) -> None:
    """Fetch every remote URL among ``items`` concurrently; set their payload and modality.

    Each distinct URL is fetched once. Raises the ClipClapInputError of the first failing
    item (by position).
    """
    pending = [(i, it) for i, it in zip(indices, items, strict=True) if is_remote(it)]
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
            resolved = _served(it, got.data, got.content_type)
        except ClipClapInputError as exc:
            raise ClipClapInputError(exc.reason, index=index, item=it.description) from None
        it.modality, it.payload = resolved.modality, resolved.payload


def _served(item: Item, data: bytes, content_type: str | None) -> Item:
    """The modality and media of a fetched URL: stated, else extension, else content/type."""
    url: RemoteURL = item.payload
    if not data:
        raise ClipClapInputError("the URL served no content")
    sniffed = None if url.stated else sniff_bytes(data[:HEAD_BYTES])
    if sniffed is not None and sniffed[0] is Modality.VIDEO:
        sniffed = settle(sniffed, data, urllib.parse.urlsplit(url.url).path)
    # a video container named by a video or audio extension may hold either: content decides
    sound_or_video = (Modality.AUDIO, Modality.VIDEO)
    expected = item.modality
    if sniffed is not None and expected in sound_or_video and sniffed[0] in sound_or_video:
        expected = None
    if sniffed is not None and expected not in (None, sniffed[0]):  # by the extension
        wrapper = {Modality.AUDIO: "Audio", Modality.VIDEO: "Video"}.get(sniffed[0], "Image")
        raise ClipClapInputError(
            f"the URL's extension says {item.modality.value}, but it serves {sniffed[1]} "
            f"(wrap it in {wrapper}(...) to embed what it serves)"
        )
    media = (Modality.IMAGE, Modality.AUDIO, Modality.VIDEO)
    if item.modality is None and sniffed is None and modality_of_mime(content_type) not in media:
        kind = (content_type or "no Content-Type").split(";")[0].strip()
        raise ClipClapInputError(
            f"the URL serves {shorten(kind, 60)} content that is neither a recognizable image, "
            "audio nor video"
        )
    return bytes_item(data, item.modality if url.stated else expected, content_type)
