"""Indexing folders of media and text into a Chroma collection, incrementally.

Every file becomes records in one collection: an image one record; a sound one whole-file
record (the normalized mean of its windows, the ``"mean"`` long-audio policy) plus, when longer
than one window, one per window; a text file one record per sentence-aware chunk that fits
CLIP's 77-token window; a video one record per moment (sampled frames, soundtrack windows)
plus a whole-video record (``records`` has their schema). A file that cannot be embedded is
reported with the reason, and the others go on. Records carry the file's path
and content hash (and, for sounds and videos, the window length; for videos the frame
interval), so a re-run skips unchanged files,
replaces changed ones and (with ``prune``) removes deleted ones. Files are planned ahead
(``file_plan``), embedded in full model batches across files (``PartRunner``), and written in
large batches by a writer thread (``writer``); each record stores how many the file has, so a
file left partly written (an interrupted run, a failed write) is redone by the next run, which
resumes without duplicates. A file that cannot be written is reported as failed; the run goes
on.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from ..embedder import ClipClapEmbedder
from ..errors import ClipClapInputError, DatabaseGoneError
from ..inputs.files import file_kind
from ..inputs.walk import walk
from ..modalities.parts import Part, PartRunner
from ..runtime.digests import content_sha256
from ..runtime.model import CLAP_WINDOW_S
from ..runtime.prefetch import Prefetch
from ..types import Modality
from .compat import max_batch_size
from .file_plan import PlannedPart, VideoPlan, plan_file, plan_records
from .stored import StoredFile, stored_files
from .writer import BatchWriter, FileWrite, describe_error

__all__ = ["DatabaseGoneError", "FolderIndexer", "IndexReport", "printable", "walk"]


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


@dataclass(frozen=True)
class _Pending:
    path: Path
    modality: Modality
    mime: str | None
    content_hash: str
    replaced: bool  # it has records already


@dataclass(frozen=True)
class _Step:
    """What looking at one walked entry found: a file to index (``pending``, with its plan or
    why it cannot be), or an outcome to report (``what``: "skipped", "unreadable", "ignored",
    "failed", "unchanged")."""

    source: str
    what: str
    reason: str = ""
    pending: _Pending | None = None
    plan: list[PlannedPart] | VideoPlan | str | None = None

    @property
    def rows(self) -> int:
        return len(self.plan) if isinstance(self.plan, list) else 1


class FolderIndexer:
    """Embeds files with a ``ClipClapEmbedder`` and writes them to a Chroma collection.

    A pipeline: files are looked at, hashed and planned (decoded and preprocessed) ahead in
    the preprocessing pool; their parts run through one ``PartRunner`` (full model batches
    across files, each modality its own); their records are written in large batches by a
    ``BatchWriter`` thread while the model goes on. Every stage is bounded.
    ``batch_files``: at least this many files are planned ahead. ``frame_every_s``: a
    video's frame interval (default: the embedder's ``frame_every_s`` option).
    """

    def __init__(
        self,
        collection: Any,
        embedder: ClipClapEmbedder,
        *,
        window_s: float = CLAP_WINDOW_S,
        batch_files: int = 16,
        progress: Callable[[int], None] | None = None,
        frame_every_s: float | None = None,
    ) -> None:
        self.collection = collection
        self.embedder = embedder
        self.window_s = window_s
        every = embedder.options.frame_every_s if frame_every_s is None else frame_every_s
        self.frame_every_s = float(every)
        self.batch_files = max(1, batch_files)
        self.progress = progress or (lambda n: None)
        self.max_batch = max_batch_size(collection)

    # -- the run ---------------------------------------------------------------------------
    def index(self, paths: Sequence[str | os.PathLike[str]], *, prune: bool = False) -> IndexReport:
        report = IndexReport()
        existing = stored_files(self.collection)
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

        entries = list(walk(paths, onerror=folder_failed))
        self.max_batch = max_batch_size(self.collection)  # of the collection written now
        writer = BatchWriter(self.collection, self.max_batch)
        size = self.embedder.batch_size
        budget = max(self.batch_files, 2 * size)
        look = partial(self._look, entries, existing)
        try:
            with Prefetch(len(entries), look, budget=budget, size=lambda s: s.rows) as ahead:
                steps = (ahead.get(i) for i in range(len(entries)))
                owners = self._owners(steps, report, seen, existing, writer)
                runner = PartRunner(self.embedder.pipelines, size)
                for (pending, plan), vectors in runner.run(owners):
                    if isinstance(vectors, ClipClapInputError):
                        writer.put(partial(self._failed, pending, vectors.reason, existing, report))
                    else:
                        self._queue(pending, plan, vectors, existing, report, writer)
                    self.progress(1)  # embedded (or not): its records are queued to be written
        except BaseException:
            # Interrupted (or failed): the files embedded so far are still written, so the
            # files counted done are kept; the writer's own failure, if any, is the one raised.
            writer.close(quiet=True)
            raise
        writer.close()
        if prune:
            roots = [str(Path(p).expanduser().resolve()) for p in paths]
            for source, entry in existing.items():
                under = any(_is_under(source, r) for r in roots)
                kept = any(_is_under(source, folder) for folder in unlisted)
                if under and not kept and source not in seen:
                    self.collection.delete(ids=entry.ids)
                    report.removed.append(source)
        return report

    def _look(self, entries: list[Path], existing: dict[str, StoredFile], i: int) -> _Step:
        """Entry ``i``: what it is, its content hash, whether it changed, and (if it is to
        be indexed) its plan. Runs in the preprocessing pool, ahead of the model."""
        path = entries[i]
        source = str(path)
        try:
            not_regular = _not_a_regular_file(path)
            if not_regular is not None:  # never opened: a FIFO would block the run
                return _Step(source, "skipped", not_regular)
            kind = file_kind(path)
            if kind is not None:
                content_hash = content_sha256(path)
        except OSError as exc:  # unreadable now, maybe not for long: its records stay
            return _Step(source, "unreadable", f"cannot read ({exc.strerror or exc})")
        if kind is None:  # no longer media or text: --prune removes its records
            return _Step(source, "ignored")
        if not valid_utf8(source):
            reason = (
                "the path is not valid UTF-8, which Chroma cannot store: rename the file "
                "(or its folder) to index it"
            )
            return _Step(source, "failed", reason)
        old = existing.get(source)
        if old is not None and old.is_current(content_hash, self.window_s, self.frame_every_s):
            return _Step(source, "unchanged")
        pending = _Pending(path, kind[0], kind[1], content_hash, old is not None)
        plan = plan_file(self.embedder, path, kind[0], kind[1], self.window_s, self.frame_every_s)
        return _Step(source, "index", pending=pending, plan=plan)

    def _owners(
        self,
        steps: Iterable[_Step],
        report: IndexReport,
        seen: set[str],
        existing: dict[str, StoredFile],
        writer: BatchWriter,
    ) -> Iterator[tuple[tuple[_Pending, list[PlannedPart] | VideoPlan], Iterable[Part]]]:
        """The files to embed, with their parts, in walk order; every other entry is reported
        as it comes."""
        for step in steps:
            if step.what != "skipped" and step.what != "ignored":
                seen.add(step.source)
            if step.pending is not None:
                if isinstance(step.plan, str):  # cannot be embedded: the reason
                    writer.put(partial(self._failed, step.pending, step.plan, existing, report))
                    self.progress(1)
                elif isinstance(step.plan, VideoPlan):  # decoded as the runner reads it
                    yield (step.pending, step.plan), step.plan.parts()
                elif step.plan is not None:
                    yield (step.pending, step.plan), [pp.part for pp in step.plan]
                continue
            if step.what == "skipped":
                report.skipped.append((step.source, step.reason))
            elif step.what in ("unreadable", "failed"):
                report.failed.append((step.source, step.reason))
            elif step.what == "ignored":
                report.ignored += 1
            else:
                report.unchanged.append(step.source)
            self.progress(1)

    def _queue(
        self,
        pending: _Pending,
        plan: list[PlannedPart] | VideoPlan,
        vectors: Any,
        existing: dict[str, StoredFile],
        report: IndexReport,
        writer: BatchWriter,
    ) -> None:
        """Hand an embedded file's records to the writer."""
        source = str(pending.path)
        planned = plan.planned if isinstance(plan, VideoPlan) else plan
        rows = plan_records(source, pending.content_hash, pending.modality, pending.mime, planned)
        kept = [vector for pp, vector in zip(planned, vectors, strict=True) if pp.name]
        for row, vector in zip(rows, kept, strict=True):
            row.embedding = vector
        old = existing.get(source)
        new_ids = {r.id for r in rows}
        stale = [i for i in old.ids if i not in new_ids] if old else []

        def done() -> None:
            (report.replaced if pending.replaced else report.added).append(source)
            report.records += len(rows)

        def failed(exc: Exception) -> None:
            self._failed(pending, f"could not be written ({describe_error(exc)})", existing, report)

        writer.put(FileWrite(source, rows, stale, done, failed))

    def _failed(
        self,
        pending: _Pending,
        reason: str,
        existing: dict[str, StoredFile],
        report: IndexReport,
    ) -> None:
        """A file that cannot be indexed (in the writer's thread). One indexed before: its
        records describe content that is gone, so they go (the failure says so)."""
        source = str(pending.path)
        old = existing.get(source)
        if old:
            try:
                self.collection.delete(ids=old.ids)
                note = "the records of its earlier version were removed"
            except Exception as exc:
                note = f"the records of its earlier version could not be removed: {exc}"
            reason = f"{reason} ({note})"
        report.failed.append((source, reason))
