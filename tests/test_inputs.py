"""Same content, same vector; mixed batches; the error contract; property-based robustness."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from inputs_media import SR, audio_bytes, b64, data_uri, image_bytes, rgb_array, tone

from clipclap_integrations import (
    Audio,
    ClipClapEmbedder,
    ClipClapInputError,
    Image,
    Modality,
    Text,
)
from clipclap_integrations.inputs import check_text, classify
from clipclap_integrations.inputs.parts import parse_data_uri
from clipclap_integrations.media.audio import check_waveform, decode_audio, resample, to_mono
from clipclap_integrations.media.image import image_from_array
from clipclap_integrations.options import EmbedderOptions

ATOL = 1e-6
PROPERTY = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def embedder(tiny_model_dir: Path) -> ClipClapEmbedder:
    return ClipClapEmbedder(tiny_model_dir)


def _assert_rows_equal(vectors: np.ndarray, names: list[str]) -> None:
    for row, name in enumerate(names):
        np.testing.assert_allclose(vectors[row], vectors[0], atol=ATOL, err_msg=name)


# --------------------------------------------------------------------------- same content


def test_every_form_of_an_image_gives_the_same_vector(
    embedder: ClipClapEmbedder, tmp_path: Path
) -> None:
    from PIL import Image as PILImage

    arr = rgb_array(80, 60)
    png = image_bytes("PNG", arr)
    path = tmp_path / "picture.png"
    path.write_bytes(png)
    moved = io.BytesIO(png)
    moved.seek(17)
    with open(path, "rb") as handle:
        handle.seek(5)
        forms: dict[str, Any] = {
            "str path": str(path),
            "Path": path,
            "bytes": png,
            "bytearray": bytearray(png),
            "memoryview": memoryview(png),
            "BytesIO": io.BytesIO(png),
            "BytesIO at a non-zero position": moved,
            "binary file object": handle,
            "data URI": data_uri(png, "image/png"),
            "file:// URL": path.as_uri(),
            "PIL image": PILImage.fromarray(arr),
            "lazily opened PIL image": PILImage.open(path),
            "HxWx3 uint8 array": arr,
            "HxWx3 float array in [0, 1]": arr / 255.0,
            "float32 array in [0, 1]": (arr / np.float32(255)).astype(np.float32),
            "CxHxW array": np.ascontiguousarray(arr.transpose(2, 0, 1)),
            "int64 array in [0, 255]": arr.astype(np.int64),
            "HxWx4 opaque RGBA": np.dstack([arr, np.full(arr.shape[:2], 255, np.uint8)]),
            "Image(path)": Image(str(path)),
            "Image(nested list)": Image(arr.tolist()),
            "image_url part": {
                "type": "image_url",
                "image_url": {"url": data_uri(png, "image/png")},
            },
            "media part": {"type": "media", "data": b64(png), "mime_type": "image/png"},
            "image part": {"type": "image", "base64": b64(png), "mime_type": "image/png"},
        }
        vectors = embedder.embed(list(forms.values()))
        assert handle.tell() == 5  # the caller's file position is left alone
    assert moved.tell() == 17
    _assert_rows_equal(vectors, list(forms))
    np.testing.assert_allclose(embedder.embed_images([path])[0], vectors[0], atol=ATOL)


def test_pil_image_subclasses_from_outside_pil_are_images(embedder: ClipClapEmbedder) -> None:
    """Plugins (pillow-heif's HeifImageFile, AVIF plugins) and user code subclass PIL's
    classes in their own modules: those are PIL images too."""
    from PIL import Image as PILImage
    from PIL import PngImagePlugin

    class MyImage(PILImage.Image):  # a user subclass of PIL.Image.Image
        pass

    class PluginImageFile(PngImagePlugin.PngImageFile):  # as a Pillow plugin defines one
        format = "PLUGINPNG"

    arr = rgb_array(80, 60)
    png = image_bytes("PNG", arr)
    mine = PILImage.fromarray(arr)
    mine.__class__ = MyImage
    plugin = PluginImageFile(io.BytesIO(png))
    assert not type(mine).__module__.startswith("PIL")
    assert not type(plugin).__module__.startswith("PIL")
    expected = embedder.embed_images([arr])[0]
    for image in (mine, plugin):
        assert embedder.detect(image) is Modality.IMAGE
        np.testing.assert_allclose(embedder.embed([image])[0], expected, atol=ATOL)
        np.testing.assert_allclose(embedder.embed_images([image])[0], expected, atol=ATOL)


def test_gray_alpha_array_matches_its_pil_image(embedder: ClipClapEmbedder) -> None:
    from PIL import Image as PILImage

    la = PILImage.fromarray(rgb_array()[..., :2])
    assert la.mode == "LA"
    _assert_rows_equal(embedder.embed([la, np.asarray(la)]), ["PIL LA", "HxWx2 array"])


def test_exif_orientation_is_applied_to_files_and_pil_images(
    embedder: ClipClapEmbedder, media_dir: Path
) -> None:
    from PIL import Image as PILImage
    from PIL import ImageOps

    path = media_dir / "exif_orientation6_300x180.jpg"
    upright = ImageOps.exif_transpose(PILImage.open(path))
    forms = [path, path.read_bytes(), PILImage.open(path), np.asarray(upright)]
    _assert_rows_equal(embedder.embed(forms), ["path", "bytes", "PIL", "upright array"])


def test_every_form_of_a_sound_gives_the_same_vector(
    embedder: ClipClapEmbedder, tmp_path: Path
) -> None:
    rate = 22_050
    stereo = tone(0.7, rate, channels=2)  # (frames, channels)
    wav = audio_bytes("WAV", "FLOAT", samples=stereo, rate=rate)
    path = tmp_path / "sound.wav"
    path.write_bytes(wav)
    pcm16 = audio_bytes("WAV", "PCM_16", samples=stereo, rate=rate)
    as_int16 = np.frombuffer(pcm16[44:], "<i2").reshape(-1, 2)
    forms: dict[str, Any] = {
        "str path": str(path),
        "Path": path,
        "bytes": wav,
        "BytesIO": io.BytesIO(wav),
        "data URI": data_uri(wav, "audio/wav"),
        "file:// URL": path.as_uri(),
        "(samples x channels, rate)": (stereo, rate),
        "(channels x samples, rate)": (np.ascontiguousarray(stereo.T), rate),
        "(rate, samples)": (rate, stereo),
        "(samples, float rate)": (stereo, float(rate)),
        "Audio(samples, sample_rate=)": Audio(stereo, sample_rate=rate),
        "Audio(path)": Audio(path),
        "audio_url part": {"type": "audio_url", "audio_url": {"url": data_uri(wav, "audio/wav")}},
        "input_audio part": {
            "type": "input_audio",
            "input_audio": {"data": b64(wav), "format": "wav"},
        },
        "media part": {"type": "media", "data": b64(wav), "mime_type": "audio/wav"},
    }
    vectors = embedder.embed(list(forms.values()))
    _assert_rows_equal(vectors, list(forms))
    # 16-bit PCM as a file and as int16 samples agree with each other
    pair = embedder.embed([pcm16, (as_int16, rate), Audio(as_int16.T, sample_rate=rate)])
    _assert_rows_equal(pair, ["pcm16 bytes", "(int16, rate)", "Audio(int16 channels-first)"])


def test_input_audio_pcm16_is_24k_little_endian_mono(embedder: ClipClapEmbedder) -> None:
    """OpenAI's "pcm16": headerless 16-bit signed little-endian mono PCM at 24 kHz."""
    import soundfile as sf

    rate = 24_000
    mono = tone(0.6, rate)
    raw = io.BytesIO()
    sf.write(raw, mono, rate, format="RAW", subtype="PCM_16", endian="LITTLE")
    pcm = raw.getvalue()
    wav_24k = audio_bytes("WAV", "PCM_16", samples=mono, rate=rate)
    wav_16k = audio_bytes("WAV", "PCM_16", samples=mono, rate=16_000)
    part = {"type": "input_audio", "input_audio": {"data": b64(pcm), "format": "pcm16"}}
    upper = {"type": "input_audio", "input_audio": {"data": b64(pcm), "format": "PCM16"}}
    assert embedder.detect(part) is Modality.AUDIO
    vectors = embedder.embed([wav_24k, part, upper, wav_16k])
    _assert_rows_equal(vectors[:3], ["24 kHz WAV", "pcm16 part", "PCM16 part"])
    assert not np.allclose(vectors[1], vectors[3], atol=1e-3)  # the rate matters: 24 kHz
    for data, reason in ((pcm[:-1], "odd number of bytes"), (b"", "empty")):
        bad = {"type": "input_audio", "input_audio": {"data": b64(data), "format": "pcm16"}}
        with pytest.raises(ClipClapInputError, match=rf"input 0 .*{reason}"):
            embedder.embed([bad])


def test_audio_wrapper_and_pair_must_agree_on_the_rate(embedder: ClipClapEmbedder) -> None:
    wave = tone(0.5, 16_000)
    expected = embedder.embed([(wave, 16_000)])
    same = [Audio((wave, 16_000), sample_rate=16_000), Audio((16_000, wave), sample_rate=16000.0)]
    for item in same:
        np.testing.assert_allclose(embedder.embed([item]), expected, atol=ATOL)
    for item in (Audio((wave, 16_000), sample_rate=8_000), Audio((16_000, wave), sample_rate=8000)):
        with pytest.raises(ClipClapInputError, match=r"input 0 .*two sample rates.*8000.*16000"):
            embedder.embed([item])
    with pytest.raises(ClipClapInputError, match="sample rate must be"):
        embedder.embed([Audio((wave, 16_000), sample_rate=-1)])


def test_mono_forms_and_the_48k_default(embedder: ClipClapEmbedder) -> None:
    mono = tone(0.5, SR)
    wav = audio_bytes("WAV", "FLOAT", samples=mono, rate=SR)
    forms = [wav, mono, (mono, SR), Audio(mono), Audio(mono, sample_rate=SR), mono.tolist()]
    _assert_rows_equal(
        embedder.embed([*forms[:5], Audio(forms[5])]),
        ["bytes", "1-D array", "(array, 48000)", "Audio(array)", "Audio(array, 48k)", "list"],
    )


def test_streamed_decode_matches_decoding_whole(tmp_path: Path) -> None:
    """decode_audio(target_rate=...) resamples block by block: bit-identical to one shot."""
    rng = np.random.default_rng(5)
    for rate, channels, seconds in [(44_100, 3, 3.1), (96_000, 2, 6.2), (16_000, 1, 1.0)]:
        x = (0.2 * rng.standard_normal((int(rate * seconds), channels))).astype(np.float32)
        data = audio_bytes("WAV", "FLOAT", samples=x, rate=rate)
        whole = resample(to_mono(x.T), rate, SR)
        streamed, out_rate = decode_audio(data, target_rate=SR)
        assert out_rate == SR and streamed.shape == (1, whole.shape[0])
        np.testing.assert_array_equal(streamed[0], whole)
        native, native_rate = decode_audio(data)
        assert native_rate == rate
        np.testing.assert_array_equal(native[0], to_mono(x.T))


# --------------------------------------------------------------------------- batches, errors


def test_mixed_batch_rows_stay_in_input_order(embedder: ClipClapEmbedder) -> None:
    png, wav = image_bytes("PNG"), audio_bytes("WAV")
    items = ["a cat", png, wav, {"type": "text", "text": "a dog"}, rgb_array(), tone(), "x"]
    vectors = embedder.embed(items)
    assert vectors.shape == (len(items), embedder.dim) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    expected = [
        embedder.embed_text(["a cat"])[0],
        embedder.embed_images([png])[0],
        embedder.embed_audio([wav])[0],
        embedder.embed_text(["a dog"])[0],
        embedder.embed_images([rgb_array()])[0],
        embedder.embed_audio([tone()])[0],
        embedder.embed_text(["x"])[0],
    ]
    np.testing.assert_allclose(vectors, np.stack(expected), atol=ATOL)
    assert [embedder.detect(i) for i in items] == [
        Modality.TEXT,
        Modality.IMAGE,
        Modality.AUDIO,
        Modality.TEXT,
        Modality.IMAGE,
        Modality.AUDIO,
        Modality.TEXT,
    ]
    assert embedder.embed([]).shape == (0, embedder.dim)


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (image_bytes("PNG")[:300], "corrupt or truncated image"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 50, "corrupt or truncated image|not a recognizable"),
        (np.full(100, np.nan, np.float32), "NaN"),
        (np.zeros(4800, np.float32), "silent"),
        ((np.zeros((0, 2), np.float32), SR), "empty"),
        (None, "unsupported input type NoneType"),
    ],
)
def test_a_bad_item_fails_the_whole_call_naming_it(embedder, bad, reason: str) -> None:
    items = ["fine", image_bytes("PNG"), tone(), bad, "also fine"]
    with pytest.raises(ClipClapInputError, match=reason) as info:
        embedder.embed(items)
    err = info.value
    assert isinstance(err, ValueError)
    assert err.index == 3 and str(err).startswith("input 3 (")
    assert err.item_description and err.item_description in str(err)
    assert err.reason in str(err)


