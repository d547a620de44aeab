"""Table-driven tests of every detection rule, including the ambiguous cases.

Each row: an id, a function building the item (given a ``Ctx`` with a temporary folder of
files), and the expected ``Modality`` or an error pattern. The README's detection table is
the same rule set, in the same order.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from inputs_media import (
    SR,
    audio_bytes,
    b64,
    data_uri,
    id3v2_tag,
    image_bytes,
    rgb_array,
    tone,
)

from clipclap_integrations import (
    Audio,
    ClipClapEmbedder,
    ClipClapInputError,
    Image,
    Modality,
    Text,
)
from clipclap_integrations.inputs.sniff import sniff_bytes

T, IMG, A = Modality.TEXT, Modality.IMAGE, Modality.AUDIO

PNG = image_bytes("PNG")
JPEG = image_bytes("JPEG")
WAV = audio_bytes("WAV")


@dataclass
class Ctx:
    dir: Path

    def file(self, name: str, data: bytes) -> Path:
        path = self.dir / name
        path.write_bytes(data)
        return path


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory) -> Ctx:
    c = Ctx(tmp_path_factory.mktemp("detect"))
    c.file("photo.png", PNG)
    c.file("photo.jpg", JPEG)
    c.file("sound.wav", WAV)
    c.file("png_named.wav", PNG)  # content wins over the extension
    c.file("wav_named.png", WAV)
    c.file("image_no_ext", PNG)
    c.file("pixmap.ppm", image_bytes("PPM"))  # no magic we sniff: the extension decides
    c.file("notes.txt", b"just some notes\n")
    c.file("blob.bin", b"\x00\x01\x02 not media")
    (c.dir / "folder.png").mkdir()
    return c


@pytest.fixture(scope="module")
def embedder(tiny_model_dir: Path) -> ClipClapEmbedder:
    return ClipClapEmbedder(tiny_model_dir)


Row = tuple[str, Callable[[Ctx], Any], "Modality | str"]


def _const(value: Any) -> Callable[[Ctx], Any]:
    return lambda c: value


ROWS: list[Row] = [
    # --- 1. explicit typing always wins
    ("Text() around an image path", lambda c: Text(str(c.dir / "photo.png")), T),
    ("Image() around a wav path", lambda c: Image(c.dir / "sound.wav"), IMG),
    ("Audio() around a png path", lambda c: Audio(str(c.dir / "photo.png")), A),
    ("Audio(array, sample_rate)", lambda c: Audio(tone(), sample_rate=16000), A),
    ("Audio(list, sample_rate)", lambda c: Audio([0.1, -0.1, 0.2], sample_rate=8000), A),
    ("Image(nested list)", lambda c: Image([[0, 255], [255, 0]]), IMG),
    ("Audio(bare array) is 48 kHz", lambda c: Audio(np.ones(100, np.float32) * 0.1), A),
    ("Text(non-str)", lambda c: Text(5), "needs a str"),
    ("Image(Text()) contradicts", lambda c: Image(Text("x")), "text, but image was asked"),
    ("Audio(PIL image) contradicts", lambda c: Audio(_pil()), "image, but audio was asked"),
    ("Image(1-D array)", lambda c: Image(np.zeros(10)), "1-D array is audio"),
    ("Image(missing file)", lambda c: Image("no/such/cat.png"), "no such file"),
    ("Image(a sentence)", lambda c: Image("a cat on a mat"), "no such file"),
    ("Image(Image(...)) nests", lambda c: Image(Image(c.dir / "photo.png")), IMG),
    # chat-style parts
    ("text part", lambda c: {"type": "text", "text": "a cat"}, T),
    ("input_text part", lambda c: {"type": "input_text", "text": "a cat"}, T),
    ("image_url part (data URI)", lambda c: _part("image_url", data_uri(PNG, "image/png")), IMG),
    (
        "image_url part (str)",
        lambda c: {"type": "image_url", "image_url": str(c.dir / "photo.png")},
        IMG,
    ),
    (
        "image_url part (file URL)",
        lambda c: _part("image_url", (c.dir / "photo.png").as_uri()),
        IMG,
    ),
    (
        "input_image part",
        lambda c: {"type": "input_image", "image_url": data_uri(PNG, "image/png")},
        IMG,
    ),
    ("audio_url part", lambda c: _part("audio_url", data_uri(WAV, "audio/wav")), A),
    (
        "input_audio part",
        lambda c: {"type": "input_audio", "input_audio": {"data": b64(WAV), "format": "wav"}},
        A,
    ),
    (
        "media part (image)",
        lambda c: {"type": "media", "data": b64(PNG), "mime_type": "image/png"},
        IMG,
    ),
    (
        "media part (audio)",
        lambda c: {"type": "media", "data": b64(WAV), "mime_type": "audio/wav"},
        A,
    ),
    (
        "media part (text/plain)",
        lambda c: {"type": "media", "data": b64(b"hi"), "mime_type": "text/plain"},
        T,
    ),
    (
        "media part, MIME says audio",
        lambda c: {"type": "media", "data": b64(PNG), "mime_type": "audio/wav"},
        A,
    ),
    (
        "image part (Anthropic source)",
        lambda c: {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": b64(PNG)},
        },
        IMG,
    ),
    (
        "image part (LangChain base64)",
        lambda c: {"type": "image", "base64": b64(PNG), "mime_type": "image/png"},
        IMG,
    ),
    (
        "audio part (LangChain url)",
        lambda c: {"type": "audio", "url": data_uri(WAV, "audio/wav")},
        A,
    ),
    (
        "untyped part with image_url",
        lambda c: {"image_url": {"url": data_uri(PNG, "image/png")}},
        IMG,
    ),
    ("part without type", lambda c: {"foo": 1}, "needs a 'type'"),
    ("empty dict", lambda c: {}, "needs a 'type'"),
    ("unknown part type", lambda c: {"type": "document_url"}, "unsupported part type"),
    ("image_url part without url", lambda c: {"type": "image_url"}, "needs a URL"),
    (
        "image_url with non-str url",
        lambda c: {"type": "image_url", "image_url": {"url": 5}},
        "needs a URL",
    ),
    ("text part without text", lambda c: {"type": "text"}, "needs a string 'text'"),
    (
        "input_audio without data",
        lambda c: {"type": "input_audio", "input_audio": {"format": "wav"}},
        "base64",
    ),
    (
        "input_audio not a dict",
        lambda c: {"type": "input_audio", "input_audio": "x"},
        "input_audio part",
    ),
    (
        "media part with bad base64",
        lambda c: {"type": "media", "data": "@@@", "mime_type": "image/png"},
        "base64",
    ),
    (
        "media part of unknown type",
        lambda c: {"type": "media", "data": b64(b"{}"), "mime_type": "application/json"},
        "neither",
    ),
    ("part with unhashable type", lambda c: {"type": ["text"]}, "needs a 'type'"),
    # --- 2. Python type
    ("PIL image", lambda c: _pil(), IMG),
    ("HxW uint8 array", lambda c: rgb_array()[..., 0], IMG),
    ("HxWx3 array", lambda c: rgb_array(), IMG),
    ("HxWx4 array", lambda c: np.dstack([rgb_array(), rgb_array()[..., :1]]), IMG),
    ("HxWx2 array (gray+alpha)", lambda c: rgb_array()[..., :2], IMG),
    ("HxWx1 array", lambda c: rgb_array()[..., :1], IMG),
    ("CxHxW array", lambda c: rgb_array().transpose(2, 0, 1).copy(), IMG),
    ("float HxWx3 in [0, 1]", lambda c: rgb_array() / 255.0, IMG),
    ("2-D float array is an image", lambda c: np.full((2, 400), 0.5), IMG),
    ("1-D array is audio", lambda c: tone(), A),
    ("(samples, rate)", lambda c: (tone(), SR), A),
    ("(rate, samples) as scipy/Gradio", lambda c: (SR, tone()), A),
    ("(list, rate)", lambda c: ([0.1, 0.2, -0.1], 8000), A),
    ("(2-D samples, rate)", lambda c: (tone(channels=2), SR), A),
    ("(samples, float rate)", lambda c: (tone(), 16000.0), A),
    ("(samples, fractional rate)", lambda c: (tone(), 16000.5), "sample rate"),
    ("(samples, 0 Hz)", lambda c: (tone(), 0), "sample rate"),
    ("(samples, bool rate)", lambda c: (tone(), True), "expected \\(samples, sample_rate\\)"),
    ("(samples, absurd rate)", lambda c: (tone(), 10**30), "sample rate"),
    ("(str, rate)", lambda c: ("a", SR), "expected \\(samples, sample_rate\\)"),
    ("(PIL, label)", lambda c: (_pil(), 3), "expected \\(samples, sample_rate\\)"),
    ("3-tuple", lambda c: (tone(), SR, 1), "tuple of 3"),
    ("0-D array", lambda c: np.float32(0.5), "0-D array"),
    ("4-D array", lambda c: rgb_array()[None], "batch"),
    ("3-D array without a channel axis", lambda c: np.zeros((10, 10, 7), np.uint8), "1-4 channels"),
    ("object array", lambda c: np.array([object(), 1], dtype=object), "numbers"),
    ("string array", lambda c: np.array(["a", "b"]), "numbers"),
    ("int64 waveform", lambda c: np.arange(100), "ambiguous"),
    ("3-D waveform in a pair", lambda c: (np.zeros((2, 2, 2)), SR), "1-D"),
    ("zero-size image array", lambda c: np.zeros((0, 5, 3), np.uint8), "zero size"),
    ("empty waveform", lambda c: np.zeros(0, np.float32), "empty"),
    # --- 3. bytes and file objects by magic number
    *[
        (f"bytes: {name}", _const(data), modality)
        for name, data, modality in [
            ("PNG", PNG, IMG),
            ("JPEG", JPEG, IMG),
            ("GIF", image_bytes("GIF"), IMG),
            ("WEBP", image_bytes("WEBP"), IMG),
            ("BMP", image_bytes("BMP"), IMG),
            ("TIFF", image_bytes("TIFF"), IMG),
            ("ICO", image_bytes("ICO"), IMG),
            ("WAV", WAV, A),
            ("RF64", audio_bytes("RF64"), A),
            ("W64", audio_bytes("W64"), A),
            ("FLAC", audio_bytes("FLAC"), A),
            ("OGG", audio_bytes("OGG", "VORBIS"), A),
            ("MP3 frames", audio_bytes("MP3"), A),
            ("MP3 with ID3", id3v2_tag() + audio_bytes("MP3"), A),
            ("AIFF", audio_bytes("AIFF"), A),
            ("AU", audio_bytes("AU"), A),
            ("CAF", audio_bytes("CAF"), A),
            ("M4A ftyp", b"\0\0\0\x20ftypM4A \0\0\0\0M4A mp42isom" + b"\0" * 40, A),
            ("AVIF ftyp is an image", b"\0\0\0\x1cftypavif\0\0\0\0avifmif1" + b"\0" * 40, IMG),
            ("WebM", b"\x1a\x45\xdf\xa3" + b"\0" * 60, A),
        ]
    ],
    ("bytearray", lambda c: bytearray(PNG), IMG),
    ("memoryview", lambda c: memoryview(WAV), A),
    ("BytesIO", lambda c: io.BytesIO(PNG), IMG),
    ("BytesIO at its end", lambda c: _at_end(io.BytesIO(PNG)), IMG),
    ("binary file object", lambda c: open(c.dir / "sound.wav", "rb"), A),  # noqa: SIM115
    ("text-mode file object", lambda c: open(c.dir / "notes.txt"), "binary mode"),  # noqa: SIM115
    ("StringIO", lambda c: io.StringIO("hello"), "binary mode"),
    ("unknown bytes", lambda c: b"hello world, not media", "neither a recognizable"),
    ("empty bytes", lambda c: b"", "empty"),
    ("HTML bytes", lambda c: b"<html><body>404</body></html>", "neither a recognizable"),
    # --- 4. paths: content first, extension second
    ("str path to PNG", lambda c: str(c.dir / "photo.png"), IMG),
    ("Path to PNG", lambda c: c.dir / "photo.png", IMG),
    ("os.PathLike (not pathlib)", lambda c: _PathLike(str(c.dir / "sound.wav")), A),
    ("PNG content named .wav", lambda c: str(c.dir / "png_named.wav"), IMG),
    ("WAV content named .png", lambda c: c.dir / "wav_named.png", A),
    ("PNG without extension", lambda c: str(c.dir / "image_no_ext"), IMG),
    ("PPM: extension only", lambda c: str(c.dir / "pixmap.ppm"), IMG),
    ("str path to a text file is text", lambda c: str(c.dir / "notes.txt"), T),
    ("Path to a text file", lambda c: c.dir / "notes.txt", "neither an image nor audio"),
    ("Path to unknown bytes", lambda c: c.dir / "blob.bin", "neither an image nor audio"),
    ("str naming a directory is text", lambda c: str(c.dir / "folder.png"), T),
    ("Path to a directory", lambda c: c.dir / "folder.png", "directory"),
    ("Path to a missing file", lambda c: c.dir / "missing.png", "no such file"),
    ("str path with ~ of unknown user", lambda c: "~no_such_user_xyz/cat.png", T),
    # --- 5. URIs and URLs
    ("data: image/png", lambda c: data_uri(PNG, "image/png"), IMG),
    ("data: audio/wav", lambda c: data_uri(WAV, "audio/wav"), A),
    ("data: MIME wins over content", lambda c: data_uri(PNG, "audio/wav"), A),
    ("data: no MIME, PNG content", lambda c: "data:;base64," + b64(PNG), IMG),
    ("data: octet-stream, WAV content", lambda c: data_uri(WAV, "application/octet-stream"), A),
    ("data: plain text", lambda c: "data:,hello%20world", T),
    (
        "data: text/plain base64",
        lambda c: "data:text/plain;charset=utf-8;base64," + b64("héllo".encode()),
        T,
    ),
    (
        "data: URL-safe unpadded base64",
        lambda c: (
            "data:image/png;base64," + b64(PNG).replace("+", "-").replace("/", "_").rstrip("=")
        ),
        IMG,
    ),
    (
        "data: base64 with line breaks",
        lambda c: (
            "data:image/png;base64,"
            + "\n".join(b64(PNG)[i : i + 76] for i in range(0, len(b64(PNG)), 76))
        ),
        IMG,
    ),
    ("data: bad base64", lambda c: "data:image/png;base64,!!!notbase64", "base64"),
    ("data: truncated base64", lambda c: "data:image/png;base64,iVBORw0KG", "base64"),
    ("data: JSON", lambda c: "data:application/json,%7B%7D", "neither image, audio nor text"),
    ("'Data: 42 rows' is text", lambda c: "Data: 42 rows were dropped", T),
    ("'data:' alone is text", lambda c: "data:", T),
    ("file URL", lambda c: (c.dir / "photo.png").as_uri(), IMG),
    ("file URL, content first", lambda c: (c.dir / "wav_named.png").as_uri(), A),
    ("file:/ single slash", lambda c: "file:" + str(c.dir / "photo.png"), IMG),
    ("file URL to a directory", lambda c: c.dir.as_uri(), "directory"),
    ("file URL to a missing file", lambda c: (c.dir / "gone.png").as_uri(), "no such file"),
    ("file URL on another host", lambda c: "file://example.com/x.png", "another host"),
    ("'File:Cat.jpg' (wiki title) is text", lambda c: "File:Cat.jpg", T),
    ("http URL with .png is an image (no fetch)", lambda c: "http://192.0.2.1/a/cat.PNG?x=1", IMG),
    ("https URL with .mp3 is audio (no fetch)", lambda c: "https://192.0.2.1/song.mp3#t=3", A),
    ("URL followed by words is text", lambda c: "https://192.0.2.1/cat.png is my cat", T),
    ("ftp URL is text", lambda c: "ftp://192.0.2.1/cat.png", T),
    # --- 6. every other string is text
    ("sentence", lambda c: "a photo of a cat", T),
    ("empty string", lambda c: "", T),
    ("missing 'cat.jpg' is text", lambda c: "cat.jpg", T),
    ("numpy str", lambda c: np.str_("a cat"), T),
    ("string with NUL", lambda c: "a\0b.png", T),
    ("lone surrogate", lambda c: "bad \ud800 text", "not valid Unicode"),
    ("very long string", lambda c: "word " * 5000, T),
    # --- anything else
    ("None", lambda c: None, "unsupported input type NoneType"),
    ("int", lambda c: 3, "unsupported input type int"),
    ("float", lambda c: 0.5, "unsupported input type float"),
    ("bool", lambda c: True, "unsupported input type bool"),
    ("set", lambda c: {1, 2}, "unsupported input type set"),
    ("bare list", lambda c: [0.1, 0.2], "a list is not an input"),
    ("nested list", lambda c: [["a cat"]], "a list is not an input"),
    ("object", lambda c: object(), "unsupported input type object"),
    ("object whose attributes raise", lambda c: _Hostile(), "cannot be read|unsupported"),
    ("deep nesting", lambda c: _deep(5000), "nested too deeply"),
]


def _part(kind: str, url: str) -> dict[str, Any]:
    return {"type": kind, kind: {"url": url}}


def _pil() -> Any:
    from PIL import Image as PILImage

    return PILImage.fromarray(rgb_array())


def _at_end(stream: io.BytesIO) -> io.BytesIO:
    stream.seek(0, io.SEEK_END)
    return stream


def _deep(n: int) -> Any:
    item: Any = "x"
    for _ in range(n):
        item = Image(item)
    return item


class _PathLike(os.PathLike):
    def __init__(self, path: str) -> None:
        self.path = path

    def __fspath__(self) -> str:
        return self.path


class _Hostile:
    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"no {name} for you")

    def __repr__(self) -> str:
        raise RuntimeError("no repr either")


@pytest.mark.parametrize(("make", "expected"), [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_detection_rule(embedder: ClipClapEmbedder, ctx: Ctx, make, expected) -> None:
    item = make(ctx)
    try:
        if isinstance(expected, Modality):
            assert embedder.detect(item) is expected
        else:
            with pytest.raises(ClipClapInputError, match=expected) as info:
                embedder.detect(item)
            assert info.value.reason and info.value.item_description
    finally:
        if isinstance(item, io.IOBase):
            item.close()


STRICT_ROWS = [
    ("cat.jpg", "no such file exists"),
    ("holiday photos/beach.JPEG", "no such file exists"),
    ("song.mp3", "no such file exists"),
    ("a photo of a cat", Modality.TEXT),
    ("report.pdf", Modality.TEXT),  # not a media extension
    ("cat.jpg\nand more text", Modality.TEXT),  # multi-line: prose, not a path
]


@pytest.mark.parametrize(("text", "expected"), STRICT_ROWS)
def test_strict_paths(tiny_model_dir: Path, text: str, expected) -> None:
    strict = ClipClapEmbedder(tiny_model_dir, strict_paths=True)
    lax = ClipClapEmbedder(tiny_model_dir)
    assert lax.detect(text) is Modality.TEXT  # the default: a string is text unless a file
    if isinstance(expected, Modality):
        assert strict.detect(text) is expected
    else:
        with pytest.raises(ClipClapInputError, match=expected):
            strict.detect(text)
    assert strict.detect(Text(text)) is Modality.TEXT  # the escape hatch


def test_strict_paths_still_finds_files(tiny_model_dir: Path, ctx: Ctx) -> None:
    strict = ClipClapEmbedder(tiny_model_dir, strict_paths=True)
    assert strict.detect(str(ctx.dir / "photo.png")) is Modality.IMAGE


def test_remote_disabled(tiny_model_dir: Path) -> None:
    e = ClipClapEmbedder(tiny_model_dir, allow_remote=False)
    for item in (
        "http://192.0.2.1/cat.png",
        "https://192.0.2.1/x",
        Image("https://192.0.2.1/x"),
        {"type": "image_url", "image_url": {"url": "http://192.0.2.1/cat.png"}},
        {"type": "audio", "url": "https://192.0.2.1/a.wav"},
    ):
        with pytest.raises(ClipClapInputError, match=r"allow_remote=False"):
            e.detect(item)
        with pytest.raises(ClipClapInputError, match=r"input 1 .*allow_remote=False"):
            e.embed(["fine", item])
    assert e.detect("see https://192.0.2.1/cat.png for details") is Modality.TEXT


@pytest.mark.parametrize(
    ("item", "forced", "message"),
    [
        ({"type": "text", "text": "x"}, "image", "text part is text, but image"),
        (Text("x"), "audio", "Text\\(...\\) is text, but audio"),
        ((tone(), SR), "image", "pair is audio, but image"),
        (b"\x89PNG\r\n\x1a\n", "text", "cannot be embedded as text"),
        (np.zeros((4, 4), np.uint8), "text", "cannot be embedded as text"),
        ({"type": "image_url", "image_url": {"url": "x.png"}}, "audio", "image, but audio"),
    ],
)
def test_modality_argument_conflicts(embedder, item, forced: str, message: str) -> None:
    with pytest.raises(ClipClapInputError, match=message):
        embedder.embed([item], modality=forced)


def test_modality_argument_forces_the_call(embedder: ClipClapEmbedder, ctx: Ctx) -> None:
    path = str(ctx.dir / "photo.png")
    as_text = embedder.embed([path, "x"], modality="text")
    np.testing.assert_array_equal(as_text, embedder.embed_text([path, "x"]))
    # WAV content, .png name: forcing image makes it an image, which it is not
    with pytest.raises(
        ClipClapInputError, match=r"input 0 .*not a recognizable image \(the data is audio"
    ):
        embedder.embed([ctx.dir / "wav_named.png"], modality=Modality.IMAGE)
    for photo in (ctx.dir / "photo.png", (ctx.dir / "photo.png").read_bytes()):
        with pytest.raises(
            ClipClapInputError, match=r"not audio: the data is an image \(image/png"
        ):
            embedder.embed([Audio(photo)])  # not "no ffmpeg installed"
    with pytest.raises(ValueError, match="unknown modality"):
        embedder.embed(["x"], modality="smell")


def test_sniffing_needs_more_than_a_prefix() -> None:
    assert sniff_bytes(b"RIFF\0\0\0\0ACON") is None  # RIFF, but neither WAVE, WEBP nor AVI
    assert sniff_bytes(b"BM") is None  # too short to be a BMP header
    assert sniff_bytes(b"\xff\xfb") is None  # half an MPEG frame header
    assert sniff_bytes(b"\xff\xff\xff\xff") is None  # reserved MPEG fields
    assert sniff_bytes(b"\0\0\1\0\0\0") is None  # an ICO header with no images
    assert sniff_bytes(b"") is None
    # FF FE is an MPEG-1 layer I header with CRC, and the UTF-16 byte order mark
    assert sniff_bytes("Hello, plain notes".encode("utf-16-le").join([b"\xff\xfe", b""])) is None
    assert sniff_bytes(b"\xff\xfe\x48\x10" + bytes(60)) == (Modality.AUDIO, "audio/mpeg")
