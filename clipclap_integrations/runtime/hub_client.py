"""The Hub as this package names and reaches it: the default model, repo ids and commits,
``huggingface_hub`` imported on first use, the offline switches, the endpoint.

Importing this module costs nothing: ``huggingface_hub`` (and the HTTP client it brings) is
imported the first time a model has to be looked up, so a process that only uses local
folders never pays for it.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_MODEL = "antflydb/clipclap"
MODEL_ENV = "CLIPCLAP_MODEL"  # names the model used when none is passed
DEFAULT_REVISION = "main"  # the Hub's default branch
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_TRUE = ("1", "true", "yes", "on")
_OFFLINE_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


def default_model() -> str:
    """The model used when none is named: ``$CLIPCLAP_MODEL``, else the Hub's CLIPCLAP."""
    return os.environ.get(MODEL_ENV, "").strip() or DEFAULT_MODEL


def is_repo_id(model: str) -> bool:
    """Whether ``model`` has the shape of a Hub repo id (``namespace/name``)."""
    return bool(_REPO_ID.match(model)) and not model.startswith((".", "~"))


def is_commit(revision: str) -> bool:
    """Whether ``revision`` is a full commit hash (40 lowercase hex digits), not a name."""
    return bool(_COMMIT.match(revision))


@dataclass(frozen=True)
class HubLib:
    """huggingface_hub's functions and error classes this package uses."""

    snapshot_download: Callable[..., Any]
    api: Any
    local_entry_not_found: type[BaseException]
    incomplete_snapshot: type[BaseException] | None
    repo_not_found: type[BaseException]
    revision_not_found: type[BaseException]
    network_errors: tuple[type[BaseException], ...]


_lib: HubLib | None = None


def hub_lib() -> HubLib:
    """huggingface_hub's functions and error classes (import on first use)."""
    global _lib
    if _lib is not None:
        return _lib
    try:
        from huggingface_hub import HfApi, snapshot_download
    except ImportError as exc:  # pragma: no cover - a core dependency
        raise ImportError(
            "huggingface_hub is needed to download models: pip install huggingface_hub"
        ) from exc
    from huggingface_hub import utils as errors  # these names are there in 0.23 ... 2.x

    incomplete: type[BaseException] | None = None
    with contextlib.suppress(ImportError):  # 2.x only: a snapshot cut short
        from huggingface_hub.errors import IncompleteSnapshotError

        incomplete = IncompleteSnapshotError
    # Transport errors of whichever HTTP client this huggingface_hub uses (requests in 0.x,
    # httpx in 1.x, httpx2 in 2.x); it imported that client already.
    network: list[type[BaseException]] = [OSError, errors.HfHubHTTPError]
    for module, name in (
        ("httpx2", "TransportError"),
        ("httpx", "TransportError"),
        ("requests", "RequestException"),
    ):
        found = getattr(sys.modules.get(module), name, None)
        if isinstance(found, type) and issubclass(found, BaseException):
            network.append(found)
    _lib = HubLib(
        snapshot_download=snapshot_download,
        api=HfApi,
        local_entry_not_found=errors.LocalEntryNotFoundError,
        incomplete_snapshot=incomplete,
        repo_not_found=errors.RepositoryNotFoundError,
        revision_not_found=errors.RevisionNotFoundError,
        network_errors=tuple(network),
    )
    return _lib


def quiet_tqdm() -> type:
    """A tqdm class that draws nothing (huggingface_hub's progress bars, switched off)."""
    from tqdm.auto import tqdm  # type: ignore[import-untyped,unused-ignore]

    class QuietTqdm(tqdm):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    return QuietTqdm


def why_offline(local_files_only: bool | None) -> str | None:
    """Why no Hub request may be sent (``local_files_only=True`` or the environment), if so."""
    if local_files_only:
        return "local_files_only=True"
    for name in _OFFLINE_ENV:
        if os.environ.get(name, "").strip().lower() in _TRUE:
            return f"{name}={os.environ[name]}"
    with contextlib.suppress(ImportError):
        from huggingface_hub import constants

        if getattr(constants, "HF_HUB_OFFLINE", False):
            return "HF_HUB_OFFLINE is set"
    return None


def hub_cache_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The Hugging Face cache folder used for downloads (``cache_dir`` or ``HF_HUB_CACHE``)."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser().resolve()
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE).expanduser().resolve()


def endpoint() -> str:
    """The Hub's URL (``HF_ENDPOINT``, as huggingface_hub read it), for messages."""
    from huggingface_hub import constants

    return str(constants.ENDPOINT)


def remote_commit(lib: HubLib, repo_id: str, rev: str) -> str | None:
    """The commit ``rev`` points to on the Hub (a commit hash needs no request)."""
    if is_commit(rev):
        return rev
    from huggingface_hub import constants

    timeout = float(getattr(constants, "HF_HUB_ETAG_TIMEOUT", 10))
    sha = lib.api().model_info(repo_id, revision=rev, timeout=timeout).sha
    return str(sha) if sha else None
