"""Walking the folders given to the indexer: the entries to look at, in a stable order,
without following links to folders. No Chroma needed (the command walks ahead of importing it)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path


def walk(
    paths: Iterable[str | os.PathLike[str]],
    onerror: Callable[[Path, OSError], None] | None = None,
) -> Iterator[Path]:
    """Entries under ``paths`` that are not folders (recursively, skipping hidden entries and
    links to folders), in a stable order: a folder's files, then its subfolders.

    The walk keeps its own stack, so no depth of nesting exhausts Python's recursion limit. A
    folder that cannot be listed is skipped; ``onerror(folder, error)`` is told. An entry whose
    path cannot be resolved (a symlink loop) is yielded as it is: reading it fails, and the
    caller reports it.
    """
    for root in paths:
        root = Path(root).expanduser()
        if not root.is_dir():
            if not os.path.lexists(root):
                raise FileNotFoundError(f"no such file or folder: {root}")
            yield _resolved(root)  # a file, a FIFO, a link loop: the caller sorts them out
            continue
        stack = [root]
        while stack:
            folder = stack.pop()
            try:
                with os.scandir(folder) as entries:
                    listed = sorted((e.name, _kind(e)) for e in entries if e.name[0] != ".")
            except OSError as exc:
                if onerror is not None:
                    onerror(folder, exc)
                continue
            for name, kind in listed:
                if kind == "other":
                    yield _resolved(folder / name)
            stack += [folder / name for name, kind in reversed(listed) if kind == "folder"]


def _kind(entry: os.DirEntry[str]) -> str:
    """Whether an entry is a "folder" (walked), a "link to a folder" (not followed, as
    ``os.walk`` does), or "other" (a file, a FIFO, a dangling link, a symlink loop: the
    caller sorts them out)."""
    try:
        if not entry.is_dir():
            return "other"
    except OSError:  # a symlink loop
        return "other"
    return "link to a folder" if entry.is_symlink() else "folder"


def _resolved(path: Path) -> Path:
    """The real path of an entry, or its absolute path when it has none (a dangling link, a
    symlink loop)."""
    try:
        real = path.resolve()
    except (OSError, RuntimeError):  # a symlink loop (RuntimeError before Python 3.13)
        return path.absolute()
    return real if real.exists() else path.absolute()
