"""A CLIPCLAP model folder: what it must hold, its parsed settings, and its validation.

``load_model_folder`` checks a folder once per process (keyed by the files' sizes and
modification times) and returns a frozen ``ModelFolder`` describing it; every problem found is
reported together in one ``ModelFolderError``. Nothing here creates an onnxruntime session.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from ..errors import ModelFolderError, OnnxFormatError
from ..types import CLAP_SAMPLE_RATE, Modality
from .digests import file_sha256
from .image_settings import PREPROCESSOR_CONFIG, ImageSettings
from .onnx_signature import GraphSignature, read_signature

MAX_TOKENS = 77  # CLIP's context: <|startoftext|>, 75 tokens, <|endoftext|>
EOS_ID = 49407  # CLIP's <|endoftext|>, which also pads
PROJECTION_DIM = 512  # the shared space, when no graph says otherwise
# The files of a model folder besides the graphs.
CLIP_CONFIG = "clip_config.json"
TOKENIZER = "tokenizer.json"
TOKENIZER_CONFIG = "tokenizer_config.json"
TRAINING_METADATA = "projection_training_metadata.json"


@dataclass(frozen=True)
class GraphPair:
    """The two graphs of one modality: an encoder and the projection into the shared space."""

    encoder: str  # file name of the encoder graph
    projection: str  # file name of the projection graph


GRAPHS: dict[Modality, GraphPair] = {
    Modality.TEXT: GraphPair("text_model.onnx", "text_projection.onnx"),
    Modality.IMAGE: GraphPair("visual_model.onnx", "visual_projection.onnx"),
    Modality.AUDIO: GraphPair("audio_model.onnx", "audio_projection.onnx"),
}
CONFIG_FILES = (CLIP_CONFIG, TOKENIZER, PREPROCESSOR_CONFIG)
# Files that change the vectors besides the graphs and their weights (the tokenizer config
# may set where text is cut off).
DIGESTED_OPTIONAL_FILES = (TOKENIZER_CONFIG,)
# Encoder inputs each modality needs: name -> (dtype, rank).
ENCODER_INPUTS: dict[Modality, dict[str, tuple[str, int]]] = {
    Modality.TEXT: {"input_ids": ("int64", 2)},  # attention_mask is optional
    Modality.IMAGE: {"pixel_values": ("float32", 4)},
    Modality.AUDIO: {"input_features": ("float32", 4)},
}


@dataclass(frozen=True)
class TextSettings:
    max_length: int = MAX_TOKENS
    pad_id: int = EOS_ID


CLAP_WINDOW_S = 10.0  # CLAP hears 10 s at a time: the default window of everything long


@dataclass(frozen=True)
class AudioSettings:
    """CLAP feature settings. They are not stored in the folder; these are the model's."""

    sample_rate: int = CLAP_SAMPLE_RATE
    max_length_s: float = CLAP_WINDOW_S
    n_fft: int = 1024
    hop_length: int = 480
    n_mels: int = 64
    fmin: float = 50.0
    fmax: float = 14_000.0

    @property
    def max_samples(self) -> int:
        return round(self.sample_rate * self.max_length_s)

    @property
    def frames(self) -> int:
        return self.max_samples // self.hop_length + 1


@dataclass(frozen=True)
class ModelFolder:
    """A validated CLIPCLAP model folder."""

    path: Path
    dim: int
    text: TextSettings
    image: ImageSettings
    audio: AudioSettings
    signatures: dict[str, GraphSignature] = field(repr=False)
    revision: str | None = None  # the Hub commit, when the folder came from the Hub
    source: str = ""  # what the user asked for: a folder or a repo id
    fingerprints: dict[str, tuple[str, int, int]] = field(default_factory=dict, repr=False)
    clip_config: dict[str, Any] = field(default_factory=dict, repr=False)  # clip_config.json

    def graph_path(self, name: str) -> Path:
        return self.path / name

    def files(self) -> list[str]:
        """Names of the files the vectors depend on: graphs, their external weights, configs."""
        names = set(CONFIG_FILES)
        names.update(n for n in DIGESTED_OPTIONAL_FILES if (self.path / n).is_file())
        for name, sig in self.signatures.items():
            names.add(name)
            names.update(sig.external_files)
        return sorted(names)

    @cached_property
    def digest(self) -> str:
        """What the model is, independent of where it lives: a SHA-256 (hex, 32 digits) over
        each file's name and the SHA-256 of its content.

        Two folders with the same digest hold the same model: a copy, a move, or the Hub
        snapshot of the commit a folder was downloaded from. Computed once per validated
        folder (a changed file gives a new validation), each file hashed once per process
        (~1 s per GB); the Hub cache's weight files are named by their SHA-256 already, so a
        Hub model costs no reading.
        """
        h = hashlib.sha256(b"clipclap-model-digest/2")
        for name in self.files():
            h.update(f"\0{name}\0{file_sha256(self.path / name)}".encode())
        return h.hexdigest()[:32]

    def fingerprint(self, name: str) -> tuple[str, int, int]:
        """Identity of one graph file for caching: path, size, modification time.

        Taken when the folder was validated; a changed file gives a new validation (the
        folder cache is keyed by every file's size and time), hence a new fingerprint.
        """
        return self.fingerprints[name]


