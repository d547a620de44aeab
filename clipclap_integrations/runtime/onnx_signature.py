"""Read an ONNX graph's inputs and outputs without loading its weights.

A model folder is validated before any session exists. Loading a 600 MB graph to learn the
names of its inputs would defeat that, so this module walks the protobuf wire format and
seeks past everything but ``graph.input`` and ``graph.output`` (and, for weights stored as
external data, each initializer's name and ``external_data`` entries: which file, and how far
into it the weights reach).
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from ..errors import OnnxFormatError

# onnx.TensorProto.DataType
ELEM_TYPES = {
    1: "float32",
    2: "uint8",
    3: "int8",
    6: "int32",
    7: "int64",
    9: "bool",
    10: "float16",
    11: "float64",
    16: "bfloat16",
}

Dim = int | str | None  # a fixed size, a symbolic name, or unknown


@dataclass(frozen=True)
class TensorSignature:
    """Name, element type and shape of one graph input or output."""

    name: str
    dtype: str
    shape: tuple[Dim, ...]


@dataclass(frozen=True)
class GraphSignature:
    """The inputs and outputs of one ONNX graph."""

    inputs: tuple[TensorSignature, ...]
    outputs: tuple[TensorSignature, ...]
    # (file, bytes it must hold at least) for each file holding weights stored as external
    # data: the furthest offset + length the graph's initializers reference in it
    external_extents: tuple[tuple[str, int], ...] = ()

    @property
    def external_files(self) -> tuple[str, ...]:
        """The files holding weights stored as external data."""
        return tuple(location for location, _ in self.external_extents)

    def input(self, name: str) -> TensorSignature | None:
        return next((t for t in self.inputs if t.name == name), None)

    def output(self, name: str) -> TensorSignature | None:
        return next((t for t in self.outputs if t.name == name), None)


def _varint(stream: BinaryIO) -> int | None:
    shift = result = 0
    while True:
        b = stream.read(1)
        if not b:
            if shift == 0:
                return None
            raise OnnxFormatError("truncated varint")
        result |= (b[0] & 0x7F) << shift
        if not b[0] & 0x80:
            return result
        shift += 7
        if shift > 63:
            raise OnnxFormatError("varint too long")


def _fields(stream: BinaryIO, end: int) -> Iterator[tuple[int, int, Any]]:
    """Yield (field number, wire type, value) up to offset ``end``.

    Length-delimited values are yielded as (offset, length) and NOT read: the caller reads
    or skips them. Other wire types are consumed.
    """
    while stream.tell() < end:
        key = _varint(stream)
        if key is None:
            return
        field, wire = key >> 3, key & 7
        if wire == 0:
            yield field, wire, _varint(stream)
        elif wire == 1:
            stream.seek(8, os.SEEK_CUR)
            yield field, wire, None
        elif wire == 5:
            stream.seek(4, os.SEEK_CUR)
            yield field, wire, None
        elif wire == 2:
            length = _varint(stream)
            if length is None:
                raise OnnxFormatError("truncated length")
            start = stream.tell()
            if start + length > end:
                raise OnnxFormatError("field runs past the end of the file")
            yield field, wire, (start, length)
            stream.seek(start + length)
        else:
            raise OnnxFormatError(f"unsupported protobuf wire type {wire}")


def _message(data: bytes) -> list[tuple[int, int, Any]]:
    stream = io.BytesIO(data)
    out: list[tuple[int, int, Any]] = []
    for field, wire, value in _fields(stream, len(data)):
        if wire == 2:
            start, length = value
            out.append((field, wire, data[start : start + length]))
        else:
            out.append((field, wire, value))
    return out


def _value_info(data: bytes) -> TensorSignature:
    name, dtype = "", "unknown"
    shape: tuple[Dim, ...] = ()
    for field, _, value in _message(data):
        if field == 1:
            name = value.decode("utf-8")
        elif field == 2:  # TypeProto
            for tfield, _, tvalue in _message(value):
                if tfield != 1:  # tensor_type
                    continue
                for sfield, _, svalue in _message(tvalue):
                    if sfield == 1:
                        dtype = ELEM_TYPES.get(svalue, f"type{svalue}")
                    elif sfield == 2:  # TensorShapeProto
                        dims: list[Dim] = []
                        for dfield, _, dvalue in _message(svalue):
                            if dfield != 1:
                                continue
                            dim: Dim = None
                            for kfield, _, kvalue in _message(dvalue):
                                if kfield == 1:
                                    dim = int(kvalue)
                                elif kfield == 2:
                                    dim = kvalue.decode("utf-8")
                            dims.append(dim)
                        shape = tuple(dims)
    return TensorSignature(name, dtype, shape)


def read_signature(path: str | os.PathLike[str]) -> GraphSignature:
    """The graph inputs (minus initializers) and outputs of the ONNX file at ``path``."""
    with open(path, "rb") as stream:
        size = stream.seek(0, os.SEEK_END)
        stream.seek(0)
        inputs: list[TensorSignature] = []
        outputs: list[TensorSignature] = []
        initializers: set[str] = set()
        external: dict[str, int] = {}  # file -> bytes its weights need
        saw_graph = False
        for field, wire, value in _fields(stream, size):
            if field != 7 or wire != 2:  # ModelProto.graph
                continue
            saw_graph = True
            start, length = value
            stream.seek(start)
            for gfield, gwire, gvalue in _fields(stream, start + length):
                if gwire != 2 or gfield not in (5, 11, 12):
                    continue
                gstart, glength = gvalue
                if gfield == 5:  # initializer: only its name and external file matter
                    name, location, end = _initializer_info(stream, gstart, glength)
                    initializers.add(name)
                    if location:
                        external[location] = max(external.get(location, 0), end)
                    continue
                stream.seek(gstart)
                info = _value_info(stream.read(glength))
                (inputs if gfield == 11 else outputs).append(info)
        if not saw_graph:
            raise OnnxFormatError("no graph in the file")
    return GraphSignature(
        tuple(t for t in inputs if t.name not in initializers),
        tuple(outputs),
        tuple(sorted(external.items())),
    )


# bytes per element of onnx.TensorProto.DataType, for external data without a "length"
_ELEM_SIZES = {1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8, 16: 2}


def _initializer_info(stream: BinaryIO, start: int, length: int) -> tuple[str, str, int]:
    """The name of a TensorProto, the file its data lives in if external (else ""), and how
    many bytes of that file its data needs (offset + length; 0 when not external).

    Only the small fields are read: ``raw_data`` is skipped, not loaded.
    """
    name = location = ""
    dims: list[int] = []
    data_type = 0
    entries: dict[bytes, bytes] = {}
    stream.seek(start)
    for field, wire, value in _fields(stream, start + length):
        if field == 1 and wire == 0:  # dims, unpacked
            dims.append(value)
        elif field == 2 and wire == 0:  # data_type
            data_type = value
        if wire != 2 or field not in (1, 8, 13):  # dims (packed), name, external_data
            continue
        vstart, vlength = value
        stream.seek(vstart)
        data = stream.read(vlength)
        if field == 1:
            packed = io.BytesIO(data)
            while (dim := _varint(packed)) is not None:
                dims.append(dim)
        elif field == 8:
            name = data.decode("utf-8", "replace")
        else:
            entry = {f: v for f, _, v in _message(data)}
            key, val = entry.get(1, b""), entry.get(2, b"")
            if isinstance(key, bytes) and isinstance(val, bytes):
                entries[key] = val
    location = entries.get(b"location", b"").decode("utf-8", "replace")
    if not location:
        return name, "", 0
    try:
        offset = int(entries.get(b"offset", b"0"))
        if b"length" in entries:
            size = int(entries[b"length"])
        else:  # onnx writes "length"; without it the data is the whole tensor
            size = _ELEM_SIZES.get(data_type, 0)
            for dim in dims:
                size *= dim
    except ValueError as exc:
        raise OnnxFormatError(
            f"initializer {name!r} has an unreadable external_data entry"
        ) from exc
    if offset < 0 or size < 0:
        raise OnnxFormatError(f"initializer {name!r} has a negative external_data offset or length")
    return name, location, offset + size
