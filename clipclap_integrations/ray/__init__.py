"""Ray Data: index and embed media on a cluster (extra ``ray``).

::

    from clipclap_integrations.ray import embed_dataset, read_media, write_chroma

    ds = read_media("media/", model=M)                   # one row per record clipclap index makes
    ds = embed_dataset(ds, model=M, actors=4, threads=2)  # + embedding, modality, error
    report = write_chroma(ds, collection)                 # idempotent upserts (or ds.write_parquet)

``ClipClapPredictor`` is the callable class behind ``embed_dataset``, for datasets of your
own (a column of paths, bytes, URLs or sentences).
"""

from __future__ import annotations

from ..errors import missing_extra

try:
    import ray
    import ray.data  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise missing_extra("ray[data]", "ray") from exc

from .datasink import ChromaDatasink
from .embedding import embed_dataset
from .model import ModelRef, model_ref
from .predictor import ClipClapPredictor
from .reading import read_media
from .rows import RECORD_SCHEMA
from .writing import WriteReport, write_chroma

__all__ = [
    "RECORD_SCHEMA",
    "ChromaDatasink",
    "ClipClapPredictor",
    "ModelRef",
    "WriteReport",
    "embed_dataset",
    "model_ref",
    "read_media",
    "write_chroma",
]
