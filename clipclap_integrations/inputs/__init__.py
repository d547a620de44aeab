"""User value -> typed item (``classify``), remote items fetched (``fetch``); nothing here
decodes media. Other subpackages import the names below from here."""

from __future__ import annotations

from .arrays import numeric_array
from .classification import classify, classify_all, input_list
from .fetch import URLS_PER_FETCH, fetch_groups, is_remote, resolve_remote
from .items import InputOptions, Item, Media, RemoteURL, Waveform, check_text, describe

__all__ = [
    "URLS_PER_FETCH",
    "InputOptions",
    "Item",
    "Media",
    "RemoteURL",
    "Waveform",
    "check_text",
    "classify",
    "classify_all",
    "describe",
    "fetch_groups",
    "input_list",
    "is_remote",
    "numeric_array",
    "resolve_remote",
]
