"""Hashes of file contents, and how the Hugging Face Hub names files by them.

The Hub names a large (LFS) file by its SHA-256 and a small one by its git blob SHA-1 (SHA-1
over ``blob <size>\\0`` and the bytes); its cache stores each file as ``blobs/<that name>``.
Knowing that lets a model digest skip reading Hub weights, and lets a damaged cached file be
told from a good one.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

_SHA256_NAME = re.compile(r"[0-9a-f]{64}")
_SHA1_NAME = re.compile(r"[0-9a-f]{40}")
_BLOCK = 1 << 20
_file_hashes: dict[tuple[str, int, int, int], str] = {}


def git_blob_sha1(size: int) -> Any:
    """A SHA-1 hasher primed with git's blob header for ``size`` bytes: feed it the bytes."""
    return hashlib.sha1(f"blob {size}\0".encode())


def feed_file(h: Any, path: Path) -> Any:
    """``h`` (a hashlib hasher) fed a file's content, read now (no cache), 1 MB at a time."""
    with open(path, "rb") as f:
        while block := f.read(_BLOCK):
            h.update(block)
    return h


def content_sha256(path: Path) -> str:
    return str(feed_file(hashlib.sha256(), path).hexdigest())


def file_sha256(path: Path) -> str:
    """SHA-256 (hex) of a file's content, computed once per process per version of the file.

    A file in the Hugging Face cache that resolves to ``blobs/<64 hex digits>`` is an LFS
    object named by that very hash, and is not read.
    """
    real = path.resolve()
    if real.parent.name == "blobs" and _SHA256_NAME.fullmatch(real.name):
        return real.name
    st = real.stat()
    key = (str(real), st.st_size, st.st_mtime_ns, st.st_ino)
    found = _file_hashes.get(key)
    if found is None:
        found = content_sha256(real)
        _file_hashes[key] = found
    return found


def hub_blob_intact(blob: Path) -> bool | None:
    """Whether a Hub cache blob's bytes still hash to its name (read now); None when the name
    is no hash the Hub uses (nothing to check)."""
    if _SHA256_NAME.fullmatch(blob.name):
        return bool(feed_file(hashlib.sha256(), blob).hexdigest() == blob.name)
    if _SHA1_NAME.fullmatch(blob.name):
        return bool(feed_file(git_blob_sha1(blob.stat().st_size), blob).hexdigest() == blob.name)
    return None
