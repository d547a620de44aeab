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

import contextlib
import dataclasses
import hashlib
import logging
import os
import re
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import HubUnreachableWarning, ModelFolderError, ModelNotAvailableError
from .callers import outside_stacklevel
from .model import ModelFolder, load_model_folder

DEFAULT_MODEL = "antflydb/clipclap"
MODEL_ENV = "CLIPCLAP_MODEL"
DEFAULT_REVISION = "main"
# A partial download file untouched for this long belongs to a process that died.
STALE_PARTIAL_SECONDS = 3600.0

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_TRUE = ("1", "true", "yes", "on")

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


# -- names --------------------------------------------------------------------------------------
def default_model() -> str:
    """The model used when none is named: ``$CLIPCLAP_MODEL``, else the Hub's CLIPCLAP."""
    return os.environ.get(MODEL_ENV, "").strip() or DEFAULT_MODEL


def is_repo_id(model: str) -> bool:
    """Whether ``model`` has the shape of a Hub repo id (``namespace/name``)."""
    return bool(_REPO_ID.match(model)) and not model.startswith((".", "~"))


def offline_mode() -> bool:
    """Whether the environment forbids Hub requests (``HF_HUB_OFFLINE``/``TRANSFORMERS_OFFLINE``).

    Read now, and also as huggingface_hub read it at import time.
    """
    return _offline_reason(None) is not None


def _offline_reason(local_files_only: bool | None) -> str | None:
    if local_files_only:
        return "local_files_only=True"
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
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


def _repo_storage(cache: Path, repo_id: str) -> Path:
    return cache / ("models--" + repo_id.replace("/", "--"))


def _endpoint() -> str:
    from huggingface_hub import constants

    return str(constants.ENDPOINT)


# -- huggingface_hub, imported lazily -----------------------------------------------------------
@dataclass(frozen=True)
class _HubLib:
    snapshot_download: Callable[..., Any]
    api: Any
    local_entry_not_found: type[BaseException]
    incomplete_snapshot: type[BaseException] | None
    repo_not_found: type[BaseException]
    revision_not_found: type[BaseException]
    network_errors: tuple[type[BaseException], ...]


_lib: _HubLib | None = None


def _hub() -> _HubLib:
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
    _lib = _HubLib(
        snapshot_download=snapshot_download,
        api=HfApi,
        local_entry_not_found=errors.LocalEntryNotFoundError,
        incomplete_snapshot=incomplete,
        repo_not_found=errors.RepositoryNotFoundError,
        revision_not_found=errors.RevisionNotFoundError,
        network_errors=tuple(network),
    )
    return _lib


