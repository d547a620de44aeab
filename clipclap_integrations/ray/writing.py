"""``write_chroma``: embedded rows into a Chroma collection, as idempotent upserts.

Rows go in slices of the client's ``get_max_batch_size()``. For an embedded database (a
``PersistentClient``, one writer process) the driver writes, a file's records once all of them
arrived and none failed (a file is whole or absent). For a Chroma server, Ray's workers write
(each batch of rows straight from the worker that holds it); a file whose rows span two
batches of which one fails is then partly written, and its ``parts`` count makes the next
``clipclap index`` redo it. Rows with an ``error`` are never written: they are reported.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Any

import pyarrow as pa

from ..chroma.compat import max_batch_size, server_address, stored_config
from ..chroma.records import Record, write_batches
from .datasink import ChromaDatasink, WriteReport
from .rows import row_record

WRITE_COLUMNS = ("id", "source", "parts", "error")
DEFAULT_LIMIT = 5000


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
    _check_function(collection)
    address = server_address(collection)
    if from_workers is None:
        from_workers = address is not None
    if from_workers:
        if address is None:
            raise ValueError(
                "the collection is in an embedded database, which takes one writer process: "
                "write from the driver (from_workers=False), or use a Chroma server"
            )
        sink = ChromaDatasink(address, collection.name, limit)
        ds.write_datasink(sink, ray_remote_args={"num_cpus": 0.1})  # waits on the server
        return sink.report
    return _from_driver(ds, collection, limit)


def _check_function(collection: Any) -> None:
    """Warn when the collection is set up with another embedding function: the vectors are
    written all the same, but its ``query_texts`` would not be CLIPCLAP vectors and
    ``clipclap search`` refuses it."""
    try:
        stored_config(collection)
    except ValueError as exc:
        warnings.warn(
            f"{exc}; create it with embedding_function=ClipClapEmbeddingFunction(model) "
            "(clipclap_integrations.chroma) so that queries and clipclap search use CLIPCLAP",
            stacklevel=3,
        )
    except Exception:  # a duck-typed collection: nothing to check
        pass


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
