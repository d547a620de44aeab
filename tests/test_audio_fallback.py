"""Formats libsndfile cannot read go through audioread's ffmpeg backend, as librosa.load does.

No ffmpeg is installed here, so a stand-in ``ffmpeg`` (a small Python script first on PATH)
speaks the command line and stderr format audioread's ffmpeg backend parses: ``-version``,
then ``-i FILE -f s16le -`` printing the stream info on stderr and 16-bit PCM on stdout. It
decodes a made-up container (``FAKECODC``, rate, channels, PCM), so the files are ones
libsndfile refuses. The reference is ``librosa.load`` reading the same files through the same
stand-in: an independent implementation of the same fallback.
"""

from __future__ import annotations

import os
import struct
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from clipclap_integrations import ClipClapEmbedder, ClipClapInputError
from clipclap_integrations.media.audio import decode_audio

STAND_IN = """#!{python}
import struct, sys
args = sys.argv[1:]
if args == ["-version"]:
    print("ffmpeg version 0.0-stand-in")
    sys.exit(0)
path = args[args.index("-i") + 1]
try:
    data = open(path, "rb").read()
except OSError:
    sys.stderr.write(path + ": No such file or directory\\n")
    sys.exit(1)
if not data.startswith(b"FAKECODC"):
    sys.stderr.write(path + ": Invalid data found when processing input\\n")
    sys.exit(1)
rate, channels = struct.unpack("<II", data[8:16])
pcm = data[16:]
seconds = len(pcm) / (2 * channels * rate)
sys.stderr.write(
    "Input #0, fake, from '%s':\\n"
    "  Duration: %02d:%02d:%05.2f, start: 0.000000, bitrate: 256 kb/s\\n"
    "  Stream #0:0: Audio: aac (LC), %d Hz, %s, fltp, 128 kb/s\\n"
    % (path, seconds // 3600, seconds % 3600 // 60, seconds % 60, rate,
       "stereo" if channels == 2 else "mono")
)
sys.stderr.flush()
out = sys.stdout.buffer
for at in range(0, len(pcm), 4096):
    out.write(pcm[at:at + 4096])
"""


def _container(samples: np.ndarray, rate: int) -> bytes:
    """(frames, channels) float in [-1, 1] -> the stand-in's container of int16 PCM."""
    pcm = np.round(np.clip(samples, -1, 1) * 32767).astype("<i2")
    return b"FAKECODC" + struct.pack("<II", rate, samples.shape[1]) + pcm.tobytes()


def _flush_backends() -> None:
    import audioread

    audioread.available_backends(flush_cache=True)


@pytest.fixture
def stand_in_ffmpeg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    tool = bindir / "ffmpeg"
    tool.write_text(STAND_IN.format(python=sys.executable))
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", str(bindir) + os.pathsep + os.environ.get("PATH", ""))
    _flush_backends()
    yield tool
    monkeypatch.undo()
    _flush_backends()


@pytest.fixture
def clips(tmp_path: Path) -> dict[str, Path]:
    rng = np.random.default_rng(7)
    t = np.arange(int(22050 * 2.5)) / 22050
    left = 0.4 * np.sin(2 * np.pi * (220 + 300 * t) * t)
    right = 0.3 * np.sin(2 * np.pi * 660 * t) + 0.05 * rng.standard_normal(t.size)
    stereo = _container(np.stack([left, right], axis=1), 22050)
    mono = _container(0.5 * np.sin(2 * np.pi * 440 * np.arange(44100 * 12) / 44100)[:, None], 44100)
    out = {}
    for name, data in (("stereo.m4a", stereo), ("long_mono.m4a", mono)):
        out[name] = tmp_path / name
        out[name].write_bytes(data)
    (tmp_path / "garbage.m4a").write_bytes(b"\x00\x01not audio at all" * 100)
    out["garbage.m4a"] = tmp_path / "garbage.m4a"
    return out


def _librosa(path: Path) -> np.ndarray:
    import librosa

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "PySoundFile failed. Trying audioread instead."
        wave, rate = librosa.load(path, sr=48_000, mono=True)
    assert rate == 48_000
    return wave


def test_libsndfile_refuses_these_files(clips: dict[str, Path]) -> None:
    import soundfile as sf

    with pytest.raises(sf.LibsndfileError):
        sf.info(str(clips["stereo.m4a"]))


def test_decoded_like_librosa_load(
    stand_in_ffmpeg: Path, clips: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    for name in ("stereo.m4a", "long_mono.m4a"):
        ours, rate = decode_audio(clips[name], target_rate=48_000)
        reference = _librosa(clips[name])
        assert rate == 48_000 and ours.shape == (1, reference.shape[0])
        np.testing.assert_allclose(ours[0], reference, atol=1e-6)
        # bytes take the same road (through a temporary file)
        from_bytes, _ = decode_audio(clips[name].read_bytes(), target_rate=48_000)
        np.testing.assert_array_equal(from_bytes, ours)
        assert list(scratch.iterdir()) == []  # the temporary copy is gone


def test_embedded_like_the_librosa_waveform(
    stand_in_ffmpeg: Path, clips: dict[str, Path], tiny_model_dir: Path
) -> None:
    embedder = ClipClapEmbedder(tiny_model_dir)
    paths = [clips["stereo.m4a"], clips["long_mono.m4a"]]
    ours = embedder.embed_audio(paths)
    reference = embedder.embed_audio([(_librosa(p), 48_000) for p in paths])
    np.testing.assert_allclose(ours, reference, atol=1e-6)
    # mixed lists route by extension: the path string is audio, the caption text
    mixed = embedder.embed([str(clips["stereo.m4a"]), "a violin"])
    np.testing.assert_allclose(mixed[0], ours[0], atol=1e-6)


def test_undecodable_file_is_named(
    stand_in_ffmpeg: Path, clips: dict[str, Path], tiny_model_dir: Path
) -> None:
    embedder = ClipClapEmbedder(tiny_model_dir)
    with pytest.raises(ClipClapInputError) as info:
        embedder.embed_audio([clips["stereo.m4a"], clips["garbage.m4a"]])
    assert info.value.index == 1
    assert "garbage.m4a" in str(info.value) and "not a decodable audio file" in str(info.value)


def test_length_limit_holds_while_streaming(stand_in_ffmpeg: Path, clips: dict[str, Path]) -> None:
    with pytest.raises(ClipClapInputError, match="max_audio_seconds"):
        decode_audio(clips["long_mono.m4a"], max_seconds=5)


def test_without_a_decoder_the_error_says_what_is_missing(
    tmp_path: Path, clips: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import audioread

    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    _flush_backends()
    try:
        from audioread import rawread

        others = [b for b in audioread.available_backends() if b is not rawread.RawAudioFile]
        if others:
            pytest.skip(f"another audioread backend is installed here: {others}")
        with pytest.raises(ClipClapInputError, match="no ffmpeg or GStreamer"):
            decode_audio(clips["stereo.m4a"])
    finally:
        monkeypatch.undo()
        _flush_backends()