def test_error_descriptions_are_short_and_useful(embedder: ClipClapEmbedder) -> None:
    for item, expected in [
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 10_000, "<10,008 bytes, image/png>"),
        (np.zeros((3, 4, 5, 6)), "<array float64 (3, 4, 5, 6)>"),
        ((np.zeros(0), SR), "<waveform float64 (0,), rate 48000>"),
        ({"type": "image_url"}, "<image_url part>"),
        (Image(None), "Image(<NoneType>)"),
        (
            Audio("no/such/file.wav", sample_rate=8000),
            "Audio('no/such/file.wav', sample_rate=8000)",
        ),
        (
            "data:image/png;base64," + "A" * 5000 + "!",
            repr(("data:image/png;base64," + "A" * 5000)[:57] + "..."),
        ),
    ]:
        with pytest.raises(ClipClapInputError) as info:
            embedder.embed([item])
        assert info.value.item_description == expected
        assert len(str(info.value)) < 400


def test_strings_in_every_guise(embedder: ClipClapEmbedder, tmp_path: Path) -> None:
    notes = tmp_path / "notes.md"
    notes.write_text("# my notes\n", encoding="utf-8")
    # an existing non-media file named by a string is text: the string itself is embedded
    np.testing.assert_array_equal(
        embedder.embed([str(notes)])[0], embedder.embed_text([str(notes)])[0]
    )
    np.testing.assert_array_equal(
        embedder.embed(["data:,a%20red%20boat"])[0], embedder.embed_text(["a red boat"])[0]
    )
    np.testing.assert_array_equal(
        embedder.embed([{"type": "text", "text": "hi"}, Text("hi")]),
        embedder.embed_text(["hi", "hi"]),
    )


