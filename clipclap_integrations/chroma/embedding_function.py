"""Chroma adapter: one collection for text, images and audio (extra ``chroma``).

* ``ClipClapEmbeddingFunction``: a Chroma embedding function over the shared core. Importing
  this module registers it under the name ``"clipclap"``, so a collection re-opened with
  ``client.get_collection(name)`` rebuilds it from the stored configuration.
* ``ClipClapDataLoader``: a Chroma data loader for ``uris=``: image AND audio files, ``file://``,
  ``data:`` and http(s) URIs, so ``add(uris=...)``, ``query(query_uris=...)`` and
  ``include=["data"]`` work for both.
* ``add_media`` / ``upsert_media`` / ``query_media``: what Chroma cannot do by itself: mixed
  lists in one call, upserts of media, modality and MIME metadata, content-hash ids.

Example::

    import chromadb
    from clipclap_integrations.chroma import ClipClapDataLoader, ClipClapEmbeddingFunction

    client = chromadb.PersistentClient("db")
    media = client.create_collection(
        "media", embedding_function=ClipClapEmbeddingFunction(), data_loader=ClipClapDataLoader()
    )
    media.add(ids=["dog", "bark"], uris=["dog.jpg", "bark.wav"])
    media.query(query_texts=["a dog barking"], n_results=2)

A collection re-opened later (any process) needs only ``import clipclap_integrations.chroma``
first; pass ``data_loader=ClipClapDataLoader()`` again for ``query_uris``/``include=["data"]``
(Chroma does not store data loaders).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib
import inspect
import mimetypes
import os
import re
import sys
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import CodeType, FrameType
from typing import Any, cast

import numpy as np

from ..errors import ClipClapInputError, ModelChangedError, missing_extra
from ..options import is_finite_number, is_int
from .batches import batch_limit, max_batch_size

try:
    from chromadb.api.types import (
        DataLoader,
        Embeddable,
        EmbeddingFunction,
        Embeddings,
        Loadable,
        Space,
        URIs,
    )
    from chromadb.utils.embedding_functions import register_embedding_function
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise missing_extra("chromadb", "chroma") from exc

from ..embedder import ClipClapEmbedder
from ..inputs import (
    URLS_PER_FETCH,
    InputOptions,
    Item,
    Media,
    Waveform,
    classify,
    classify_all,
    fetch_groups,
    is_remote,
    numeric_array,
    resolve_remote,
)
from ..media.audio import (
    DEFAULT_MAX_SECONDS,
    LONG_AUDIO_POLICIES,
    LongAudioPolicy,
    decode_audio,
    pcm_to_float,
)
from ..media.image import DEFAULT_MAX_PIXELS, open_image, to_rgb
from ..runtime.hub import default_model, is_repo_id
from ..runtime.optimize import OptimizeOption, QuantizeOption
from ..types import Audio, Image, Modality, Text

__all__ = [
    "AudioArray",
    "ClipClapDataLoader",
    "ClipClapEmbeddingFunction",
    "aadd_media",
    "add_media",
    "aquery_media",
    "aupsert_media",
    "query_media",
    "upsert_media",
]

NAME = "clipclap"


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------
def _check_providers(v: Any) -> bool:
    if isinstance(v, str):
        return True
    if not isinstance(v, list | tuple):
        return False
    return all(
        isinstance(p, str)
        or (
            isinstance(p, list | tuple)
            and len(p) == 2
            and isinstance(p[0], str)
            and isinstance(p[1], dict)
        )
        for p in v
    )


# Options of ClipClapEmbedder that a user may set: (check, what a valid value is).
_OPTIONS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "cache_dir": (lambda v: isinstance(v, str) and v != "", "a folder path"),
    "local_files_only": (lambda v: isinstance(v, bool), "true or false"),
    "providers": (_check_providers, "a list of provider names or [name, options] pairs"),
    "threads": (lambda v: is_int(v) and v >= 1, "a positive integer"),
    "batch_size": (lambda v: is_int(v) and v >= 1, "a positive integer"),
    "long_audio": (lambda v: v in LONG_AUDIO_POLICIES, "one of " + ", ".join(LONG_AUDIO_POLICIES)),
    "allow_remote": (lambda v: isinstance(v, bool), "true or false"),
    "allow_private_urls": (lambda v: isinstance(v, bool), "true or false"),
    "allow_local_files": (lambda v: isinstance(v, bool), "true or false"),
    "strict_paths": (lambda v: isinstance(v, bool), "true or false"),
    "max_remote_bytes": (lambda v: is_int(v) and v >= 1, "a positive integer"),
    "remote_timeout": (lambda v: is_finite_number(v) and v > 0, "a positive number of seconds"),
    "max_image_pixels": (lambda v: v is None or (is_int(v) and v >= 1), "null or an integer"),
    "max_audio_seconds": (
        lambda v: v is None or (is_finite_number(v) and v > 0),
        "null or seconds",
    ),
    "fast_jpeg": (lambda v: isinstance(v, bool), "true or false"),
    "optimize": (lambda v: v == "fusions", '"fusions"'),
    "quantize": (lambda v: v == "int8", '"int8"'),
    "optimized_dir": (lambda v: isinstance(v, str) and v != "", "a folder path"),
}


def _normalize_model(model: str | os.PathLike[str]) -> str:
    """A local folder as an absolute path (so other processes find it); a Hub id unchanged."""
    name = os.fspath(model)
    path = Path(name).expanduser()
    if path.is_dir() or not is_repo_id(name):
        return str(path.resolve())
    return name


def _json_value(value: Any) -> Any:
    """Tuples to lists, paths to strings: what a JSON round trip gives back."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, tuple | list):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    return value


