"""Preprocessing ahead of the model, in worker threads, in bounded memory.

While onnxruntime runs one batch (it releases the GIL), a small process-wide pool of threads
decodes, resizes and featurizes the next items (Pillow, libsndfile, soxr and numpy release the
GIL too). One worker per core: on a 2-core machine the workers fill the cycles onnxruntime
leaves idle and take turns with it for the rest, which costs less than preparing and running
one after the other.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

T = TypeVar("T")

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def cpu_count() -> int:
    """Cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def workers() -> int:
    """Size of the preprocessing pool: one thread per core (at most 8)."""
    return min(8, cpu_count())


def pool() -> ThreadPoolExecutor:
    """The process-wide preprocessing pool, created on first use."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(workers(), thread_name_prefix="clipclap-prep")
        return _pool


class Prefetch(Generic[T]):
    """Computes ``load(0) .. load(n - 1)`` in the pool, in order, ahead of the consumer.

    ``get(i)`` must be called for ``i = 0, 1, ...`` in order; it returns ``load(i)`` or raises
    what it raised. At most ``2 * workers()`` loads are queued or running at once, and loading
    pauses while finished, unconsumed results add up to ``budget`` units (``size`` of each
    result; 1 by default), so memory stays bounded however long the input list is.
    ``close()`` (also on leaving a ``with`` block) cancels what has not started. A load still
    queued when it is asked for (the pool busy with another call's work) runs in the asking
    thread instead, so one slow call never makes another wait behind it.
    """

    def __init__(
        self,
        n: int,
        load: Callable[[int], T],
        *,
        budget: int,
        size: Callable[[T], int] | None = None,
    ) -> None:
        self._n = n
        self._load = load
        self._budget = max(1, budget)
        self._size = size
        self._max_inflight = 2 * workers()
        self._cond = threading.Condition()
        self._futures: dict[int, Future[T]] = {}
        self._next = 0
        self._inflight = 0
        self._ready = 0  # units finished and not yet consumed
        self._closed = False
        self._pump()

    def __enter__(self) -> Prefetch[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _units(self, value: T) -> int:
        return 1 if self._size is None else self._size(value)

    def _pump(self) -> None:
        started: list[Future[T]] = []
        with self._cond:
            while (
                not self._closed
                and self._next < self._n
                and self._inflight < self._max_inflight
                and self._ready < self._budget
            ):
                future = pool().submit(self._load, self._next)
                self._futures[self._next] = future
                self._next += 1
                self._inflight += 1
                started.append(future)
            if started:
                self._cond.notify_all()
        for future in started:  # outside the lock: a finished future calls back at once
            future.add_done_callback(self._finished)

    def _finished(self, future: Future[T]) -> None:
        with self._cond:
            self._inflight -= 1
            if not future.cancelled() and future.exception() is None:
                self._ready += self._units(future.result())
        self._pump()

    def get(self, i: int) -> T:
        self._pump()
        with self._cond:
            while i not in self._futures:
                if self._closed:
                    raise RuntimeError("the prefetch was closed")
                self._cond.wait()
            future = self._futures.pop(i)
        if future.cancel():  # not started: do it here rather than wait for a worker
            self._pump()  # (the cancel freed its place; keep the others coming)
            return self._load(i)
        value = future.result()
        with self._cond:
            self._ready -= self._units(value)
        self._pump()
        return value

    def close(self) -> None:
        with self._cond:
            self._closed = True
            pending = list(self._futures.values())
            self._futures.clear()
            self._cond.notify_all()
        for future in pending:
            future.cancel()
