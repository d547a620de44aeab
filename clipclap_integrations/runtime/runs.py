"""Parallel model runs: on the CPU, a batch is split between single-threaded onnxruntime runs
made at once, one per usable core, instead of one run whose operators are parallelized.

Why: onnxruntime's intra-op threads meet at a barrier after every operator, so when anything
else needs a core (decoding a video, preprocessing the next files, another request) one
stalled thread holds back all of them; the video benchmark lost ~15 CPU-s of 70 that way.
Single-threaded runs never wait for each other, need less CPU for the same rows (the visual
encoder: 4.4 CPU-s for 64 images instead of 5.0 on 2 cores), and give the same vectors, bit
for bit (rows are independent of the thread count and of the batch they are run in, as long
as it holds two rows or more: ``split`` never leaves one alone). One process-wide pool of
``runs`` threads serves every embedder asking for that many, so callers in many threads never
oversubscribe the cores. The price: a single row runs on one core (an image query
~0.1 s instead of ~0.05 s); ``threads=N`` restores onnxruntime's intra-op threads.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from typing import TypeVar

from .prefetch import cpu_count
from .sessions import SessionConfig, cpu_only

T = TypeVar("T")

_pools: dict[int, ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


def plan_runs(config: SessionConfig, parallel_runs: int | None) -> tuple[SessionConfig, int]:
    """The session configuration and the number of runs made at once for the options
    ``threads`` (in ``config``) and ``parallel_runs``: by default, on the CPU, single-threaded
    sessions and one run per usable core; with ``threads`` set (or another provider), one run
    at a time unless ``parallel_runs`` says otherwise."""
    cpu = cpu_only(config.providers)
    if parallel_runs is None:
        parallel_runs = cpu_count() if cpu and config.threads is None else 1
    if cpu and config.threads is None and parallel_runs > 1:
        config = replace(config, threads=1)
    return config, max(1, parallel_runs)


def split(n: int, runs: int, cap: int | None = None) -> list[slice]:
    """``n`` rows as consecutive slices, sizes differing by at most one: ``runs`` of them
    when there are rows enough, more when ``cap`` (rows per slice) asks for it, but never a
    one-row slice out of several rows. onnxruntime runs a single row through other kernels
    than several (its vector differs in the last bits), so a batch split this way gives the
    vectors of the batch run whole."""
    if n <= 0:
        return []
    count = max(1, runs)
    if cap is not None:
        count = max(count, -(-n // max(2, cap)))
    count = max(1, min(count, n // 2))
    base, extra = divmod(n, count)
    out, start = [], 0
    for i in range(count):
        stop = start + base + (i < extra)
        out.append(slice(start, stop))
        start = stop
    return out


def run_all(
    work: Callable[[T], object], items: Sequence[T], runs: int, pool: int | None = None
) -> list:
    """``[work(item) for item in items]``, at most ``runs`` at once on the shared pool of
    ``pool`` threads (default ``runs``; in the calling thread when ``runs`` is 1 or there is
    one item). The first failure is raised once every started item is done."""
    if runs <= 1 or len(items) <= 1:
        return [work(item) for item in items]
    executor = _pool(max(runs, pool or runs))
    out: list = [None] * len(items)
    running: deque[tuple[int, Future]] = deque()
    error: BaseException | None = None
    for k, item in enumerate(items):
        if error is None:
            running.append((k, executor.submit(work, item)))
        while running and (len(running) >= runs or k == len(items) - 1):
            done, future = running.popleft()
            try:
                out[done] = future.result()
            except BaseException as exc:  # the others finish first: nothing runs on
                error = error or exc
    if error is not None:
        raise error
    return out


def _forget_pools() -> None:
    """In a forked child: the parent's pool threads do not exist here, and an executor that
    believes it has idle threads would queue runs forever. The child makes its own."""
    global _pools_lock
    _pools.clear()
    _pools_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pools)


def _pool(runs: int) -> ThreadPoolExecutor:
    pool = _pools.get(runs)
    if pool is None:
        with _pools_lock:
            pool = _pools.get(runs)
            if pool is None:
                pool = ThreadPoolExecutor(runs, thread_name_prefix="clipclap-model")
                _pools[runs] = pool
    return pool
