"""Parallel model runs (runtime/runs.py): a batch split between single-threaded runs made at
once gives the vectors of one run with onnxruntime's intra-op threads, bit for bit; runs
really overlap, never more than asked, and a failing run fails the batch."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from clipclap_integrations import ClipClapEmbedder
from clipclap_integrations.runtime import encoders as encoders_module
from clipclap_integrations.runtime.prefetch import cpu_count
from clipclap_integrations.runtime.runs import plan_runs, run_all, split
from clipclap_integrations.runtime.sessions import SessionConfig
from clipclap_integrations.types import Modality


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 9, 17, 32, 33])
@pytest.mark.parametrize("runs", [1, 2, 3, 4])
@pytest.mark.parametrize("cap", [None, 2, 4, 8])
def test_split_covers_every_row_once_in_even_slices_never_one_row_of_several(
    n: int, runs: int, cap: int | None
) -> None:
    slices = split(n, runs, cap)
    rows = [i for s in slices for i in range(s.start, s.stop)]
    assert rows == list(range(n))
    sizes = [s.stop - s.start for s in slices]
    assert max(sizes) - min(sizes) <= 1
    if n >= 2:
        assert min(sizes) >= 2  # a lone row would take onnxruntime's one-row kernels
    if cap is not None and n >= 2:
        assert max(sizes) <= max(cap, 3)  # at most one row over: no one-row slices
    if n >= 2 * runs and (cap is None or cap >= n):
        assert len(slices) == runs


def test_plan_runs_single_threaded_sessions_one_run_per_core_by_default() -> None:
    config, runs = plan_runs(SessionConfig(), None)
    assert runs == cpu_count()
    assert config.threads == (1 if runs > 1 else None)
    # threads set: onnxruntime's intra-op threads, one run at a time (as before)
    assert plan_runs(SessionConfig(threads=2), None) == (SessionConfig(threads=2), 1)
    # another provider: its sessions as asked, one run at a time
    gpu = SessionConfig(providers=("CUDAExecutionProvider", "CPUExecutionProvider"))
    assert plan_runs(gpu, None) == (gpu, 1)
    assert plan_runs(SessionConfig(), 3) == (SessionConfig(threads=1), 3)
    assert plan_runs(SessionConfig(), 1) == (SessionConfig(), 1)
    assert plan_runs(SessionConfig(threads=2), 2) == (SessionConfig(threads=2), 2)


def test_option_is_validated_and_reaches_the_encoders(tiny_model_dir: Path) -> None:
    embedder = ClipClapEmbedder(tiny_model_dir, parallel_runs=3)
    assert embedder.encoders.runs == 3
    assert embedder.session_config.threads == 1
    with pytest.raises(ValueError, match="parallel_runs"):
        ClipClapEmbedder(tiny_model_dir, parallel_runs=0)


def test_parallel_runs_give_the_vectors_of_one_intra_op_run(tiny_model_dir: Path) -> None:
    rng = np.random.default_rng(5)
    images = [rng.integers(0, 256, (90 + 7 * i, 120, 3), dtype=np.uint8) for i in range(13)]
    clips = [rng.uniform(-0.5, 0.5, 48_000 * 3).astype(np.float32) for _ in range(11)]
    one = ClipClapEmbedder(tiny_model_dir, threads=2)  # the intra-op way, one run at a time
    assert one.encoders.runs == 1
    for runs in (2, 3):
        parallel = ClipClapEmbedder(tiny_model_dir, parallel_runs=runs)
        np.testing.assert_array_equal(parallel.embed_images(images), one.embed_images(images))
        np.testing.assert_array_equal(parallel.embed_audio(clips), one.embed_audio(clips))
        texts = [f"a photo of {'two red cars on a long road ' * (i % 4)}{i}" for i in range(9)]
        np.testing.assert_array_equal(parallel.embed_text(texts), one.embed_text(texts))


def _watch_runs(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Record how many session runs overlap, and on which threads they run."""
    seen: dict[str, Any] = {"now": 0, "most": 0, "rows": 0, "most_rows": 0, "threads": set()}
    lock = threading.Lock()
    real = encoders_module.run_session

    def watched(session: Any, names: list[str], feeds: dict[str, Any]) -> list[Any]:
        rows = next(iter(feeds.values())).shape[0]
        with lock:
            seen["now"] += 1
            seen["rows"] += rows
            seen["most"] = max(seen["most"], seen["now"])
            seen["most_rows"] = max(seen["most_rows"], seen["rows"])
            seen["threads"].add(threading.current_thread().name)
        try:
            time.sleep(0.05)  # long enough for a second run to start if it is going to
            return real(session, names, feeds)
        finally:
            with lock:
                seen["now"] -= 1
                seen["rows"] -= rows

    monkeypatch.setattr(encoders_module, "run_session", watched)
    return seen


