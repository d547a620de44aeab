"""User value -> typed item; nothing here decodes media.

``classify`` applies the detection rules (strings and paths in ``strings``, chat-style parts
and ``data:`` URIs in ``parts``, bytes and file objects in ``binary``, arrays and waveforms in
``arrays``); ``fetch`` downloads remote items through ``remote``; ``items`` holds the typed
item; ``sniff`` and ``files`` recognize content. Other subpackages import from here.
"""

from __future__ import annotations

from .arrays import (
    DEFAULT_SAMPLE_RATE,
    MAX_SAMPLE_RATE,
    check_image_values,
    check_sample_dtype,
    check_sample_rate,
    check_samples,
    image_array_layout,
    numeric_array,
)
from .classification import classify, classify_all, input_list
from .fetch import URLS_PER_FETCH, fetch_groups, is_remote, resolve_remote
from .items import InputOptions, Item, Media, RemoteURL, Waveform, check_text, describe
from .parts import parse_data_uri

__all__ = [
    "DEFAULT_SAMPLE_RATE",
    "MAX_SAMPLE_RATE",
    "URLS_PER_FETCH",
    "InputOptions",
    "Item",
    "Media",
    "RemoteURL",
    "Waveform",
    "check_image_values",
    "check_sample_dtype",
    "check_sample_rate",
    "check_samples",
    "check_text",
    "classify",
    "classify_all",
    "describe",
    "fetch_groups",
    "image_array_layout",
    "input_list",
    "is_remote",
    "numeric_array",
    "parse_data_uri",
    "resolve_remote",
]
