"""What the stand-in Hub serves: repos, their revisions and files, injected faults, the request log.

Files are described as the Hub describes them: a git blob SHA-1 for each file (of the LFS
pointer, for large files) and a SHA-256 for LFS files, which is also their ETag; a revision's
commit id is derived from its file set, so the same content gives the same commit.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..runtime.digests import git_blob_sha1

# Served as LFS files (ETag = sha256), like the Hub's default .gitattributes does.
LFS_SUFFIXES = (".onnx", ".data", ".bin", ".safetensors", ".pt", ".pth", ".ckpt", ".npy", ".npz")
LFS_MIN_SIZE = 10 * 1024 * 1024


@dataclass(frozen=True)
class RepoFile:
    """One file of a served revision."""

    path: str  # posix path inside the repo
    source: Path  # where its bytes are read from
    size: int
    blob_id: str  # git blob sha1 of the content (of the pointer file, for LFS files)
    sha256: str
    lfs: bool

    @property
    def etag(self) -> str:
        return self.sha256 if self.lfs else self.blob_id

    def tree_entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "type": "file",
            "oid": self.blob_id,
            "size": self.size,
            "path": self.path,
        }
        if self.lfs:
            entry["lfs"] = {"oid": self.sha256, "size": self.size, "pointerSize": 134}
        return entry


@dataclass(frozen=True)
class Revision:
    """A named revision (branch or tag) of a repo and the commit it points to."""

    repo_id: str
    name: str
    commit: str
    files: Mapping[str, RepoFile]


@dataclass
class Fault:
    """Make GETs of ``path`` fail: cut after ``drop_after`` body bytes, or answer ``status``.

    ``times`` is how many GETs fail (None: all of them). ``repo_id`` limits it to one repo.
    """

    path: str
    drop_after: int = 0
    times: int | None = 1
    repo_id: str | None = None
    status: int | None = None  # e.g. 500: an error response instead of a cut transfer
    triggered: int = 0

    def applies(self, repo_id: str, path: str) -> bool:
        if path != self.path or (self.repo_id is not None and repo_id != self.repo_id):
            return False
        return self.times is None or self.triggered < self.times


@dataclass(frozen=True)
class Request:
    """One request the hub answered (or dropped)."""

    method: str
    path: str  # the raw request target, query included
    status: int
    range: str | None = None
    dropped: bool = False
    time: float = field(default_factory=time.time)


def _hash_file(path: Path) -> tuple[str, str]:
    """(git blob sha1, sha256) of a file's content."""
    sha1 = git_blob_sha1(path.stat().st_size)
    sha256 = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            sha1.update(chunk)
            sha256.update(chunk)
    return sha1.hexdigest(), sha256.hexdigest()


def _lfs_pointer_blob_id(sha256: str, size: int) -> str:
    pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n"
    data = pointer.encode()
    sha1 = git_blob_sha1(len(data))
    sha1.update(data)
    return str(sha1.hexdigest())


def scan_files(
    folder: str | Path,
    *,
    exclude: Iterable[str] = (),
    extra: Mapping[str, str | Path] | None = None,
) -> dict[str, RepoFile]:
    """Describe every file under ``folder`` (minus ``exclude``, plus ``extra`` path->source)."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"no folder {root}")
    skip = set(exclude)
    sources: dict[str, Path] = {
        p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*")) if p.is_file()
    }
    for name, source in (extra or {}).items():
        sources[name] = Path(source)
    files: dict[str, RepoFile] = {}
    for name, source in sorted(sources.items()):
        if name in skip:
            continue
        size = source.stat().st_size
        blob_id, sha256 = _hash_file(source)
        lfs = name.endswith(LFS_SUFFIXES) or size >= LFS_MIN_SIZE
        if lfs:
            blob_id = _lfs_pointer_blob_id(sha256, size)
        files[name] = RepoFile(name, source, size, blob_id, sha256, lfs)
    return files


def commit_id(repo_id: str, files: Mapping[str, RepoFile]) -> str:
    """A deterministic 40-hex commit id for a repo's file set (same content, same commit)."""
    digest = hashlib.sha1(repo_id.encode())
    for name, f in sorted(files.items()):
        digest.update(f"\0{name}\0{f.blob_id}".encode())
    return digest.hexdigest()
