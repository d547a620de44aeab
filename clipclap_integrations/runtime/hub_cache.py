"""What the local Hugging Face cache holds of a model, read without asking the Hub.

The cache keeps a repo under ``models--<namespace>--<name>/``: ``blobs/`` (each file named by
its hash, ``*.incomplete`` while downloading), ``snapshots/<commit>/`` (links to the blobs),
``refs/<branch or tag>`` (the commit a name pointed to when last downloaded) and, in
huggingface_hub 2.x, ``trees/<commit>.json`` (the commit's file listing). From those this
module tells a complete snapshot from an interrupted download, finds files damaged after they
arrived, records refs for offline runs and removes partial files of dead downloads. It also
words what to tell the user when the cache cannot serve a model: every message names the same
``clipclap download`` command, with the same arguments, whichever failure led to it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from pathlib import Path

from ..errors import ModelFolderError
from .digests import hub_blob_intact
from .hub_client import DEFAULT_REVISION, MODEL_ENV, HubLib, hub_lib, is_commit
from .model import load_model_folder

# A partial download file untouched for this long belongs to a process that died.
STALE_PARTIAL_SECONDS = 3600.0

logger = logging.getLogger(__name__)

DamagedFiles = list[tuple[str, Path]]  # (path in the repo, its blob in the cache)


def repo_storage(cache: Path, repo_id: str) -> Path:
    """The folder of the cache that holds ``repo_id`` (a model repo)."""
    return cache / ("models--" + repo_id.replace("/", "--"))


def snapshot_commit(folder: Path) -> str | None:
    """The commit of a Hugging Face cache snapshot folder (``.../snapshots/<sha>``)."""
    if folder.parent.name == "snapshots" and is_commit(folder.name):
        return folder.name
    return None


def cached_snapshot(
    lib: HubLib, repo_id: str, rev: str, cache: Path
) -> tuple[Path | None, str | None]:
    """The complete cached snapshot for ``rev`` (no request), or (None, what is wrong)."""
    try:
        folder = lib.snapshot_download(
            repo_id, revision=rev, cache_dir=str(cache), local_files_only=True
        )
    except lib.local_entry_not_found as exc:
        if lib.incomplete_snapshot is not None and isinstance(exc, lib.incomplete_snapshot):
            return None, "incomplete (an earlier download was interrupted): " + missing_files(exc)
        return None, None
    return Path(folder), None


def missing_files(exc: BaseException) -> str:
    """What huggingface_hub's IncompleteSnapshotError says is missing ("2 file(s) are missing
    (a, b)"), or its whole message."""
    found = re.search(r"\d+ file\(s\) (?:are|is) missing(?: \((?:[^()]|\([^()]*\))*\))?", str(exc))
    return found.group(0) if found else str(exc)


def interrupted_download(repo_id: str, cache: Path) -> str | None:
    """Why the cache holds part of a download of ``repo_id`` but no usable revision, if it
    does: partial files of a killed download, or a commit that no branch or tag names
    (``refs/`` is written only once a download completes) whose snapshot misses files."""
    storage = repo_storage(cache, repo_id)
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
    for commit in sorted(c for c in started if is_commit(c) and c not in named):
        if not (snapshots / commit).is_dir():
            return f"an earlier download was interrupted (commit {commit}: no file arrived)"
        _, problem = cached_snapshot(hub_lib(), repo_id, commit, cache)
        if problem is not None:
            missing = problem.partition(": ")[2] or problem
            return f"an earlier download was interrupted (commit {commit}: {missing})"
    return None


def usable_snapshot(
    lib: HubLib, repo_id: str, commit: str, cache: Path, verify: bool = False
) -> tuple[Path | None, DamagedFiles]:
    """The cached snapshot of ``commit`` if it is complete and valid, else None; and, for a
    snapshot that fails validation (or any, with ``verify``), its files whose cached blob no
    longer matches the hash that names it (damaged after download). A commit that is broken
    on the Hub itself has none: nothing to download again."""
    folder, _ = cached_snapshot(lib, repo_id, commit, cache)
    if folder is None:
        return None, []
    try:  # an older huggingface_hub cannot tell a partial snapshot: check the files ourselves
        load_model_folder(folder, revision=commit, source=repo_id)  # cached for later checks
    except ModelFolderError:
        return None, damaged_files(folder)
    if verify:
        damaged = damaged_files(folder)
        if damaged:
            return None, damaged
    return folder, []