def test_data_uri_parsing() -> None:
    assert parse_data_uri("data:,A%20brief%20note") == (None, {}, b"A brief note")
    mime, params, data = parse_data_uri("data:text/plain;charset=iso-8859-1;base64,aOk=")
    assert (mime, params, data) == ("text/plain", {"charset": "iso-8859-1"}, b"h\xe9")
    opts = EmbedderOptions().input_options()
    assert classify("data:text/plain;charset=iso-8859-1;base64,aOk=", opts).payload == "hé"
    with pytest.raises(ClipClapInputError, match="not valid utf-8"):
        classify("data:text/plain;base64,/w==", opts)
    with pytest.raises(ClipClapInputError, match="unknown charset"):
        classify("data:text/plain;charset=klingon,abc", opts)


# --------------------------------------------------------------------------- properties

_MAGIC = st.sampled_from(
    [
        b"",
        b"\x89PNG\r\n\x1a\n",
        b"\xff\xd8\xff\xe0",
        b"GIF89a",
        b"RIFF\x24\x00\x00\x00WAVEfmt ",
        b"RIFF\x24\x00\x00\x00WEBPVP8 ",
        b"fLaC",
        b"OggS\x00\x02",
        b"ID3\x04\x00\x00\x00\x00\x00\x00",
        b"\xff\xfb\x90\x00",
        b"\xff\xf1\x50\x80",
        b"\x00\x00\x00\x20ftypM4A ",
        b"FORM\x00\x00\x00\x00AIFF",
        b"II*\x00",
        b"BM" + b"\x00" * 8,
        b"\x00\x00\x01\x00\x01\x00",
        b"\x1a\x45\xdf\xa3",
    ]
)