def test_runs_overlap_and_never_exceed_the_number_asked(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedder = ClipClapEmbedder(tiny_model_dir, parallel_runs=2)
    embedder.embed_images([np.zeros((32, 32, 3), np.uint8)])  # sessions made
    seen = _watch_runs(monkeypatch)
    pixels = np.zeros((8, 3, 224, 224), np.float32)
    callers = [
        threading.Thread(
            target=embedder.encoders.project, args=(Modality.IMAGE, {"pixel_values": pixels})
        )
        for _ in range(3)
    ]
    for t in callers:
        t.start()
    for t in callers:
        t.join()
    assert seen["most"] == 2  # overlapped, and three callers never made it more than two
    assert all(name.startswith("clipclap-model") for name in seen["threads"])


def test_audio_runs_keep_to_the_audio_cap_however_many_runs(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    many = ClipClapEmbedder(tiny_model_dir, parallel_runs=8)
    one = ClipClapEmbedder(tiny_model_dir, threads=2)
    features = np.random.default_rng(2).standard_normal((20, 1, 1001, 64)).astype(np.float32)
    reference = one.encoders.project(Modality.AUDIO, {"input_features": features})
    many.encoders.project(Modality.AUDIO, {"input_features": features[:2]})  # sessions made
    seen = _watch_runs(monkeypatch)
    got = many.encoders.project(Modality.AUDIO, {"input_features": features})
    np.testing.assert_array_equal(got, reference)
    cap = encoders_module.MAX_RUN[Modality.AUDIO]
    assert seen["most"] == cap // 2  # four runs of two windows at once, not eight
    assert seen["most_rows"] <= cap  # ~40 MB of activations a window: the cap holds


def test_one_run_at_a_time_when_asked(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedder = ClipClapEmbedder(tiny_model_dir, parallel_runs=1)
    embedder.embed_images([np.zeros((32, 32, 3), np.uint8)])
    seen = _watch_runs(monkeypatch)
    embedder.encoders.project(
        Modality.IMAGE, {"pixel_values": np.zeros((8, 3, 224, 224), np.float32)}
    )
    assert seen["most"] == 1
    assert seen["threads"] == {threading.current_thread().name}


def test_a_failing_run_fails_the_batch_after_the_others_finish() -> None:
    finished: list[int] = []

    def work(i: int) -> int:
        time.sleep(0.02 * (3 - i))
        if i == 1:
            raise RuntimeError("run 1 failed")
        finished.append(i)
        return i * 10

    with pytest.raises(RuntimeError, match="run 1 failed"):
        run_all(work, [0, 1, 2], 2)
    assert sorted(finished) == [0, 2]  # nothing left running behind the error
    assert run_all(work, [0, 2], 2) == [0, 20]  # results in input order


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_makes_its_own_pool(tiny_model_dir: Path) -> None:
    embedder = ClipClapEmbedder(tiny_model_dir, parallel_runs=2)
    images = [np.full((40, 40, 3), 30 * k, np.uint8) for k in range(4)]
    expected = embedder.embed_images(images)  # the parent's pool threads exist now
    pid = os.fork()
    if pid == 0:  # the child: the same embedder, through a pool of its own
        code = 1
        try:
            code = 0 if np.array_equal(embedder.embed_images(images), expected) else 3
        finally:
            os._exit(code)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            return
        time.sleep(0.05)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    pytest.fail("the forked child's runs never ran (a pool without threads)")
