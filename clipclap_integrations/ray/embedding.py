"""``embed_dataset``: a pool of actors, each with one embedder, over a dataset."""

from __future__ import annotations

import math
import warnings
from typing import Any

from .model import model_ref
from .predictor import ClipClapPredictor
from .reading import READ_CPUS


def actor_cpus(threads: int) -> float:
    """The CPUs an actor of ``threads`` threads reserves: a read task's share less, so that
    actors filling a node (2 actors x 1 thread on 2 cores, 1 on a 1-core node) leave room for
    the reads that feed them (Ray would otherwise wait forever, silently)."""
    return threads - READ_CPUS


def actor_pool(actors: int, threads: int) -> tuple[Any, float]:
    """The pool's strategy and each actor's CPUs: ``actors`` actors, or as many as the nodes'
    CPUs hold now, growing to ``actors`` when nodes join (a pool Ray cannot start waits
    forever, silently); an actor of more threads than any node has cores reserves what the
    largest node can give (its threads then share those cores)."""
    import ray
    import ray.data

    if not ray.is_initialized():
        ray.init()  # what Ray Data would do on the first run
    need = actor_cpus(threads)
    cpus = [n["Resources"].get("CPU", 0.0) for n in ray.nodes() if n.get("Alive")]
    room = max(cpus, default=1.0) - READ_CPUS
    if room < need:
        need = max(room, READ_CPUS)
        warnings.warn(
            f"no node has {threads} cores for an actor of {threads} threads (the largest has "
            f"{max(cpus, default=0):g}): each actor reserves {need:g} CPU",
            stacklevel=3,
        )
    fit = sum(max(0, math.floor((c - READ_CPUS) / need + 1e-9)) for c in cpus)
    if fit >= actors:
        return ray.data.ActorPoolStrategy(size=actors), need
    warnings.warn(
        f"{actors} actors of {threads} threads do not fit the cluster's CPUs "
        f"({sum(cpus):g}): starting {max(fit, 1)}, more if nodes join",
        stacklevel=3,
    )
    return ray.data.ActorPoolStrategy(min_size=max(fit, 1), max_size=actors), need


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
    if actors < 1 or threads < 1:
        raise ValueError(f"actors and threads must be at least 1, got {actors} and {threads}")
    ref = model_ref(model, threads=threads, **options)
    pool, cpus = actor_pool(actors, threads)
    return ds.map_batches(
        ClipClapPredictor,
        fn_constructor_kwargs={"model": ref, "column": column, "record_node": record_node},
        batch_size=batch_size,
        batch_format="pyarrow",
        compute=pool,
        num_cpus=cpus,
        **({"num_gpus": num_gpus} if num_gpus else {}),
    )
