"""``embed_dataset``: a pool of actors, each with one embedder, over a dataset."""

from __future__ import annotations

from typing import Any

from .model import model_ref
from .predictor import ClipClapPredictor
from .reading import READ_CPUS


def actor_cpus(threads: int) -> float:
    """The CPUs an actor of ``threads`` threads reserves: a read task's share less, so that
    actors filling a node (2 actors x 1 thread on 2 cores, 1 on a 1-core node) leave room for
    the reads that feed them (Ray would otherwise wait forever, silently)."""
    return threads - READ_CPUS


def embed_dataset(
    ds: Any,
    model: Any = None,
    *,
    actors: int = 1,
    threads: int = 1,
    batch_size: int = 32,
    num_gpus: float = 0,
    column: str = "item",
    record_node: bool = False,
    **options: Any,
) -> Any:
    """``ds`` (rows of ``read_media``, or a ``column`` of items) with ``embedding``,
    ``modality`` and ``error`` columns, embedded by ``actors`` actors of ``threads`` onnxruntime
    threads (and as many CPUs) each; keep ``actors * threads`` within the cores of the nodes.
    ``num_gpus``: GPUs per actor (pass ``providers=["CUDAExecutionProvider"]`` too).
    ``options`` are ``ClipClapEmbedder``'s. The model is resolved here, once (a Hub id
    pinned to a commit)."""
    import ray.data

    if actors < 1 or threads < 1:
        raise ValueError(f"actors and threads must be at least 1, got {actors} and {threads}")
    ref = model_ref(model, threads=threads, **options)
    return ds.map_batches(
        ClipClapPredictor,
        fn_constructor_kwargs={"model": ref, "column": column, "record_node": record_node},
        batch_size=batch_size,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=actor_cpus(threads),
        **({"num_gpus": num_gpus} if num_gpus else {}),
    )
