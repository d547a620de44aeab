"""Writing the records of many files to a collection from a thread, in large batches.

The folder indexer hands each embedded file's records to a ``BatchWriter`` and goes on
embedding while it writes: records of consecutive files share upserts of up to the client's
batch limit (one file per upsert when the client cannot say its limit), so the model and the
database work at the same time. The queue is bounded (``put`` waits while two batches are
pending, plus one file), so memory stays flat. Every collection call of a run happens in the
writer's thread, in order.

A write is whole or absent for each file: when an upsert fails, every file with records in it
fails, and the records those files had in earlier upserts are taken back (best effort: if that
fails too, the records stored are fewer than their ``parts`` count says, and the next run redoes
the file). A file's stale records (of its earlier version) are deleted once all its new records
are written. A failure that leaves the database unreachable stops the run
(``DatabaseGoneError``); an interruption (``KeyboardInterrupt``) stops it as it is.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import DatabaseGoneError
from .records import Record, write_batches

# Records waiting longer than this are written even if the batch is not full: a run that is
# stopped loses little work (what is written is never redone).
FLUSH_AFTER_S = 30.0
UNKNOWN_LIMIT_CAPACITY = 1024  # records queued when the client's limit is unknown


def describe_error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


@dataclass(eq=False)
class FileWrite:
    """One file's records to write, the ids of its earlier version to delete once they are,
    and what to do when the file is written (``done()``) or not (``failed(error)``); both are
    called in the writer's thread."""

    source: str
    records: Sequence[Record]
    stale: Sequence[str]
    done: Callable[[], None]
    failed: Callable[[Exception], None]
    written: list[str] = field(default_factory=list)
    given_up: bool = False


class BatchWriter:
    """Writes ``FileWrite``s to ``collection`` from a thread (see the module)."""

    def __init__(self, collection: Any, limit: int | None) -> None:
        self.collection = collection
        self.limit = limit
        self.capacity = 2 * limit if limit else UNKNOWN_LIMIT_CAPACITY
        self._cond = threading.Condition()
        self._inbox: deque[FileWrite | Callable[[], None]] = deque()
        self._queued = 0  # records put and not yet written (or given up)
        self._closed = False
        self._error: BaseException | None = None
        self._buffer: list[tuple[FileWrite, Record]] = []
        self._since = 0.0  # when the oldest buffered record came
        self._thread = threading.Thread(target=self._loop, name="clipclap-writer", daemon=True)
        self._thread.start()

    # -- the producer's side -------------------------------------------------------------
    def put(self, item: FileWrite | Callable[[], None]) -> None:
        """Queue a file's records (or a call to make in the writer's thread, in order);
        waits while the queue is full, and raises what stopped the writer, if anything did."""
        size = len(item.records) if isinstance(item, FileWrite) else 0
        with self._cond:
            while self._error is None and self._queued >= self.capacity:
                self._cond.wait()
            self._raise_error()
            self._inbox.append(item)
            self._queued += size
            self._cond.notify_all()

    def close(self, quiet: bool = False) -> None:
        """Write everything queued, and stop; raises what stopped the writer, if anything
        did (``quiet``: not, when the caller is raising an error of its own)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join()
        with self._cond:
            if quiet:
                self._error = None
            self._raise_error()

    def _raise_error(self) -> None:
        error, self._error = self._error, None
        if error is not None:  # raised once (the writer's thread has stopped)
            raise error

    # -- the writer's thread --------------------------------------------------------------
    def _loop(self) -> None:
        try:
            while True:
                with self._cond:
                    while not (self._inbox or self._closed or self._due()):
                        self._cond.wait(self._wait_time())
                    taken = list(self._inbox)
                    self._inbox.clear()
                    closing = self._closed
                for item in taken:
                    if isinstance(item, FileWrite):
                        if not self._buffer:
                            self._since = time.monotonic()
                        self._buffer += [(item, r) for r in item.records]
                        if self.limit is None:  # one file per write
                            self._write(len(self._buffer))
                    else:
                        item()
                while self._buffer and (
                    len(self._buffer) >= (self.limit or 1) or closing or self._due()
                ):
                    self._write(self.limit or len(self._buffer))
                if closing:
                    return
        except BaseException as exc:  # handed to the producer, which raises it
            with self._cond:
                self._error = exc
                self._cond.notify_all()

    def _due(self) -> bool:
        return bool(self._buffer) and time.monotonic() - self._since >= FLUSH_AFTER_S

    def _wait_time(self) -> float | None:
        if not self._buffer:
            return None
        return max(0.01, FLUSH_AFTER_S - (time.monotonic() - self._since))

    def _release(self, n: int) -> None:
        with self._cond:
            self._queued -= n
            self._cond.notify_all()

    def _write(self, n: int) -> None:
        """Upsert the first ``n`` buffered records (whole or absent, file by file)."""
        chunk, self._buffer = self._buffer[:n], self._buffer[n:]
        self._since = time.monotonic()
        files = list(dict.fromkeys(f for f, _ in chunk))
        try:
            [kwargs] = write_batches([r for _, r in chunk], None)
            self.collection.upsert(**kwargs)
        except Exception as exc:
            self._give_up(files, exc)
            self._release(len(chunk))
            return
        self._release(len(chunk))
        for f, record in chunk:
            f.written.append(record.id)
        finished = [f for f in files if len(f.written) == len(f.records)]
        stale = [i for f in finished for i in f.stale]
        if stale:
            try:
                self.collection.delete(ids=stale)
            except Exception as exc:
                self._check_reachable(finished[0].source, exc)
                for f in finished:
                    f.failed(exc)
                return
        for f in finished:
            f.done()

    def _give_up(self, files: list[FileWrite], exc: Exception) -> None:
        """The files of a failed upsert: their other records are dropped, those written
        before are taken back (best effort), and each is reported failed."""
        dropped = sum(1 for f, _ in self._buffer if f in files)
        self._buffer = [(f, r) for f, r in self._buffer if f not in files]
        self._release(dropped)
        written = [i for f in files for i in f.written]
        if written:
            with contextlib.suppress(Exception):
                self.collection.delete(ids=written)
        self._check_reachable(files[0].source, exc)
        for f in files:
            f.given_up = True
            f.failed(exc)

    def _check_reachable(self, source: str, exc: Exception) -> None:
        """Raise ``DatabaseGoneError`` when the database no longer answers (a write that
        failed for one file's sake leaves it answering; a server that went away does not)."""
        try:
            self.collection.count()
        except Exception:
            raise DatabaseGoneError(
                f"the database stopped answering while {source!r} was written "
                f"({describe_error(exc)}); the files finished so far are kept: run again "
                "to resume"
            ) from exc
