"""``ChromaDatasink``: Ray's workers upsert into a Chroma server, each its own blocks.

``ds.write_datasink(ChromaDatasink(address, name))`` (``write_chroma`` does it for a
collection on a server): every write task connects once per worker process, upserts the
rows that have a vector in slices the server takes, and says which rows it could not write;
the driver gathers that into ``report``. Rows with an ``error`` are never written.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from ray.data import Datasink
from ray.data.block import BlockAccessor

from ..chroma.records import write_batches
from .rows import row_record


@dataclass
class WriteReport:
    """What ``write_chroma`` did."""

    written: int = 0  # records upserted
    failed: list[tuple[str, str]] = field(default_factory=list)  # (file or id, why not written)
    files: list[str] = field(default_factory=list)  # files whose records were all written

    def summary(self) -> str:
        return f"{self.written} records written, {len(self.failed)} not written"


_collections: dict[str, Any] = {}
_collections_lock = threading.Lock()


def server_collection(address: Mapping[str, Any], name: str) -> Any:
    """The collection on the server (``HttpClient`` arguments), one client per process."""
    import chromadb

    from .. import chroma  # noqa: F401  (registers the embedding function Chroma rebuilds)

    key = repr((sorted(address.items()), name))
    with _collections_lock:
        if key not in _collections:
            _collections[key] = chromadb.HttpClient(**address).get_collection(name)
        return _collections[key]


def upsert_rows(rows: list[dict[str, Any]], collection: Any, limit: int) -> list[str | None]:
    """Upsert the rows that have a vector; each row's reason for not being written, or None."""
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
    return errors


class ChromaDatasink(Datasink):  # type: ignore[misc]
    """Writes embedded rows (``embed_dataset``'s) into a collection on a Chroma server."""

    def __init__(self, address: Mapping[str, Any], name: str, limit: int = 5000) -> None:
        self.address = dict(address)
        self.name = name
        self.limit = limit
        self.report = WriteReport()

    def get_name(self) -> str:
        return "Chroma"

    @property
    def min_rows_per_write(self) -> int:
        return self.limit

    def write(self, blocks: Iterable[Any], ctx: Any) -> dict[str, Any]:
        collection = server_collection(self.address, self.name)
        written, failed, sources = 0, {}, set()
        for block in blocks:
            table: pa.Table = BlockAccessor.for_block(block).to_arrow()
            rows = table.to_pylist()
            for row, error in zip(rows, upsert_rows(rows, collection, self.limit), strict=True):
                where = row.get("source") or str(row.get("id"))
                if error is None:
                    written += 1
                    if row.get("source") is not None:
                        sources.add(row["source"])
                else:
                    failed.setdefault(where, error)
        return {"written": written, "failed": failed, "sources": sources}

    def on_write_complete(self, write_result: Any) -> None:
        failed: dict[str, str] = {}
        sources: set[str] = set()
        for part in write_result.write_returns:
            self.report.written += part["written"]
            for where, error in part["failed"].items():
                failed.setdefault(where, error)
            sources |= part["sources"]
        self.report.failed = list(failed.items())
        self.report.files = sorted(sources - failed.keys())
