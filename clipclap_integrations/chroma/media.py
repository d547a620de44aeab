"""``add_media`` / ``upsert_media`` / ``query_media``: what Chroma cannot do by itself.

Chroma takes documents, images or URIs in one call (never a mix), refuses
``upsert(uris=...)`` and keeps the old vector on ``update(uris=...)``. These helpers embed any
mix themselves (each input classified once), write the vectors with their records
(``records``: ids, URIs, documents, metadata) and query with vectors; every write is checked
whole before its first batch. An upsert that replaces a video removes the moments of its
earlier version it did not rewrite, once everything new is written.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from chromadb.api.types import validate_ids, validate_metadatas

from ..errors import IncompleteWriteError
from ..modalities import VideoPipeline
from ..runtime.model import CLAP_WINDOW_S
from ..types import Modality, VideoMoments
from .compat import amax_batch_size, attached_embedding_function, max_batch_size, stored_config
from .data_loader import as_core_input
from .embedding_function import ClipClapEmbeddingFunction
from .records import Record, item_record, stale_moments, video_records, write_batches

Sources = Sequence[Any]
Metadatas = Sequence[Mapping[str, Any] | None] | None
WHERE_IN_LIMIT = 500  # whole ids per ``$in`` filter when looking for stale moments


@dataclass(frozen=True)
class MediaWrite:
    """A checked, embedded write: what to return, what to send, what it may replace."""

    ids: list[str]  # one per source, in input order
    batches: list[dict[str, Any]]  # keyword arguments of each add/upsert call
    wholes: list[str]  # ids that may hold an earlier video: its stale moments go on upsert

    @property
    def total(self) -> int:
        return sum(len(b["ids"]) for b in self.batches)

    @property
    def written(self) -> set[str]:
        return {i for b in self.batches for i in b["ids"]}


def _embedding_function_for(
    collection: Any, embedding_function: ClipClapEmbeddingFunction | None
) -> ClipClapEmbeddingFunction:
    """The function whose model the collection's vectors come from (checked against it)."""
    stored = stored_config(collection)
    ef = embedding_function
    if ef is None:
        own = attached_embedding_function(collection)
        if isinstance(own, ClipClapEmbeddingFunction):
            ef = own
        elif stored is not None:
            ef = ClipClapEmbeddingFunction.build_from_config(stored)
        else:
            raise ValueError(
                f"collection {collection.name!r} has no clipclap embedding function: create it "
                "with embedding_function=ClipClapEmbeddingFunction(...) or pass "
                "embedding_function= here"
            )
    if stored is not None:
        ef.check_compatible(stored, f"collection {collection.name!r}")
    return ef


def _embedded_records(
    sources: Sources, ef: ClipClapEmbeddingFunction
) -> tuple[list[Record], dict[int, VideoMoments]]:
    """Every source classified once (all checked before any work), then embedded; each record
    is described while its content is held (a group of fetched URLs at a time). A video's
    moments are embedded too (returned by source position) and its record gets their
    whole-video vector."""
    raws = [as_core_input(s) for s in sources]
    embedder = ef.embedder
    items = embedder.classify(raws)
    records: list[Record | None] = [None] * len(items)
    videos = cast(VideoPipeline, embedder.pipelines[Modality.VIDEO])
    moments: dict[int, VideoMoments] = {}

    def describe(i: int) -> None:
        records[i] = item_record(raws[i], items[i])
        if items[i].modality is Modality.VIDEO:  # a URL may turn out to be one once fetched
            moments[i] = videos.video(items[i], i)

    known = {i for i, item in enumerate(items) if item.modality is Modality.VIDEO}
    for i in sorted(known):
        describe(i)
    others = [i for i in range(len(items)) if i not in known]
    vectors = embedder.embed_classified(
        [items[i] for i in others], on_fetched=lambda rows: [describe(others[r]) for r in rows]
    )
    done = cast(list[Record], records)
    for i, vector in zip(others, vectors, strict=True):
        done[i].embedding = vector
    for i, got in moments.items():
        done[i].embedding = got.whole
    return done, moments


