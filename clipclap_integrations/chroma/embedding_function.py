"""``ClipClapEmbeddingFunction``: Chroma's embedding function for text, images and sounds.

One class, as Chroma's own embedding functions are: the persistence contract (``name``,
``get_config``, ``build_from_config``, ``validate_config``, ``validate_config_update``) and the
embedding. Which model made a collection's vectors is decided in ``identity``; how the calling
collection is found in ``compat``. ``chroma/__init__`` registers the class with Chroma.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from chromadb.api.types import Embeddable, EmbeddingFunction, Embeddings, Space

from ..embedder import ClipClapEmbedder
from ..errors import ClipClapInputError, ModelChangedError
from ..options import (
    OPTION_NAMES,
    EmbedderOptions,
    config_problems,
    json_value,
    option_default,
)
from ..runtime.hub import default_model, is_repo_id
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
        allow_revision_change: bool = False,
        **options: Any,
    ) -> None:
        # Only the options given are stored; None means "unset" except where it is a value
        # of its own (no limit, for max_image_pixels and max_audio_seconds).
        given = {
            k: v
            for k, v in options.items()
            if k not in OPTION_NAMES or v is not None or option_default(k) is not None
        }
        EmbedderOptions(**given)  # unknown names: TypeError; bad values: every problem listed
        model = default_model() if model is None else model
        if not isinstance(model, str | os.PathLike) or not os.fspath(model).strip():
            raise ValueError(f"model must be a folder path or a Hub repo id, got {model!r}")
        config: dict[str, Any] = {
            "model": normalize_model(model),
            "revision": given.pop("revision", None),
            **{k: json_value(v) for k, v in given.items()},
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
        """``refuse_other_model`` with this function's config and ``allow_revision_change``."""
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
        digest = config.get(DIGEST_KEY)
        if digest is not None and not (isinstance(digest, str) and DIGEST.fullmatch(digest)):
            problems.append(f"{DIGEST_KEY!r} must be 32 lowercase hex digits, got {digest!r}")
        problems += config_problems(
            {k: v for k, v in config.items() if k not in ("model", DIGEST_KEY)}
        )
        if problems:
            raise ValueError("invalid clipclap embedding function config: " + "; ".join(problems))

    def validate_config_update(
        self, old_config: dict[str, Any], new_config: dict[str, Any]
    ) -> None:
        """Allow changes of options that leave the vectors alone; refuse another model,
        revision or vector-changing option (``refuse_model_update``)."""
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
        # Chroma compares only names when a collection is re-opened with an embedding function,
        # so another model would silently mix incomparable vectors: check the calling one.
        owner = calling_collection(self)
        if owner is not None:
            self.check_collection(owner)
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

    def __repr__(self) -> str:
        return f"ClipClapEmbeddingFunction({self._config!r})"
