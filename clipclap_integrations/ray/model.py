"""How the model reaches Ray's workers: a folder every node sees at the same path, or a Hub repo
id pinned to the commit the driver resolved, downloaded once per node (a file lock in the node's
Hub cache makes the other actors of that node wait for the first one's download)."""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ..embedder import ClipClapEmbedder
from ..runtime.hub import resolve_model
from ..runtime.hub_client import hub_cache_dir

Options = tuple[tuple[str, Any], ...]


@dataclass(frozen=True)
class ModelRef:
    """What a worker needs to build the same embedder as the driver: ``model`` is an absolute
    folder path (shared by every node) or a Hub repo id, ``revision`` its commit (None for a
    folder), ``options`` the embedder's options (threads, providers, batch_size...)."""

    model: str
    revision: str | None = None
    options: Options = ()

    @property
    def is_hub(self) -> bool:
        return self.revision is not None

    def embedder(self) -> ClipClapEmbedder:
        """This process's embedder for the model (one per process: actors share nothing else,
        and read tasks reuse it between blocks)."""
        key = repr(self)  # options may hold lists: the repr is the key
        with _build_lock:
            found = _embedders.get(key)
            if found is None:
                found = _embedders[key] = self._build()
        return found

    def _build(self) -> ClipClapEmbedder:
        options = dict(self.options)
        if not self.is_hub:
            return ClipClapEmbedder(Path(self.model), **options)
        from filelock import FileLock

        cache = hub_cache_dir(options.get("cache_dir"))
        cache.mkdir(parents=True, exist_ok=True)
        safe = re.sub(r"[^\w.-]", "--", self.model)
        # N actors starting together on a node: the first downloads, the others then find it.
        with FileLock(str(cache / f".clipclap-{safe}.lock")):
            options["revision"] = self.revision
            return ClipClapEmbedder(self.model, **options)


_embedders: dict[str, ClipClapEmbedder] = {}
_build_lock = threading.Lock()


def model_ref(
    model: str | os.PathLike[str] | ClipClapEmbedder | ModelRef | None = None, **options: Any
) -> ModelRef:
    """Resolve ``model`` on the driver: a folder becomes its absolute path; a Hub repo id is
    looked up (and fetched into this machine's cache) once, so every worker uses the same
    commit. ``options`` are ``ClipClapEmbedder``'s (None values are left out). An embedder
    given stands for its model and options; a ``ModelRef`` is returned as it is (its
    options updated with ``options``)."""
    given = {k: v for k, v in options.items() if v is not None}
    if isinstance(model, ModelRef):
        return ModelRef(model.model, model.revision, _options({**dict(model.options), **given}))
    if isinstance(model, ClipClapEmbedder):
        opts = model.options
        base = {  # the options it was given (those left at their defaults need not travel)
            f.name: getattr(opts, f.name)
            for f in fields(opts)
            if getattr(opts, f.name) != f.default and f.name != "revision"
        }
        return _ref(
            model.folder.source, model.folder.path, model.folder.revision, {**base, **given}
        )
    name = os.fspath(model) if model is not None else None
    if name is not None and Path(name).expanduser().is_dir():
        return ModelRef(str(Path(name).expanduser().resolve()), None, _options(given))
    folder = resolve_model(
        name,
        revision=given.get("revision"),
        cache_dir=given.get("cache_dir"),
        local_files_only=given.get("local_files_only"),
    )
    return _ref(folder.source, folder.path, folder.revision, given)


def _ref(source: str, path: Path, revision: str | None, options: dict[str, Any]) -> ModelRef:
    options = {k: v for k, v in options.items() if k != "revision"}
    if revision is None or Path(source).expanduser().is_dir():  # a local folder
        return ModelRef(str(Path(path).resolve()), None, _options(options))
    return ModelRef(source, revision, _options(options))


def _options(options: dict[str, Any]) -> Options:
    """Options as a hashable, sorted tuple (lists, such as providers, become tuples)."""
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in options.items()))