def _plan_media_write(
    collection: Any,
    sources: Sources,
    ids: Sequence[str] | None,
    metadatas: Metadatas,
    embedding_function: ClipClapEmbeddingFunction | None,
    max_batch: int | None,
) -> MediaWrite:
    """Classify, check and embed everything: the ids (one per source, in input order), the
    keyword arguments of each add/upsert call, in client-sized batches, written after, and the
    ids whose earlier version may have been a video (yours, or a video's content hash)."""
    if isinstance(sources, str | bytes) or not isinstance(sources, Sequence):
        raise TypeError("sources must be a list (wrap a single item in a list)")
    if not sources:
        return MediaWrite([], [], [])
    if ids is not None and len(ids) != len(sources):
        raise ValueError(f"got {len(ids)} ids for {len(sources)} sources")
    if metadatas is not None and len(metadatas) != len(sources):
        raise ValueError(f"got {len(metadatas)} metadatas for {len(sources)} sources")
    ef = _embedding_function_for(collection, embedding_function)
    if ids is not None:
        validate_ids(list(ids))  # before any download or embedding
    given = [dict(m) for m in metadatas or [] if m]  # None or {}: only our own keys
    if given:
        validate_metadatas(cast(Any, given))  # chromadb's Metadata: checked at run time
    records, moments = _embedded_records(sources, ef)
    for row, record in enumerate(records):
        if ids is not None:
            record.id = ids[row]
        if metadatas is not None and metadatas[row]:
            record.extra = metadatas[row]
    all_ids = [r.id for r in records]
    wholes = list(
        dict.fromkeys(r.id for r in records if ids is not None or r.modality is Modality.VIDEO)
    )
    every, window = ef.embedder.options.frame_every_s, CLAP_WINDOW_S
    records = [
        r
        for row, record in enumerate(records)
        for r in (
            video_records(record, moments[row], window, every) if row in moments else [record]
        )
    ]
    if ids is None:  # the same content twice: one record (the first)
        first: dict[str, Record] = {}
        for record in records:
            first.setdefault(record.id, record)
        records = list(first.values())
    batches = write_batches(records, max_batch)
    # Chroma's own checks, over the whole call: a later batch must not fail after the first
    # was written (duplicate ids across batches, a bad metadata value).
    validate_ids([i for b in batches for i in b["ids"]])
    validate_metadatas(cast(Any, [m for b in batches for m in b["metadatas"]]))
    return MediaWrite(all_ids, batches, wholes)


def _chunks(values: Sequence[str], size: int | None) -> Iterator[list[str]]:
    step = size or max(len(values), 1)
    for i in range(0, len(values), step):
        yield list(values[i : i + step])


def _moments_of(wholes: list[str]) -> dict[str, Any]:
    """The ``where`` filter of the stored moments tied to these whole-video records."""
    return {"whole_id": {"$in": wholes}}


def _expect_async(collection: Any, helper: str, expected: bool) -> None:
    """Refuse a collection of the other kind than ``helper`` (``"add_media"``...) serves:
    Chroma's async methods would hand back coroutines nobody awaits, writing nothing."""
    if inspect.iscoroutinefunction(getattr(collection, "add", None)) == expected:
        return
    if expected:
        raise TypeError(f"collection {collection.name!r} is not an AsyncCollection: use {helper}()")
    raise TypeError(
        f"collection {collection.name!r} is an AsyncCollection: use "
        f"`await a{helper}(collection, ...)`"
    )


def _write_media(
    method: str,
    collection: Any,
    sources: Sources,
    ids: Sequence[str] | None,
    metadatas: Metadatas,
    embedding_function: ClipClapEmbeddingFunction | None,
) -> list[str]:
    _expect_async(collection, f"{method}_media", expected=False)
    max_batch = max_batch_size(collection)
    plan = _plan_media_write(collection, sources, ids, metadatas, embedding_function, max_batch)
    written = 0
    for batch in plan.batches:
        try:
            getattr(collection, method)(**batch)
        except Exception as exc:
            if not written:  # nothing written: the database's own error, collection unchanged
                raise
            raise incomplete(f"{method}_media", written, plan.total, exc) from exc
        written += len(batch["ids"])
    if method == "upsert":  # everything new is stored: now the earlier versions' moments go
        try:
            stale: list[str] = []
            for wholes in _chunks(plan.wholes, WHERE_IN_LIMIT):
                got = collection.get(where=_moments_of(wholes), include=["metadatas"])
                stale += stale_moments(got["ids"], got["metadatas"], plan.written)
            for part in _chunks(stale, max_batch):
                collection.delete(ids=part)
        except Exception as exc:
            raise left_stale("upsert_media", plan.total, exc) from exc
    return plan.ids


