"""Where a model comes from: a local folder, or a Hugging Face Hub repo fetched into the cache.

``resolve_model`` turns what the user passed (a folder, a repo id, or nothing: then
``$CLIPCLAP_MODEL`` or ``antflydb/clipclap``) into a validated ``ModelFolder``. Repo ids are
fetched whole with ``huggingface_hub.snapshot_download`` into the Hugging Face cache (so
``*.onnx.data`` weight files come too), pinned to the commit the Hub names for the requested
revision; ``ModelFolder.revision`` is that commit.

Network behaviour:

* Offline (``local_files_only=True``, ``HF_HUB_OFFLINE=1`` or ``TRANSFORMERS_OFFLINE=1``): the
  cache only, no request at all; a missing model raises ``ModelNotAvailableError`` saying to
  run ``clipclap download`` on a connected machine or to pass a folder.
* Online with the model cached: one small request (which commit is ``revision`` now?), then
  the cached snapshot. A pinned commit hash needs no request at all.
* Hub unreachable (connection refused, timeout, 5xx, repo no longer accessible) with the
  revision cached: the cached snapshot, with a ``HubUnreachableWarning``.
* Downloads show huggingface_hub's progress bars; dropped connections are retried by
  huggingface_hub. An interrupted download keeps the files that completed; a new run fetches
  the rest (partial files are never used: huggingface_hub renames a file into place only
  once its size is right). Partial files left by a killed process are removed when stale.

Resolution is cached per process, so adapters that build embedders on every call ask the Hub
once per process, not once per call.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import HubUnreachableWarning, ModelFolderError, ModelNotAvailableError
from .callers import outside_stacklevel
from .hub_cache import (
    DamagedFiles,
    cached_snapshot,
    damaged_files,
    damaged_problem,
    how_to_fix,
    remove_stale_partials,
    snapshot_commit,
    unavailable,
    usable_snapshot,
    write_ref,
)
from .hub_client import (
    DEFAULT_MODEL,
    DEFAULT_REVISION,
    HubLib,
    default_model,
    endpoint,
    hub_cache_dir,
    hub_lib,
    is_repo_id,
    quiet_tqdm,
    remote_commit,
    why_offline,
)
from .model import ModelFolder, load_model_folder

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelFile:
    """One file of a downloaded model: its path inside the repo and its size in bytes."""

    path: str
    size: int


@dataclass(frozen=True)
class DownloadResult:
    """What ``download_model`` fetched or found: where it is and which commit it is.

    Unpacks as ``folder, commit`` (``folder, commit = download_model(...)``).
    """

    repo_id: str
    revision: str  # what was asked for: a branch, a tag or a commit ("main" by default)
    commit: str | None  # the commit the files are from
    folder: Path  # the snapshot folder in the cache
    files: tuple[ModelFile, ...]
    downloaded: bool  # whether this call fetched any file
    offline_reason: str | None = None  # why the Hub was not (successfully) asked, if it wasn't
    verified: bool = False  # whether cached files were checked against their hashes

    @property
    def total_size(self) -> int:
        """Bytes in all files."""
        return sum(f.size for f in self.files)

    def __iter__(self) -> Iterator[Any]:
        yield self.folder
        yield self.commit


# -- the process-wide memo ----------------------------------------------------------------------
_Key = tuple[str, str, str, bool]
_memo: dict[_Key, DownloadResult] = {}
_key_locks: dict[_Key, threading.Lock] = {}
_memo_lock = threading.Lock()


def _lock_for(key: _Key) -> threading.Lock:
    with _memo_lock:
        return _key_locks.setdefault(key, threading.Lock())


def clear_resolution_cache() -> None:
    """Forget which Hub models this process resolved (the next use asks the Hub again)."""
    with _memo_lock:
        _memo.clear()


# -- public entry points ------------------------------------------------------------------------
def resolve_model(
    model: str | os.PathLike[str] | None = None,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    local_files_only: bool | None = None,
) -> ModelFolder:
    """A validated model folder for a local folder or a Hub repo id (downloaded if needed).

    A string naming an existing folder is that folder (a ``Path`` always is); otherwise a
    ``namespace/name`` string is a Hub repo id, to which ``revision`` (branch, tag or commit)
    and ``cache_dir`` apply. ``local_files_only=False`` does not override ``HF_HUB_OFFLINE=1``.
    """
    explicit_path = isinstance(model, os.PathLike)
    name = os.fspath(model) if model is not None else default_model()
    path = Path(name).expanduser()
    if path.is_dir():
        return load_model_folder(path, revision=snapshot_commit(path), source=name)
    if explicit_path or not is_repo_id(name):
        what = "is a file, not a folder" if path.exists() else "does not exist"
        hint = "" if explicit_path else " and is not a Hub repo id (namespace/name)"
        raise ModelFolderError(path, [f"{name} {what}{hint}"])
    reason = why_offline(local_files_only)
    key: _Key = (name, revision or DEFAULT_REVISION, str(hub_cache_dir(cache_dir)), bool(reason))
    with _lock_for(key):
        with _memo_lock:
            result = _memo.get(key)
        if result is None or not result.folder.is_dir():
            result = _acquire(name, revision, cache_dir, reason, progress=True)
            _validate(result, cache_dir)
            with _memo_lock:
                _memo[key] = result
    return load_model_folder(result.folder, revision=result.commit, source=name)


def download_model(
    repo_id: str | None = None,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    local_files_only: bool | None = None,
    force_download: bool = False,
    progress: bool = True,
    validate: bool = True,
    verify: bool = False,
) -> DownloadResult:
    """Fetch every file of a Hub model into the cache (what ``clipclap download`` runs).

    Always asks the Hub which commit ``revision`` (default ``main``) is, then downloads the
    files not already cached (all of them with ``force_download``), with progress bars unless
    ``progress=False``. ``repo_id`` None means ``$CLIPCLAP_MODEL`` if that is a repo id, else
    ``antflydb/clipclap``. With ``validate`` the result is checked like any model folder
    (``ModelFolderError`` lists what is wrong). Offline, only the cache is looked at.

    With ``verify`` (``clipclap download`` sets it) files already in the cache are read and
    checked against the hash that names them (about 1 s per GB; huggingface_hub itself trusts
    its cache): damaged ones are downloaded again, or, when the Hub cannot be asked, reported
    in a ``ModelFolderError``. Without it, damage that validation sees (a truncated weights
    file, a graph that does not parse) still gets the damaged files fetched again. Raises
    ``ModelNotAvailableError`` (saying what to do) when the model can be neither fetched nor
    found in the cache.
    """
    if repo_id is None:
        env = default_model()
        repo_id = env if is_repo_id(env) and not Path(env).expanduser().is_dir() else DEFAULT_MODEL
    if not is_repo_id(repo_id):
        raise ValueError(f"not a Hub repo id (namespace/name): {repo_id!r}")
    reason = why_offline(local_files_only)
    key: _Key = (repo_id, revision or DEFAULT_REVISION, str(hub_cache_dir(cache_dir)), bool(reason))
    with _lock_for(key):
        result = _acquire(
            repo_id,
            revision,
            cache_dir,
            reason,
            progress=progress,
            force_download=force_download,
            verify=verify,
        )
        if verify and result.offline_reason is not None:  # the cache, unchecked so far
            damaged = damaged_files(result.folder) if snapshot_commit(result.folder) else []
            if damaged:
                _validate(result, cache_dir, damaged)  # raises, naming them
            result = dataclasses.replace(result, verified=bool(snapshot_commit(result.folder)))
        if validate:
            _validate(result, cache_dir)
            with _memo_lock:
                _memo[key] = result
    return result


# -- the work -----------------------------------------------------------------------------------
def _acquire(
    repo_id: str,
    revision: str | None,
    cache_dir: str | os.PathLike[str] | None,
    offline_reason: str | None,
    *,
    progress: bool,
    force_download: bool = False,
    verify: bool = False,
) -> DownloadResult:
    lib = hub_lib()
    rev = revision or DEFAULT_REVISION
    cache = hub_cache_dir(cache_dir)
    if offline_reason is not None:
        folder, problem = cached_snapshot(lib, repo_id, rev, cache)
        if folder is None:
            raise ModelNotAvailableError(
                unavailable(repo_id, revision, cache, problem)
                + f" Downloading is off ({offline_reason})."
                + how_to_fix(repo_id, revision, cache_dir, cache)
            )
        return _result(repo_id, rev, folder, downloaded=False, offline_reason=offline_reason)

    fallback = functools.partial(_fallback, lib, repo_id, revision, cache_dir, cache)
    try:
        commit = remote_commit(lib, repo_id, rev)
    except lib.revision_not_found:
        raise ModelNotAvailableError(
            f"the Hub ({endpoint()}) has no revision {rev!r} of {repo_id}: pass an existing "
            "branch, tag or commit hash as revision=."
        ) from None
    except lib.repo_not_found as exc:
        return fallback(
            f"the Hub ({endpoint()}) has no repo {repo_id}, or it is private or gated "
            f"(log in with `hf auth login` if you have access) ({type(exc).__name__})",
            exc,
            advice="Check the repo id, or:",
        )
    except lib.network_errors as exc:
        return fallback(
            f"the Hub ({endpoint()}) could not be reached ({type(exc).__name__}: {exc})", exc
        )

    if commit is None:
        raise ModelNotAvailableError(
            f"the Hub ({endpoint()}) did not say which commit {repo_id}@{rev} is"
        )
    folder, damaged = (
        (None, []) if force_download else usable_snapshot(lib, repo_id, commit, cache, verify)
    )
    verified = verify and folder is not None  # a cached snapshot whose hashes were checked
    if damaged:  # huggingface_hub trusts its cache: remove them and it fetches them again
        logger.warning(
            "%d cached file(s) of %s (commit %s) are damaged (their content does not match "
            "their hash): downloading them again (%s)",
            len(damaged),
            repo_id,
            commit,
            ", ".join(name for name, _ in damaged),
        )
        for _, blob in damaged:
            blob.unlink(missing_ok=True)
    downloaded = False
    if folder is None:
        remove_stale_partials(cache, repo_id)
        logger.info("downloading %s at commit %s into %s", repo_id, commit, cache)
        try:
            folder = Path(
                lib.snapshot_download(
                    repo_id,
                    revision=commit,
                    cache_dir=None if cache_dir is None else str(cache),
                    force_download=force_download,
                    tqdm_class=None if progress else quiet_tqdm(),
                )
            )
        except (lib.revision_not_found, lib.repo_not_found) as exc:
            raise ModelNotAvailableError(
                f"the Hub ({endpoint()}) refused the download of {repo_id} at commit {commit} "
                f"({type(exc).__name__}: {exc})"
            ) from exc
        except Exception as exc:  # network errors, and whatever hf_xet raises for them
            return fallback(
                f"downloading {repo_id} (commit {commit}) failed ({type(exc).__name__}: {exc}); "
                "files that arrived whole are kept in the cache, so running again fetches "
                "only the rest",
                exc,
            )
        downloaded = True
    write_ref(cache, repo_id, rev, commit)
    result = _result(repo_id, rev, folder, downloaded=downloaded, commit=commit)
    return dataclasses.replace(result, verified=verified) if verified else result


def _fallback(
    lib: HubLib,
    repo_id: str,
    revision: str | None,
    cache_dir: str | os.PathLike[str] | None,
    cache: Path,
    reason: str,
    error: BaseException,
    *,
    advice: str = "Check the connection (and HF_ENDPOINT or proxy settings) and try again, or:",
) -> DownloadResult:
    """The cached snapshot of ``revision`` with a warning, or ModelNotAvailableError."""
    rev = revision or DEFAULT_REVISION
    folder, problem = cached_snapshot(lib, repo_id, rev, cache)
    if folder is None:
        raise ModelNotAvailableError(
            f"{reason}. "
            + unavailable(repo_id, revision, cache, problem)
            + how_to_fix(repo_id, revision, cache_dir, cache, advice=advice)
        ) from error
    result = _result(repo_id, rev, folder, downloaded=False, offline_reason=reason)
    warnings.warn(
        HubUnreachableWarning(
            f"{reason}; using the cached copy of {repo_id}@{rev} (commit {result.commit}) "
            f"in {folder}"
        ),
        stacklevel=outside_stacklevel(),
    )
    return result


def _result(
    repo_id: str,
    rev: str,
    folder: Path,
    *,
    downloaded: bool,
    commit: str | None = None,
    offline_reason: str | None = None,
) -> DownloadResult:
    files = tuple(
        ModelFile(p.relative_to(folder).as_posix(), p.stat().st_size)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    )
    return DownloadResult(
        repo_id=repo_id,
        revision=rev,
        commit=commit or snapshot_commit(folder),
        folder=folder,
        files=files,
        downloaded=downloaded,
        offline_reason=offline_reason,
    )


def _validate(
    result: DownloadResult,
    cache_dir: str | os.PathLike[str] | None = None,
    damaged: DamagedFiles | None = None,
) -> None:
    """Check a downloaded folder like a local one; on failure name the repo and commit, and
    which cached files are damaged (their content does not match their hash), if any.
    ``damaged`` given (not empty) means they were found already: always raise."""
    problems: list[str] = []
    try:
        load_model_folder(result.folder, revision=result.commit, source=result.repo_id)
    except ModelFolderError as exc:
        problems = list(exc.problems)
    if not problems and not damaged:
        return
    if damaged is None and snapshot_commit(result.folder):
        damaged = damaged_files(result.folder)
    if damaged:
        problems.append(
            damaged_problem(result.repo_id, result.revision, result.folder, damaged, cache_dir)
        )
    where = f"{result.repo_id}@{result.revision} (commit {result.commit}, in {result.folder})"
    raise ModelFolderError(where, problems)
