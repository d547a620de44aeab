"""Turning whatever a user passes into a typed item of one modality.

The rules, in order of evidence, are the README's table ("What counts as what"): explicit
typing (wrappers, dict parts, ``modality=``) always wins, then the Python type, then magic
numbers, then paths, URIs and URLs; every other string is text. Each kind of value is read by
its own module (``strings``, ``parts``, ``binary``, ``arrays``); this one dispatches.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ClipClapInputError
from ..types import Audio, Image, Modality, Text, Video
from .arrays import (
    SINGLE_NUMBER,
    array_item,
    check_sample_rate,
    is_number,
    looks_like_samples,
    pair_item,
    waveform_item,
)
from .binary import bytes_item, stream_item
from .fetch import resolve_remote
from .items import (
    InputOptions,
    Item,
    Waveform,
    check_modality,
    describe,
    is_pil_image,
    shorten,
    text_item,
)
from .parts import Link, part_item
from .strings import link_item, path_item, string_item


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
            f"cannot be read ({type(exc).__name__}: {shorten(str(exc), 120)})",
            item=describe(item),
        ) from None
    if not it.description:
        it.description = describe(item)
    return it


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
        if (looks_like_samples(first) and is_number(second)) or (
            is_number(first) and looks_like_samples(second)
        ):
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


def _classify(item: Any, options: InputOptions, forced: Modality | None = None) -> Item:
    if isinstance(item, Text):
        check_modality(Modality.TEXT, forced, "Text(...)")
        if not isinstance(item.text, str):
            raise ClipClapInputError(f"Text(...) needs a str, got {type(item.text).__name__}")
        return text_item(item.text)
    if isinstance(item, Image):
        check_modality(Modality.IMAGE, forced, "Image(...)")
        return _classify(item.source, options, Modality.IMAGE)
    if isinstance(item, Audio):
        check_modality(Modality.AUDIO, forced, "Audio(...)")
        source, rate = item.source, item.sample_rate
        if rate is not None and looks_like_samples(source) and not isinstance(source, tuple):
            return waveform_item(source, rate)
        it = _classify(source, options, Modality.AUDIO)
        if rate is not None and isinstance(it.payload, Waveform):  # Audio((samples, rate), ...)
            stated = check_sample_rate(rate)
            if stated != it.payload.sample_rate:
                raise ClipClapInputError(
                    f"two sample rates: Audio(..., sample_rate={stated}) around a (samples, "
                    f"sample_rate) pair of rate {it.payload.sample_rate} (give the rate once)"
                )
        return it
    if isinstance(item, Video):
        check_modality(Modality.VIDEO, forced, "Video(...)")
        return _classify(item.source, options, Modality.VIDEO)
    if isinstance(item, str):
        return string_item(item, forced, options)
    if isinstance(item, os.PathLike):
        return path_item(item, forced, options)
    if isinstance(item, bytes | bytearray | memoryview):
        return bytes_item(bytes(item), forced)
    if isinstance(item, dict):
        part = part_item(item, forced, options.max_remote_bytes)
        return link_item(part, options) if isinstance(part, Link) else part
    if is_pil_image(item):
        check_modality(Modality.IMAGE, forced, "a PIL image")
        return Item(Modality.IMAGE, item)
    if isinstance(item, tuple):
        return pair_item(item, forced)
    if isinstance(item, list):
        if forced in (
            Modality.IMAGE,
            Modality.AUDIO,
            Modality.VIDEO,
        ):  # Image([[...]]), Audio([...])
            return array_item(item, forced)
        raise ClipClapInputError(
            "a list is not an input: pass its items as separate inputs, or an array (a numpy "
            "array, or Image(...) / Audio(...) around the list)"
        )
    if isinstance(item, np.ndarray) or hasattr(item, "__array__"):
        return array_item(item, forced)
    if is_number(item) or isinstance(item, complex | bool):
        raise ClipClapInputError(f"unsupported input type {type(item).__name__}: {SINGLE_NUMBER}")
    if isinstance(item, io.IOBase) or callable(getattr(item, "read", None)):
        return stream_item(item, forced, options)
    raise ClipClapInputError(
        f"unsupported input type {type(item).__name__} (expected a string, path, bytes, file "
        "object, PIL image, array, (samples, sample_rate) pair, dict part or "
        "Text/Image/Audio/Video)"
    )