async def _awrite_media(
    method: str,
    collection: Any,
    sources: Sources,
    ids: Sequence[str] | None,
    metadatas: Metadatas,
    embedding_function: ClipClapEmbeddingFunction | None,
) -> list[str]:
    _expect_async(collection, f"{method}_media", expected=True)
    max_batch = await amax_batch_size(collection)
    plan = await asyncio.to_thread(  # embedding is CPU work: off the event loop
        _plan_media_write, collection, sources, ids, metadatas, embedding_function, max_batch
    )
    written = 0
    for batch in plan.batches:
        try:
            await getattr(collection, method)(**batch)
        except Exception as exc:
            if not written:
                raise
            raise incomplete(f"a{method}_media", written, plan.total, exc) from exc
        written += len(batch["ids"])
    if method == "upsert":  # as in _write_media
        try:
            stale: list[str] = []
            for wholes in _chunks(plan.wholes, WHERE_IN_LIMIT):
                got = await collection.get(where=_moments_of(wholes), include=["metadatas"])
                stale += stale_moments(got["ids"], got["metadatas"], plan.written)
            for part in _chunks(stale, max_batch):
                await collection.delete(ids=part)
        except Exception as exc:
            raise left_stale("aupsert_media", plan.total, exc) from exc
    return plan.ids


def incomplete(helper: str, written: int, total: int, exc: Exception) -> IncompleteWriteError:
    """The error of a write whose batch failed after ``written`` records were written: how
    far it got, and that running the same call again completes it."""
    return IncompleteWriteError(
        f"{helper} wrote {written} of {total} records, then the database failed "
        f"({type(exc).__name__}: {exc}); the other {total - written} may be missing. Run the "
        "same call again: it writes the records under the same ids (content hashes unless "
        "you gave ids), so it completes the collection without duplicates",
        written=written,
        total=total,
    )


def left_stale(helper: str, total: int, exc: Exception) -> IncompleteWriteError:
    """The error of an upsert that wrote everything but could not remove the moments of
    the videos' earlier versions."""
    return IncompleteWriteError(
        f"{helper} wrote all {total} records, then the database failed removing the moments "
        f"of an earlier version of a video ({type(exc).__name__}: {exc}); some may remain. "
        "Run the same call again: it removes them",
        written=total,
        total=total,
    )


def add_media(
    collection: Any,
    sources: Sources,
    ids: Sequence[str] | None = None,
    metadatas: Metadatas = None,
    *,
    embedding_function: ClipClapEmbeddingFunction | None = None,
) -> list[str]:
    """Embed any mix of texts, images and sounds and add them to ``collection``.

    ``sources``: sentences, paths, ``file://``/``data:``/http(s) URIs, bytes, PIL images,
    arrays, ``(samples, rate)`` pairs, ``Text``/``Image``/``Audio`` wrappers. Texts are stored
    as documents, paths and URLs as ``uris``; each record gets ``modality`` and (when known)
    ``mime_type`` metadata, merged under your ``metadatas``. Ids default to a content hash
    (``"<modality>-<hash>"``), so adding the same content twice keeps one record.
    Everything is embedded and checked (ids, metadata) before anything is written: a bad item
    raises ``ClipClapInputError`` (a bad id or metadata Chroma's own error) and the
    collection is unchanged. If the database fails after some batches were written, the
    call raises ``IncompleteWriteError`` saying how many; running it again completes the
    collection (same ids, no duplicates). Returns the ids, in input order. For an
    ``AsyncCollection`` use ``await aadd_media(...)``.

    A video (the ``video`` extra) is stored as its moments, a record per sampled frame
    (``track`` "frames") and per soundtrack window (``track`` "audio") with ``start_s`` and
    ``end_s``, ids ``<id>-<track>-<k>``, plus its whole-video record under ``<id>`` (the id
    returned), all with modality "video" and your metadata.
    """
    return _write_media("add", collection, sources, ids, metadatas, embedding_function)


def upsert_media(
    collection: Any,
    sources: Sources,
    ids: Sequence[str] | None = None,
    metadatas: Metadatas = None,
    *,
    embedding_function: ClipClapEmbeddingFunction | None = None,
) -> list[str]:
    """Like ``add_media`` but replaces existing records (Chroma refuses ``upsert(uris=...)``).

    A video upserted under the id of an earlier one (or any record under an id of yours that
    was a video) replaces all its records: the new ones are written first, then the earlier
    version's moments that were not rewritten are deleted (found by their ``whole_id``), so a
    failed write loses nothing.
    """
    return _write_media("upsert", collection, sources, ids, metadatas, embedding_function)


def _query_arguments(
    collection: Any,
    query: Any,
    n_results: int,
    modality: Modality | str | None,
    where: Mapping[str, Any] | None,
    where_document: Mapping[str, Any] | None,
    include: list[str] | None,
    embedding_function: ClipClapEmbeddingFunction | None,
) -> dict[str, Any]:
    queries = query if isinstance(query, list) else [query]
    ef = _embedding_function_for(collection, embedding_function)
    items = ef.embedder.classify([as_core_input(q) for q in queries])
    vectors = ef.embedder.embed_classified(items)
    filters: dict[str, Any] | None = dict(where) if where else None
    if modality is not None:
        only = {"modality": Modality.parse(modality).value}
        filters = {"$and": [filters, only]} if filters else only
    kwargs: dict[str, Any] = {
        "query_embeddings": list(vectors),
        "n_results": n_results,
        "where": filters,
        "where_document": dict(where_document) if where_document else None,
    }
    if include is not None:
        kwargs["include"] = include
    return kwargs


def query_media(
    collection: Any,
    query: Any,
    n_results: int = 10,
    *,
    modality: Modality | str | None = None,
    where: Mapping[str, Any] | None = None,
    where_document: Mapping[str, Any] | None = None,
    include: list[str] | None = None,
    embedding_function: ClipClapEmbeddingFunction | None = None,
) -> Any:
    """Query ``collection`` with a sentence, an image or a sound (a ``list`` = several queries).

    Strings naming existing files and URLs are media, other strings are text (wrap in
    ``Text``/``Image``/``Audio`` to say so). ``modality`` keeps only records that
    ``add_media`` marked with it. Returns Chroma's ``QueryResult``. For an
    ``AsyncCollection`` use ``await aquery_media(...)``.
    """
    _expect_async(collection, "query_media", expected=False)
    return collection.query(
        **_query_arguments(
            collection,
            query,
            n_results,
            modality,
            where,
            where_document,
            include,
            embedding_function,
        )
    )


async def aadd_media(
    collection: Any,
    sources: Sources,
    ids: Sequence[str] | None = None,
    metadatas: Metadatas = None,
    *,
    embedding_function: ClipClapEmbeddingFunction | None = None,
) -> list[str]:
    """``add_media`` for an ``AsyncCollection`` (embedding runs in a worker thread)."""
    return await _awrite_media("add", collection, sources, ids, metadatas, embedding_function)


async def aupsert_media(
    collection: Any,
    sources: Sources,
    ids: Sequence[str] | None = None,
    metadatas: Metadatas = None,
    *,
    embedding_function: ClipClapEmbeddingFunction | None = None,
) -> list[str]:
    """``upsert_media`` for an ``AsyncCollection`` (embedding runs in a worker thread)."""
    return await _awrite_media("upsert", collection, sources, ids, metadatas, embedding_function)


async def aquery_media(
    collection: Any,
    query: Any,
    n_results: int = 10,
    *,
    modality: Modality | str | None = None,
    where: Mapping[str, Any] | None = None,
    where_document: Mapping[str, Any] | None = None,
    include: list[str] | None = None,
    embedding_function: ClipClapEmbeddingFunction | None = None,
) -> Any:
    """``query_media`` for an ``AsyncCollection`` (embedding runs in a worker thread)."""
    _expect_async(collection, "query_media", expected=True)
    kwargs = await asyncio.to_thread(
        _query_arguments,
        collection,
        query,
        n_results,
        modality,
        where,
        where_document,
        include,
        embedding_function,
    )
    return await collection.query(**kwargs)
