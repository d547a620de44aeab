"""Indexing folders of media and text into a Chroma collection, incrementally.

Every file becomes records in one collection: an image one record; a sound one whole-file
record (the normalized mean of its windows, the ``"mean"`` long-audio policy) plus, when longer
than one window, one per window; a text file one record per sentence-aware chunk that fits
CLIP's 77-token window (``records`` has their schema). A file that cannot be embedded is
reported with the reason, and the others go on. Records carry the file's path
and content hash (and, for sounds, the window length), so a re-run skips unchanged files,
replaces changed ones and (with ``prune``) removes deleted ones. A file's records are written
after all of them are embedded, in as few upserts as the client's batch limit allows; each
record stores how many the file has, so a file left partly written (an interrupted run, a
failed write) is redone by the next run, which resumes without duplicates. A file that cannot
be written is reported as failed; the run goes on.
"""

from __future__ import annotations

import contextlib
import math
import os
import stat
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..embedder import ClipClapEmbedder
from ..errors import ClipClapInputError, DatabaseGoneError
from ..inputs.files import file_kind
from ..modalities.parts import PartRunner
from ..runtime.digests import content_sha256
from ..runtime.model import CLAP_WINDOW_S
from ..types import Modality
from .compat import max_batch_size
from .file_plan import plan_file, plan_records
from .records import Record, read_record, write_batches


@dataclass
class IndexReport:
    """What one indexing run did."""

    added: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # not regular files: (path, why)
    ignored: int = 0  # files that are neither media nor text
    records: int = 0  # records written

    def summary(self) -> str:
        parts = [
            f"{len(self.added)} added",
            f"{len(self.replaced)} replaced",
            f"{len(self.unchanged)} unchanged",
            f"{len(self.removed)} removed",
            f"{len(self.failed)} failed",
            f"{len(self.skipped)} skipped",
            f"{self.ignored} ignored",
            f"{self.records} records written",
        ]
        return ", ".join(parts)

    def listing(self) -> list[str]:
        """The failed and the skipped entries, one line each, with the reason."""
        lines = []
        for what, entries in (
            ("file(s) could not be indexed", self.failed),
            ("entries skipped", self.skipped),
        ):
            if entries:
                lines.append(f"{len(entries)} {what}:")
                lines += [f"  {printable(path)}: {reason}" for path, reason in entries]
        return lines

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (paths as ``printable`` gives them)."""

        def reasons(pairs: list[tuple[str, str]]) -> list[dict[str, str]]:
            return [{"path": printable(p), "reason": r} for p, r in pairs]

        return {
            "added": [printable(p) for p in self.added],
            "replaced": [printable(p) for p in self.replaced],
            "unchanged": [printable(p) for p in self.unchanged],
            "pruned": [printable(p) for p in self.removed],
            "failed": reasons(self.failed),
            "skipped": reasons(self.skipped),
            "ignored": self.ignored,
            "records_written": self.records,
        }


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


def _not_a_regular_file(path: Path) -> str | None:
    """What ``path`` is when it is not a regular file (a FIFO, a socket, a device), or None.
    Raises ``OSError`` when it cannot be looked at (a dangling link, a symlink loop)."""
    mode = os.stat(path).st_mode
    if stat.S_ISREG(mode):
        return None
    for test, what in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISDIR, "a folder"),
    ):
        if test(mode):
            return f"{what}, not a regular file: not read"
    return "not a regular file: not read"


def _is_under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def valid_utf8(text: str) -> bool:
    """Whether ``text`` encodes as UTF-8: a file name that is not valid UTF-8 decodes (on POSIX)
    to lone surrogates, which no Chroma metadata, id or URI can hold (nor a terminal print)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def printable(path: str) -> str:
    """A path as text any terminal takes: bytes of a name that is not valid UTF-8 (lone
    surrogates in Python) shown as \\xNN escapes instead of failing to print."""
    return path if valid_utf8(path) else os.fsencode(path).decode("utf-8", "backslashreplace")