def _quiet_tqdm() -> type:
    from tqdm.auto import tqdm  # type: ignore[import-untyped,unused-ignore]

    class QuietTqdm(tqdm):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    return QuietTqdm


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

    ``model`` None means ``$CLIPCLAP_MODEL`` or ``antflydb/clipclap``. A string naming an
    existing folder is that folder; otherwise a ``namespace/name`` string is a Hub repo id.
    ``revision`` (branch, tag or commit) and ``cache_dir`` apply to repo ids only.
    ``local_files_only=True`` (or ``HF_HUB_OFFLINE=1``, which ``local_files_only=False``
    does not override) never contacts the Hub. A ``Path`` is always taken as a folder.
    """
    explicit_path = isinstance(model, os.PathLike)
    name = os.fspath(model) if model is not None else default_model()
    path = Path(name).expanduser()
    if path.is_dir():
        return load_model_folder(path, revision=_snapshot_commit(path), source=name)
    if explicit_path or not is_repo_id(name):
        what = "is a file, not a folder" if path.exists() else "does not exist"
        hint = "" if explicit_path else " and is not a Hub repo id (namespace/name)"
        raise ModelFolderError(path, [f"{name} {what}{hint}"])
    reason = _offline_reason(local_files_only)
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
    file, a graph that does not parse) still gets the damaged files fetched again.

    Raises ``ModelNotAvailableError`` when the model can be neither fetched nor found in the
    cache; its message says what to do.
    """
    if repo_id is None:
        env = default_model()
        repo_id = env if is_repo_id(env) and not Path(env).expanduser().is_dir() else DEFAULT_MODEL
    if not is_repo_id(repo_id):
        raise ValueError(f"not a Hub repo id (namespace/name): {repo_id!r}")
    reason = _offline_reason(local_files_only)
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
            damaged = _damaged_files(result.folder) if _snapshot_commit(result.folder) else []
            if damaged:
                _validate(result, cache_dir, damaged)  # raises, naming them
            result = dataclasses.replace(result, verified=bool(_snapshot_commit(result.folder)))
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
    lib = _hub()
    rev = revision or DEFAULT_REVISION
    cache = hub_cache_dir(cache_dir)
    if offline_reason is not None:
        folder, problem = _cached_snapshot(lib, repo_id, rev, cache)
        if folder is None:
            raise ModelNotAvailableError(
                _unavailable(repo_id, revision, cache_dir, cache, problem)
                + f" Downloading is off ({offline_reason})."
                + _how_to_fix(repo_id, revision, cache_dir, cache)
            )
        return _result(repo_id, rev, folder, downloaded=False, offline_reason=offline_reason)

    try:
        commit = _remote_commit(lib, repo_id, rev)
    except lib.revision_not_found:
        raise ModelNotAvailableError(
            f"the Hub ({_endpoint()}) has no revision {rev!r} of {repo_id}: pass an existing "
            "branch, tag or commit hash as revision=."
        ) from None
    except lib.repo_not_found as exc:
        return _fallback(
            lib,
            repo_id,
            revision,
            cache_dir,
            cache,
            f"the Hub ({_endpoint()}) has no repo {repo_id}, or it is private or gated "
            f"(log in with `hf auth login` if you have access) ({type(exc).__name__})",
            exc,
            advice="Check the repo id, or:",
        )
    except lib.network_errors as exc:
        return _fallback(
            lib,
            repo_id,
            revision,
            cache_dir,
            cache,
            f"the Hub ({_endpoint()}) could not be reached ({type(exc).__name__}: {exc})",
            exc,
        )

    if commit is None:
        raise ModelNotAvailableError(
            f"the Hub ({_endpoint()}) did not say which commit {repo_id}@{rev} is"
        )
    folder, damaged = (
        (None, []) if force_download else _usable_snapshot(lib, repo_id, commit, cache, verify)
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
        _remove_stale_partials(cache, repo_id)
        logger.info("downloading %s at commit %s into %s", repo_id, commit, cache)
        try:
            folder = Path(
                lib.snapshot_download(
                    repo_id,
                    revision=commit,
                    cache_dir=None if cache_dir is None else str(cache),
                    force_download=force_download,
                    tqdm_class=None if progress else _quiet_tqdm(),
                )
            )
        except (lib.revision_not_found, lib.repo_not_found) as exc:
            raise ModelNotAvailableError(
                f"the Hub ({_endpoint()}) refused the download of {repo_id} at commit {commit} "
                f"({type(exc).__name__}: {exc})"
            ) from exc
        except Exception as exc:  # network errors, and whatever hf_xet raises for them
            return _fallback(
                lib,
                repo_id,
                revision,
                cache_dir,
                cache,
                f"downloading {repo_id} (commit {commit}) failed ({type(exc).__name__}: {exc}); "
                "files that arrived whole are kept in the cache, so running again fetches "
                "only the rest",
                exc,
            )
        downloaded = True
    _write_ref(cache, repo_id, rev, commit)
    result = _result(repo_id, rev, folder, downloaded=downloaded, commit=commit)
    return dataclasses.replace(result, verified=verified) if verified else result


def _remote_commit(lib: _HubLib, repo_id: str, rev: str) -> str | None:
    """The commit ``rev`` points to on the Hub (a commit hash needs no request)."""
    if _COMMIT.match(rev):
        return rev
    from huggingface_hub import constants

    timeout = float(getattr(constants, "HF_HUB_ETAG_TIMEOUT", 10))
    sha = lib.api().model_info(repo_id, revision=rev, timeout=timeout).sha
    return str(sha) if sha else None


def _cached_snapshot(
    lib: _HubLib, repo_id: str, rev: str, cache: Path
) -> tuple[Path | None, str | None]:
    """The complete cached snapshot for ``rev`` (no request), or (None, what is wrong)."""
    try:
        folder = lib.snapshot_download(
            repo_id, revision=rev, cache_dir=str(cache), local_files_only=True
        )
    except lib.local_entry_not_found as exc:
        if lib.incomplete_snapshot is not None and isinstance(exc, lib.incomplete_snapshot):
            return None, "incomplete (an earlier download was interrupted): " + _missing_files(exc)
        return None, None
    return Path(folder), None


def _missing_files(exc: BaseException) -> str:
    """What huggingface_hub's IncompleteSnapshotError says is missing ("2 file(s) are missing
    (a, b)"), or its whole message."""
    found = re.search(r"\d+ file\(s\) (?:are|is) missing(?: \((?:[^()]|\([^()]*\))*\))?", str(exc))
    return found.group(0) if found else str(exc)


def _interrupted_download(repo_id: str, cache: Path) -> str | None:
    """Why the cache holds part of a download of ``repo_id`` but no usable revision, if it
    does: partial files of a killed download, or a commit that no branch or tag names
    (``refs/`` is written only once a download completes) whose snapshot misses files."""
    storage = _repo_storage(cache, repo_id)
    blobs = storage / "blobs"
    if blobs.is_dir() and any(blobs.glob("*.incomplete")):
        return "an earlier download was interrupted (its partial files are in the cache)"
    named: set[str] = set()
    with contextlib.suppress(OSError):
        named = {r.read_text().strip() for r in (storage / "refs").rglob("*") if r.is_file()}
    snapshots = storage / "snapshots"
    started = {p.name for p in snapshots.iterdir()} if snapshots.is_dir() else set()
    trees = storage / "trees"  # huggingface_hub 2.x caches each commit's file listing here
    started |= {p.stem for p in trees.glob("*.json")} if trees.is_dir() else set()
    for commit in sorted(c for c in started if _COMMIT.match(c) and c not in named):
        if not (snapshots / commit).is_dir():
            return f"an earlier download was interrupted (commit {commit}: no file arrived)"
        _, problem = _cached_snapshot(_hub(), repo_id, commit, cache)
        if problem is not None:
            missing = problem.partition(": ")[2] or problem
            return f"an earlier download was interrupted (commit {commit}: {missing})"
    return None


def _usable_snapshot(
    lib: _HubLib, repo_id: str, commit: str, cache: Path, verify: bool = False
) -> tuple[Path | None, list[tuple[str, Path]]]:
    """The cached snapshot of ``commit`` if it is complete and valid, else None; and, for a
    snapshot that fails validation (or any, with ``verify``), its files whose cached blob no
    longer matches the hash that names it (damaged after download). A commit that is broken
    on the Hub itself has none: nothing to download again."""
    folder, _ = _cached_snapshot(lib, repo_id, commit, cache)
    if folder is None:
        return None, []
    try:  # an older huggingface_hub cannot tell a partial snapshot: check the files ourselves
        load_model_folder(folder, revision=commit, source=repo_id)  # cached for _validate
    except ModelFolderError:
        return None, _damaged_files(folder)
    if verify:
        damaged = _damaged_files(folder)
        if damaged:
            return None, damaged
    return folder, []


def _damaged_files(snapshot: Path) -> list[tuple[str, Path]]:
    """Files of a cache snapshot (name, blob) whose bytes do not hash to the blob's name (LFS
    files are named by their SHA-256, other files by their git blob SHA-1)."""
    damaged = []
    for link in sorted(snapshot.rglob("*")):
        blob = link.resolve()
        if not blob.is_file() or blob.parent.name != "blobs":
            continue
        name = blob.name
        if len(name) == 64:
            digest = hashlib.sha256()
        elif len(name) == 40:
            digest = hashlib.sha1(f"blob {blob.stat().st_size}\0".encode())
        else:
            continue
        with open(blob, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        if digest.hexdigest() != name:
            damaged.append((link.relative_to(snapshot).as_posix(), blob))
    return damaged


def _fallback(
    lib: _HubLib,
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
    folder, problem = _cached_snapshot(lib, repo_id, rev, cache)
    if folder is None:
        raise ModelNotAvailableError(
            f"{reason}. "
            + _unavailable(repo_id, revision, cache_dir, cache, problem)
            + _how_to_fix(repo_id, revision, cache_dir, cache, advice=advice)
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
        commit=commit or _snapshot_commit(folder),
        folder=folder,
        files=files,
        downloaded=downloaded,
        offline_reason=offline_reason,
    )


def _validate(
    result: DownloadResult,
    cache_dir: str | os.PathLike[str] | None = None,
    damaged: list[tuple[str, Path]] | None = None,
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
    if damaged is None and _snapshot_commit(result.folder):
        damaged = _damaged_files(result.folder)
    if damaged:
        problems.append(_damaged_problem(result, damaged, cache_dir))
    raise ModelFolderError(_where(result), problems)


def _where(result: DownloadResult) -> str:
    return f"{result.repo_id}@{result.revision} (commit {result.commit}, in {result.folder})"


def _damaged_problem(
    result: DownloadResult,
    damaged: list[tuple[str, Path]],
    cache_dir: str | os.PathLike[str] | None,
) -> str:
    names = sorted({name for name, _ in damaged})
    listed = ", ".join(names)
    revision = None if result.revision == DEFAULT_REVISION else result.revision
    command = _download_command(result.repo_id, revision, cache_dir, result.folder.parents[2])
    return (
        f"the cached {'file' if len(names) == 1 else 'files'} {listed} "
        f"{'is' if len(names) == 1 else 'are'} damaged (content does not match the hash the "
        f"Hub gave for it): run `{command}` with network access to download it again"
    )


def _download_command(
    repo_id: str,
    revision: str | None,
    cache_dir: str | os.PathLike[str] | None,
    cache: Path,
) -> str:
    command = f"clipclap download {repo_id}"
    if revision:
        command += f" --revision {revision}"
    if cache_dir is not None:
        command += f" --cache-dir {cache}"
    return command


def _snapshot_commit(folder: Path) -> str | None:
    """The commit of a Hugging Face cache snapshot folder (``.../snapshots/<sha>``)."""
    if folder.parent.name == "snapshots" and _COMMIT.match(folder.name):
        return folder.name
    return None


def _write_ref(cache: Path, repo_id: str, rev: str, commit: str) -> None:
    """Record ``rev -> commit`` in the cache (``refs/<rev>``) so offline runs find it."""
    if rev == commit:
        return
    ref = _repo_storage(cache, repo_id) / "refs" / rev
    try:
        if ref.is_file() and ref.read_text().strip() == commit:
            return
        ref.parent.mkdir(parents=True, exist_ok=True)
        tmp = ref.with_name(f"{ref.name}.{os.getpid()}.tmp")
        tmp.write_text(commit)
        os.replace(tmp, ref)
    except OSError as exc:  # a read-only cache still works, just not offline by branch name
        logger.warning("could not record %s@%s -> %s in the cache: %s", repo_id, rev, commit, exc)


def _remove_stale_partials(cache: Path, repo_id: str) -> int:
    """Delete ``*.incomplete`` files of dead downloads (untouched for an hour); return count."""
    blobs = _repo_storage(cache, repo_id) / "blobs"
    removed = 0
    now = time.time()
    for partial in blobs.glob("*.incomplete") if blobs.is_dir() else ():
        with contextlib.suppress(OSError):
            if now - partial.stat().st_mtime > STALE_PARTIAL_SECONDS:
                partial.unlink()
                removed += 1
    if removed:
        logger.info("removed %d stale partial download(s) from %s", removed, blobs)
    return removed


# -- messages -----------------------------------------------------------------------------------
def _unavailable(
    repo_id: str,
    revision: str | None,
    cache_dir: str | os.PathLike[str] | None,
    cache: Path,
    problem: str | None,
) -> str:
    at = f" (revision {revision})" if revision else ""
    if problem:
        return f"The cached copy of {repo_id}{at} in {cache} is {problem}."
    interrupted = _interrupted_download(repo_id, cache)
    if interrupted:
        return f"The model {repo_id}{at} is not in the Hugging Face cache ({cache}): {interrupted}."
    return f"The model {repo_id}{at} is not in the Hugging Face cache ({cache})."


def _how_to_fix(
    repo_id: str,
    revision: str | None,
    cache_dir: str | os.PathLike[str] | None,
    cache: Path,
    *,
    advice: str = "To fix it:",
) -> str:
    command = _download_command(repo_id, revision, cache_dir, cache)
    return (
        f" {advice}\n"
        f"  - on a machine with internet access run `{command}`, then copy the Hugging Face "
        f"cache folder it fills to {cache} on this machine (or point HF_HUB_CACHE or "
        "cache_dir= at the copy); or\n"
        "  - pass model=<a local CLIPCLAP model folder> (or set CLIPCLAP_MODEL to one)."
    )
