"""Parts: one vector's worth of an input, and a runner that embeds the parts of many owners
(files, documents, videos) in full per-modality batches.

An owner is anything made of parts: a picture is one part, a long sound its windows plus
their mean, a text file its chunks. The runner consumes owners and their parts lazily (an
owner's parts may be a generator: frames decoded as they come), queues each part's prepared
row with the rows of the same modality from other owners, runs a queue as soon as it holds a
full batch, and yields each owner's vectors once all its parts are done, in input order. A
bad owner fails alone: its rows are dropped and the others go on.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar, cast

import numpy as np

from ..errors import ClipClapInputError
from ..types import Modality
from .base import ModalityPipeline
from .text import TextPipeline

K = TypeVar("K")

# The model input each row is for (text rows are strings, tokenized by the text pipeline).
FEEDS = {Modality.IMAGE: "pixel_values", Modality.AUDIO: "input_features"}


@dataclass(frozen=True)
class Part:
    """One vector's worth of an input.

    ``row`` is a prepared model input: an image's ``pixel_values`` (3, 224, 224), a sound
    window's ``input_features`` (1, 1001, 64), a text's string. A derived part has no row:
    its vector is the normalized mean of the vectors of the parts at positions ``mean_of``
    (in the same owner's part list: parts with rows, or derived parts before this one, as a
    video's whole vector is the mean of its frame mean and its soundtrack mean).
    """

    modality: Modality
    row: np.ndarray | str | None
    mean_of: tuple[int, ...] = ()


def mean_vector(vectors: np.ndarray) -> np.ndarray:
    """The normalized mean of ``vectors`` (rows): a long sound's whole-file vector."""
    whole = vectors.mean(axis=0)
    return whole / max(float(np.linalg.norm(whole)), 1e-12)


def input_error(exc: BaseException) -> ClipClapInputError:
    """``exc`` as a ``ClipClapInputError`` (itself when it is one)."""
    if isinstance(exc, ClipClapInputError):
        return exc
    text = str(exc)
    return ClipClapInputError(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)


@dataclass(eq=False)
class _Owner(Generic[K]):
    key: K
    vectors: dict[int, np.ndarray] = field(default_factory=dict)
    derived: dict[int, tuple[int, ...]] = field(default_factory=dict)
    count: int | None = None  # parts seen so far; None while more may come
    queued: int = 0  # rows waiting for, or in, a model run
    error: ClipClapInputError | None = None

    @property
    def finished(self) -> bool:
        return self.count is not None and (self.error is not None or self.queued == 0)


class PartRunner:
    """Embeds the parts of many owners in full batches of each modality (see the module)."""

    def __init__(self, pipelines: Mapping[Modality, ModalityPipeline], batch_size: int) -> None:
        self.pipelines = pipelines
        self.batch_size = max(1, int(batch_size))
        self.dim = next(iter(pipelines.values())).folder.dim
        # Owners finished but waiting behind an unfinished one: past this many, the queues
        # holding the first owner's rows run before they are full (bounded latency and memory).
        self.max_waiting = 4 * self.batch_size
        self.runs: dict[Modality, int] = {m: 0 for m in Modality}  # model runs made, for tests

    def run(
        self, owners: Iterable[tuple[K, Iterable[Part] | BaseException]]
    ) -> Iterator[tuple[K, np.ndarray | ClipClapInputError]]:
        """Consumes ``owners`` in order and each owner's parts lazily, and yields
        ``(key, vectors[n_parts, dim])`` for each owner once all its parts are done, in input
        order. An owner given as an exception, or whose parts raise, or whose row gives a
        non-finite vector, yields ``(key, ClipClapInputError)``; the others go on."""
        queues: dict[Modality, list[tuple[_Owner[K], int, np.ndarray | str]]] = {
            m: [] for m in Modality
        }
        waiting: deque[_Owner[K]] = deque()

        def ready() -> Iterator[tuple[K, np.ndarray | ClipClapInputError]]:
            while waiting and waiting[0].finished:
                yield self._result(waiting.popleft())

        for key, parts in owners:
            owner: _Owner[K] = _Owner(key)
            waiting.append(owner)
            if isinstance(parts, BaseException):
                owner.error, owner.count = input_error(parts), 0
            else:
                self._take(owner, parts, queues)
            yield from ready()
            while len(waiting) > self.max_waiting:  # the first owner waits for a partial batch
                head = waiting[0]
                for modality, queue in queues.items():
                    if any(o is head for o, _, _ in queue):
                        self._run(modality, queues)
                yield from ready()
        for modality, queue in queues.items():
            while queue:
                self._run(modality, queues)
        yield from ready()

    def _take(
        self,
        owner: _Owner[K],
        parts: Iterable[Part],
        queues: dict[Modality, list[tuple[_Owner[K], int, np.ndarray | str]]],
    ) -> None:
        """Queue ``owner``'s parts one at a time, running every queue that fills up."""
        position = 0
        try:
            for part in parts:
                if part.mean_of:
                    owner.derived[position] = tuple(part.mean_of)
                elif part.row is None:
                    raise ValueError(f"part {position} has neither a row nor mean_of")
                else:
                    queue = queues[part.modality]
                    queue.append((owner, position, part.row))
                    owner.queued += 1
                    if len(queue) >= self.batch_size:
                        self._run(part.modality, queues)
                position += 1
                if owner.error is not None:  # a row of an earlier batch failed: stop reading
                    break
        except Exception as exc:  # the owner's parts could not be made
            self._fail(owner, input_error(exc), queues)
        owner.count = position

    def _fail(
        self,
        owner: _Owner[K],
        error: ClipClapInputError,
        queues: Mapping[Modality, list[tuple[_Owner[K], int, np.ndarray | str]]],
    ) -> None:
        if owner.error is None:
            owner.error = error
        owner.vectors.clear()
        for queue in queues.values():
            queue[:] = [entry for entry in queue if entry[0] is not owner]
        owner.queued = 0

    def _run(
        self,
        modality: Modality,
        queues: Mapping[Modality, list[tuple[_Owner[K], int, np.ndarray | str]]],
    ) -> None:
        """Run the first batch of ``modality``'s queue (a row whose vector is not finite, or
        whose text is refused, fails its owner; the batch runs again without its rows)."""
        queue = queues[modality]
        batch = queue[: self.batch_size]
        del queue[: self.batch_size]
        while batch:
            try:
                vectors = self._embed(modality, [row for _, _, row in batch])
            except ClipClapInputError as exc:
                bad = {batch[exc.index][0]} if exc.index is not None else {o for o, _, _ in batch}
                reason = type(exc)(exc.reason)  # the same kind, no longer of the batch
                for owner in bad:
                    self._fail(owner, reason, queues)
                batch = [entry for entry in batch if entry[0] not in bad]
                continue
            for (owner, position, _), vector in zip(batch, vectors, strict=True):
                if owner.error is None:
                    owner.vectors[position] = vector
                    owner.queued -= 1
            return

    def _embed(self, modality: Modality, rows: list[np.ndarray | str]) -> np.ndarray:
        self.runs[modality] += 1
        pipeline = self.pipelines[modality]
        if modality is Modality.TEXT:
            return cast(TextPipeline, pipeline).embed_texts(cast(list[str], rows))
        batch = np.stack(cast(list[np.ndarray], rows))
        return pipeline.encoders.project(modality, {FEEDS[modality]: batch})

    def _result(self, owner: _Owner[K]) -> tuple[K, np.ndarray | ClipClapInputError]:
        if owner.error is not None:
            return owner.key, owner.error
        n = owner.count or 0
        out = np.empty((n, self.dim), dtype=np.float32)
        for position, vector in owner.vectors.items():
            out[position] = vector
        for position, sources in sorted(owner.derived.items()):  # a mean of earlier means too
            if any((s in owner.derived and s >= position) or not 0 <= s < n for s in sources):
                error = ClipClapInputError(f"part {position} is a mean of parts that have no row")
                return owner.key, error
            out[position] = mean_vector(out[list(sources)])
        return owner.key, out
