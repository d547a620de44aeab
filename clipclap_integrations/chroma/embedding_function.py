"""``ClipClapEmbeddingFunction``: Chroma's embedding function for text, images and sounds.

One class, as Chroma's own embedding functions are: the persistence contract (``name``,
``get_config``, ``build_from_config``, ``validate_config``, ``validate_config_update``) and the
embedding. Which model made a collection's vectors is decided in ``identity``; how the calling
collection is found in ``compat``. ``chroma/__init__`` registers the class with Chroma.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from chromadb.api.types import Embeddable, EmbeddingFunction, Embeddings, Space

from ..embedder import ClipClapEmbedder
from ..errors import ClipClapInputError, ModelChangedError
from ..media.audio import DEFAULT_MAX_SECONDS, LONG_AUDIO_POLICIES, LongAudioPolicy
from ..media.image import DEFAULT_MAX_PIXELS
from ..options import is_finite_number, is_int
from ..runtime.hub import default_model, is_repo_id
from ..runtime.optimize import OptimizeOption, QuantizeOption
from ..types import Text
from .compat import calling_collection, modifying_collection, stored_config
from .data_loader import as_core_input
from .identity import (
    DIGEST,
    DIGEST_KEY,
    NAME,
    changed_files,
    normalize_model,
    refuse_model_update,
    refuse_other_model,
)

__all__ = ["ClipClapEmbeddingFunction"]


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


def _json_value(value: Any) -> Any:
    """Tuples to lists, paths to strings: what a JSON round trip gives back."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, tuple | list):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    return value


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
            "model": normalize_model(model),
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
        owner = modifying_collection(self)
        if owner is not None:  # refuse another model before Chroma stores it
            stored = stored_config(owner)
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
        refuse_other_model(
            stored, self.get_config(), what, allow_revision_change=self.allow_revision_change
        )

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
        if digest is not None and not (isinstance(digest, str) and DIGEST.fullmatch(digest)):
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
        refuse_model_update(old_config, new_config)

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
                raise ModelChangedError(changed_files(self._config["model"], "this collection"))
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
        # A Chroma document is text, even if it looks like a path or URL.
        strings_as_text = [Text(x) if isinstance(x, str) else as_core_input(x) for x in inputs]
        vectors = self.embedder.embed(strings_as_text)
        return list(vectors)

    def check_collection(self, collection: Any) -> None:
        """Raise ``ValueError`` (``ModelChangedError`` for changed files) if ``collection``
        stores vectors of another model or revision; for code that writes or queries with
        vectors it embedded itself, which Chroma does not check."""
        stored = stored_config(collection)
        if stored is not None:
            self.check_compatible(stored, f"collection {collection.name!r}")

    def _check_calling_collection(self) -> None:
        """Refuse to embed for a collection whose stored model is another one.

        Chroma compares only names when a collection is re-opened with an embedding function,
        so a different model would silently mix incomparable vectors. Chroma gives an
        embedding function no handle on its collection; the collection is found on the stack.
        """
        owner = calling_collection(self)
        if owner is not None:
            self.check_collection(owner)

    def __repr__(self) -> str:
        return f"ClipClapEmbeddingFunction({self._config!r})"