def damaged_files(snapshot: Path) -> DamagedFiles:
    """Files of a cache snapshot (name, blob) whose bytes do not hash to the blob's name (LFS
    files are named by their SHA-256, other files by their git blob SHA-1)."""
    damaged = []
    for link in sorted(snapshot.rglob("*")):
        blob = link.resolve()
        if not blob.is_file() or blob.parent.name != "blobs":
            continue
        if hub_blob_intact(blob) is False:
            damaged.append((link.relative_to(snapshot).as_posix(), blob))
    return damaged


def write_ref(cache: Path, repo_id: str, rev: str, commit: str) -> None:
    """Record ``rev -> commit`` in the cache (``refs/<rev>``) so offline runs find it."""
    if rev == commit:
        return
    ref = repo_storage(cache, repo_id) / "refs" / rev
    try:
        if ref.is_file() and ref.read_text().strip() == commit:
            return
        ref.parent.mkdir(parents=True, exist_ok=True)
        tmp = ref.with_name(f"{ref.name}.{os.getpid()}.tmp")
        tmp.write_text(commit)
        os.replace(tmp, ref)
    except OSError as exc:  # a read-only cache still works, just not offline by branch name
        logger.warning("could not record %s@%s -> %s in the cache: %s", repo_id, rev, commit, exc)


def remove_stale_partials(cache: Path, repo_id: str) -> int:
    """Delete ``*.incomplete`` files of dead downloads (untouched for an hour); return count."""
    blobs = repo_storage(cache, repo_id) / "blobs"
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


# -- what to tell the user ---------------------------------------------------------------------
def download_command(
    repo_id: str,
    revision: str | None,
    cache_dir: str | os.PathLike[str] | None,
    cache: Path,
) -> str:
    """The ``clipclap download`` command line that fetches this model into this cache."""
    command = f"clipclap download {repo_id}"
    if revision:
        command += f" --revision {revision}"
    if cache_dir is not None:
        command += f" --cache-dir {cache}"
    return command


def unavailable(
    repo_id: str,
    revision: str | None,
    cache: Path,
    problem: str | None,
) -> str:
    """Why the cache cannot serve the model: ``problem`` with the cached copy, an interrupted
    download, or nothing there at all."""
    at = f" (revision {revision})" if revision else ""
    if problem:
        return f"The cached copy of {repo_id}{at} in {cache} is {problem}."
    interrupted = interrupted_download(repo_id, cache)
    if interrupted:
        return f"The model {repo_id}{at} is not in the Hugging Face cache ({cache}): {interrupted}."
    return f"The model {repo_id}{at} is not in the Hugging Face cache ({cache})."


def how_to_fix(
    repo_id: str,
    revision: str | None,
    cache_dir: str | os.PathLike[str] | None,
    cache: Path,
    *,
    advice: str = "To fix it:",
) -> str:
    """The two ways out when a model is not cached: download it elsewhere, or pass a folder."""
    command = download_command(repo_id, revision, cache_dir, cache)
    return (
        f" {advice}\n"
        f"  - on a machine with internet access run `{command}`, then copy the Hugging Face "
        f"cache folder it fills to {cache} on this machine (or point HF_HUB_CACHE or "
        "cache_dir= at the copy); or\n"
        f"  - pass model=<a local CLIPCLAP model folder> (or set {MODEL_ENV} to one)."
    )


def damaged_problem(
    repo_id: str,
    revision: str,
    snapshot: Path,
    damaged: DamagedFiles,
    cache_dir: str | os.PathLike[str] | None,
) -> str:
    """The problem line naming cached files of ``snapshot`` whose content no longer matches
    their hash, and the command that downloads them again."""
    names = sorted({name for name, _ in damaged})
    listed = ", ".join(names)
    asked = None if revision == DEFAULT_REVISION else revision
    command = download_command(repo_id, asked, cache_dir, snapshot.parents[2])
    return (
        f"the cached {'file' if len(names) == 1 else 'files'} {listed} "
        f"{'is' if len(names) == 1 else 'are'} damaged (content does not match the hash the "
        f"Hub gave for it): run `{command}` with network access to download it again"
    )