# Stored beside the model: the digest of its files (``ModelFolder.digest``), so a collection
# knows its model wherever the files live, and notices files changed in place.
DIGEST_KEY = "model_digest"
_DIGEST = re.compile(r"[0-9a-f]{32}")
Identity = tuple[str, str | None]


def _identity(config: Mapping[str, Any]) -> Identity:
    """Where the model is said to be: the folder or repo id and its revision."""
    return _normalize_model(str(config.get("model"))), config.get("revision")


def _same_files(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool | None:
    """True when both configs carry the same model digest, False when both carry one and
    they differ, None when either lacks one (then only the model and revision tell)."""
    old_digest, new_digest = old.get(DIGEST_KEY), new.get(DIGEST_KEY)
    if old_digest is None or new_digest is None:
        return None
    return bool(old_digest == new_digest)


def _describe_model(identity: Identity) -> str:
    model, revision = identity
    return f"{model!r}" + (f" at revision {revision!r}" if revision else "")


def _changed_files(model: str, what: str) -> str:
    return (
        f"{what} was embedded with the CLIPCLAP model files that were at {model!r}, and the "
        "files there are now different ones (another model digest): vectors of different "
        "models are not comparable. Restore the files, or embed again into a new collection."
    )


def _incompatible(old: Identity, new: Identity, what: str) -> str:
    return (
        f"{what} was embedded with the CLIPCLAP model {_describe_model(old)}, but this "
        f"embedding function uses {_describe_model(new)}: vectors of different models or "
        "revisions are not comparable. Re-open the collection without embedding_function= "
        "(its stored configuration is used) or with the same model; use a new collection for "
        "another model."
    )


def _refused_update(old: Identity, new: Identity) -> str:
    return (
        f"cannot change the embedding model of a collection from {_describe_model(old)} to "
        f"{_describe_model(new)}: the vectors it holds would not be comparable with new ones. "
        "Create a new collection for another model (options such as batch_size may change)."
    )


# --------------------------------------------------------------------------------------------
# Loaded audio
# --------------------------------------------------------------------------------------------
class AudioArray(np.ndarray):
    """Decoded sound as ``ClipClapDataLoader`` returns it: float32 samples plus ``sample_rate``.

    Samples are ``(frames,)`` for mono (``(channels, frames)`` if the decoder keeps channels),
    at the file's own rate. The embedding function recognizes it as audio, where a plain
    array of ndim >= 2 would be an image. Integer PCM (int16, int32, int8, uint8) is scaled to
    [-1, 1) as soundfile reads it; other integer types are refused as ambiguous.
    """

    sample_rate: int

    def __new__(cls, samples: Any, sample_rate: int) -> AudioArray:
        obj = pcm_to_float(numeric_array(samples, "audio samples")).view(cls)
        obj.sample_rate = int(sample_rate)
        return obj

    def __array_finalize__(self, obj: Any) -> None:
        self.sample_rate = getattr(obj, "sample_rate", 0)

    def __reduce__(self) -> Any:
        return (AudioArray, (np.asarray(self), self.sample_rate))

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.shape[-1] / self.sample_rate if self.sample_rate else 0.0


def _core_input(item: Any, strings_are_text: bool) -> Any:
    """What to hand the core for one input of the adapter."""
    if strings_are_text and isinstance(item, str):
        return Text(item)  # a Chroma document is text, even if it looks like a path or URL
    if isinstance(item, AudioArray):
        return Audio(np.asarray(item), sample_rate=item.sample_rate)
    return item


# --------------------------------------------------------------------------------------------
# Embedding function
# --------------------------------------------------------------------------------------------
class ClipClapEmbeddingFunction(EmbeddingFunction[Embeddable]):
    """Chroma embedding function for CLIPCLAP: documents, images and sounds in one space.

    Accepts any mix of Chroma documents (strings are always text), image arrays (HxW, HxWx3,
    HxWx4 uint8, as Chroma's ``ImageLoader`` gives them), what ``ClipClapDataLoader`` returns,
    and anything else the core accepts (PIL images, ``Image``/``Audio`` wrappers, ...).
    Returns one float32 vector per input, in order; a bad item raises ``ClipClapInputError``.

    Construction loads nothing; the model is resolved and its sessions created on first use
    (and shared by every instance in the process). Options are those of ``ClipClapEmbedder``;
    only the ones you set are stored in the collection's configuration.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        revision: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        local_files_only: bool | None = None,
        providers: Sequence[str | tuple[str, dict[str, Any]]] | str | None = None,
        threads: int | None = None,
        batch_size: int | None = None,
        long_audio: LongAudioPolicy | None = None,
        allow_remote: bool | None = None,
        allow_private_urls: bool | None = None,
        allow_local_files: bool | None = None,
        strict_paths: bool | None = None,
        max_remote_bytes: int | None = None,
        remote_timeout: float | None = None,
        max_image_pixels: int | None = DEFAULT_MAX_PIXELS,
        max_audio_seconds: float | None = DEFAULT_MAX_SECONDS,
        fast_jpeg: bool | None = None,
        optimize: OptimizeOption | None = None,
        quantize: QuantizeOption | None = None,
        optimized_dir: str | os.PathLike[str] | None = None,
        allow_revision_change: bool = False,
    ) -> None:
        given = {
            "cache_dir": cache_dir,
            "local_files_only": local_files_only,
            "providers": providers,
            "threads": threads,
            "batch_size": batch_size,
            "long_audio": long_audio,
            "allow_remote": allow_remote,
            "allow_private_urls": allow_private_urls,
            "allow_local_files": allow_local_files,
            "strict_paths": strict_paths,
            "max_remote_bytes": max_remote_bytes,
            "remote_timeout": remote_timeout,
            "fast_jpeg": fast_jpeg,
            "optimize": optimize,
            "quantize": quantize,
            "optimized_dir": optimized_dir,
        }
        options = {k: _json_value(v) for k, v in given.items() if v is not None}
        # For the two limits None means "no limit", so "unset" is the default value itself.
        if max_image_pixels != DEFAULT_MAX_PIXELS:
            options["max_image_pixels"] = max_image_pixels
        if max_audio_seconds != DEFAULT_MAX_SECONDS:
            options["max_audio_seconds"] = max_audio_seconds
        model = default_model() if model is None else model
        if not isinstance(model, str | os.PathLike) or not os.fspath(model).strip():
            raise ValueError(f"model must be a folder path or a Hub repo id, got {model!r}")
        config: dict[str, Any] = {
            "model": _normalize_model(model),
            "revision": revision,
            **options,
        }
        self.validate_config(config)
        self._config = config
        self._embedder: ClipClapEmbedder | None = None
        self._stored_digest: str | None = None  # set by build_from_config
        # Per use, never stored: query a collection built from another Hub revision anyway.
        self.allow_revision_change = bool(allow_revision_change)

    # -- the persistence contract ------------------------------------------------------------
    @staticmethod
    def name() -> str:
        return NAME

    def get_config(self) -> dict[str, Any]:
        """Model, revision and the options set explicitly (JSON values only).

        For a Hub model the revision is the commit actually in use (resolved once per
        process), so the collection stays tied to the weights that made its vectors.
        """
        config = dict(self._config)
        if is_repo_id(config["model"]):
            # Unresolvable now (offline, no cache): keep what was asked for.
            with contextlib.suppress(Exception):
                config["revision"] = self.embedder.model_revision or config["revision"]
        digest = self.model_digest()
        if digest is not None:
            config[DIGEST_KEY] = digest
        owner = _modifying_collection(self)
        if owner is not None:  # refuse another model before Chroma stores it
            stored = _stored_config(owner)
            if stored is not None:
                self.validate_config_update(stored, config)
        return config

    def model_digest(self) -> str | None:
        """The digest of the model files in use (``ModelFolder.digest``); the stored one, or
        None, when the model cannot be resolved now (a missing folder, offline, no cache)."""
        try:
            return self.embedder.folder.digest
        except ModelChangedError:
            raise  # known to differ: never report the stored digest for these files
        except Exception:
            return self._stored_digest

    def check_compatible(self, stored: Mapping[str, Any], what: str) -> None:
        """Refuse to embed for vectors made by another model, or another Hub revision.

        A revision change is allowed when this function was created with
        ``allow_revision_change=True``, or when the stored config names no revision.
        """
        current = self.get_config()
        old, new = _identity(stored), _identity(current)
        same = _same_files(stored, current)
        if same:
            return  # the same files, wherever they live now and however they are named
        if old[0] != new[0]:
            raise ValueError(_incompatible(old, new, what))
        revision_changed = old[1] is not None and old[1] != new[1]
        if revision_changed and not self.allow_revision_change:
            raise ValueError(
                _incompatible(old, new, what)
                + f" To use revision {old[1]!r} pass revision={old[1]!r}; to mix revisions "
                "knowingly pass allow_revision_change=True."
            )
        if same is False and not revision_changed:
            raise ModelChangedError(_changed_files(old[0], what))

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> ClipClapEmbeddingFunction:
        ClipClapEmbeddingFunction.validate_config(config)
        options = {k: v for k, v in config.items() if k != DIGEST_KEY}
        ef = ClipClapEmbeddingFunction(**options)
        ef._stored_digest = config.get(DIGEST_KEY)
        return ef

    @staticmethod
    def validate_config(config: dict[str, Any]) -> None:
        """Raise ``ValueError`` listing every problem of a stored configuration."""
        if not isinstance(config, dict):
            raise ValueError(f"a clipclap config must be a dict, got {type(config).__name__}")
        problems = []
        model = config.get("model")
        if not isinstance(model, str) or not model.strip():
            problems.append(f"'model' must be a folder path or a Hub repo id, got {model!r}")
        revision = config.get("revision")
        if revision is not None and (not isinstance(revision, str) or not revision.strip()):
            problems.append(f"'revision' must be a non-empty string or null, got {revision!r}")
        digest = config.get(DIGEST_KEY)
        if digest is not None and not (isinstance(digest, str) and _DIGEST.fullmatch(digest)):
            problems.append(f"{DIGEST_KEY!r} must be 32 lowercase hex digits, got {digest!r}")
        for key, value in config.items():
            if key in ("model", "revision", DIGEST_KEY):
                continue
            if key not in _OPTIONS:
                problems.append(
                    f"unknown option {key!r} (known: model, revision, {', '.join(_OPTIONS)})"
                )
                continue
            check, expected = _OPTIONS[key]
            if not check(value):
                problems.append(f"{key!r} must be {expected}, got {value!r}")
        if problems:
            raise ValueError("invalid clipclap embedding function config: " + "; ".join(problems))

    def validate_config_update(
        self, old_config: dict[str, Any], new_config: dict[str, Any]
    ) -> None:
        """Allow option changes; refuse another model or revision (vectors would not compare).

        A stored config of a Hub model that names no revision (made offline) takes the revision
        in use, as ``check_compatible`` does when embedding."""
        self.validate_config(new_config)
        old, new = _identity(old_config), _identity(new_config)
        same = _same_files(old_config, new_config)
        if same:
            return  # the same files, moved or renamed
        unpinned_hub_model = old[1] is None and is_repo_id(old[0])
        if same is False or old[0] != new[0] or (old[1] != new[1] and not unpinned_hub_model):
            raise ValueError(_refused_update(old, new))

    def default_space(self) -> Space:
        return "cosine"

    def supported_spaces(self) -> list[Space]:
        # Vectors are L2-normalized: all three give the same ranking.
        return ["cosine", "ip", "l2"]

    # -- embedding ---------------------------------------------------------------------------
    @property
    def embedder(self) -> ClipClapEmbedder:
        """The core embedder (created on first use; its sessions are shared process-wide)."""
        if self._embedder is None:
            config = dict(self._config)
            embedder = ClipClapEmbedder(config.pop("model"), **config)
            stored = self._stored_digest
            if stored is not None and embedder.folder.digest != stored:
                raise ModelChangedError(_changed_files(self._config["model"], "this collection"))
            self._embedder = embedder
        return self._embedder

    def __call__(self, input: Embeddable) -> Embeddings:
        return self._vectors(input)

    def embed_query(self, input: Embeddable) -> Embeddings:
        return self._vectors(input)

    def _vectors(self, inputs: Sequence[Any]) -> Embeddings:
        if isinstance(inputs, str | bytes) or not isinstance(inputs, Sequence | np.ndarray):
            raise TypeError(
                f"expected a list of inputs, got {type(inputs).__name__} (wrap one in a list)"
            )
        self._check_calling_collection()
        for index, item in enumerate(inputs):
            if item is None:  # Chroma passes the loader's None for a record without a URI
                raise ClipClapInputError(
                    "nothing to embed (None): give each record a document, an image or a URI",
                    index=index,
                    item="None",
                )
        vectors = self.embedder.embed([_core_input(x, strings_are_text=True) for x in inputs])
        return list(vectors)

    def check_collection(self, collection: Any) -> None:
        """Raise ``ValueError`` (``ModelChangedError`` for changed files) if ``collection``
        stores vectors of another model or revision; for code that writes or queries with
        vectors it embedded itself, which Chroma does not check."""
        stored = _stored_config(collection)
        if stored is not None:
            self.check_compatible(stored, f"collection {collection.name!r}")

    def _check_calling_collection(self) -> None:
        """Refuse to embed for a collection whose stored model is another one.

        Chroma compares only names when a collection is re-opened with an embedding function,
        so a different model would silently mix incomparable vectors. Chroma gives an
        embedding function no handle on its collection; the collection is found on the stack.
        """
        owner = _calling_collection(self)
        if owner is not None:
            self.check_collection(owner)

    def __repr__(self) -> str:
        return f"ClipClapEmbeddingFunction({self._config!r})"


register_embedding_function(ClipClapEmbeddingFunction)


def _method_codes(*where: tuple[str, str, str]) -> tuple[CodeType, ...]:
    """Code objects of Chroma methods given as (module, class, method); missing ones skipped."""
    codes = []
    for module, cls, method in where:
        try:
            found = getattr(getattr(importlib.import_module(module), cls), method)
            codes.append(cast(CodeType, found.__code__))
        except (ImportError, AttributeError):  # pragma: no cover - another chromadb layout
            pass
    return tuple(codes)


_EMBED_CODES = _method_codes(("chromadb.api.models.CollectionCommon", "CollectionCommon", "_embed"))
_MODIFY_CODES = _method_codes(
    ("chromadb.api.models.Collection", "Collection", "modify"),
    ("chromadb.api.models.AsyncCollection", "AsyncCollection", "modify"),
)


def _chroma_frame(codes: tuple[CodeType, ...], depth: int) -> FrameType | None:
    """The frame running one of ``codes`` among the ``depth`` callers of our caller."""
    frame: FrameType | None = sys._getframe(2)
    for _ in range(depth):
        if frame is None:
            return None
        if frame.f_code in codes:
            return frame
        frame = frame.f_back
    return None


def _modifying_collection(ef: ClipClapEmbeddingFunction) -> Any | None:
    """The Chroma collection whose ``modify(configuration=...)`` is attaching ``ef`` now.

    Chroma writes the new configuration first and validates it after
    (``validate_config_update`` runs once it is stored), so a refused model would stay
    stored; checking while Chroma serializes ``ef`` refuses it before anything is written.
    """
    # get_config <- serialization <- client._modify <- (awaits) <- modify
    frame = _chroma_frame(_MODIFY_CODES, 16)
    if frame is None:
        return None
    configuration = frame.f_locals.get("configuration")
    if isinstance(configuration, Mapping) and configuration.get("embedding_function") is ef:
        return frame.f_locals.get("self")
    return None


def _calling_collection(ef: ClipClapEmbeddingFunction) -> Any | None:
    """The Chroma collection embedding with ``ef`` right now, if ``ef`` is its own function."""
    # _embed -> Chroma's __call__ wrapper -> __call__ -> _vectors -> here
    frame = _chroma_frame(_EMBED_CODES, 10)
    if frame is None:
        return None
    owner = frame.f_locals.get("self")
    return owner if getattr(owner, "_embedding_function", None) is ef else None


def _stored_config(collection: Any) -> dict[str, Any] | None:
    """The clipclap config stored with a collection; None if it stores no known function.

    Raises ``ValueError`` if it stores another (non-legacy) embedding function.
    """
    stored = (collection.configuration_json or {}).get("embedding_function") or {}
    if stored.get("type") != "known":
        return None
    if stored.get("name") != NAME:
        raise ValueError(
            f"collection {collection.name!r} uses the embedding function {stored.get('name')!r}, "
            "not clipclap: its vectors are not CLIPCLAP vectors"
        )
    return cast(dict[str, Any], stored.get("config") or {})


# --------------------------------------------------------------------------------------------
# Data loader
# --------------------------------------------------------------------------------------------
def _short(uri: str) -> str:
    """A URI for an error message: whole, except the payload of a long data: URI."""
    return repr(uri[:60] + "..." if uri[:5].lower() == "data:" and len(uri) > 80 else uri)


class ClipClapDataLoader(DataLoader[Loadable]):
    """Loads ``uris`` of images and sounds for Chroma, concurrently.

    Accepts local paths and ``file://`` URLs (unless ``allow_local_files=False``: give the
    collection's embedding function the same setting), ``data:`` URIs and (with
    ``allow_remote``) http(s) URLs. Images become HxWx3 uint8 RGB arrays (upright,
    transparency on white: what the model sees); sounds become ``AudioArray`` (float32
    samples with ``.sample_rate``). ``None``
    entries (records stored without a URI) stay ``None``. A URI that cannot be loaded raises
    ``ClipClapInputError`` naming it.
    """

    def __init__(
        self,
        *,
        allow_remote: bool = True,
        allow_private_urls: bool = True,
        allow_local_files: bool = True,
        max_workers: int | None = None,
        max_remote_bytes: int = 64 * 1024 * 1024,
        remote_timeout: float = 30.0,
        max_image_pixels: int | None = DEFAULT_MAX_PIXELS,
        max_audio_seconds: float | None = DEFAULT_MAX_SECONDS,
    ) -> None:
        self.options = InputOptions(
            allow_remote=allow_remote,
            allow_private_urls=allow_private_urls,
            allow_local_files=allow_local_files,
            max_remote_bytes=max_remote_bytes,
            remote_timeout=remote_timeout,
        )
        self.max_workers = max_workers or min(8, (os.cpu_count() or 1) + 2)
        self.max_image_pixels = max_image_pixels
        self.max_audio_seconds = max_audio_seconds

    def __call__(self, uris: URIs) -> list[Any]:  # type: ignore[override]
        if isinstance(uris, str) or not isinstance(uris, Sequence):
            raise TypeError(f"uris must be a list of strings, got {type(uris).__name__}")
        positions = [i for i, u in enumerate(uris) if u is not None]
        items = [self._locate(i, uris[i]) for i in positions]
        resolve_remote(items, positions, self.options)  # errors name index and URI
        out: list[Any] = [None] * len(uris)
        if not items:
            return out
        workers = min(self.max_workers, len(items))
        with ThreadPoolExecutor(workers, thread_name_prefix="clipclap-load") as pool:
            loaded = list(pool.map(self._load_or_error, positions, items))
        for i, got in zip(positions, loaded, strict=True):
            if isinstance(got, ClipClapInputError):
                raise got
            out[i] = got
        return out

    def _locate(self, index: int, uri: Any) -> Item:
        if not isinstance(uri, str):
            raise ClipClapInputError(
                f"a URI must be a string, got {type(uri).__name__}", index=index, item=repr(uri)
            )
        try:
            item = classify(uri, self.options)
        except ClipClapInputError as exc:
            raise ClipClapInputError(exc.reason, index=index, item=_short(uri)) from None
        if item.modality is Modality.TEXT:
            if not uri.strip():  # Path("") is the current folder, which exists
                reason = "an empty URI (expected a path, file://, data: or http(s) URI)"
            elif uri[:5].lower() == "data:":
                reason = "the data: URI holds text, not an image or a sound"
            elif not self.options.allow_local_files:  # never look at the disk
                reason = "reading local files is disabled (allow_local_files=False)"
            elif Path(uri).expanduser().is_dir():
                reason = "a folder, not an image or sound file"
            elif Path(uri).expanduser().exists():
                reason = "the file is neither an image nor a sound that can be recognized"
            else:
                reason = "no such file (expected a path, file://, data: or http(s) URI)"
            raise ClipClapInputError(reason, index=index, item=_short(uri))
        item.description = _short(uri)
        return item

    def _load_or_error(self, index: int, item: Item) -> Any:
        try:
            payload = cast(Media, item.payload)  # local or fetched: always encoded media here
            if item.modality is Modality.IMAGE:
                image = open_image(payload.source, max_pixels=self.max_image_pixels)
                return np.asarray(to_rgb(image))
            samples, rate = decode_audio(payload.source, max_seconds=self.max_audio_seconds)
            return AudioArray(samples[0] if samples.shape[0] == 1 else samples, rate)
        except ClipClapInputError as exc:
            return ClipClapInputError(exc.reason, index=index, item=item.description)

    def __repr__(self) -> str:
        o = self.options
        return (
            f"ClipClapDataLoader(allow_remote={o.allow_remote}, "
            f"allow_private_urls={o.allow_private_urls}, "
            f"allow_local_files={o.allow_local_files})"
        )


# --------------------------------------------------------------------------------------------
# Media helpers
# --------------------------------------------------------------------------------------------
@dataclass
class _Prepared:
    modality: Modality
    embed_input: Any  # an explicit Text/Image/Audio for the core
    uri: str | None
    mime: str | None
    document: str | None
    digest: str


def _embedding_function_for(
    collection: Any, embedding_function: ClipClapEmbeddingFunction | None
) -> ClipClapEmbeddingFunction:
    """The function whose model the collection's vectors come from (checked against it)."""
    stored = _stored_config(collection)
    ef = embedding_function
    if ef is None:
        own = getattr(collection, "_embedding_function", None)
        if isinstance(own, ClipClapEmbeddingFunction):
            ef = own
        elif stored is not None:
            ef = ClipClapEmbeddingFunction.build_from_config(stored)
        else:
            raise ValueError(
                f"collection {collection.name!r} has no clipclap embedding function: create it "
                "with embedding_function=ClipClapEmbeddingFunction(...) or pass "
                "embedding_function= here"
            )
    if stored is not None:
        ef.check_compatible(stored, f"collection {collection.name!r}")
    return ef


