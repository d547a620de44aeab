"""What to tell the user when a Hub model cannot be had: what is wrong, and what fixes it.

Kept together so that every message names the same ``clipclap download`` command, with the
same arguments, whichever failure led to it.
"""

from __future__ import annotations

import os
from pathlib import Path

from .hub_cache import DamagedFiles, interrupted_download
from .hub_client import DEFAULT_REVISION, MODEL_ENV


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
