"""An iterator run ahead in a thread of its own, through a bounded queue: a video's frames
are decoded and preprocessed while the model runs the batch before (PyAV, Pillow, soxr and
numpy release the GIL, as onnxruntime does)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_DONE = object()


def ahead(items: Iterable[T], size: int) -> Iterator[T]:
    """The items of ``items``, produced in a daemon thread at most ``size`` ahead of the
    consumer. An exception in the producer is raised in the consumer at its place; closing
    the returned generator early stops the producer at its next item."""
    box: queue.Queue[object] = queue.Queue(maxsize=max(1, size))
    stop = threading.Event()

    def put(value: object) -> bool:
        while not stop.is_set():
            try:
                box.put(value, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            put(_Failure(exc))
            return
        finally:
            close = getattr(items, "close", None)
            if stop.is_set() and callable(close):
                close()
        put(_DONE)

    thread = threading.Thread(target=produce, name="clipclap-ahead", daemon=True)
    thread.start()
    try:
        while True:
            value = box.get()
            if value is _DONE:
                return
            if isinstance(value, _Failure):
                raise value.exc
            yield value  # type: ignore[misc]
    finally:
        stop.set()
        thread.join()


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc
