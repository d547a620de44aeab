"""``write_chroma``: embedded rows into a Chroma collection, as idempotent upserts.

Rows go in slices of the client's ``get_max_batch_size()``. For an embedded database (a
``PersistentClient``, one writer process) the driver writes, a file's records once all of them
arrived and none failed (a file is whole or absent). For a Chroma server, Ray's workers write
(each batch of rows straight from the worker that holds it); a file whose rows span two
batches of which one fails is then partly written, and its ``parts`` count makes the next
``clipclap index`` redo it. Rows with an ``error`` are never written: they are reported.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from ..chroma.compat import max_batch_size, server_address
from ..chroma.records import Record, write_batches
from .rows import row_record

WRITE_COLUMNS = ("id", "source", "parts", "error")
DEFAULT_LIMIT = 5000


@dataclass
class WriteReport:
    """What ``write_chroma`` did."""

    written: int = 0  # records upserted
    failed: list[tuple[str, str]] = field(default_factory=list)  # (file or id, why not written)
    files: list[str] = field(default_factory=list)  # files whose records were all written

    def summary(self) -> str:
        return f"{self.written} records written, {len(self.failed)} not written"


def write_chroma(
    ds: Any,
    collection: Any,
    *,
    from_workers: bool | None = None,
    batch_size: int | None = None,
) -> WriteReport:
    """Upsert the embedded rows of ``ds`` (``read_media`` + ``embed_dataset``) into
    ``collection`` (ids are content-addressed: writing twice changes nothing). By default the
    workers write when the collection is on a Chroma server, the driver when it is embedded.
    ``batch_size``: records per upsert (default: the client's maximum)."""
    limit = batch_size or max_batch_size(collection) or DEFAULT_LIMIT
    address = server_address(collection)
    if from_workers is None:
        from_workers = address is not None
    if from_workers:
        if address is None:
            raise ValueError(
                "the collection is in an embedded database, which takes one writer process: "
                "write from the driver (from_workers=False), or use a Chroma server"
            )
        return _from_workers(ds, address, collection.name, limit)
    return _from_driver(ds, collection, limit)


class _Files:
    """Rows gathered per file until all its records are there (then written) or one failed
    (then none is)."""

    def __init__(self, report: WriteReport) -> None:
        self.report = report
        self.pending: dict[str, list[dict[str, Any]]] = {}
        self.failed: set[str] = set()

    def add(self, row: dict[str, Any]) -> list[dict[str, Any]]:
        """The rows ready to write once ``row`` arrived."""
        source, error = row.get("source"), row.get("error")
        if error is None and row.get("id") is None:
            error = "no id"
        if error is None and row.get("embedding") is None:
            error = "no vector"
        if source is None:  # not a file's record: on its own
            if error is not None:
                self.report.failed.append((str(row.get("id")), error))
                return []
            return [row]
        if source in self.failed:
            return []
        if error is not None or row.get("parts") is None:
            self.failed.add(source)
            self.pending.pop(source, None)
            self.report.failed.append((source, error or "no record count"))
            return []
        mine = self.pending.setdefault(source, [])
        mine.append(row)
        if len(mine) < int(row["parts"]):
            return []
        self.report.files.append(source)
        return self.pending.pop(source)

    def left(self) -> None:
        for source, rows in self.pending.items():
            self.report.failed.append(
                (source, f"only {len(rows)} of its {rows[0]['parts']} records arrived")
            )


def _from_driver(ds: Any, collection: Any, limit: int) -> WriteReport:
    report = WriteReport()
    files = _Files(report)
    ready: list[Record] = []

    def flush(all_of_it: bool) -> None:
        while ready and (all_of_it or len(ready) >= limit):
            part, ready[:] = ready[:limit], ready[limit:]
            for kwargs in write_batches(part, limit):
                collection.upsert(**kwargs)
            report.written += len(part)

    for batch in ds.iter_batches(batch_size=1024, batch_format="pyarrow"):
        for row in _rows(batch):
            ready += [row_record(r) for r in files.add(row)]
        flush(False)
    flush(True)
    files.left()
    return report


def _rows(batch: pa.Table) -> Iterable[dict[str, Any]]:
    return batch.to_pylist()


_clients: dict[str, Any] = {}
_clients_lock = threading.Lock()


def _server_collection(address: Mapping[str, Any], name: str) -> Any:
    """The collection on the server, one client per worker process."""
    import chromadb

    from .. import chroma  # noqa: F401  (registers the embedding function Chroma rebuilds)

    key = repr((sorted(address.items()), name))
    with _clients_lock:
        if key not in _clients:
            client = chromadb.HttpClient(**address)
            _clients[key] = client.get_collection(name)
        return _clients[key]


def upsert_batch(batch: pa.Table, address: Mapping[str, Any], name: str, limit: int) -> pa.Table:
    """One worker's write: the batch's good rows upserted; one row out per row in (its
    ``source``, ``id`` and ``error``: null when written)."""
    collection = _server_collection(address, name)
    rows = batch.to_pylist()
    errors = [
        r.get("error") or (None if r.get("embedding") is not None else "no vector") for r in rows
    ]
    good = [i for i, r in enumerate(rows) if errors[i] is None and r.get("id") is not None]
    records = [row_record(rows[i]) for i in good]
    written = 0
    try:
        for kwargs in write_batches(records, limit):
            collection.upsert(**kwargs)
            written += len(kwargs["ids"])
    except Exception as exc:
        why = f"could not be written ({type(exc).__name__}: {exc})"
        for i in good[written:]:
            errors[i] = why
    return pa.table(
        {
            "source": pa.array([r.get("source") for r in rows], pa.string()),
            "id": pa.array([r.get("id") for r in rows], pa.string()),
            "error": pa.array(errors, pa.string()),
        }
    )


def _from_workers(ds: Any, address: Mapping[str, Any], name: str, limit: int) -> WriteReport:
    report = WriteReport()
    outcomes = ds.map_batches(
        upsert_batch,
        fn_kwargs={"address": dict(address), "name": name, "limit": limit},
        batch_size=limit,
        batch_format="pyarrow",
        num_cpus=0.1,  # waits on the server, not on a core
    )
    failed: dict[str, str] = {}
    sources: set[str] = set()
    for batch in outcomes.iter_batches(batch_size=None, batch_format="pyarrow"):
        for row in batch.to_pylist():
            if row["error"] is None:
                report.written += 1
                if row["source"] is not None:
                    sources.add(row["source"])
            else:
                failed.setdefault(row["source"] or str(row["id"]), row["error"])
    report.failed = list(failed.items())
    report.files = sorted(sources - failed.keys())
    return report