_cache: dict[tuple[Any, ...], ModelFolder] = {}
_cache_lock = threading.Lock()


def _folder_key(path: Path) -> tuple[Any, ...]:
    """Every file under the folder (external weights may sit in subfolders) with its size
    and modification time: any change gives a new key, hence a new validation."""
    items = []
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            full = Path(root, name)
            try:
                st = full.stat()
            except OSError:  # a dangling link: validation reports what is missing
                continue
            items.append((str(full.relative_to(path)), st.st_size, st.st_mtime_ns))
    return (str(path.resolve()), tuple(items))


def load_model_folder(
    path: str | os.PathLike[str], *, revision: str | None = None, source: str = ""
) -> ModelFolder:
    """Validate the folder at ``path`` and describe it; raise ``ModelFolderError`` otherwise."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        what = "does not exist" if not folder.exists() else "is not a folder"
        raise ModelFolderError(folder, [f"{folder} {what}"])
    key = (_folder_key(folder), revision, source)
    with _cache_lock:
        cached = _cache.get(key)
    if cached is not None:
        return cached
    described = _validate(folder, revision=revision, source=source or str(folder))
    with _cache_lock:
        _cache[key] = described
    return described


def _read_json(path: Path, problems: list[str]) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        problems.append(f"missing file {path.name}")
        return {}
    except (OSError, ValueError) as exc:
        problems.append(f"{path.name} is not readable JSON ({exc})")
        return {}
    if not isinstance(data, dict):
        problems.append(f"{path.name} does not hold a JSON object")
        return {}
    return data


def check_tokenizer(path: Path) -> str | None:
    """Why the tokenizer file at ``path`` cannot be used (missing, or not a tokenizer the
    ``tokenizers`` library loads), or None: found with the folder, not on the first text."""
    if not path.is_file():
        return f"missing file {path.name}"
    from tokenizers import Tokenizer

    try:
        Tokenizer.from_file(str(path))
    except Exception as exc:  # the library raises a bare Exception for bad JSON
        detail = str(exc).strip() or type(exc).__name__
        return f"{path.name} cannot be loaded as a tokenizer ({detail[:200]})"
    return None


def _check_graph(folder: Path, name: str, problems: list[str]) -> GraphSignature | None:
    path = folder / name
    if not path.is_file():
        problems.append(f"missing file {name}")
        return None
    try:
        sig = read_signature(path)
    except (OSError, OnnxFormatError) as exc:
        problems.append(f"{name} is not a readable ONNX model ({exc})")
        return None
    needs = dict(sig.external_extents)
    for location in sig.external_files:
        try:
            size = (folder / location).stat().st_size if (folder / location).is_file() else None
        except OSError:
            size = None
        if size is None:
            problems.append(f"{name} keeps its weights in {location}, which is missing")
        elif size < needs.get(location, 0):
            # cut short (an interrupted copy, a damaged cache): onnxruntime would fail on it
            problems.append(
                f"{location} is {size} bytes, but the weights {name} keeps there need "
                f"{needs[location]} (the file is truncated or damaged)"
            )
    return sig


def _config_number(
    section: dict[str, Any],
    where: str,
    default: float,
    problems: list[str],
    *,
    integral: bool = True,
    least: float = 1,
) -> float | None:
    """``section[key]`` (``key`` is the last part of ``where``, e.g. "audio_config.sample_rate")
    as a number: an int (or a float/numeric string with an integer value) at least ``least``,
    or any positive finite number when not ``integral``. Missing means ``default``. A value
    that is not one adds "clip_config.json has unusable <where> (<value>)" to ``problems``."""
    value = section.get(where.rpartition(".")[2], default)
    try:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueError
        number = float(value)
        if not math.isfinite(number) or (integral and not number.is_integer()):
            raise ValueError
        if number < least if integral else number <= 0:
            raise ValueError
    except (ValueError, OverflowError):  # OverflowError: an int too large for a float
        need = f"a whole number of at least {least:g}" if integral else "a positive number"
        problems.append(f"{CLIP_CONFIG} has unusable {where} ({value!r}): it must be {need}")
        return None
    return int(number) if integral else number


def _rank2_output(sig: GraphSignature, prefer: str) -> tuple[str, Any] | None:
    out = sig.output(prefer) or next((o for o in sig.outputs if len(o.shape) == 2), None)
    return (out.name, out.shape[-1]) if out is not None and len(out.shape) == 2 else None


def _validate(folder: Path, *, revision: str | None, source: str) -> ModelFolder:
    problems: list[str] = []
    signatures: dict[str, GraphSignature] = {}
    dims: set[int] = set()
    for modality, pair in GRAPHS.items():
        encoder = _check_graph(folder, pair.encoder, problems)
        projection = _check_graph(folder, pair.projection, problems)
        if encoder is not None:
            signatures[pair.encoder] = encoder
            for input_name, (dtype, rank) in ENCODER_INPUTS[modality].items():
                got = encoder.input(input_name)
                if got is None:
                    names = ", ".join(t.name for t in encoder.inputs) or "none"
                    problems.append(f"{pair.encoder} has no input {input_name!r} (it has: {names})")
                elif got.dtype != dtype or len(got.shape) != rank:
                    problems.append(
                        f"{pair.encoder} input {input_name!r} is {got.dtype} rank "
                        f"{len(got.shape)}, expected {dtype} rank {rank}"
                    )
            if (pooled := _rank2_output(encoder, "pooler_output")) is None:
                problems.append(f"{pair.encoder} has no pooled (batch, features) output")
        if projection is not None:
            signatures[pair.projection] = projection
            if len(projection.inputs) != 1 or len(projection.inputs[0].shape) != 2:
                problems.append(f"{pair.projection} must take one (batch, features) input")
            out = _rank2_output(projection, "output")
            if out is None:
                problems.append(f"{pair.projection} has no (batch, dim) output")
            elif isinstance(out[1], int):
                dims.add(out[1])
            if encoder is not None and pooled and len(projection.inputs) == 1:
                wants = projection.inputs[0].shape[-1]
                if isinstance(pooled[1], int) and isinstance(wants, int) and pooled[1] != wants:
                    problems.append(
                        f"{pair.encoder} pools {pooled[1]} features but {pair.projection} "
                        f"expects {wants}"
                    )
    if len(dims) > 1:
        problems.append(f"the projections disagree on the embedding size: {sorted(dims)}")

    clip_config = _read_json(folder / CLIP_CONFIG, problems)
    processor_config = _read_json(folder / PREPROCESSOR_CONFIG, problems)
    tokenizer_config: dict[str, Any] = {}
    if (folder / TOKENIZER_CONFIG).exists():
        tokenizer_config = _read_json(folder / TOKENIZER_CONFIG, problems)
    tokenizer_problem = check_tokenizer(folder / TOKENIZER)
    if tokenizer_problem is not None:
        problems.append(tokenizer_problem)
    image = ImageSettings.from_config(processor_config, problems)
    visual = signatures.get(GRAPHS[Modality.IMAGE].encoder)
    pixels = visual.input("pixel_values") if visual is not None else None
    if pixels is not None and len(pixels.shape) == 4:
        takes = tuple(pixels.shape[2:])
        crop = (image.crop_height, image.crop_width)
        if all(isinstance(d, int) and d > 0 for d in takes) and takes != crop:
            problems.append(
                f"{PREPROCESSOR_CONFIG} crops images to {crop[0]}x{crop[1]}, but "
                f"{GRAPHS[Modality.IMAGE].encoder} takes {takes[0]}x{takes[1]} pixels"
            )
    audio = AudioSettings()
    audio_config = clip_config.get("audio_config") or {}
    if isinstance(audio_config, dict):
        sample_rate = _config_number(
            audio_config, "audio_config.sample_rate", AudioSettings.sample_rate, problems
        )
        max_length_s = _config_number(
            audio_config,
            "audio_config.max_length_s",
            AudioSettings.max_length_s,
            problems,
            integral=False,
        )
        if sample_rate is not None and max_length_s is not None:
            audio = AudioSettings(sample_rate=int(sample_rate), max_length_s=max_length_s)
    max_length = tokenizer_config.get("model_max_length", MAX_TOKENS)
    if not isinstance(max_length, int) or not 2 <= max_length <= MAX_TOKENS:
        text_cfg = clip_config.get("text_config") or {}
        found = (
            _config_number(
                text_cfg, "text_config.max_position_embeddings", MAX_TOKENS, problems, least=2
            )
            if isinstance(text_cfg, dict)
            else MAX_TOKENS
        )
        max_length = int(found or MAX_TOKENS)
    projection_dim = PROJECTION_DIM
    if not dims:  # no projection states its output size: the config must
        found_dim = _config_number(clip_config, "projection_dim", PROJECTION_DIM, problems)
        projection_dim = int(found_dim or PROJECTION_DIM)
    if problems:
        raise ModelFolderError(folder, problems)
    dim = dims.pop() if dims else projection_dim
    root = folder.resolve()
    fingerprints = {}
    for name, sig in signatures.items():
        # The graph and its external weights: replacing either must give a new session.
        stats = [(root / f).stat() for f in (name, *sig.external_files)]
        fingerprints[name] = (
            str(root / name),
            sum(s.st_size for s in stats),
            max(s.st_mtime_ns for s in stats),
        )
    return ModelFolder(
        fingerprints=fingerprints,
        clip_config=clip_config,
        path=root,
        dim=dim,
        text=TextSettings(max_length=max_length),
        image=image,
        audio=audio,
        signatures=signatures,
        revision=revision,
        source=source,
    )
