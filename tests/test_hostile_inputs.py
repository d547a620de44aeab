"""Hostile inputs: each gives the right vector or a ClipClapInputError naming it, within
seconds, without a large allocation, and without noise on stderr.

Cases that must not allocate much run in a child process so that its peak RSS can be
measured on its own.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from inputs_media import (
    SR,
    audio_bytes,
    flac_claiming,
    id3v2_tag,
    image_bytes,
    jpeg_claiming,
    png_header_only,
    png_solid,
    rgb_array,
    tone,
    wav_claiming,
)

from clipclap_integrations import Audio, ClipClapEmbedder, ClipClapInputError, Image
from clipclap_integrations.media.image import open_image
from clipclap_integrations.modalities import image as image_pipeline_module

FAST_S = 2.0  # "within seconds": every hostile case here is refused or embedded faster


def _junk(n: int, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).bytes(n)


@pytest.fixture(scope="module")
def embedder(tiny_model_dir: Path) -> ClipClapEmbedder:
    return ClipClapEmbedder(tiny_model_dir)


def _timed(fn, *args, **kwargs):
    start = time.monotonic()
    try:
        return fn(*args, **kwargs), None, time.monotonic() - start
    except ClipClapInputError as exc:
        return None, exc, time.monotonic() - start


def _isolated(code: str, tmp_path: Path, timeout: float = 60.0) -> dict:
    """Run ``code`` in a fresh interpreter; returns its JSON result plus ``peak_mb``."""
    script = tmp_path / "child.py"
    script.write_text(
        textwrap.dedent(
            """
            import json, resource, sys
            result = {}
            """
        )
        + textwrap.dedent(code)
        + textwrap.dedent(
            """
            # VmHWM belongs to this program's address space; ru_maxrss would carry the
            # parent's size across fork and exec.
            try:
                with open("/proc/self/status") as status:
                    hwm = [ln for ln in status if ln.startswith("VmHWM:")][0]
                result["peak_mb"] = int(hwm.split()[1]) / 1024
            except OSError:
                result["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(json.dumps(result))
            """
        ),
        encoding="utf-8",
    )
    tests_dir = str(Path(__file__).parent)
    env = {**os.environ, "PYTHONPATH": tests_dir + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=timeout, env=env
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- images


@pytest.mark.parametrize(
    ("fmt", "save"),
    [
        ("PNG", {}),
        ("JPEG", {}),
        ("JPEG", {"progressive": True}),
        ("GIF", {}),
        ("WEBP", {}),
        ("BMP", {}),
        ("TIFF", {"compression": "tiff_lzw"}),
    ],
)
def test_truncated_images_are_errors_or_whole(embedder, fmt: str, save: dict) -> None:
    """Cut anywhere: an error naming the item, or (cut only in a trailer after the pixel
    data, as in PNG's IEND chunk) exactly the whole image's vector. Never a partial image."""
    data = image_bytes(fmt, rgb_array(96, 72), **save)
    whole = embedder.embed([data])[0]
    cuts = sorted({*range(1, 40), *range(40, len(data), max(1, len(data) // 60)), len(data) - 1})
    outcomes = {"error": 0, "whole": 0}
    for cut in cuts:
        got, err, seconds = _timed(embedder.embed, ["ok", data[:cut]])
        assert seconds < FAST_S
        if err is not None:
            assert err.index == 1, err
            outcomes["error"] += 1
        else:
            np.testing.assert_allclose(got[1], whole, atol=1e-6, err_msg=f"{fmt} cut at {cut}")
            outcomes["whole"] += 1
    assert outcomes["error"] >= len(cuts) - 12


def test_truncated_jpeg_is_an_error_even_when_pillow_could_fill_it(embedder) -> None:
    data = image_bytes("JPEG", rgb_array(128, 96))
    for cut in (len(data) // 3, len(data) // 2, len(data) - 200, len(data) - 2):
        with pytest.raises(ClipClapInputError, match="corrupt or truncated image"):
            embedder.embed([data[:cut]])


@pytest.mark.parametrize(
    "data",
    [png_header_only(20_000, 20_000), jpeg_claiming(20_000, 20_000)],
    ids=["png", "jpeg"],
)
def test_header_claiming_20000x20000_fails_fast(embedder, data: bytes) -> None:
    _, err, seconds = _timed(embedder.embed, [data])
    assert err is not None and "20000x20000 = 400,000,000 pixels, over the limit" in err.reason
    assert seconds < 0.5


def test_real_20000x20000_png_fails_on_the_pixel_limit_before_decoding(embedder) -> None:
    data = png_solid(20_000, 20_000)  # a complete, valid, 400-megapixel image (~400 kB)
    _, err, seconds = _timed(embedder.embed, ["a caption", data])
    assert err is not None and err.index == 1 and "max_image_pixels" in err.reason
    assert seconds < 0.5


def test_pixel_limit_is_configurable(tiny_model_dir: Path) -> None:
    small = ClipClapEmbedder(tiny_model_dir, max_image_pixels=1000)
    with pytest.raises(ClipClapInputError, match="over the limit of 1,000"):
        small.embed([image_bytes("PNG", rgb_array(64, 48))])
    with pytest.raises(ClipClapInputError, match="over the limit of 1,000"):
        open_image(image_bytes("PNG"), max_pixels=1000)


def test_header_bomb_under_no_limit_allocates_nothing(tmp_path: Path) -> None:
    result = _isolated(
        """
        from inputs_media import png_header_only, jpeg_claiming
        from clipclap_integrations.media.image import open_image
        from clipclap_integrations.errors import ClipClapInputError
        for data in (png_header_only(20_000, 20_000), png_header_only(40_000, 40_000, 6)):
            try:
                open_image(data, max_pixels=None)
                result.setdefault("loaded", 0)
            except ClipClapInputError as exc:
                result.setdefault("errors", []).append(exc.reason)
        """,
        tmp_path,
    )
    assert len(result["errors"]) == 2 and all("truncated" in r for r in result["errors"])
    assert result["peak_mb"] < 400


def test_huge_image_under_a_raised_limit_decodes_with_one_copy(tmp_path: Path) -> None:
    """12000 x 12000 RGB (over the default limit) with the limit raised: the decoded image
    (Pillow keeps RGB as 4 bytes a pixel: ~550 MB) is the only large allocation."""
    result = _isolated(
        f"""
        import zlib, struct
        from inputs_media import _png_chunk
        w = h = 12_000
        c = zlib.compressobj(1)
        row = b"\\0" + bytes(range(256)) * (3 * w // 256) + b"\\0" * (3 * w % 256)
        body = b"".join([c.compress(row) for _ in range(h)] + [c.flush()])
        ihdr = _png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
        png = b"\\x89PNG\\r\\n\\x1a\\n" + ihdr + _png_chunk(b"IDAT", body)
        png += _png_chunk(b"IEND", b"")
        del body
        from clipclap_integrations import ClipClapEmbedder
        e = ClipClapEmbedder({str(Path(__file__).parent / "fixtures" / "clipclap-tiny")!r},
                             max_image_pixels=200_000_000)
        pixels = e.preprocess_images([png])
        result["shape"] = list(pixels.shape)
        """,
        tmp_path,
    )
    assert result["shape"] == [1, 3, 224, 224]
    assert result["peak_mb"] < 850, result  # decoded once (~550 MB), not copied


def test_extreme_aspect_ratio_is_refused_before_resizing(embedder) -> None:
    # 1 x 20000 is only 20,000 pixels, but resizing its short side to 224 would make
    # 224 x 4,480,000 = 1e9 pixels: refused from the header.
    for data in (png_solid(20_000, 1), png_solid(1, 20_000)):
        _, err, seconds = _timed(embedder.embed, [data])
        assert err is not None and "resizing its short side" in err.reason
        assert seconds < 0.5
    with pytest.raises(ClipClapInputError, match="resizing its short side"):
        embedder.embed([np.zeros((1, 20_000), np.uint8)])


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.full((8, 8, 3), 1.5), "float image array must hold finite values in \\[0, 1\\]"),
        (np.full((8, 8, 3), np.nan), "finite values"),
        (np.full((8, 8), 300, np.int16), "values in \\[0, 255\\]"),
        (np.full((8, 8), -1, np.int32), "values in \\[0, 255\\]"),
        (np.zeros((48000, 2), np.float32) - 0.5, "multichannel audio"),
        (np.zeros((5, 0), np.uint8), "zero size"),
        (np.zeros((2, 3, 4, 5), np.uint8), "batch"),
        (np.zeros((9, 9, 9), np.uint8), "1-4 channels"),
        (np.zeros((4, 4, 3), np.complex64), "numbers"),
    ],
)
def test_odd_image_arrays(embedder, array: np.ndarray, message: str) -> None:
    with pytest.raises(ClipClapInputError, match=message):
        embedder.embed([array])


def test_accepted_image_arrays(embedder) -> None:
    arr = rgb_array(32, 24)
    vectors = embedder.embed(
        [arr > 128, np.ones((1, 1, 3), np.uint8), arr.astype(np.float16) / 255, arr[..., :1]]
    )
    assert np.all(np.isfinite(vectors))


def test_odd_pil_images(embedder, tmp_path: Path) -> None:
    from PIL import Image as PILImage

    with pytest.raises(ClipClapInputError, match="zero size"):
        embedder.embed([PILImage.new("RGB", (0, 0))])
    broken = tmp_path / "broken.png"
    broken.write_bytes(image_bytes("PNG")[:500])
    with pytest.raises(ClipClapInputError) as info:
        embedder.embed(["fine", PILImage.open(broken)])  # lazily opened, fails on load
    assert info.value.index == 1


# --------------------------------------------------------------------------- audio


@pytest.mark.parametrize("channels", [1, 2])
def test_wav_claiming_gigabytes_decodes_its_short_body(tmp_path, embedder, channels) -> None:
    data = wav_claiming(0xFFFFFF00, body_frames=4800, channels=channels)
    path = tmp_path / "liar.wav"
    path.write_bytes(data)
    got, err, seconds = _timed(embedder.embed, [data, path])
    assert err is None and seconds < FAST_S
    body = np.frombuffer(data[44:], "<i2").reshape(-1, channels)
    expected = embedder.embed([(body, SR)])[0]
    np.testing.assert_allclose(got, np.stack([expected, expected]), atol=1e-6)


def test_wav_claiming_gigabytes_allocates_little(tmp_path: Path) -> None:
    result = _isolated(
        """
        from inputs_media import wav_claiming, flac_claiming
        from clipclap_integrations.media.audio import decode_audio
        from clipclap_integrations.errors import ClipClapInputError
        wave, rate = decode_audio(wav_claiming(0xFFFFFF00, channels=2), target_rate=48000)
        result["frames"] = wave.shape[1]
        try:  # a FLAC that claims 50 minutes (under the 1 h limit) but holds 0.2 s
            decode_audio(flac_claiming(48_000 * 3000))
        except ClipClapInputError as exc:
            result["flac"] = exc.reason
        """,
        tmp_path,
    )
    assert result["frames"] == 4800
    assert "truncated" in result["flac"]
    assert result["peak_mb"] < 300


def test_flac_claiming_hours_is_refused_from_its_header(embedder) -> None:
    _, err, seconds = _timed(embedder.embed, [flac_claiming(48_000 * 3600 * 5)])
    assert err is not None and "over the limit of 3,600 s" in err.reason
    assert seconds < 0.5


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (wav_claiming(9600, rate=0), "unsupported sample rate|corrupt|not an audio file"),
        (wav_claiming(9600, rate=4_000_000_000), "sample rate|corrupt|not an audio file"),
        (b"RIFF\xff\xff\xff\xffWAVEfmt " + b"\xff" * 40, "corrupt|not an audio file"),
        (b"RIFF\x24\x00\x00\x00WAVE", "corrupt|not an audio file"),
        (id3v2_tag(1000), "ID3 tag with no audio"),
        (id3v2_tag(10) + b"\0" * 70_000 + audio_bytes("MP3"), "no MPEG audio frames"),
        (b"ID3\x04\x00\x00\x00\x00\x00\x00" + _junk(50_000), "no MPEG audio frames"),
        (b"\xff\xfb\x90\x00" + _junk(200_000), "no MPEG audio frames|corrupt MP3"),
        (audio_bytes("MP3", samples=tone(2.0))[:2000], "truncated MP3"),
        (b"OggS" + _junk(5000), "not an audio file|corrupt"),
        (audio_bytes("OGG", "VORBIS")[:60], "not an audio file|corrupt"),
        (b"\0\0\0\x20ftypM4A " + _junk(5000), "not an audio file"),
        (b"\x1a\x45\xdf\xa3" + _junk(5000), "not an audio file"),
        (b"fLaC" + _junk(5000), "corrupt|not an audio file"),
        (audio_bytes("FLAC", samples=tone(2.0))[:3000], "truncated"),
    ],
    ids=[
        "wav 0 Hz",
        "wav 4 GHz",
        "wav garbage fmt",
        "wav no chunks",
        "id3 only",
        "mp3 after 70 kB junk",
        "id3 + junk",
        "mpeg sync + junk",
        "truncated mp3",
        "ogg junk",
        "ogg cut",
        "m4a junk",
        "webm junk",
        "flac junk",
        "truncated flac",
    ],
)
def test_undecodable_audio_fails_fast_and_quietly(embedder, capfd, data: bytes, message) -> None:
    _, err, seconds = _timed(embedder.embed, ["fine", data])
    assert err is not None and err.index == 1
    assert err.item_description.startswith("<")
    import re

    assert re.search(message, err.reason), err.reason
    assert seconds < FAST_S
    out, errout = capfd.readouterr()
    assert errout == "" and out == ""


def test_corrupt_mp3_frames_are_an_error_not_decoder_noise(embedder, capfd) -> None:
    data = bytearray(audio_bytes("MP3", samples=tone(3.0)))
    data[len(data) // 3 : len(data) // 3 + 400] = _junk(400)
    with pytest.raises(ClipClapInputError, match="corrupt MP3"):
        embedder.embed([bytes(data)])
    good = id3v2_tag(64) + audio_bytes("MP3", samples=tone(1.0)) + b"TAG" + b"\0" * 125
    assert embedder.embed([good]).shape == (1, embedder.dim)  # ID3v2 + ID3v1 tags are fine
    assert capfd.readouterr().err == ""


def test_audio_length_limit(tiny_model_dir: Path) -> None:
    e = ClipClapEmbedder(tiny_model_dir, max_audio_seconds=1.0)
    two_seconds = tone(2.0)
    for item in (two_seconds, (two_seconds, SR), audio_bytes("WAV", samples=two_seconds)):
        with pytest.raises(ClipClapInputError, match=r"over the limit of 1 s|over 1 s"):
            e.embed([item])
    assert e.embed([tone(0.9)]).shape == (1, e.dim)
    unlimited = ClipClapEmbedder(tiny_model_dir, max_audio_seconds=None)
    assert unlimited.embed([two_seconds]).shape == (1, e.dim)


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ((np.zeros((0, 2), np.float32), SR), "empty"),
        ((np.zeros((2, 0), np.float32), SR), "empty"),
        (np.zeros(0, np.int16), "empty"),
        (np.zeros(48_000, np.float32), "silent"),
        ((np.zeros((2, 4800), np.int16), SR), "silent"),
        (np.array([0.1, np.nan, 0.2], np.float32), "NaN"),
        ((np.array([[0.1, np.inf]], np.float32), SR), "NaN or infinite"),
        (np.full(4800, 1e20, np.float32), "beyond any PCM scale"),
        (np.arange(4800, dtype=np.int64), "ambiguous"),
        ((np.arange(4800, dtype=np.uint16), SR), "ambiguous"),
        ((np.zeros((2, 2, 2)), SR), "1-D"),
        ((tone(), -48_000), "sample rate"),
        ((tone(), float("nan")), "sample rate"),
        ((tone(), 2_000_000), "sample rate"),
        (Audio(tone(), sample_rate=0), "sample rate"),
        ((np.array(["a", "b"]), SR), "numbers"),
        (([[0.1, 0.2], [0.3]], SR), "cannot be read as an array"),
    ],
)
def test_odd_waveforms(embedder, item, message: str) -> None:
    with pytest.raises(ClipClapInputError, match=message):
        embedder.embed([item])


def test_accepted_waveforms(embedder) -> None:
    x = tone(0.5)
    vectors = embedder.embed(
        [
            (np.round(x * 127).astype(np.int8), SR),
            (np.round(x * 127 + 128).astype(np.uint8), SR),
            (np.round(x * 2**31 * 0.9).astype(np.int32), SR),
            (x.astype(np.float16), SR),
            (x[5:6], SR),  # a single sample
            ((x[:, None] * [1, 1, 1]).astype(np.float32), 8000),  # 3 channels last
            Audio(x, sample_rate=np.int64(16_000)),
        ]
    )
    assert np.all(np.isfinite(vectors))


# --------------------------------------------------------------------------- files and objects


def test_special_files_are_refused_without_blocking(embedder, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    for item in (fifo, Path("/dev/zero"), Audio("/dev/zero")):
        _, err, seconds = _timed(embedder.embed, [item])
        assert err is not None and "not a regular file" in err.reason and seconds < 0.5
    # as plain strings they are not existing regular files, so they are text
    assert embedder.detect(str(fifo)).value == "text"


def test_huge_sparse_files_are_not_read_whole(embedder, tmp_path: Path) -> None:
    for name in ("big.wav", "big.png", "big.mp3"):
        path = tmp_path / name
        with open(path, "wb") as f:
            f.truncate(8 * 1024**3)  # 8 GiB of zeros, sparse on disk
        _, err, seconds = _timed(embedder.embed, [path])
        assert err is not None and seconds < FAST_S
        path.unlink()


def test_file_objects_in_odd_states(embedder, tmp_path: Path) -> None:
    path = tmp_path / "img.png"
    path.write_bytes(image_bytes("PNG"))
    closed = open(path, "rb")  # noqa: SIM115
    closed.close()
    with pytest.raises(ClipClapInputError, match="cannot be read"):
        embedder.embed([closed])
    with (
        open(path, encoding="latin-1") as text_mode,
        pytest.raises(ClipClapInputError, match="binary mode"),
    ):
        embedder.embed([text_mode])

    class ReadsStr:
        def read(self) -> str:
            return "not bytes"

    class ReadsNone:
        def read(self) -> None:
            return None

    with pytest.raises(ClipClapInputError, match="binary mode"):
        embedder.embed([ReadsStr()])
    with pytest.raises(ClipClapInputError, match=r"empty|not bytes"):
        embedder.embed([ReadsNone()])
    released = memoryview(b"abc")
    released.release()
    with pytest.raises(ClipClapInputError):
        embedder.embed([released])


def test_objects_that_misbehave(embedder) -> None:
    class BadArray:
        def __array__(self, *args, **kwargs):
            raise RuntimeError("no array today")

    class BadLen(tuple):
        def __len__(self) -> int:
            raise RuntimeError("no len")

    class BadPathLike(os.PathLike):
        def __fspath__(self):
            raise RuntimeError("no path")

    for item in (BadArray(), BadLen((1, 2)), BadPathLike(), Image(BadArray())):
        with pytest.raises(ClipClapInputError):
            embedder.embed([item])


# ---------------------------------------------------- PIL images and text from callers


def test_pil_image_in_premultiplied_mode(embedder) -> None:
    from PIL import Image as PILImage

    la = PILImage.fromarray(rgb_array()[..., :2])
    vectors = embedder.embed([la.convert("La"), la])
    assert np.all(np.isfinite(vectors))


def test_pil_image_with_extreme_aspect_ratio(embedder) -> None:
    from PIL import Image as PILImage

    _, err, seconds = _timed(embedder.embed, [PILImage.new("RGB", (1, 20_000))])
    assert err is not None and "resizing its short side" in err.reason and seconds < 0.5


def test_embed_text_refuses_unpaired_surrogates(embedder) -> None:
    with pytest.raises(ClipClapInputError, match=r"input 1 .*not valid Unicode"):
        embedder.embed_text(["fine", "bad \ud800"])


def test_decoders_failing_oddly_still_name_the_item(embedder, monkeypatch) -> None:
    def explode(*args, **kwargs):
        raise struct.error("a plugin bug")

    monkeypatch.setattr(image_pipeline_module, "open_image", explode)
    with pytest.raises(ClipClapInputError, match=r"input 1 .*cannot be processed"):
        embedder.embed(["fine", image_bytes("PNG")])


def test_endless_streams_are_not_read_forever(embedder) -> None:
    with open("/dev/zero", "rb") as zeros:
        _, err, seconds = _timed(embedder.embed, [zeros])  # zeros: no magic, refused at once
        assert err is not None and "neither a recognizable" in err.reason and seconds < 0.5
        _, err, seconds = _timed(embedder.embed, [Image(zeros)])  # forced: read up to a cap
        assert err is not None and "max_remote_bytes" in err.reason and seconds < FAST_S

    class Endless:
        def read(self, n: int = -1) -> bytes:
            assert n > 0, "an endless stream must be read in pieces"
            return b"\x89PNG\r\n\x1a\n" + b"\0" * (n - 8)

    _, err, seconds = _timed(embedder.embed, [Endless()])
    assert err is not None and "max_remote_bytes" in err.reason and seconds < FAST_S


def test_postscript_is_never_handed_to_ghostscript(embedder) -> None:
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n%%EOF\n"
    for item in (Image(eps), {"type": "image", "base64": __import__("base64").b64encode(eps)}):
        with pytest.raises(ClipClapInputError, match="PostScript"):
            embedder.embed([item])


@pytest.mark.parametrize("progressive", [False, True])
def test_jpeg_too_small_for_its_header_is_refused_before_decoding(embedder, progressive) -> None:
    """libjpeg fills a scan that ends early (at an EOI marker) with gray and Pillow reports no
    error: a tiny file could decode to a huge image. Huffman JPEG needs at least a bit or
    two per 8x8 block, so the header alone shows such a file cannot be whole."""
    import struct as st

    data = bytearray(image_bytes("JPEG", rgb_array(16, 16), progressive=progressive))
    at = data.find(b"\xff\xc2" if progressive else b"\xff\xc0")
    st.pack_into(">HH", data, at + 5, 9000, 9000)  # 81 Mpx: under the pixel limit
    _, err, seconds = _timed(embedder.embed, [bytes(data)])
    assert err is not None and "too little data" in err.reason and seconds < 0.5
    # a real JPEG (here 1 Mpx of smooth gradient, compressed hard) is well above the bound
    big = image_bytes("JPEG", np.repeat(rgb_array(1000, 1000)[:, :, :1], 3, 2), quality=5)
    assert embedder.embed([big]).shape == (1, embedder.dim)


def test_mpeg_check_rejects_junk_and_accepts_real_streams() -> None:
    from clipclap_integrations.media.integrity import mpeg_stream_problem

    def problem(data: bytes) -> str | None:
        return mpeg_stream_problem(lambda at, n: data[at : at + n], len(data))

    for seed in range(300):  # junk after a tag or a frame-sync: never taken for a stream
        for head in (b"ID3\x04\x00\x00\x00\x00\x00\x00", b"\xff\xfb\x90\x00"):
            size = 1000 + seed * 170
            assert problem(head + _junk(size, seed)) is not None, (seed, head)
    for seconds in (0.01, 0.3, 2.0):
        mp3 = audio_bytes("MP3", samples=tone(seconds))
        assert problem(mp3) is None
        assert problem(id3v2_tag(300) + mp3 + b"TAG" + b"\0" * 125) is None
        assert problem(mp3 + id3v2_tag(20) + mp3) is None  # concatenated files
