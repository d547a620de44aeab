"""The embedder's options, each declared once: type, default, check, help, and whether it
changes the vectors.

``ClipClapEmbedder``, the Chroma embedding function's stored configuration and its data
loader, the LlamaIndex embedding's fields and the CLI's flags are all read from
``EmbedderOptions``: an option added here reaches every one of them.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from .inputs import InputOptions
from .media.audio import DEFAULT_MAX_SECONDS, LONG_AUDIO_POLICIES, LongAudioPolicy
from .media.image import DEFAULT_MAX_PIXELS
from .media.text import DEFAULT_MAX_TEXT_CHARS
from .media.video import DEFAULT_MAX_VIDEO_FRAMES, DEFAULT_MAX_VIDEO_SECONDS
from .runtime.optimize import OPTIMIZE_CHOICES, QUANTIZE_CHOICES, OptimizeOption, QuantizeOption
from .runtime.sessions import ProviderSpec, normalize_providers

PathLike = str | os.PathLike[str]


# -- value checks -------------------------------------------------------------------------------
def is_int(value: Any) -> bool:
    """An integer (any ``numbers.Integral``: numpy's too), not a bool."""
    return isinstance(value, numbers.Integral | np.integer) and not isinstance(
        value, bool | np.bool_
    )


def is_finite_number(value: Any) -> bool:
    """A finite int or float (numpy's too), not a bool."""
    return (
        isinstance(value, int | float | np.number)
        and not isinstance(value, bool)
        and math.isfinite(value)
    )


def _positive_int(v: Any) -> bool:
    return is_int(v) and v >= 1


def _positive_number(v: Any) -> bool:
    return is_finite_number(v) and v > 0


def _flag(v: Any) -> bool:
    return isinstance(v, bool)


def _folder(v: Any) -> bool:
    return isinstance(v, str | os.PathLike) and os.fspath(v) != ""


def _optional(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: v is None or check(v)


def _providers(v: Any) -> bool:
    normalize_providers(v)  # raises ValueError saying what is wrong
    return True


def _one_of(choices: Sequence[str]) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, str) and v in choices


def _choices(choices: Sequence[str]) -> str:
    return "one of " + ", ".join(choices)


# -- the declaration ----------------------------------------------------------------------------
@dataclass(frozen=True)
class OptionInfo:
    """What the adapters need to know of one option besides its name, type and default."""

    check: Callable[[Any], bool]  # may raise ValueError with a more precise reason
    expected: str  # what a valid value is, for messages: "a positive integer"
    help: str
    changes_vectors: bool = False  # a collection's vectors made with another value differ
    json_type: Any = None  # the type in a JSON config / pydantic field, when not the Python one

    def problem(self, name: str, value: Any) -> str | None:
        """Why ``value`` is not valid for option ``name``; None when it is."""
        try:
            if self.check(value):
                return None
        except (TypeError, ValueError) as exc:
            return f"{name}: {exc}"
        return f"{name} must be {self.expected}, got {value!r}"


def option(default: Any, *args: Any, **kwargs: Any) -> Any:
    """A dataclass field whose metadata is ``OptionInfo(*args, **kwargs)``."""
    return field(default=default, metadata={"info": OptionInfo(*args, **kwargs)})


@dataclass(frozen=True)
class EmbedderOptions:
    """Every option of ``ClipClapEmbedder`` except the model itself (validated on creation).

    ``ClipClapEmbedder(model, **options)`` takes these as keyword arguments.
    """

    revision: str | None = option(
        None,
        _optional(lambda v: isinstance(v, str) and v.strip() != ""),
        "a non-empty string or None",
        "Hub branch, tag or commit to use.",
    )
    cache_dir: PathLike | None = option(
        None,
        _optional(_folder),
        "a folder path or None",
        "Where Hub downloads go (default: the Hugging Face cache).",
        json_type=str | None,
    )
    local_files_only: bool | None = option(
        None, _optional(_flag), "True, False or None", "Never contact the Hub; use the cache only."
    )
    providers: Sequence[ProviderSpec] | str | None = option(
        None,
        _optional(_providers),
        "a provider name, or a list of names or [name, options] pairs",
        "onnxruntime execution providers in order of preference (default: onnxruntime's "
        "choice, normally CPU).",
        json_type=list[str] | None,
    )
    threads: int | None = option(
        None,
        _optional(lambda v: is_int(v) and 1 <= v <= 1024),
        "an integer from 1 to 1024 or None",
        "Intra-op threads per onnxruntime session (default: 1 on the CPU, with parallel "
        "runs; else onnxruntime's choice). Set it for the lowest latency of single items.",
    )
    parallel_runs: int | None = option(
        None,
        _optional(lambda v: is_int(v) and 1 <= v <= 1024),
        "an integer from 1 to 1024 or None",
        "Model runs made at once, a batch split between them (default: on the CPU with "
        "threads unset, one single-threaded run per usable core; else 1). Same vectors.",
    )
    batch_size: int = option(
        32,
        _positive_int,
        "a positive integer",
        "Items per model run (audio: 10 s windows per batch, run by the audio encoder at "
        "most 8 at a time: the same speed, a fraction of the memory).",
    )
    long_audio: LongAudioPolicy = option(
        "mean",
        _one_of(LONG_AUDIO_POLICIES),
        _choices(LONG_AUDIO_POLICIES),
        "Clips over 10 s: the mean of consecutive 10 s windows, or only the first or the "
        "center 10 s.",
        changes_vectors=True,
    )
    allow_remote: bool = option(
        True, _flag, "True or False", "Fetch http(s) URLs; set False for untrusted input."
    )
    allow_private_urls: bool = option(
        True,
        _flag,
        "True or False",
        "Fetch URLs whose host is a loopback, private or link-local address; set False for "
        "untrusted input (a server would otherwise fetch from its own network for whoever "
        "sends it a URL).",
    )
    allow_local_files: bool = option(
        True,
        _flag,
        "True or False",
        "Read paths and file: URLs; set False for untrusted input (strings are then always "
        "text, never looked up on disk).",
    )
    strict_paths: bool = option(
        False,
        _flag,
        "True or False",
        "Refuse strings that look like missing media files instead of embedding them as text.",
    )
    max_remote_bytes: int = option(
        64 * 1024 * 1024,
        _positive_int,
        "a positive integer",
        "Size limit of each URL download (bytes).",
    )
    remote_timeout: float = option(
        30.0,
        _positive_number,
        "a positive number of seconds",
        "Time limit of each URL download (seconds, in all).",
    )
    max_image_pixels: int | None = option(
        DEFAULT_MAX_PIXELS,
        _optional(_positive_int),
        "a positive integer or None",
        "Refuse larger images (decompression bombs); None for no limit.",
    )
    max_audio_seconds: float | None = option(
        DEFAULT_MAX_SECONDS,
        _optional(_positive_number),
        "a positive number or None",
        "Refuse longer audio (bounds memory); None for no limit.",
    )
    max_text_chars: int | None = option(
        DEFAULT_MAX_TEXT_CHARS,
        _optional(_positive_int),
        "a positive integer or None",
        "Refuse longer texts (only their first 77 tokens count, and only those are "
        "tokenized; a text this long is a mistake); None for no limit.",
    )
    frame_every_s: float = option(
        1.0,
        _positive_number,
        "a positive number of seconds",
        "Videos: one frame is embedded every this many seconds (its moment lasts as long); "
        "frame sizes are limited by max_image_pixels. (Stored vectors of text, images and "
        "sounds, and every query's, do not depend on it.)",
    )
    max_video_seconds: float | None = option(
        DEFAULT_MAX_VIDEO_SECONDS,
        _optional(_positive_number),
        "a positive number or None",
        "Refuse longer videos (their soundtrack too), by the header before decoding; None "
        "for no limit.",
    )
    max_video_frames: int | None = option(
        DEFAULT_MAX_VIDEO_FRAMES,
        _optional(_positive_int),
        "a positive integer or None",
        "Refuse videos that would give more sampled frames (duration / frame_every_s); None "
        "for no limit.",
    )
    fast_jpeg: bool = option(
        False,
        _flag,
        "True or False",
        "Decode JPEGs at reduced size (Pillow draft mode): much faster on large photos, at "
        "a small parity cost.",
        changes_vectors=True,
    )
    optimize: OptimizeOption | None = option(
        None,
        _optional(_one_of(OPTIMIZE_CHOICES)),
        " or ".join(f'"{c}"' for c in OPTIMIZE_CHOICES) + " or None",
        "'fusions': run copies of the encoders with onnxruntime's transformer graph fusions "
        "(built once, cached on disk). Opt-in: vectors move slightly.",
        changes_vectors=True,
    )
    quantize: QuantizeOption | None = option(
        None,
        _optional(_one_of(QUANTIZE_CHOICES)),
        " or ".join(f'"{c}"' for c in QUANTIZE_CHOICES) + " or None",
        "'int8': run dynamically int8-quantized copies of the encoders (built once, "
        "cached): much faster on CPUs, at a small parity cost.",
        changes_vectors=True,
    )
    optimized_dir: PathLike | None = option(
        None,
        _optional(_folder),
        "a folder path or None",
        "Where optimized copies are cached (default $CLIPCLAP_CACHE, else "
        "~/.cache/clipclap-integrations).",
        json_type=str | None,
    )

    def __post_init__(self) -> None:
        problems = [p for n, info, v in self.items() if (p := info.problem(n, v)) is not None]
        if problems:
            raise ValueError("; ".join(problems))
        # numpy and other integers become plain ints, or floats where the option is one
        # (onnxruntime and JSON want plain values)
        for f in fields(self):
            value = getattr(self, f.name)
            if is_int(value):
                plain = float(value) if "float" in str(f.type) else int(value)
                object.__setattr__(self, f.name, plain)

    def items(self) -> Iterator[tuple[str, OptionInfo, Any]]:
        """(name, info, value) of every option, in declaration order."""
        for f in fields(self):
            yield f.name, f.metadata["info"], getattr(self, f.name)

    def vector_settings(self) -> dict[str, Any]:
        """The values of the options that change the vectors (JSON values)."""
        return {n: json_value(v) for n, info, v in self.items() if info.changes_vectors}

    def input_options(self) -> InputOptions:
        """The switches and limits that reading inputs applies."""
        return InputOptions(
            allow_remote=self.allow_remote,
            allow_private_urls=self.allow_private_urls,
            allow_local_files=self.allow_local_files,
            strict_paths=self.strict_paths,
            max_remote_bytes=self.max_remote_bytes,
            remote_timeout=self.remote_timeout,
        )

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> EmbedderOptions:
        """Options from a stored configuration (JSON values of any of them)."""
        unknown = [k for k in config if k not in OPTION_NAMES]
        if unknown:
            raise ValueError(f"unknown option {unknown[0]!r} (known: {', '.join(OPTION_NAMES)})")
        return cls(**config)


OPTION_NAMES: tuple[str, ...] = tuple(f.name for f in fields(EmbedderOptions))


def option_info(name: str) -> OptionInfo:
    """The declaration of option ``name``."""
    for f in fields(EmbedderOptions):
        if f.name == name:
            info: OptionInfo = f.metadata["info"]
            return info
    raise KeyError(name)


def option_default(name: str) -> Any:
    """The default value of option ``name``."""
    return getattr(_DEFAULTS, name)


def config_problems(config: Mapping[str, Any]) -> list[str]:
    """Every problem of the options in a JSON configuration, one message each."""
    problems = []
    for key, value in config.items():
        if key not in OPTION_NAMES:
            problems.append(f"unknown option {key!r} (known: {', '.join(OPTION_NAMES)})")
            continue
        problem = option_info(key).problem(repr(key), value)
        if problem is not None:
            problems.append(problem)
    return problems


def json_value(value: Any) -> Any:
    """Tuples to lists, paths to strings: what a JSON round trip gives back."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, tuple | list):
        return [json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    return value


_DEFAULTS = EmbedderOptions()
