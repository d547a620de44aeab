"""Where a model comes from: a local folder, or a Hugging Face Hub repo fetched into the cache.

Resolution is cached per process, so adapters that are rebuilt for every call (Chroma does
that) ask the Hub once, not once per call.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

from .errors import ModelFolderError, ModelNotAvailableError
from .model import ModelFolder, load_model_folder

DEFAULT_MODEL = "antflydb/clipclap"
MODEL_ENV = "CLIPCLAP_MODEL"
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_resolved: dict[tuple[object, ...], tuple[Path, str | None]] = {}
_lock = threading.Lock()


def default_model() -> str:
    """The model used when none is named: ``$CLIPCLAP_MODEL``, else the Hub's CLIPCLAP."""
    return os.environ.get(MODEL_ENV) or DEFAULT_MODEL


def is_repo_id(model: str) -> bool:
    return bool(_REPO_ID.match(model)) and not model.startswith((".", "~"))


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def resolve_model(
    model: str | os.PathLike[str] | None = None,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    local_files_only: bool | None = None,
) -> ModelFolder:
    """A validated model folder for a local path or a Hub repo id (downloaded if needed)."""
    name = os.fspath(model) if model is not None else default_model()
    path = Path(name).expanduser()
    if path.is_dir():
        return load_model_folder(path, source=name)
    if not is_repo_id(name):
        raise ModelFolderError(path, [f"{name} is neither a folder nor a Hub repo id"])
    folder, commit = download_model(
        name, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only
    )
    return load_model_folder(folder, revision=commit, source=name)


def download_model(
    repo_id: str,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    local_files_only: bool | None = None,
    force: bool = False,
) -> tuple[Path, str | None]:
    """Fetch (or find in the cache) every file of ``repo_id``; return (folder, commit hash)."""
    offline = bool(local_files_only) or _offline()
    key = (repo_id, revision, None if cache_dir is None else os.fspath(cache_dir), offline)
    with _lock:
        if not force and key in _resolved:
            return _resolved[key]
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError
    except ImportError as exc:  # pragma: no cover - a core dependency
        raise ImportError(
            "huggingface_hub is needed to download models: pip install huggingface_hub"
        ) from exc
    try:
        folder = snapshot_download(
            repo_id,
            revision=revision,
            cache_dir=None if cache_dir is None else os.fspath(cache_dir),
            local_files_only=offline,
        )
    except LocalEntryNotFoundError:
        where = f" (cache: {cache_dir})" if cache_dir else ""
        raise ModelNotAvailableError(
            f"the model {repo_id}{'@' + revision if revision else ''} is not in the local cache"
            f"{where} and downloading is off (offline). On a machine with internet run "
            f"`clipclap download {repo_id}` and copy the cache, or pass model=<a local folder>."
        ) from None
    path = Path(folder)
    commit = path.name if re.fullmatch(r"[0-9a-f]{40}", path.name) else None
    with _lock:
        _resolved[key] = (path, commit)
    return path, commit
