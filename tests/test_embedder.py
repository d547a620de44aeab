"""Behaviour of ClipClapEmbedder beyond numerical parity: laziness, caching, options, errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest

from clipclap_integrations import (
    ClipClapEmbedder,
    ClipClapInputError,
    Image,
    Modality,
    ModelFolderError,
    Text,
)
from clipclap_integrations.runtime import sessions as sessions_module


def _run_python(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_import_is_light() -> None:
    out = _run_python(
        """
        import sys, clipclap_integrations
        heavy = ("chromadb", "llama_index", "librosa", "torch", "onnxruntime", "transformers", "av")
        heavy += ("ray", "pyarrow")
        print(sorted({m.split('.')[0] for m in sys.modules} & set(heavy)))
        """
    )
    assert out.strip() == "[]"


def test_text_only_process_loads_only_text_graphs(tiny_model_dir: Path) -> None:
    out = _run_python(
        f"""
        from clipclap_integrations import ClipClapEmbedder
        from clipclap_integrations.runtime.sessions import loaded_graphs
        import sys
        e = ClipClapEmbedder({str(tiny_model_dir)!r})
        assert loaded_graphs() == [], "construction must not load a session"
        e.embed_text(["a dog barking"])
        print([p.rsplit('/', 1)[-1] for p in loaded_graphs()])
        print('librosa' in sys.modules, 'soundfile' in sys.modules)
        """
    )
    graphs, audio_libs = out.strip().splitlines()
    assert json.loads(graphs.replace("'", '"')) == ["text_model.onnx", "text_projection.onnx"]
    assert audio_libs == "False False"


def test_many_embedders_share_sessions(tiny_model_dir: Path) -> None:
    first = ClipClapEmbedder(tiny_model_dir)
    first.embed_text(["warm up"])
    before = dict(sessions_module._sessions)
    vectors = [ClipClapEmbedder(tiny_model_dir).embed_text(["a cat"]) for _ in range(50)]
    assert sessions_module._sessions == before  # no new session, no rebuilt one
    assert all(np.array_equal(v, vectors[0]) for v in vectors)


def test_vectors_are_normalized_rows_in_order(tiny_model_dir: Path, media_dir: Path) -> None:
    e = ClipClapEmbedder(tiny_model_dir)
    image = media_dir / "rgb_320x200.png"
    sound = media_dir / "tone_0p5s_48k.wav"
    mixed = e.embed(["a red boat", str(image), str(sound), "a dog"])
    assert mixed.shape == (4, e.dim) and mixed.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(mixed, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(mixed[0], e.embed_text(["a red boat"])[0])
    np.testing.assert_array_equal(mixed[1], e.embed_images([image])[0])
    np.testing.assert_array_equal(mixed[2], e.embed_audio([sound])[0])
    np.testing.assert_array_equal(mixed[3], e.embed_text(["a dog"])[0])
    assert e.dim == 512


def test_forced_modality_and_wrappers(tiny_model_dir: Path, media_dir: Path) -> None:
    e = ClipClapEmbedder(tiny_model_dir)
    path = str(media_dir / "rgb_320x200.png")
    assert e.detect(path) is Modality.IMAGE
    assert e.detect(Text(path)) is Modality.TEXT
    as_text = e.embed([path], modality="text")
    np.testing.assert_array_equal(as_text, e.embed_text([path]))
    np.testing.assert_array_equal(e.embed([Image(path)]), e.embed_images([path]))
    assert not np.allclose(as_text, e.embed([path]))


def test_static_batch_axis_still_works(tiny_model_dir: Path, tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    folder = tmp_path / "static"
    shutil.copytree(tiny_model_dir, folder)
    for name in ("text_model.onnx", "text_projection.onnx"):
        model = onnx.load(str(folder / name))
        for value in list(model.graph.input) + list(model.graph.output):
            dim = value.type.tensor_type.shape.dim[0]
            dim.ClearField("dim_param")
            dim.dim_value = 1
        onnx.save(model, str(folder / name))
    texts = ["one", "two words", "three little words", "four"]
    reference = ClipClapEmbedder(tiny_model_dir).embed_text(texts)
    static = ClipClapEmbedder(folder, batch_size=3)
    assert static.encoders.session("text_model.onnx").get_inputs()[0].shape[0] == 1
    np.testing.assert_allclose(static.embed_text(texts), reference, atol=1e-6)


def test_external_data_weights_load(tiny_model_dir: Path, tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    from clipclap_integrations.testing.export import save_graph

    folder = tmp_path / "external"
    shutil.copytree(tiny_model_dir, folder)
    save_graph(onnx.load(str(folder / "text_model.onnx")), folder, "text_model", external=True)
    assert (folder / "text_model.onnx.data").stat().st_size > 1_000_000
    vectors = ClipClapEmbedder(folder).embed_text(["external weights"])
    expected = ClipClapEmbedder(tiny_model_dir).embed_text(["external weights"])
    np.testing.assert_allclose(vectors, expected, atol=1e-6)
    (folder / "text_model.onnx.data").unlink()
    with pytest.raises(ModelFolderError, match=r"text_model\.onnx\.data"):
        ClipClapEmbedder(folder)


def test_bad_model_folder_lists_every_problem(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, folder)
    (folder / "visual_model.onnx").unlink()
    (folder / "clip_config.json").write_text("{not json", encoding="utf-8")
    shutil.copy(folder / "text_model.onnx", folder / "audio_model.onnx")  # wrong inputs
    (folder / "audio_projection.onnx").write_bytes(b"\x0a\x05hello-not-onnx")
    with pytest.raises(ModelFolderError) as info:
        ClipClapEmbedder(folder)
    message = str(info.value)
    assert "missing file visual_model.onnx" in message
    assert "clip_config.json is not readable JSON" in message
    assert "audio_model.onnx has no input 'input_features'" in message
    assert "audio_projection.onnx" in message
    assert len(info.value.problems) >= 4
    with pytest.raises(ModelFolderError, match="nowhere"):
        ClipClapEmbedder(tmp_path / "nowhere")
    with pytest.raises(ModelFolderError, match="does not exist and is not a Hub repo id"):
        ClipClapEmbedder("./not/a/folder/either")


def test_threads_and_providers_reach_the_session(tiny_model_dir: Path) -> None:
    e = ClipClapEmbedder(tiny_model_dir, threads=1, providers=["CPUExecutionProvider"])
    e.embed_text(["x"])
    session = e.encoders.session("text_model.onnx")
    assert session.get_session_options().intra_op_num_threads == 1
    assert session.get_providers() == ["CPUExecutionProvider"]
    two = ClipClapEmbedder(tiny_model_dir, threads=2)
    two.embed_text(["x"])
    assert two.encoders.session("text_model.onnx").get_session_options().intra_op_num_threads == 2
    assert two.encoders.session("text_model.onnx") is not session


def test_unavailable_provider_is_warned_about(tiny_model_dir: Path) -> None:
    e = ClipClapEmbedder(tiny_model_dir, providers=["NoSuchExecutionProvider"], threads=3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        vectors = e.embed_text(["still works on the CPU"])
    assert any("NoSuchExecutionProvider" in str(w.message) for w in caught)
    np.testing.assert_allclose(
        vectors,
        ClipClapEmbedder(tiny_model_dir).embed_text(["still works on the CPU"]),
        atol=1e-6,
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"long_audio": "random"}, "long_audio"),
        ({"threads": 0}, "threads"),
        ({"providers": []}, "providers"),
    ],
)
def test_bad_options_are_refused(tiny_model_dir: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ClipClapEmbedder(tiny_model_dir, **kwargs)


def test_bad_items_name_their_index_and_nothing_is_returned(
    tiny_model_dir: Path, media_dir: Path, tmp_path: Path
) -> None:
    e = ClipClapEmbedder(tiny_model_dir)
    broken = tmp_path / "broken.png"
    broken.write_bytes((media_dir / "rgb_320x200.png").read_bytes()[:100])
    good = str(media_dir / "rgb_320x200.png")
    with pytest.raises(ClipClapInputError) as info:
        e.embed_images([good, good, broken])
    assert info.value.index == 2 and "broken.png" in str(info.value)
    assert "input 2" in str(info.value)
    with pytest.raises(ClipClapInputError, match=r"input 1 .*no such file"):
        e.embed_images([good, tmp_path / "missing.png"])
    with pytest.raises(ClipClapInputError, match=r"input 0 .*unsupported input type object"):
        e.embed([object()])
    with pytest.raises(ClipClapInputError, match=r"input 1 .*expected a string"):
        e.embed_text(["fine", 3])
    with pytest.raises(ClipClapInputError, match=r"input 0 .*empty"):
        e.embed_audio([(np.zeros(0, dtype=np.float32), 16000)])
    with pytest.raises(ClipClapInputError, match=r"NaN"):
        e.embed_audio([np.full(1000, np.nan, dtype=np.float32)])
    with pytest.raises(TypeError, match="list"):
        e.embed_text("a bare string is not a list")


def test_audio_segments_cover_the_recording(tiny_model_dir: Path, media_dir: Path) -> None:
    e = ClipClapEmbedder(tiny_model_dir)
    clip = media_dir / "long_25s_16k.flac"
    import soundfile

    duration = soundfile.info(str(clip)).duration
    assert 20.0 < duration < 30.0
    segments = e.embed_audio_segments(clip)
    # Full windows only: the last ends at the clip's end, overlapping the one before.
    np.testing.assert_allclose(segments.starts, [0.0, 10.0, duration - 10.0], atol=1e-4)
    np.testing.assert_allclose(segments.ends, [10.0, 20.0, duration], atol=1e-4)
    assert segments.vectors.shape == (3, e.dim)
    overlapping = e.embed_audio_segments(clip, window_s=5.0, hop_s=2.5)
    assert overlapping.starts[0] == 0.0
    assert overlapping.ends[-1] == pytest.approx(duration, abs=1e-4)
    np.testing.assert_allclose(overlapping.ends - overlapping.starts, 5.0, atol=1e-4)
    assert np.all(np.diff(overlapping.starts[:-1]) == pytest.approx(2.5))
    # The windows of the "mean" policy are exactly the 10 s segments.
    mean = e.embed_audio([clip])[0]
    expected = segments.vectors.mean(axis=0)
    np.testing.assert_allclose(mean, expected / np.linalg.norm(expected), atol=1e-6)
    first = ClipClapEmbedder(tiny_model_dir, long_audio="first").embed_audio([clip])[0]
    np.testing.assert_allclose(first, segments.vectors[0], atol=1e-6)
    with pytest.raises(ValueError, match="window_s"):
        e.embed_audio_segments(clip, window_s=12.0)


@pytest.mark.parametrize(
    ("n", "window", "hop", "bounds"),
    [
        (100, 100, 100, [(0, 100)]),
        (40, 100, 100, [(0, 40)]),  # shorter than a window: one (repeat-padded later)
        (101, 100, 100, [(0, 100)]),  # a 1-sample scrap is no window of its own
        (102, 100, 100, [(0, 100), (2, 102)]),  # more than 1 %: a full window at the end
        (250, 100, 100, [(0, 100), (100, 200), (150, 250)]),
        (300, 100, 100, [(0, 100), (100, 200), (200, 300)]),
        (230, 100, 50, [(0, 100), (50, 150), (100, 200), (130, 230)]),
    ],
)
def test_window_bounds(n: int, window: int, hop: int, bounds: list[tuple[int, int]]) -> None:
    from clipclap_integrations.media.audio import window_bounds

    assert window_bounds(n, window, hop) == bounds


def test_ten_seconds_at_44k1_is_one_window(tiny_model_dir: Path, tmp_path: Path) -> None:
    import soundfile

    # 441,000 samples at 44.1 kHz resample to 480,001 at 48 kHz (the rounding of soxr).
    wave = (np.random.default_rng(3).standard_normal(441_000) * 0.1).astype(np.float32)
    soundfile.write(tmp_path / "ten.wav", wave, 44_100)
    mean, first = (
        ClipClapEmbedder(tiny_model_dir, long_audio=policy).embed_audio([tmp_path / "ten.wav"])[0]
        for policy in ("mean", "first")
    )
    np.testing.assert_allclose(mean, first, atol=1e-6)
    segments = ClipClapEmbedder(tiny_model_dir).embed_audio_segments((wave, 44_100))
    assert segments.vectors.shape == (1, 512) and segments.ends[0] == pytest.approx(10.0)


def test_model_digest_follows_the_content_not_the_place(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    from clipclap_integrations.runtime.model import load_model_folder

    digest = load_model_folder(tiny_model_dir).digest
    moved = shutil.copytree(tiny_model_dir, tmp_path / "moved")
    assert load_model_folder(moved).digest == digest  # a copy is the same model
    linked = tmp_path / "linked"
    linked.mkdir()
    for f in tiny_model_dir.iterdir():
        (linked / f.name).symlink_to(f)
    assert load_model_folder(linked).digest == digest

    # one byte in the middle of a graph's weights, or the tokenizer's cut-off: another model
    graph = moved / "text_model.onnx"
    data = bytearray(graph.read_bytes())
    data[len(data) // 2] ^= 0x01
    graph.write_bytes(bytes(data))
    edited = load_model_folder(moved).digest  # the folder is validated again: it changed
    assert edited != digest
    config = moved / "tokenizer_config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "model_max_length": 8}))
    assert load_model_folder(moved).digest not in (digest, edited)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"threads": 100_000}, "threads must be an integer from 1 to 1024"),
        ({"threads": True}, "threads must be"),
        ({"remote_timeout": float("nan")}, "remote_timeout must be a positive number"),
        ({"remote_timeout": float("inf")}, "remote_timeout must be a positive number"),
        ({"max_remote_bytes": 0}, "max_remote_bytes must be a positive integer"),
        ({"max_audio_seconds": 0}, "max_audio_seconds must be a positive number or None"),
        ({"max_audio_seconds": float("nan")}, "max_audio_seconds must be"),
        ({"max_image_pixels": -5}, "max_image_pixels must be a positive integer or None"),
        ({"fast_jpeg": "no"}, "fast_jpeg must be True or False"),
        ({"allow_private_urls": "false"}, "allow_private_urls must be True or False"),
        ({"providers": [("CPUExecutionProvider", {"arena": [1]})]}, "provider option 'arena'"),
    ],
)
def test_option_values_are_checked_at_construction(
    tiny_model_dir: Path, kwargs: dict, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        ClipClapEmbedder(tiny_model_dir, **kwargs)


@pytest.mark.parametrize(
    ("method", "inputs"),
    [
        ("embed_images", np.zeros((48, 64, 3), np.uint8)),  # one image, not 48 rows
        ("embed", np.zeros((48, 64, 3), np.uint8)),
        ("embed_images", np.zeros((48, 64), np.uint8)),
        ("embed", np.zeros((4, 4_800), np.float32)),  # waveforms or a gray image?
        ("embed_images", np.zeros((4, 48, 64), np.uint8)),  # 4 gray images or one HxWxC?
        ("embed_audio", np.zeros(48_000, np.float32)),  # one waveform, not 48000 numbers
        ("embed", np.zeros(4_800, np.float32)),
        ("embed_audio", (np.full(16_000, 0.1, np.float32), 16_000)),  # one (samples, rate)
        ("embed_text", np.zeros(3, np.float32)),
        ("embed_images", bytearray(b"\x89PNG")),
    ],
)
def test_a_single_array_is_not_taken_for_a_list_of_items(
    tiny_model_dir: Path, method: str, inputs: object
) -> None:
    e = ClipClapEmbedder(tiny_model_dir)
    with pytest.raises(TypeError, match=r"wrap .* in a list"):
        getattr(e, method)(inputs)


def test_a_1d_array_of_strings_or_objects_is_a_list_of_items(tiny_model_dir: Path) -> None:
    e = ClipClapEmbedder(tiny_model_dir)
    texts = ["a red circle", "a siren"]
    expected = e.embed_text(texts)
    np.testing.assert_allclose(e.embed_text(np.array(texts)), expected, atol=1e-6)
    image = np.full((8, 8, 3), 200, np.uint8)
    mixed = np.empty(2, dtype=object)
    mixed[0], mixed[1] = texts[0], image
    got = e.embed(mixed)
    np.testing.assert_allclose(got[0], expected[0], atol=1e-6)
    np.testing.assert_allclose(got[1], e.embed_images([image])[0], atol=1e-6)


def test_stacked_arrays_are_batches_where_unambiguous(tiny_model_dir: Path) -> None:
    e = ClipClapEmbedder(tiny_model_dir)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 40, 50, 3), dtype=np.uint8)  # N x H x W x C
    expected = e.embed_images([images[0], images[1], images[2]])
    np.testing.assert_allclose(e.embed_images(images), expected, atol=1e-6)
    np.testing.assert_allclose(e.embed(images), expected, atol=1e-6)
    waves = (0.1 * rng.standard_normal((2, 24_000))).astype(np.float32)  # N mono, 48 kHz
    expected = e.embed_audio([waves[0], waves[1]])
    np.testing.assert_allclose(e.embed_audio(waves), expected, atol=1e-6)


def test_numbers_as_items_say_to_wrap_the_waveform(tiny_model_dir: Path) -> None:
    e = ClipClapEmbedder(tiny_model_dir)
    for samples in ([0.1, -0.2, 0.3], [np.float32(0.1), np.float32(0.2)]):
        with pytest.raises(ClipClapInputError, match=r"input 0 .*wrap the waveform in a list"):
            e.embed_audio(samples)


def _closed_images() -> dict[str, object]:
    import io

    from PIL import Image as PILImage

    pixels = np.full((40, 50, 3), 90, np.uint8)
    png = io.BytesIO()
    PILImage.fromarray(pixels).save(png, "PNG")
    in_memory = PILImage.fromarray(pixels)
    in_memory.close()
    lazily_opened = PILImage.open(io.BytesIO(png.getvalue()))
    lazily_opened.close()
    with PILImage.open(io.BytesIO(png.getvalue())) as left_with:  # Pillow: bare AssertionError
        pass
    return {"closed": in_memory, "opened, closed": lazily_opened, "after with": left_with}


def test_a_closed_pil_image_says_it_was_closed(tiny_model_dir: Path) -> None:
    e = ClipClapEmbedder(tiny_model_dir)
    for name, image in _closed_images().items():
        with pytest.raises(ClipClapInputError) as info:
            e.embed_images([image])
        message = str(info.value)
        assert message.startswith("input 0 (<PIL RGB 50x40>): the image cannot be read ("), name
        assert "read ()" not in message and "closed" in message and "image.copy()" in message, name


def test_a_pil_image_failing_without_a_message_names_the_exception(tiny_model_dir: Path) -> None:
    from PIL import Image as PILImage

    class Broken(PILImage.Image):
        def load(self):  # type: ignore[no-untyped-def]
            raise RuntimeError()

    image = PILImage.fromarray(np.zeros((8, 8, 3), np.uint8))
    image.__class__ = Broken
    with pytest.raises(ClipClapInputError, match=r"cannot be read \(RuntimeError\)$"):
        ClipClapEmbedder(tiny_model_dir).embed_images([image])


def test_integer_options_accept_any_integral_but_not_bool(tiny_model_dir: Path) -> None:
    e = ClipClapEmbedder(tiny_model_dir, batch_size=np.int64(8), threads=np.int64(2))
    assert e.batch_size == 8 and type(e.batch_size) is int
    assert e.session_config.threads == 2 and type(e.session_config.threads) is int
    np.testing.assert_allclose(
        e.embed_text(["numpy ints"]),
        ClipClapEmbedder(tiny_model_dir, batch_size=8, threads=2).embed_text(["numpy ints"]),
        atol=1e-6,
    )
    ClipClapEmbedder(tiny_model_dir, batch_size=np.uint8(3), max_remote_bytes=np.int32(10))
    for bad in (True, np.bool_(True), 2.0, np.float64(2), "2", 0, np.int64(0)):
        with pytest.raises(ValueError, match="batch_size must be a positive integer"):
            ClipClapEmbedder(tiny_model_dir, batch_size=bad)
        with pytest.raises(ValueError, match="threads must be an integer"):
            ClipClapEmbedder(tiny_model_dir, threads=bad)


def test_public_types_are_annotated() -> None:
    import typing

    from numpy.typing import NDArray

    from clipclap_integrations import AudioSegments

    assert typing.get_type_hints(ClipClapEmbedder.model_path.fget)["return"] is Path
    hints = typing.get_type_hints(AudioSegments)
    assert hints["vectors"] == NDArray[np.float32]
    assert hints["starts"] == hints["ends"] == NDArray[np.float64]


def _poison(monkeypatch: pytest.MonkeyPatch, modality: Modality) -> None:
    """Every vector of ``modality`` leaves the model with a NaN in it."""
    from clipclap_integrations.runtime.encoders import Encoders

    real = Encoders.run

    def run(self: Encoders, m: Modality, feeds: dict[str, np.ndarray]) -> np.ndarray:
        out = real(self, m, feeds)
        if m is modality:
            out[:, 3] = np.nan
        return out

    monkeypatch.setattr(Encoders, "run", run)


@pytest.mark.parametrize(
    ("modality", "position"), [(Modality.TEXT, 1), (Modality.IMAGE, 2), (Modality.AUDIO, 3)]
)
def test_a_non_finite_vector_is_an_error_naming_the_input(
    tiny_model_dir: Path,
    media_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    modality: Modality,
    position: int,
) -> None:
    """No NaN or infinite vector is ever returned: the call raises, naming the input."""
    from clipclap_integrations.errors import NonFiniteVectorError

    e = ClipClapEmbedder(tiny_model_dir)
    image, sound = str(media_dir / "rgb_320x200.png"), str(media_dir / "tone_0p5s_48k.wav")
    # one input of the poisoned modality, at ``position``
    inputs = [image, "a poisoned caption", image, sound]
    if modality is not Modality.TEXT:
        inputs = ["a red boat", "a dog", image, sound]
    _poison(monkeypatch, modality)
    with pytest.raises(NonFiniteVectorError) as caught:
        e.embed(inputs)
    assert caught.value.index == position
    assert isinstance(caught.value, ClipClapInputError)
    assert "NaN or infinite" in str(caught.value)
    if modality is Modality.TEXT:
        assert "a poisoned caption" in str(caught.value)


def test_non_finite_audio_segments_name_the_window(
    tiny_model_dir: Path, media_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from clipclap_integrations.errors import NonFiniteVectorError

    _poison(monkeypatch, Modality.AUDIO)
    with pytest.raises(NonFiniteVectorError, match="window 0"):
        ClipClapEmbedder(tiny_model_dir).embed_audio_segments(media_dir / "long_25s_16k.flac")


def test_preprocessing_that_overflows_gives_an_error_not_nan(
    tiny_model_dir: Path, media_dir: Path, tmp_path: Path
) -> None:
    """A denormal image_std passes the config check (it is positive) but overflows to
    infinity: the vector is refused at the model's exit, naming the image."""
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    path = folder / "preprocessor_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config["image_std"] = [1e-45, 1e-45, 1e-45]
    path.write_text(json.dumps(config), encoding="utf-8")
    e = ClipClapEmbedder(folder)
    with pytest.raises(ClipClapInputError, match=r"input 1 .*rgb_320x200.*NaN or infinite"):
        e.embed(["a boat", str(media_dir / "rgb_320x200.png")])
    assert np.isfinite(e.embed(["a boat"])).all()


def test_checked_names_the_first_bad_row_of_a_run() -> None:
    from clipclap_integrations.errors import NonFiniteVectorError
    from clipclap_integrations.runtime.encoders import checked

    rows = np.ones((4, 8), dtype=np.float32)
    assert checked(rows) is rows
    rows[2, 5], rows[3, 0] = np.inf, np.nan
    with pytest.raises(NonFiniteVectorError) as caught:
        checked(rows)
    assert caught.value.index == 2