def _check(embedder: ClipClapEmbedder, items: list[Any]) -> None:
    try:
        vectors = embedder.embed(items)
    except ClipClapInputError as exc:
        assert exc.index is not None and 0 <= exc.index < len(items)
        return
    assert vectors.shape == (len(items), embedder.dim)
    assert np.all(np.isfinite(vectors))


@PROPERTY
@given(prefix=_MAGIC, body=st.binary(max_size=600))
def test_arbitrary_bytes(embedder: ClipClapEmbedder, prefix: bytes, body: bytes) -> None:
    data = prefix + body
    _check(embedder, [data])
    _check(embedder, [Image(data)])
    _check(embedder, [Audio(data)])


@PROPERTY
@given(
    prefix=_MAGIC,
    cut=st.floats(0.0, 1.0),
    flips=st.lists(st.integers(0, 10_000), max_size=3),
    kind=st.sampled_from(["PNG", "JPEG", "GIF", "WAV", "FLAC", "MP3", "OGG"]),
)
def test_damaged_media(embedder, prefix: bytes, cut: float, flips: list[int], kind: str) -> None:
    good = (
        image_bytes(kind)
        if kind in ("PNG", "JPEG", "GIF")
        else audio_bytes(kind, "VORBIS" if kind == "OGG" else None)
    )
    data = bytearray(good[: max(1, int(len(good) * cut))])
    for at in flips:
        if data:
            data[at % len(data)] ^= 0xFF
    _check(embedder, [bytes(data)])
    del prefix


