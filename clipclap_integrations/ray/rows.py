"""The columns of the Ray datasets: one row per record of ``chroma.records``, with fixed Arrow
types, so blocks whose column is all null (no text chunk, no error) still concatenate.

A record row: ``id``, ``part`` (the id's last part: "image", "audio", "window-<k>",
"chunk-<k>", "frames-<k>", "video"...), the record's metadata fields (``modality``,
``mime_type``, ``source``, ``file_name``, ``file_hash``, ``parts``, ``kind``, ``start_s``,
``end_s``, ``window_s``, ``chunk``, ``char_start``, ``char_end``, ``track``,
``frame_every_s``), ``document`` (a text chunk), ``uri`` (a media file's path), ``error``
(why the file cannot be indexed; the row then has no id). Embedding adds ``embedding``
(fixed-size float32 list, null on error) and sets ``modality``/``error``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ..chroma.records import FileOrigin, Record, Span, metadata
from ..types import Modality

SPAN_FIELDS = tuple(f.name for f in fields(Span))
RECORD_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("part", pa.string()),
        ("source", pa.string()),
        ("file_name", pa.string()),
        ("modality", pa.string()),
        ("mime_type", pa.string()),
        ("file_hash", pa.string()),
        ("parts", pa.int64()),
        ("kind", pa.string()),
        ("start_s", pa.float64()),
        ("end_s", pa.float64()),
        ("window_s", pa.float64()),
        ("chunk", pa.int64()),
        ("char_start", pa.int64()),
        ("char_end", pa.int64()),
        ("track", pa.string()),
        ("frame_every_s", pa.float64()),
        ("document", pa.string()),
        ("uri", pa.string()),
        ("error", pa.string()),
    ]
)
OUTPUT_COLUMNS = ("embedding", "modality", "error")
NODE_COLUMN = "node_id"


def record_row(record: Record, part: str) -> dict[str, Any]:
    """A record (vector not yet made) as a row."""
    row: dict[str, Any] = dict.fromkeys(RECORD_SCHEMA.names)
    row.update(
        id=record.id,
        part=part,
        modality=record.modality.value,
        mime_type=record.mime_type,
        document=record.document,
        uri=record.uri,
    )
    if record.file is not None:
        row.update(
            source=record.file.path,
            file_name=Path(record.file.path).name,
            file_hash=record.file.file_hash,
            parts=record.file.parts,
        )
    if record.span is not None:
        row.update(asdict(record.span))
    return row


def error_row(source: str, reason: str, modality: Modality | None = None) -> dict[str, Any]:
    """The row of a file that cannot be indexed: no id, the reason."""
    row: dict[str, Any] = dict.fromkeys(RECORD_SCHEMA.names)
    row.update(
        source=source,
        file_name=Path(source).name,
        modality=modality.value if modality else None,
        error=reason,
    )
    return row


def record_table(rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(list(rows), schema=RECORD_SCHEMA)


def row_record(row: Mapping[str, Any]) -> Record:
    """The ``Record`` a row stands for (with its embedding, if it has one), so its metadata
    is the one ``records.metadata`` gives every record this package writes."""
    origin = None
    if row.get("source") is not None and row.get("file_hash") is not None:
        origin = FileOrigin(row["source"], row["file_hash"], int(row["parts"]))
    span = None
    if row.get("kind") is not None:
        span = Span(**{k: row.get(k) for k in SPAN_FIELDS})
    vector = row.get("embedding")
    return Record(
        id=row["id"],
        modality=Modality(row["modality"]),
        embedding=None if vector is None else np.asarray(vector, dtype=np.float32),
        mime_type=row.get("mime_type"),
        document=row.get("document"),
        uri=row.get("uri"),
        file=origin,
        span=span,
    )


def row_metadata(row: Mapping[str, Any]) -> dict[str, Any]:
    return metadata(row_record(row))


def embedding_array(vectors: Sequence[np.ndarray | None], dim: int) -> pa.Array:
    """A fixed-size float32 list column, null where a row has no vector."""
    flat = np.zeros((len(vectors), dim), dtype=np.float32)
    mask = np.zeros(len(vectors), dtype=bool)
    for i, v in enumerate(vectors):
        if v is None:
            mask[i] = True
        else:
            flat[i] = v
    values = pa.array(flat.reshape(-1), type=pa.float32())
    return pa.FixedSizeListArray.from_arrays(values, dim, mask=pa.array(mask))


def output_table(
    table: pa.Table,
    vectors: Sequence[np.ndarray | None],
    modalities: Sequence[str | None],
    errors: Sequence[str | None],
    dim: int,
    node_id: str | None = None,
) -> pa.Table:
    """``table`` with the embedding's columns (replacing any of the same names)."""
    drop = [c for c in (*OUTPUT_COLUMNS, NODE_COLUMN) if c in table.column_names]
    out = table.drop_columns(drop)
    out = out.append_column("embedding", embedding_array(vectors, dim))
    out = out.append_column("modality", pa.array(list(modalities), type=pa.string()))
    out = out.append_column("error", pa.array(list(errors), type=pa.string()))
    if node_id is not None:
        out = out.append_column(NODE_COLUMN, pa.array([node_id] * out.num_rows, pa.string()))
    return out
