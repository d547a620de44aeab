"""Numbers a user passes as media: waveforms, ``(samples, sample_rate)`` pairs and image arrays.

Every check of such numbers is written here once: the sample rate, which integer types are
PCM, a waveform's shape, an image array's layout and value range. ``media`` imports these
checks where it converts the arrays; nothing here converts them.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import ClipClapInputError
from ..types import CLAP_SAMPLE_RATE, Modality
from .items import Item, Waveform, check_modality, is_pil_image, shorten

DEFAULT_SAMPLE_RATE = CLAP_SAMPLE_RATE  # a bare waveform (no rate given): the model's rate
MAX_SAMPLE_RATE = 1_000_000  # no real recording is sampled faster; bounds resampling work
# Integer sample types whose scale is known (as soundfile reads them); any other integer type
# (int64 above all, numpy's default for a list of ints) says nothing about its scale.
PCM_INTEGERS = (np.dtype(np.uint8), np.dtype(np.int8), np.dtype(np.int16), np.dtype(np.int32))
SINGLE_NUMBER = (
    "a single number is neither an image nor audio (a waveform's samples passed as the list "
    "of inputs? wrap the waveform in a list: [samples] or [(samples, sample_rate)])"
)


def is_number(value: Any) -> bool:
    """A real number (Python's or numpy's), not a bool: what a sample rate can be."""
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


def looks_like_samples(value: Any) -> bool:
    """Something that can be read as an array of samples (not a string, dict or image)."""
    if isinstance(value, str | bytes | bytearray | dict) or is_pil_image(value):
        return False
    return isinstance(value, np.ndarray | list | tuple) or hasattr(value, "__array__")


def is_supported_rate(rate: float) -> bool:
    return 1 <= rate <= MAX_SAMPLE_RATE


def check_sample_rate(rate: Any) -> int:
    """``rate`` as an int, refused unless it is a whole number of Hz in the accepted range."""
    bad = ClipClapInputError(
        f"the sample rate must be a whole number of Hz in [1, {MAX_SAMPLE_RATE:,}], "
        f"got {shorten(repr(rate), 40)}"
    )
    if not is_number(rate):
        raise bad
    try:
        value = float(rate)
    except (OverflowError, ValueError):
        raise bad from None
    if not math.isfinite(value) or value != int(value) or not is_supported_rate(value):
        raise bad
    return int(value)


def numeric_array(value: Any, what: str = "the array") -> np.ndarray:
    """``np.asarray(value)``, refused unless it holds numbers (bool, int or float)."""
    try:
        arr = np.asarray(value)
    except Exception as exc:
        raise ClipClapInputError(f"cannot be read as an array ({shorten(str(exc), 100)})") from None
    if arr.dtype.kind not in "biuf":
        raise ClipClapInputError(_not_numbers(what, arr.dtype))
    return arr


def _not_numbers(what: str, dtype: np.dtype) -> str:
    return f"{what} must hold numbers, not {dtype}"


def check_sample_dtype(dtype: np.dtype) -> None:
    """Refuse audio samples of a type whose scale is unknown: integers that are not PCM (and
    anything that is not a number)."""
    if dtype.kind not in "biuf":
        raise ClipClapInputError(_not_numbers("audio samples", dtype))
    if dtype.kind in "iu" and dtype not in PCM_INTEGERS:
        raise ClipClapInputError(
            f"{dtype} audio samples are ambiguous (a list of Python ints becomes {dtype}): give "
            "float samples in [-1, 1], or int16/int32 PCM as a numpy array of that dtype"
        )


def check_samples(arr: np.ndarray) -> None:
    """Refuse a waveform that is not 1-D or 2-D, not of a known sample type, or empty."""
    if arr.ndim not in (1, 2):
        raise ClipClapInputError(
            f"a waveform must be 1-D (mono) or 2-D (channels x samples or samples x channels), "
            f"got shape {tuple(arr.shape)}"
        )
    check_sample_dtype(arr.dtype)
    if arr.size == 0:
        raise ClipClapInputError("the audio is empty (no samples)")


def waveform_item(samples: Any, rate: Any) -> Item:
    """An audio item of decoded samples at ``rate`` Hz, checked."""
    rate = check_sample_rate(rate)
    arr = numeric_array(samples)
    check_samples(arr)
    return Item(Modality.AUDIO, Waveform(arr, rate))


def pair_item(item: tuple[Any, ...], forced: Modality | None) -> Item:
    """``(samples, sample_rate)``, or ``(sample_rate, samples)`` as scipy and Gradio give it."""
    if len(item) == 2:
        first, second = item
        if looks_like_samples(first) and is_number(second):
            samples, rate = first, second
        elif is_number(first) and looks_like_samples(second):
            samples, rate = second, first
        else:
            raise ClipClapInputError(
                f"a pair of {type(first).__name__} and {type(second).__name__}: expected "
                "(samples, sample_rate)"
            )
        check_modality(Modality.AUDIO, forced, "a (samples, sample_rate) pair")
        return waveform_item(samples, rate)
    raise ClipClapInputError(f"a tuple of {len(item)} items: expected (samples, sample_rate)")


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
    hint = " (a batch? pass each image as its own item)" if len(shape) == 4 else ""
    raise ClipClapInputError(
        f"an image array must be HxW, HxWxC or CxHxW with 1-4 channels, got shape "
        f"{tuple(shape)}{hint}"
    )


def audio_hint(shape: tuple[int, ...]) -> str:
    """A hint for an image array (HxW...) so narrow it is more likely multichannel audio."""
    return "for multichannel audio pass (samples, sample_rate)" if min(shape[:2]) <= 8 else ""


def check_image_values(arr: np.ndarray) -> None:
    """Refuse image values outside their type's range: floats must be finite and in [0, 1],
    integers other than uint8 in [0, 255]. ``arr`` is HxW or HxWxC."""
    hint = audio_hint(arr.shape)
    hint = f"; {hint}" if hint else ""
    if arr.dtype.kind == "f":
        lo, hi = float(np.min(arr)), float(np.max(arr))
        if not (np.isfinite(lo) and np.isfinite(hi)) or lo < -1e-3 or hi > 1.0 + 1e-3:
            raise ClipClapInputError(
                "a float image array must hold finite values in [0, 1], got values in "
                f"[{lo:.4g}, {hi:.4g}] (convert 0-255 data to uint8{hint})"
            )
    elif arr.dtype.kind in "iu" and arr.dtype != np.uint8:
        lo, hi = int(np.min(arr)), int(np.max(arr))
        if lo < 0 or hi > 255:
            raise ClipClapInputError(
                f"an {arr.dtype} image array must hold values in [0, 255], got values in "
                f"[{lo}, {hi}] (images are uint8, or float in [0, 1]{hint})"
            )


def array_item(value: Any, forced: Modality | None) -> Item:
    """An array: audio when 1-D (48 kHz) or forced to, else an image of a known layout."""
    arr = numeric_array(value)
    if forced is Modality.TEXT:
        raise ClipClapInputError("an array cannot be embedded as text")
    if forced is Modality.VIDEO:
        raise ClipClapInputError(
            "an array is not a video: give the video as a path, URL, data: URI, bytes or file "
            "object (a frame array is an image)"
        )
    if arr.ndim == 0:
        raise ClipClapInputError(f"a 0-D array: {SINGLE_NUMBER}")
    if forced is Modality.AUDIO or (forced is None and arr.ndim == 1):
        return waveform_item(arr, DEFAULT_SAMPLE_RATE)
    if arr.ndim == 1:
        raise ClipClapInputError("a 1-D array is audio, not an image")
    image_array_layout(arr.shape)
    if 0 in arr.shape:
        raise ClipClapInputError(f"the image has zero size (shape {tuple(arr.shape)})")
    return Item(Modality.IMAGE, arr)