_TEXTISH = st.one_of(
    st.text(max_size=80),
    st.sampled_from(["data:", "data:,", "file://", "file:///", "http://", "~", "~x", ".", "/"]),
    st.builds(
        lambda a, b: a + b,
        st.sampled_from(["data:", "file:", "data:image/png;base64,"]),
        st.text(max_size=40),
    ),
)


@PROPERTY
@given(text=_TEXTISH)
def test_arbitrary_strings(tiny_model_dir: Path, text: str) -> None:
    e = ClipClapEmbedder(tiny_model_dir, allow_remote=False)  # never touch the network
    _check(e, [text])
    with contextlib.suppress(ClipClapInputError):
        assert e.detect(text) in tuple(Modality)


_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=20),
    st.binary(max_size=40),
    st.sampled_from([np.zeros(3), np.ones((2, 2), np.uint8), np.array(["a"]), np.float64(1.0)]),
)
_NESTED = st.recursive(
    _LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.tuples(inner, inner),
        st.dictionaries(
            st.sampled_from(["type", "text", "image_url", "url", "data"]), inner, max_size=3
        ),
        st.builds(Image, inner),
        st.builds(Audio, inner),
        st.builds(Audio, inner, st.one_of(st.none(), st.integers(-5, 200_000))),
        st.builds(Text, inner),
        st.builds(
            lambda t: {"type": t},
            st.sampled_from(
                ["text", "image_url", "audio_url", "input_audio", "media", "image", "audio"]
            ),
        ),
    ),
    max_leaves=8,
)


@PROPERTY
@given(items=st.lists(_NESTED, min_size=1, max_size=4))
def test_arbitrary_nested_objects(tiny_model_dir: Path, items: list[Any]) -> None:
    e = ClipClapEmbedder(tiny_model_dir, allow_remote=False)
    _check(e, items)


def test_no_stray_files_or_fds_after_errors(embedder: ClipClapEmbedder, tmp_path: Path) -> None:
    """Decoders that fail must not leave temporary files or open descriptors behind."""
    before = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
    for data in (b"ID3" + b"\0" * 64, b"\0\0\0\x20ftypM4A " + b"\0" * 64, b"OggS" + b"\1" * 64):
        with pytest.raises(ClipClapInputError):
            embedder.embed([data])
    path = tmp_path / "broken.png"
    path.write_bytes(image_bytes("PNG")[:200])
    for _ in range(20):
        with pytest.raises(ClipClapInputError):
            embedder.embed([path])
    if before is not None:
        assert len(os.listdir("/proc/self/fd")) <= before + 2