def _same_window(stored: set[float | None], window_s: float) -> bool:
    """Whether records made with the ``stored`` windows match ``window_s`` (a record of
    unknown window, from before it was stored, stands for the default of 10 s then)."""
    known = {w for w in stored if w is not None} or {CLAP_WINDOW_S}
    return all(math.isclose(w, window_s, rel_tol=1e-6, abs_tol=1e-6) for w in known)


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


@dataclass(frozen=True)
class _Pending:
    path: Path
    modality: Modality
    mime: str | None
    content_hash: str
    replaced: bool  # it has records already


class FolderIndexer:
    """Embeds files with a ``ClipClapEmbedder`` and writes them to a Chroma collection."""

    def __init__(
        self,
        collection: Any,
        embedder: ClipClapEmbedder,
        *,
        window_s: float = CLAP_WINDOW_S,
        batch_files: int = 16,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self.collection = collection
        self.embedder = embedder
        self.window_s = window_s
        self.batch_files = max(1, batch_files)
        self.progress = progress or (lambda n: None)
        self.max_batch = max_batch_size(collection)

    # -- state already in the collection ---------------------------------------------------
    def _existing(self) -> dict[str, dict[str, Any]]:
        """source path -> {"ids": [...], "parts": expected count, "hashes": {content hashes},
        "windows": {window lengths of its sound records}}."""
        state: dict[str, dict[str, Any]] = {}
        offset, page = 0, 1000
        while True:
            got = self.collection.get(include=["metadatas"], limit=page, offset=offset)
            ids, metas = got["ids"], got["metadatas"] or []
            for rid, meta in zip(ids, metas, strict=False):
                record = read_record(rid, meta)
                if record.source is None:  # not a file's record (add_media, plain add)
                    continue
                entry = state.setdefault(
                    record.source,
                    {
                        "ids": [],
                        "parts": record.parts,
                        "hashes": set(),
                        "windows": set(),
                    },
                )
                entry["ids"].append(rid)
                entry["hashes"].add(record.file_hash)
                if record.modality == Modality.AUDIO.value:
                    entry["windows"].add(record.window_s)
            if len(ids) < page:
                return state
            offset += page

    # -- the run ---------------------------------------------------------------------------
    def index(self, paths: Sequence[str | os.PathLike[str]], *, prune: bool = False) -> IndexReport:
        report = IndexReport()
        existing = self._existing()
        seen: set[str] = set()
        unlisted: set[str] = set()  # folders that could not be read: nothing under them is pruned

        def folder_failed(folder: Path, exc: OSError) -> None:
            unlisted.update({str(folder.absolute()), str(folder.resolve())})
            report.failed.append(
                (
                    str(folder.resolve()),
                    f"cannot read the folder ({exc.strerror or exc}): its files were skipped and "
                    "their records kept",
                )
            )

        todo: dict[Modality, list[_Pending]] = {m: [] for m in Modality}
        for path in walk(paths, onerror=folder_failed):
            source = str(path)
            try:
                not_regular = _not_a_regular_file(path)
                if not_regular is not None:  # never opened: a FIFO would block the run
                    report.skipped.append((source, not_regular))
                    self.progress(1)
                    continue
                kind = file_kind(path)
                if kind is not None:
                    content_hash = content_sha256(path)
            except OSError as exc:
                seen.add(source)  # unreadable now, maybe not for long: its records stay
                report.failed.append((source, f"cannot read ({exc.strerror or exc})"))
                self.progress(1)
                continue
            if kind is None:  # no longer media or text: --prune removes its records
                report.ignored += 1
                self.progress(1)
                continue
            seen.add(source)
            if not valid_utf8(source):
                report.failed.append(
                    (
                        source,
                        "the path is not valid UTF-8, which Chroma cannot store: rename the file "
                        "(or its folder) to index it",
                    )
                )
                self.progress(1)
                continue
            old = existing.get(source)
            if (
                old
                and old["hashes"] == {content_hash}
                and old["parts"] == len(old["ids"])
                and (kind[0] is not Modality.AUDIO or _same_window(old["windows"], self.window_s))
            ):
                report.unchanged.append(source)
                self.progress(1)
                continue
            pending = _Pending(path, kind[0], kind[1], content_hash, old is not None)
            todo[kind[0]].append(pending)
            if len(todo[kind[0]]) >= self.batch_files:
                self._flush(kind[0], todo[kind[0]], existing, report)
                todo[kind[0]] = []
        for modality, batch in todo.items():
            if batch:
                self._flush(modality, batch, existing, report)
        if prune:
            roots = [str(Path(p).expanduser().resolve()) for p in paths]
            for source, entry in existing.items():
                under = any(_is_under(source, r) for r in roots)
                kept = any(_is_under(source, folder) for folder in unlisted)
                if under and not kept and source not in seen:
                    self.collection.delete(ids=entry["ids"])
                    report.removed.append(source)
        return report

    def _flush(
        self,
        modality: Modality,
        batch: list[_Pending],
        existing: dict[str, dict[str, Any]],
        report: IndexReport,
    ) -> None:
        planned = [
            plan_file(self.embedder, p.path, p.modality, p.mime, self.window_s) for p in batch
        ]
        runner = PartRunner(self.embedder.pipelines, self.embedder.batch_size)
        owners = [
            (k, [pp.part for pp in plan])
            for k, plan in enumerate(planned)
            if not isinstance(plan, str)
        ]
        vectors = dict(runner.run(owners))
        embedded = []
        for k, (pending, plan) in enumerate(zip(batch, planned, strict=True)):
            got = vectors.get(k)
            if isinstance(plan, str) or isinstance(got, ClipClapInputError):
                report.failed.append(
                    (str(pending.path), plan if isinstance(plan, str) else got.reason)
                )
            else:
                rows = plan_records(
                    str(pending.path), pending.content_hash, pending.modality, pending.mime, plan
                )
                for row, vector in zip(rows, got, strict=True):
                    row.embedding = vector
                embedded.append((pending, rows))
        done: set[str] = set()
        for pending, rows in embedded:
            source = str(pending.path)
            old = existing.get(source)
            try:
                self._write(rows)
                if old:
                    stale = [i for i in old["ids"] if i not in {r.id for r in rows}]
                    if stale:
                        self.collection.delete(ids=stale)
            except Exception as exc:  # this file's records (or some) are not written
                if not self._reachable():  # the database is gone: no file can be written
                    raise DatabaseGoneError(
                        f"the database stopped answering while {source!r} was written "
                        f"({_describe(exc)}); the files finished so far are kept: run again "
                        "to resume"
                    ) from exc
                report.failed.append((source, f"could not be written ({_describe(exc)})"))
                continue
            done.add(source)
            (report.replaced if pending.replaced else report.added).append(source)
            report.records += len(rows)
        # A file indexed before whose new content fails: its records describe content that
        # is gone, so they go (the failure is reported).
        for position, (source, reason) in enumerate(report.failed):
            old = existing.get(source)
            if old and source not in done and any(str(p.path) == source for p in batch):
                existing.pop(source)
                try:
                    self.collection.delete(ids=old["ids"])
                    note = "the records of its earlier version were removed"
                except Exception as exc:
                    note = f"the records of its earlier version could not be removed: {exc}"
                report.failed[position] = (source, f"{reason} ({note})")
        self.progress(len(batch))

    def _reachable(self) -> bool:
        """Whether the database still answers (a write that failed for one file's sake
        leaves it answering; a server that went away does not)."""
        try:
            self.collection.count()
        except Exception:
            return False
        return True

    def _write(self, rows: list[Record]) -> None:
        """One file's records, in as few upserts as the client takes."""
        written: list[str] = []
        try:
            for kwargs in write_batches(rows, self.max_batch):
                self.collection.upsert(**kwargs)
                written += kwargs["ids"]
        except Exception:
            # Best effort: take back the part written. If that fails too, the records left
            # are fewer than their "parts" count says, and the next run redoes the file.
            if written:
                with contextlib.suppress(Exception):
                    self.collection.delete(ids=written)
            raise