def _source_uri(raw: Any, item: Item) -> str | None:
    """The URI to store: an http(s) or file: URL as given, the absolute path of media read
    from a file; None for media given in memory or as a data: URI."""
    payload = item.payload
    if not isinstance(payload, Media):
        return None
    if isinstance(raw, Image | Audio):
        raw = raw.source
    if isinstance(raw, str):
        url = raw.strip()
        if url[:8].lower().startswith(("http://", "https://", "file:/")):
            return url  # as given
    if payload.path is not None:
        return str(payload.path.expanduser().resolve())
    return None


def _guess_mime(item: Item, uri: str | None) -> str | None:
    if item.modality is Modality.TEXT:
        return "text/plain"
    payload = item.payload
    if isinstance(payload, Media) and payload.mime:
        return payload.mime.split(";")[0].strip()
    if uri is not None:
        guessed = mimetypes.guess_type(urllib.parse.urlsplit(uri).path)[0]
        if guessed:
            return guessed
    fmt = getattr(payload, "format", None)  # a PIL image opened from a file
    if isinstance(fmt, str):
        from PIL import Image as PILImage

        return PILImage.MIME.get(fmt)
    return None


def _digest(modality: Modality, item: Item) -> str:
    """A content hash: the same text, file bytes, pixels or samples give the same id."""
    h = hashlib.sha256(modality.value.encode() + b"\0")
    payload = item.payload
    if isinstance(payload, str):
        h.update(payload.encode("utf-8"))
    elif isinstance(payload, Media) and payload.data is not None:
        h.update(payload.data)
    elif isinstance(payload, Media):
        with open(payload.source, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    elif isinstance(payload, Waveform):
        samples = np.ascontiguousarray(payload.samples)
        h.update(f"{payload.sample_rate}|{samples.dtype}|{samples.shape}|".encode())
        h.update(samples.tobytes())
    elif isinstance(payload, np.ndarray):
        arr = np.ascontiguousarray(payload)
        h.update(f"{arr.dtype}|{arr.shape}|".encode())
        h.update(arr.tobytes())
    else:  # a PIL image
        h.update(f"{payload.mode}|{payload.size}|".encode())
        h.update(payload.tobytes())
    return h.hexdigest()[:32]


def _explicit(item: Item) -> Any:
    """The classified item as an explicit wrapper, so the core does not re-detect or re-fetch."""
    payload = item.payload
    if item.modality is Modality.TEXT:
        return Text(payload)
    if isinstance(payload, Media):
        payload = payload.source
    if item.modality is Modality.IMAGE:
        return Image(payload)
    if isinstance(payload, Waveform):
        return Audio(payload.samples, sample_rate=payload.sample_rate)
    return Audio(payload)


def _prepared(raw: Any, item: Item) -> _Prepared:
    modality = cast(Modality, item.modality)  # remote URLs are resolved by now
    uri = _source_uri(raw, item)
    return _Prepared(
        modality=modality,
        embed_input=_explicit(item),
        uri=uri,
        mime=_guess_mime(item, uri),
        document=item.payload if modality is Modality.TEXT else None,
        digest=_digest(modality, item),
    )


def _prepare_and_embed(
    sources: Sequence[Any], embedder: ClipClapEmbedder
) -> tuple[list[_Prepared], np.ndarray]:
    """Every source classified (all checked before any work), then fetched, described and
    embedded a group of URLs at a time; fetched bytes are dropped once embedded."""
    raws = [_core_input(s, strings_are_text=False) for s in sources]
    items = classify_all(raws, embedder.input_options, fetch=False)
    prepared: list[_Prepared | None] = [None] * len(items)
    vectors = np.empty((len(items), embedder.dim), dtype=np.float32)
    for rows in fetch_groups(items, URLS_PER_FETCH):
        remote = [i for i in rows if is_remote(items[i])]
        resolve_remote([items[i] for i in remote], remote, embedder.input_options)
        group = [_prepared(sources[i], items[i]) for i in rows]
        vectors[rows] = embedder.embed([p.embed_input for p in group])
        for i, p in zip(rows, group, strict=True):
            p.embed_input = None  # the media itself is no longer needed
            prepared[i] = p
        for i in remote:
            items[i].payload = None
    return cast(list[_Prepared], prepared), vectors


@dataclass
class _MediaWrite:
    ids: list[str]  # one per source, in input order
    batches: list[dict[str, Any]]  # keyword arguments of each add/upsert call


def _plan_media_write(
    collection: Any,
    sources: Sequence[Any],
    ids: Sequence[str] | None,
    metadatas: Sequence[Mapping[str, Any] | None] | None,
    embedding_function: ClipClapEmbeddingFunction | None,
    max_batch: int | None,
) -> _MediaWrite:
    """Classify, check and embed everything; the writes come after, in client-sized batches."""
    from chromadb.api.types import validate_ids, validate_metadatas

    if isinstance(sources, str | bytes) or not isinstance(sources, Sequence):
        raise TypeError("sources must be a list (wrap a single item in a list)")
    if not sources:
        return _MediaWrite([], [])
    if ids is not None and len(ids) != len(sources):
        raise ValueError(f"got {len(ids)} ids for {len(sources)} sources")
    if metadatas is not None and len(metadatas) != len(sources):
        raise ValueError(f"got {len(metadatas)} metadatas for {len(sources)} sources")
    ef = _embedding_function_for(collection, embedding_function)
    if ids is not None:
        validate_ids(list(ids))  # before any download or embedding
    given = [dict(m) for m in metadatas or [] if m]  # None or {}: only our own keys
    if given:
        validate_metadatas(cast(Any, given))  # chromadb's Metadata: checked at run time
    prepared, vectors = _prepare_and_embed(sources, ef.embedder)
    all_ids = list(ids) if ids is not None else [f"{p.modality}-{p.digest}" for p in prepared]
    keep = list(range(len(all_ids)))
    if ids is None:  # the same content twice: one record
        first: dict[str, int] = {}
        for row, record_id in enumerate(all_ids):
            first.setdefault(record_id, row)
        keep = list(first.values())
    records_meta = []
    for row in keep:
        p = prepared[row]
        meta: dict[str, Any] = {"modality": p.modality.value}
        if p.mime:
            meta["mime_type"] = p.mime
        if metadatas is not None and metadatas[row]:
            meta.update(metadatas[row])  # type: ignore[arg-type]
        records_meta.append(meta)
    # Chroma's own checks, over the whole call: a later batch must not fail after the first
    # was written (duplicate ids across batches, a bad metadata value).
    validate_ids([all_ids[r] for r in keep])
    validate_metadatas(cast(Any, records_meta))
    vectors = vectors[keep]
    step = max_batch or len(keep)
    batches = [
        {
            "ids": [all_ids[r] for r in keep[start : start + step]],
            "embeddings": list(vectors[start : start + step]),
            "metadatas": records_meta[start : start + step],
            "documents": [prepared[r].document for r in keep[start : start + step]],
            "uris": [prepared[r].uri for r in keep[start : start + step]],
        }
        for start in range(0, len(keep), step)
    ]
    return _MediaWrite(all_ids, batches)


def _expect_async(collection: Any, helper: str, expected: bool) -> None:
    """Refuse a collection of the other kind than ``helper`` (``"add_media"``...) serves:
    Chroma's async methods would hand back coroutines nobody awaits, writing nothing."""
    if inspect.iscoroutinefunction(getattr(collection, "add", None)) == expected:
        return
    if expected:
        raise TypeError(f"collection {collection.name!r} is not an AsyncCollection: use {helper}()")
    raise TypeError(
        f"collection {collection.name!r} is an AsyncCollection: use "
        f"`await a{helper}(collection, ...)`"
    )


def _write_media(
    method: str,
    collection: Any,
    sources: Sequence[Any],
    ids: Sequence[str] | None,
    metadatas: Sequence[Mapping[str, Any] | None] | None,
    embedding_function: ClipClapEmbeddingFunction | None,
) -> list[str]:
    _expect_async(collection, f"{method}_media", expected=False)
    plan = _plan_media_write(
        collection, sources, ids, metadatas, embedding_function, max_batch_size(collection)
    )
    for batch in plan.batches:
        getattr(collection, method)(**batch)
    return plan.ids


async def _awrite_media(
    method: str,
    collection: Any,
    sources: Sequence[Any],
    ids: Sequence[str] | None,
    metadatas: Sequence[Mapping[str, Any] | None] | None,
    embedding_function: ClipClapEmbeddingFunction | None,
) -> list[str]:
    _expect_async(collection, f"{method}_media", expected=True)
    try:
        max_batch = batch_limit(await collection._client.get_max_batch_size())
    except Exception:  # another client type: write everything at once
        max_batch = None
    plan = await asyncio.to_thread(  # embedding is CPU work: off the event loop
        _plan_media_write,
        collection,
        sources,
        ids,
        metadatas,
        embedding_function,
        max_batch,
    )
    for batch in plan.batches:
        await getattr(collection, method)(**batch)
    return plan.ids


def add_media(
    collection: Any,
    sources: Sequence[Any],
    ids: Sequence[str] | None = None,
    metadatas: Sequence[Mapping[str, Any] | None] | None = None,
    *,
    embedding_function: ClipClapEmbeddingFunction | None = None,
) -> list[str]:
    """Embed any mix of texts, images and sounds and add them to ``collection``.

    ``sources``: sentences, paths, ``file://``/``data:``/http(s) URIs, bytes, PIL images,
    arrays, ``(samples, rate)`` pairs, ``Text``/``Image``/``Audio`` wrappers. Texts are stored
    as documents, paths and URLs as ``uris``; each record gets ``modality`` and (when known)
    ``mime_type`` metadata, merged under your ``metadatas``. Ids default to a content hash
    (``"<modality>-<hash>"``), so adding the same content twice keeps one record.
    Everything is embedded and checked (ids, metadata) before anything is written: a bad item
    raises ``ClipClapInputError`` (a bad id or metadata Chroma's own error) and the
    collection is unchanged. Returns the ids, in input order. For an ``AsyncCollection``
    use ``await aadd_media(...)``.
    """
    return _write_media("add", collection, sources, ids, metadatas, embedding_function)


def upsert_media(
    collection: Any,
    sources: Sequence[Any],
    ids: Sequence[str] | None = None,
    metadatas: Sequence[Mapping[str, Any] | None] | None = None,
    *,
    embedding_function: ClipClapEmbeddingFunction | None = None,
) -> list[str]:
    """Like ``add_media`` but replaces existing records (Chroma refuses ``upsert(uris=...)``)."""
    return _write_media("upsert", collection, sources, ids, metadatas, embedding_function)


def query_media(
    collection: Any,
    query: Any,
    n_results: int = 10,
    *,
    modality: Modality | str | None = None,
    where: Mapping[str, Any] | None = None,
    where_document: Mapping[str, Any] | None = None,
    include: list[str] | None = None,
    embedding_function: ClipClapEmbeddingFunction | None = None,
) -> Any:
    """Query ``collection`` with a sentence, an image or a sound (a ``list`` = several queries).

    Strings naming existing files and URLs are media, other strings are text (wrap in
    ``Text``/``Image``/``Audio`` to say so). ``modality`` keeps only records that
    ``add_media`` marked with it. Returns Chroma's ``QueryResult``. For an
    ``AsyncCollection`` use ``await aquery_media(...)``.
    """
    _expect_async(collection, "query_media", expected=False)
    return collection.query(
        **_query_arguments(
            collection,
            query,
            n_results,
            modality,
            where,
            where_document,
            include,
            embedding_function,
        )
    )


def _query_arguments(
    collection: Any,
    query: Any,
    n_results: int,
    modality: Modality | str | None,
    where: Mapping[str, Any] | None,
    where_document: Mapping[str, Any] | None,
    include: list[str] | None,
    embedding_function: ClipClapEmbeddingFunction | None,
) -> dict[str, Any]:
    queries = query if isinstance(query, list) else [query]
    ef = _embedding_function_for(collection, embedding_function)
    vectors = ef.embedder.embed([_core_input(q, strings_are_text=False) for q in queries])
    filters: dict[str, Any] | None = dict(where) if where else None
    if modality is not None:
        only = {"modality": Modality.parse(modality).value}
        filters = {"$and": [filters, only]} if filters else only
    kwargs: dict[str, Any] = {
        "query_embeddings": list(vectors),
        "n_results": n_results,
        "where": filters,
        "where_document": dict(where_document) if where_document else None,
    }
    if include is not None:
        kwargs["include"] = include
    return kwargs


async def aadd_media(
    collection: Any,
    sources: Sequence[Any],
    ids: Sequence[str] | None = None,
    metadatas: Sequence[Mapping[str, Any] | None] | None = None,
    *,
    embedding_function: ClipClapEmbeddingFunction | None = None,
) -> list[str]:
    """``add_media`` for an ``AsyncCollection`` (embedding runs in a worker thread)."""
    return await _awrite_media("add", collection, sources, ids, metadatas, embedding_function)


async def aupsert_media(
    collection: Any,
    sources: Sequence[Any],
    ids: Sequence[str] | None = None,
    metadatas: Sequence[Mapping[str, Any] | None] | None = None,
    *,
    embedding_function: ClipClapEmbeddingFunction | None = None,
) -> list[str]:
    """``upsert_media`` for an ``AsyncCollection`` (embedding runs in a worker thread)."""
    return await _awrite_media("upsert", collection, sources, ids, metadatas, embedding_function)


async def aquery_media(
    collection: Any,
    query: Any,
    n_results: int = 10,
    *,
    modality: Modality | str | None = None,
    where: Mapping[str, Any] | None = None,
    where_document: Mapping[str, Any] | None = None,
    include: list[str] | None = None,
    embedding_function: ClipClapEmbeddingFunction | None = None,
) -> Any:
    """``query_media`` for an ``AsyncCollection`` (embedding runs in a worker thread)."""
    _expect_async(collection, "query_media", expected=True)
    kwargs = await asyncio.to_thread(
        _query_arguments,
        collection,
        query,
        n_results,
        modality,
        where,
        where_document,
        include,
        embedding_function,
    )
    return await collection.query(**kwargs)
