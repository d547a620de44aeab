"""The speed work: opt-in optimized copies, JPEG draft decoding, and the prefetch pipeline.

No timings here (machines are shared and noisy): the benchmark in ``benchmarks/`` measures
speed. These tests pin behaviour: options give vectors close to the exact ones, copies are
cached, the pipeline keeps order, reports the right failing item and bounds its memory.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clipclap_integrations import ClipClapEmbedder, ClipClapInputError
from clipclap_integrations.runtime.prefetch import Prefetch, workers

TEXTS = ["a dog barking in the rain", "a red boat on a calm lake", "jazz piano, late at night"]
MIN_COSINE = 0.99


def _media(media_dir: Path) -> tuple[list[Path], list[Path]]:
    images = [media_dir / "rgb_320x200.png", media_dir / "tall_150x420.jpg"]
    audio = [media_dir / "chirp_3p3s_48k.flac", media_dir / "long_25s_16k.flac"]
    return images, audio


def _all_vectors(e: ClipClapEmbedder, media_dir: Path) -> dict[str, np.ndarray]:
    images, audio = _media(media_dir)
    return {
        "text": e.embed_text(TEXTS),
        "image": e.embed_images(images),
        "audio": e.embed_audio(audio),
    }


@pytest.fixture(scope="module")
def exact(tiny_model_dir: Path, media_dir: Path) -> dict[str, np.ndarray]:
    return _all_vectors(ClipClapEmbedder(tiny_model_dir), media_dir)


@pytest.mark.parametrize(
    "options",
    [{"optimize": "fusions"}, {"quantize": "int8"}, {"optimize": "fusions", "quantize": "int8"}],
    ids=lambda o: "+".join(f"{k}={v}" for k, v in o.items()),
)
def test_optimized_copies_give_close_vectors(
    tiny_model_dir: Path,
    media_dir: Path,
    tmp_path: Path,
    exact: dict[str, np.ndarray],
    options: dict[str, str],
) -> None:
    pytest.importorskip("onnx")
    e = ClipClapEmbedder(tiny_model_dir, optimized_dir=tmp_path, **options)  # type: ignore[arg-type]
    got = _all_vectors(e, media_dir)
    for modality, vectors in got.items():
        assert vectors.dtype == np.float32 and vectors.shape == exact[modality].shape
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
        cosine = np.sum(vectors * exact[modality], axis=1)
        assert cosine.min() >= MIN_COSINE, f"{modality}: cosine {cosine.min():.5f}"
    # The encoders ran from copies in the cache; the folder itself is untouched.
    session = e.encoders.session("visual_model.onnx")
    assert session is not ClipClapEmbedder(tiny_model_dir).encoders.session("visual_model.onnx")
    copies = sorted(p.name for p in tmp_path.rglob("*.onnx"))
    assert copies == ["audio_model.onnx", "text_model.onnx", "visual_model.onnx"]


def test_optimized_copies_are_built_once(tiny_model_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    ClipClapEmbedder(tiny_model_dir, quantize="int8", optimized_dir=tmp_path).embed_text(["a"])
    (copy,) = tmp_path.rglob("text_model.onnx")
    stamp = copy.stat().st_mtime_ns
    again = ClipClapEmbedder(tiny_model_dir, quantize="int8", optimized_dir=tmp_path)
    again.embed_text(["b"])
    assert copy.stat().st_mtime_ns == stamp
    assert [p for p in tmp_path.rglob("*") if p.name.startswith(".build-")] == []


def test_concurrent_builds_leave_logging_and_stdout_alone(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    import logging
    import sys

    pytest.importorskip("onnx")
    root = logging.getLogger()
    stdout, level, filters = sys.stdout, root.level, list(root.filters)
    e = ClipClapEmbedder(tiny_model_dir, optimize="fusions", optimized_dir=tmp_path)
    png = tiny_model_dir.parent / "media" / "rgb_320x200.png"
    jobs = [
        lambda: e.embed_text(["a"]),
        lambda: e.embed_images([png]),
        lambda: e.embed_audio([np.full(4800, 0.1, np.float32)]),
    ]
    errors: list[BaseException] = []

    def run(job) -> None:  # type: ignore[no-untyped-def]
        try:
            job()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sys.stdout is stdout and root.level == level and root.filters == filters
    assert all(not h.filters for h in root.handlers if h not in _pytest_handlers(root))
    assert len(list(tmp_path.rglob("*.onnx"))) == 3  # one copy per encoder


def _pytest_handlers(root):  # type: ignore[no-untyped-def]
    return [h for h in root.handlers if type(h).__module__.startswith("_pytest")]


def test_a_change_to_external_weights_alone_gives_a_new_copy(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    import shutil

    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    from clipclap_integrations.testing.export import save_graph

    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    save_graph(onnx.load(str(folder / "text_model.onnx")), folder, "text_model", external=True)
    before = ClipClapEmbedder(folder, quantize="int8", optimized_dir=tmp_path / "opt")
    old = before.embed_text(["a red boat"])[0]
    # Other weights, same layout: only the .data file changes (the .onnx is not touched).
    model = onnx.load(str(folder / "text_model.onnx"))  # with its external weights
    for init in model.graph.initializer:
        if init.data_type == onnx.TensorProto.FLOAT:
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * 0.5, init.name))
    other = tmp_path / "other"
    other.mkdir()
    save_graph(model, other, "text_model", external=True)
    stamp = (folder / "text_model.onnx").stat().st_mtime_ns
    shutil.copyfile(other / "text_model.onnx.data", folder / "text_model.onnx.data")
    assert (folder / "text_model.onnx").stat().st_mtime_ns == stamp
    plain = ClipClapEmbedder(folder).embed_text(["a red boat"])[0]
    new = ClipClapEmbedder(folder, quantize="int8", optimized_dir=tmp_path / "opt")
    vector = new.embed_text(["a red boat"])[0]
    assert not np.allclose(vector, old, atol=1e-3)  # not the stale copy
    assert float(vector @ plain) > 0.99
    assert len(list((tmp_path / "opt").rglob("text_model.onnx"))) == 2


def test_an_unreadable_cached_copy_is_built_again(tiny_model_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    want = ClipClapEmbedder(tiny_model_dir, quantize="int8", optimized_dir=tmp_path)
    vector = want.embed_text(["a"])[0]
    (copy,) = tmp_path.rglob("text_model.onnx")
    copy.write_bytes(copy.read_bytes()[: copy.stat().st_size // 2])
    again = ClipClapEmbedder(tiny_model_dir, quantize="int8", optimized_dir=tmp_path)
    np.testing.assert_allclose(again.embed_text(["a"])[0], vector, atol=1e-6)


def _damage_a_node(copy: Path) -> None:
    """Zero 10 bytes inside a graph node (its op type): the file still parses, and its inputs
    and outputs read, but onnxruntime cannot load it."""
    data = bytearray(copy.read_bytes())
    at = data.find(b"MatMulInteger")
    assert at > 0
    data[at : at + 10] = bytes(10)
    copy.write_bytes(bytes(data))


def test_a_cached_copy_damaged_inside_is_built_again(tiny_model_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    want = ClipClapEmbedder(tiny_model_dir, quantize="int8", optimized_dir=tmp_path)
    vector = want.embed_text(["a"])[0]
    (copy,) = tmp_path.rglob("text_model.onnx")
    _damage_a_node(copy)
    again = ClipClapEmbedder(tiny_model_dir, quantize="int8", optimized_dir=tmp_path)
    np.testing.assert_allclose(again.embed_text(["a"])[0], vector, atol=1e-6)
    assert b"MatMulInteger" in copy.read_bytes()  # the copy in the cache was replaced
    later = ClipClapEmbedder(tiny_model_dir, quantize="int8", optimized_dir=tmp_path)
    np.testing.assert_allclose(later.embed_text(["a"])[0], vector, atol=1e-6)


def test_a_copy_that_cannot_be_loaded_even_rebuilt_names_the_cache(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("onnx")
    from clipclap_integrations.runtime import optimize

    build = optimize._build
    builds = []

    def damaged_build(*args, **kwargs):  # type: ignore[no-untyped-def]
        built = build(*args, **kwargs)
        builds.append(built)
        _damage_a_node(built)
        return built

    monkeypatch.setattr(optimize, "_build", damaged_build)
    e = ClipClapEmbedder(tiny_model_dir, quantize="int8", optimized_dir=tmp_path)
    with pytest.raises(RuntimeError, match=r"text_model\.onnx") as info:
        e.embed_text(["a"])
    assert len(builds) == 2  # built again once, not forever
    assert str(builds[0].parent) in str(info.value) and "cache" in str(info.value)


def test_a_load_failure_that_is_not_the_copys_fault_keeps_the_copy(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("onnx")
    from clipclap_integrations.runtime import encoders as encoders_module
    from clipclap_integrations.runtime import optimize

    ClipClapEmbedder(tiny_model_dir, quantize="int8", optimized_dir=tmp_path).embed_text(["a"])
    (copy,) = tmp_path.rglob("text_model.onnx")
    before = copy.stat().st_mtime_ns
    builds: list[object] = []
    build = optimize._build
    monkeypatch.setattr(optimize, "_build", lambda *a, **k: builds.append(a) or build(*a, **k))

    class Fail(Exception):  # onnxruntime's class of that name, as it reports memory trouble
        pass

    def out_of_memory(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise Fail("[ONNXRuntimeError] : 1 : FAIL : Failed to allocate memory for requested buffer")

    monkeypatch.setattr(encoders_module, "get_session", out_of_memory)
    sessions_module = __import__(
        "clipclap_integrations.runtime.sessions", fromlist=["clear_sessions"]
    )
    sessions_module.clear_sessions()
    with pytest.raises(Fail, match="allocate memory"):  # the real error, not "the cache"
        ClipClapEmbedder(tiny_model_dir, quantize="int8", optimized_dir=tmp_path).embed_text(["a"])
    assert builds == [] and copy.stat().st_mtime_ns == before  # the good copy stays


@pytest.mark.parametrize(
    ("name", "message", "damaged"),
    [
        (
            "InvalidProtobuf",
            "INVALID_PROTOBUF : Load model from m.onnx failed:Protobuf parsing",
            True,
        ),
        (
            "InvalidGraph",
            "INVALID_GRAPH : Load model from m.onnx failed:This is an invalid model",
            True,
        ),
        ("UnicodeDecodeError", "'utf-8' codec can't decode byte 0xff", True),
        (
            "Fail",
            "FAIL : Node (Reshape_2) Op (Reshape) [ShapeInferenceError] Invalid dimension",
            True,
        ),
        ("Fail", "FAIL : Load model from m.onnx failed:std::bad_alloc", False),
        ("Fail", "FAIL : Failed to allocate memory for requested buffer of size 1024", False),
        ("EPFail", "CUDA failure 2: out of memory", False),
    ],
)
def test_which_load_failures_mean_a_bad_copy_without_a_recorded_hash(
    name: str, message: str, damaged: bool
) -> None:
    from clipclap_integrations.runtime.optimize import _unreadable_graph

    assert _unreadable_graph(type(name, (Exception,), {})(message)) is damaged


def test_a_copy_whose_hash_still_matches_is_not_blamed(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    pytest.importorskip("onnx")
    from clipclap_integrations.runtime.optimize import _damaged

    ClipClapEmbedder(tiny_model_dir, quantize="int8", optimized_dir=tmp_path).embed_text(["a"])
    (copy,) = tmp_path.rglob("text_model.onnx")
    parse_error = type("InvalidProtobuf", (Exception,), {})("Protobuf parsing failed")
    assert not _damaged(copy, parse_error)  # intact bytes: whatever onnxruntime said
    _damage_a_node(copy)
    assert _damaged(copy, RuntimeError("anything"))  # changed bytes: whatever it said


def test_an_unwritable_cache_falls_back_to_the_plain_graph(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from clipclap_integrations.runtime import optimize

    def refuse(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise PermissionError(13, "Permission denied", str(tmp_path))

    monkeypatch.setattr(optimize, "_build", refuse)
    e = ClipClapEmbedder(tiny_model_dir, quantize="int8", optimized_dir=tmp_path / "ro")
    with pytest.warns(RuntimeWarning, match="using the plain graph"):
        vector = e.embed_text(["a"])[0]
    np.testing.assert_array_equal(vector, ClipClapEmbedder(tiny_model_dir).embed_text(["a"])[0])


def test_default_runs_the_original_graphs(tiny_model_dir: Path) -> None:
    e = ClipClapEmbedder(tiny_model_dir)
    e.embed_text(["x"])
    assert e.optimize is None and e.quantize is None
    session = e.encoders.session("text_model.onnx")
    assert Path(session._model_path).parent == tiny_model_dir.resolve()


@pytest.mark.parametrize("kwargs", [{"optimize": "O3"}, {"quantize": "int4"}])
def test_unknown_options_are_refused(tiny_model_dir: Path, kwargs: dict[str, str]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        ClipClapEmbedder(tiny_model_dir, **kwargs)  # type: ignore[arg-type]


def test_fast_jpeg_decodes_large_photos_at_reduced_size(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    photo = Image.fromarray(small).resize((1600, 1200), Image.BICUBIC)
    path = tmp_path / "photo.jpg"
    photo.save(path, quality=90)
    exact = ClipClapEmbedder(tiny_model_dir)
    fast = ClipClapEmbedder(tiny_model_dir, fast_jpeg=True)
    px_exact, px_fast = exact.preprocess_images([path]), fast.preprocess_images([path])
    assert px_fast.shape == px_exact.shape == (1, 3, 224, 224)
    assert 0 < np.abs(px_fast - px_exact).max() < 0.5  # approximate, and close
    cosine = float(np.sum(fast.embed_images([path]) * exact.embed_images([path])))
    assert cosine >= MIN_COSINE
    png = tmp_path / "photo.png"
    photo.save(png)
    np.testing.assert_array_equal(fast.preprocess_images([png]), exact.preprocess_images([png]))


# --------------------------------------------------------------------------- pipeline


def test_batches_and_order_do_not_change_vectors(tiny_model_dir: Path, media_dir: Path) -> None:
    images, audio = _media(media_dir)
    many_images = [images[i % 2] for i in range(7)]
    many_audio = [audio[i % 2] for i in range(5)]
    one_by_one = ClipClapEmbedder(tiny_model_dir, batch_size=1)
    batched = ClipClapEmbedder(tiny_model_dir, batch_size=3)
    np.testing.assert_allclose(
        batched.embed_images(many_images), one_by_one.embed_images(many_images), atol=1e-5
    )
    np.testing.assert_allclose(
        batched.embed_audio(many_audio), one_by_one.embed_audio(many_audio), atol=1e-5
    )
    reference = one_by_one.embed_audio([audio[1]])[0]  # 25 s: three windows, averaged
    np.testing.assert_allclose(batched.embed_audio(many_audio)[1], reference, atol=1e-5)


def test_a_bad_item_in_a_later_batch_is_named(
    tiny_model_dir: Path, media_dir: Path, tmp_path: Path
) -> None:
    images, audio = _media(media_dir)
    broken = tmp_path / "broken.png"
    broken.write_bytes(images[0].read_bytes()[:200])
    e = ClipClapEmbedder(tiny_model_dir, batch_size=2)
    with pytest.raises(ClipClapInputError) as info:
        e.embed_images([images[0]] * 5 + [broken, images[1]])
    assert info.value.index == 5
    bad_audio = tmp_path / "bad.wav"
    bad_audio.write_bytes(b"RIFF0000WAVEjunk")
    with pytest.raises(ClipClapInputError) as info:
        e.embed_audio([audio[0], audio[0], audio[0], bad_audio])
    assert info.value.index == 3


def test_prefetch_keeps_order_and_propagates_errors() -> None:
    def load(i: int) -> int:
        time.sleep(0.001 * ((7 * i) % 5))  # finish out of order
        if i == 13:
            raise KeyError(i)
        return i * i

    with Prefetch(20, load, budget=4) as feed:
        assert [feed.get(i) for i in range(13)] == [i * i for i in range(13)]
        with pytest.raises(KeyError):
            feed.get(13)


def test_prefetch_bounds_what_it_holds() -> None:
    started: list[int] = []
    lock = threading.Lock()

    def load(i: int) -> list[int]:
        with lock:
            started.append(i)
        return [i] * 3  # three units each

    with Prefetch(100, load, budget=6, size=len) as feed:
        time.sleep(0.2)
        # Loading stops once two results (6 units) wait unconsumed; a few may be in flight.
        assert len(started) <= 2 + 2 * workers()
        assert [feed.get(i)[0] for i in range(100)] == list(range(100))
    assert sorted(started) == list(range(100))


def test_one_slow_call_does_not_make_another_wait() -> None:
    from clipclap_integrations.runtime.prefetch import pool

    release = threading.Event()
    blockers = [pool().submit(release.wait, 10) for _ in range(workers())]  # a long decode
    try:
        start = time.monotonic()
        with Prefetch(3, lambda i: i * 10, budget=3) as feed:
            assert [feed.get(i) for i in range(3)] == [0, 10, 20]
        assert time.monotonic() - start < 2.0  # ran in this thread, not behind the blockers
    finally:
        release.set()
        for blocker in blockers:
            blocker.result(timeout=10)


def test_text_runs_cover_every_text_once_within_the_batch_size() -> None:
    from clipclap_integrations.modalities.text import length_runs as _length_runs

    rng = np.random.default_rng(1)
    lengths = [int(n) for n in rng.integers(3, 78, size=300)]
    for batch_size in (1, 7, 32):
        runs = _length_runs(lengths, batch_size)
        assert sorted(i for run in runs for i in run) == list(range(len(lengths)))
        assert all(1 <= len(run) <= batch_size for run in runs)
        longest = [max(lengths[i] for i in run) for run in runs]
        assert longest == sorted(longest)  # runs follow the length order
    # Mixed lengths are split where padding would waste more than a run costs ...
    assert len(_length_runs([5] * 16 + [77] * 16, 32)) == 2
    # ... equal lengths are not.
    assert len(_length_runs([20] * 32, 32)) == 1
    assert _length_runs([], 32) == []


def test_bucketed_text_vectors_equal_one_by_one(tiny_model_dir: Path) -> None:
    sentence = "a dog barks at the red boat while jazz plays softly in the rain"
    words = sentence.split(" ")
    texts = [" ".join(words[: 1 + (7 * i) % len(words)]) * (1 + i % 4) for i in range(40)]
    bucketed = ClipClapEmbedder(tiny_model_dir, batch_size=16).embed_text(texts)
    single = ClipClapEmbedder(tiny_model_dir, batch_size=1).embed_text(texts)
    np.testing.assert_allclose(bucketed, single, atol=1e-6)