def test_allow_local_files_false_never_reads_the_disk(
    tiny_model_dir: Path, media_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    png, wav = media_dir / "rgb_320x200.png", media_dir / "tone_0p5s_48k.wav"
    opened = ClipClapEmbedder(tiny_model_dir)
    assert opened.detect(str(png)) is Modality.IMAGE  # by default the path is the image
    closed = ClipClapEmbedder(tiny_model_dir, allow_local_files=False, allow_remote=False)

    import clipclap_integrations.inputs.strings as inputs

    def no_disk(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("looked at the file system")

    monkeypatch.setattr(inputs, "_existing", no_disk)
    monkeypatch.setattr(inputs, "_file_media", no_disk)
    # a string naming a file is only a string
    got = closed.embed([str(png), f"file://{png}, a caption"])
    np.testing.assert_allclose(
        got, closed.embed_text([str(png), f"file://{png}, a caption"]), atol=ATOL
    )
    assert closed.detect(str(wav)) is Modality.TEXT
    # whatever says "a file" is refused, naming the item
    for bad in (
        png,
        Image(str(png)),
        Audio(str(wav)),
        png.as_uri(),
        {"type": "image_url", "image_url": {"url": str(png)}},
        {"type": "audio_url", "audio_url": {"url": png.as_uri()}},
        {"type": "media", "file_uri": str(png)},
    ):
        with pytest.raises(ClipClapInputError, match="allow_local_files=False") as info:
            closed.embed(["fine", bad])
        assert info.value.index == 1
    with pytest.raises(ClipClapInputError, match="allow_local_files=False"):
        closed.embed_images([str(png)])
    # content passed by value still works, with the same vectors as before
    data = png.read_bytes()
    np.testing.assert_allclose(
        closed.embed([data, data_uri(data, "image/png"), (tone(), SR)]),
        opened.embed([data, data_uri(data, "image/png"), (tone(), SR)]),
        atol=ATOL,
    )


def test_a_media_part_is_never_text(embedder: ClipClapEmbedder, media_dir: Path) -> None:
    png = media_dir / "rgb_320x200.png"
    got = embedder.embed([{"type": "media", "file_uri": str(png)}])
    np.testing.assert_allclose(got, embedder.embed_images([png]), atol=ATOL)
    missing = {"type": "media", "file_uri": str(media_dir / "no-such-file.png")}
    with pytest.raises(ClipClapInputError, match="neither an image nor a sound") as info:
        embedder.embed(["fine", missing])
    assert info.value.index == 1


def test_check_text_gives_a_plain_str_and_refuses_invalid_unicode() -> None:
    got = check_text(np.str_("a caption"))
    assert type(got) is str and got == "a caption"
    with pytest.raises(ClipClapInputError, match="not valid Unicode"):
        check_text("half a pair \ud800")


@pytest.mark.parametrize(
    "samples",
    [np.arange(100), np.zeros((2, 2, 2), np.float32), np.zeros(0, np.float32)],
)
def test_waveform_checks_say_the_same_wherever_they_run(samples: np.ndarray) -> None:
    """One owner per check: what classification refuses, decoding refuses in the same words."""
    with pytest.raises(ClipClapInputError) as classified:
        classify(Audio(samples, sample_rate=SR), EmbedderOptions().input_options())
    with pytest.raises(ClipClapInputError) as decoded:
        to_mono(samples)
    assert decoded.value.reason == classified.value.reason


def test_sample_rate_rule_is_the_same_for_decoded_audio() -> None:
    with pytest.raises(ClipClapInputError) as classified:
        classify((tone(), 0), EmbedderOptions().input_options())
    with pytest.raises(ClipClapInputError) as checked:
        check_waveform(tone(), 0, None)
    assert checked.value.reason == classified.value.reason


def test_image_array_rules_are_the_same_when_classified_and_loaded() -> None:
    for bad in (np.zeros((2, 3, 4, 5)), np.zeros((9, 9, 9))):
        with pytest.raises(ClipClapInputError) as classified:
            classify(bad, EmbedderOptions().input_options())
        with pytest.raises(ClipClapInputError) as loaded:
            image_from_array(bad)
        assert loaded.value.reason == classified.value.reason


@pytest.mark.parametrize("encoding", ["base64", "wrapped base64", "percent"])
def test_data_uris_are_capped_by_max_remote_bytes(encoding: str) -> None:
    """A data: URI is a download that came inline: over ``max_remote_bytes`` it is refused
    (before decoding), at the limit it is read."""
    import base64 as b64module

    data = bytes(range(256)) * 40
    if encoding == "percent":
        uri = "data:application/octet-stream," + "".join(f"%{b:02X}" for b in data)
    else:
        text = b64module.b64encode(data).decode()
        if encoding == "wrapped base64":
            text = "\n".join(text[i : i + 76] for i in range(0, len(text), 76))
        uri = "data:application/octet-stream;base64," + text
    assert parse_data_uri(uri, len(data))[2] == data
    with pytest.raises(ClipClapInputError, match=r"over the limit of 10,239 \(max_remote_bytes"):
        parse_data_uri(uri, len(data) - 1)
    opts = EmbedderOptions(max_remote_bytes=len(data) - 1).input_options()
    image_uri = data_uri(image_bytes("PNG"), "image/png")
    big = EmbedderOptions(max_remote_bytes=len(image_uri)).input_options()
    assert classify(image_uri, big).modality is Modality.IMAGE
    with pytest.raises(ClipClapInputError, match="max_remote_bytes"):
        classify("data:image/png;base64," + "A" * 20_000, opts)


def test_inline_data_of_chat_parts_is_capped_by_max_remote_bytes() -> None:
    """Base64 in image/audio/input_audio/media parts is inline data too, like a data: URI."""
    import base64 as b64module

    png = image_bytes("PNG")
    text = b64module.b64encode(png).decode()
    fits = EmbedderOptions(max_remote_bytes=len(png)).input_options()
    small = EmbedderOptions(max_remote_bytes=len(png) - 1).input_options()
    parts = [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": text}},
        {"type": "image", "base64": text, "mime_type": "image/png"},
        {"type": "media", "mime_type": "image/png", "data": text},
        {"type": "media", "mime_type": "image/png", "data": png},
    ]
    for part in parts:
        assert classify(part, fits).modality is Modality.IMAGE
        with pytest.raises(ClipClapInputError, match=r"part holds .* \(max_remote_bytes"):
            classify(part, small)
    sound = {"type": "input_audio", "input_audio": {"data": "A" * 40_000, "format": "wav"}}
    with pytest.raises(ClipClapInputError, match="input_audio part holds 30,000 bytes"):
        classify(sound, EmbedderOptions(max_remote_bytes=1000).input_options())


def test_max_text_chars_refuses_absurd_texts_naming_them(tiny_model_dir: Path) -> None:
    e = ClipClapEmbedder(tiny_model_dir, max_text_chars=1000)
    for call in (e.embed, e.embed_text):
        with pytest.raises(ClipClapInputError) as caught:
            call(["a boat", "a dog " * 200])
        assert caught.value.index == 1
        assert "1,200 characters, over the limit of 1,000 (max_text_chars)" in str(caught.value)
        assert "a dog a dog" in str(caught.value)
    assert e.embed_text(["x" * 1000]).shape == (1, e.dim)
    unlimited = ClipClapEmbedder(tiny_model_dir, max_text_chars=None)
    assert unlimited.embed_text(["a dog " * 200_000]).shape == (1, e.dim)
    with pytest.raises(ValueError, match="max_text_chars must be a positive integer or None"):
        ClipClapEmbedder(tiny_model_dir, max_text_chars=0)


LONG_TEXTS = [
    "a dog " * 2000,
    "word\n" * 500 + "end",
    " " * 5000 + "a dog in the snow",
    "naïve café 東京 🙂 don't " * 300,
    "a" * 10_000,
    "🙂" * 3000,
    ("x" * 3000 + " ") * 5,
    "one two three " * 200,
]


def test_long_text_is_tokenized_only_as_far_as_77_tokens_reach(tiny_model_dir: Path) -> None:
    """Only a leading part of a long text is tokenized, and its ids (hence its vector) are
    exactly the whole text's, cut to 77 tokens."""
    from clipclap_integrations.media.text import TextPreprocessor, load_tokenizer

    whole = load_tokenizer(tiny_model_dir / "tokenizer.json", 77)
    pre = TextPreprocessor(tiny_model_dir)
    assert pre.token_ids(LONG_TEXTS) == [whole.encode(t).ids for t in LONG_TEXTS]

    seen: list[int] = []

    class Spy:
        def __init__(self, tok: Any) -> None:
            self.tok = tok

        def encode(self, text: str, *args: Any, **kwargs: Any) -> Any:
            seen.append(len(text))
            return self.tok.encode(text, *args, **kwargs)

        def encode_batch(self, texts: list[str], *args: Any, **kwargs: Any) -> Any:
            seen.extend(len(t) for t in texts)
            return self.tok.encode_batch(texts, *args, **kwargs)

    class Spied(TextPreprocessor):
        @property
        def tokenizer(self) -> Any:
            return Spy(load_tokenizer(self.folder / "tokenizer.json", self.max_length))

    huge = "a dog in the snow " * 500_000  # 9 MB
    assert Spied(tiny_model_dir).token_ids([huge]) == [whole.encode(huge).ids]
    assert max(seen) < 10_000
