"""Audio preprocessing: decode -> mono -> 48 kHz -> 10 s windows -> CLAP log-mel features.

Matches ``librosa.load(path, sr=48000, mono=True)`` followed by ``transformers``'
``ClapFeatureExtractor`` (repeat-pad, reflect-padded periodic-Hann STFT rounded to complex64,
Slaney mel 50-14000 Hz, 10*log10), computed for a whole batch at once. Longer clips are cut
into windows deterministically (the reference crops at random).
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np

from ..errors import ClipClapInputError
from ..inputs.arrays import (
    check_sample_rate,
    check_samples,
    is_supported_rate,
)
from ..inputs.sniff import HEAD_BYTES, sniff_bytes
from ..runtime.model import AudioSettings
from ..types import Modality
from .failures import decoding
from .integrity import mpeg_stream_problem, reader
from .pcm import MonoStream, mix_to_mono, resample, to_mono, too_long
from .pcm import pcm_to_float as pcm_to_float  # re-exported: callers read it here
from .video import decode_with_av

LongAudioPolicy = Literal["mean", "first", "center"]
LONG_AUDIO_POLICIES: tuple[str, ...] = ("mean", "first", "center")
DEFAULT_MAX_SECONDS = 3600.0
UNDECODABLE = "not a decodable audio file (corrupt, truncated, or a format without a decoder here)"
_CHUNK = 8  # clips per STFT block: bounds the float64 frame buffer to ~65 MB


def check_waveform(mono: np.ndarray, sample_rate: int, max_seconds: float | None) -> None:
    """Refuse audio the model cannot meaningfully embed: empty, too long, NaN or infinite,
    absurdly loud (beyond any PCM scale), digitally silent, or at an impossible rate."""
    check_sample_rate(sample_rate)
    check_samples(mono)
    if max_seconds is not None and mono.size > max_seconds * sample_rate:
        raise too_long(max_seconds, mono.size / sample_rate)
    peak = float(np.max(np.abs(mono)))  # NaN if any sample is NaN
    if not np.isfinite(peak):
        raise ClipClapInputError("the audio holds NaN or infinite samples")
    if peak > 2.0**31:
        raise ClipClapInputError(
            f"the audio has samples up to {peak:.3g}, beyond any PCM scale (give float samples "
            "in [-1, 1])"
        )
    if peak == 0.0:
        raise ClipClapInputError("the audio is silent (every sample is 0)")


def decode_audio(
    source: bytes | Path | str,
    *,
    max_seconds: float | None = DEFAULT_MAX_SECONDS,
    target_rate: int | None = None,
) -> tuple[np.ndarray, int]:
    """Decode an audio file (or its bytes) into (samples (1, frames) float32, rate).

    The result is already mono (channels averaged as ``librosa.to_mono`` does), read block by
    block so memory holds one mono copy, not every channel. With ``target_rate`` it is also
    resampled, block by block, to that rate (bit-identical to resampling it whole with soxr),
    so a long high-rate file never sits in memory at its own rate. Refuses files over
    ``max_seconds`` by their header, before reading, and stops reading a file that lied.
    Formats libsndfile cannot read (MP4/M4A, AAC, WebM/Opus, the soundtrack of a video) are
    decoded with PyAV when the ``video`` extra is installed, else go to ``audioread`` (ffmpeg
    or GStreamer) if that finds a backend.
    """
    import soundfile as sf

    block_frames = 1 << 18
    unknown_length = 1 << 62  # libsndfile reports SF_COUNT_MAX for streams of unknown length
    in_memory = isinstance(source, bytes | bytearray | memoryview)
    encoded = cast(bytes, source)  # read only when in_memory
    try:
        with io.BytesIO(encoded) if in_memory else open(source, "rb") as raw:
            kind = sniff_bytes(raw.read(HEAD_BYTES))
            if kind is not None and kind[1] == "audio/mpeg":
                problem = mpeg_stream_problem(*reader(raw))
                if problem is not None:
                    raise ClipClapInputError(problem)
    except OSError as exc:
        raise ClipClapInputError(f"cannot read the file ({exc})") from None

    class _Bytes(io.BytesIO):
        """libsndfile's virtual IO may ask for a seek before the start; an exception in that
        cffi callback would be printed to stderr ("Exception ignored ..."), so stay put."""

        def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
            try:
                return super().seek(offset, whence)
            except (ValueError, OverflowError):
                return self.tell()

    stream: Any = _Bytes(encoded) if in_memory else source
    try:
        f = sf.SoundFile(stream)
    except Exception:
        if kind is not None and kind[0] is Modality.IMAGE:  # Audio(a photo), say so
            reason = f"not audio: the data is an {kind[0].value} ({kind[1]})"
            raise ClipClapInputError(reason) from None
        # PyAV only for data that sniffs as a known format: FFmpeg would otherwise probe
        # anything (8 GiB of zeros named .mp3: read to the end in search of a frame)
        decoded = None if kind is None else decode_with_av(source, max_seconds, target_rate)
        if decoded is not None:
            return decoded
        return _decode_with_audioread(source, max_seconds, target_rate)
    with decoding("audio", lambda exc: f"corrupt or truncated audio ({exc})"), f:
        rate, channels, frames = int(f.samplerate), int(f.channels), int(f.frames)
        if not is_supported_rate(rate):
            raise ClipClapInputError(f"unsupported sample rate {rate} Hz in the file header")
        if channels < 1:
            raise ClipClapInputError("the audio file declares no channels")
        limit = None if max_seconds is None else int(max_seconds * rate)
        if max_seconds is not None and limit is not None and limit < frames < unknown_length:
            raise too_long(max_seconds, frames / rate)
        resampling = MonoStream(rate, target_rate, max_seconds)
        pieces: list[np.ndarray] = []
        while True:
            block = f.read(block_frames, dtype="float32", always_2d=True)
            if block.shape[0] == 0:
                break
            # librosa.to_mono over the (channels, frames) view of what soundfile read
            pieces.append(resampling.push(mix_to_mono(block.T)))
        pieces.append(resampling.flush())
    total = resampling.total
    if 0 < frames < unknown_length and total < frames - max(frames // 100, 4096):
        # libsndfile trims a WAV's claim to the bytes present, so this is a compressed stream
        # (FLAC, MP3, Ogg) that ended, or broke, long before its header said it would.
        raise ClipClapInputError(
            f"corrupt or truncated audio (decoded {total:,} of the {frames:,} frames its "
            "header declares)"
        )
    wave = resampling.finish(pieces)
    del pieces
    return wave[None, :], resampling.out_rate


def _decode_with_audioread(
    source: bytes | Path | str, max_seconds: float | None, target_rate: int | None = None
) -> tuple[np.ndarray, int]:
    """Formats libsndfile cannot read (MP4/AAC, WebM, ...) through audioread's ffmpeg or
    GStreamer backends, exactly as ``librosa.load`` reads them.

    audioread's pure-Python backend is skipped (it reads only what libsndfile already read),
    so without ffmpeg or GStreamer this fails at once, quietly, with a clear error.
    """
    import tempfile

    try:
        import audioread
        from audioread import rawread

        backends = [b for b in audioread.available_backends() if b is not rawread.RawAudioFile]
    except Exception:
        backends = []
    if not backends:
        raise ClipClapInputError(
            "not an audio file this installation can decode (libsndfile cannot read it, and "
            "no ffmpeg or GStreamer is installed for other formats)"
        )
    tmp: Path | None = None
    try:
        with decoding("audio", lambda exc: UNDECODABLE):
            path: Any = source
            if isinstance(source, bytes | bytearray):
                fd, name = tempfile.mkstemp(suffix=".audio")
                tmp = Path(name)
                with os.fdopen(fd, "wb") as out:
                    out.write(source)
                path = name
            pieces: list[np.ndarray] = []
            with audioread.audio_open(os.fspath(path), backends=backends) as f:
                rate, channels = int(f.samplerate), int(f.channels)
                if not is_supported_rate(rate) or channels < 1:
                    raise ClipClapInputError(f"unsupported audio stream ({rate} Hz, {channels} ch)")
                limit = None if max_seconds is None else int(max_seconds * rate) * channels
                total = 0
                for buffer in f:  # 16-bit little-endian PCM, interleaved
                    chunk = np.frombuffer(buffer, "<i2").astype(np.float32) * np.float32(1 / 32768)
                    total += chunk.size
                    if max_seconds is not None and limit is not None and total > limit:
                        raise too_long(max_seconds)
                    pieces.append(chunk)
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
    y = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
    y = y[: y.size - y.size % channels].reshape(-1, channels).T  # (channels, frames)
    if target_rate is not None and target_rate != rate:
        return resample(to_mono(y), rate, target_rate)[None, :], target_rate
    return np.ascontiguousarray(y), rate


def window_bounds(n: int, window: int, hop: int) -> list[tuple[int, int]]:
    """[start, end) sample ranges of windows covering ``n`` samples.

    A clip of at most one window is one window. A longer one gets full windows only, one
    every ``hop`` samples; the last is moved back to end at the clip's end (overlapping the
    one before) rather than left as a short scrap to be padded, and a tail of at most 1 % of
    a window is not given a window of its own (resampling rounds: 10 s at 44.1 kHz makes
    480,001 samples at 48 kHz, which is one window, not a window and a 1-sample scrap).
    """
    if n <= window:
        return [(0, n)]
    slack = window // 100
    bounds = []
    start = 0
    while start + window < n - slack:
        bounds.append((start, start + window))
        start += hop
    start = min(start, n - window)
    bounds.append((start, start + window))
    return bounds


class AudioPreprocessor:
    """48 kHz mono waveforms -> CLAP ``input_features`` (B, 1, frames, mels) float32.

    The front end is one vectorized computation per block of clips: one reflect pad, one
    strided view of every frame, one float64 rFFT, then the mel projection filter by filter
    over the few bins each triangle covers (most of the 513 bins lie above 14 kHz or under
    one filter only). No BLAS call: BLAS would start a thread pool of its own that competes
    with onnxruntime's for the cores while the model runs. The result is bit-identical to the
    dense ``ClapFeatureExtractor`` computation.
    """

    def __init__(self, settings: AudioSettings) -> None:
        self.settings = settings

    @cached_property
    def mel_filters(self) -> np.ndarray:
        """Slaney-scale, Slaney-normalized mel filter bank, (n_fft // 2 + 1, n_mels) float64."""
        s = self.settings
        return slaney_mel_filters(s.sample_rate, s.n_fft, s.n_mels, s.fmin, s.fmax)

    @cached_property
    def _mel_bands(self) -> tuple[int, int, tuple[tuple[int, int, np.ndarray], ...]]:
        """The bins any filter uses, [lo, hi), and per filter its (start, end, weights)
        relative to ``lo``."""
        filters = self.mel_filters
        used = np.flatnonzero(np.any(filters != 0.0, axis=1))
        lo, hi = (int(used[0]), int(used[-1]) + 1) if used.size else (0, 0)
        bands = []
        for m in range(filters.shape[1]):
            nonzero = np.flatnonzero(filters[:, m])
            a, b = (int(nonzero[0]), int(nonzero[-1]) + 1) if nonzero.size else (lo, lo)
            bands.append((a - lo, b - lo, np.ascontiguousarray(filters[a:b, m])))
        return lo, hi, tuple(bands)

    @cached_property
    def window(self) -> np.ndarray:
        return np.hanning(self.settings.n_fft + 1)[:-1]  # periodic Hann

    def prepare(self, mono: np.ndarray, sample_rate: int) -> np.ndarray:
        """A mono clip at any rate -> float32 at the model's rate."""
        return resample(mono, sample_rate, self.settings.sample_rate)

    def windows(self, wave: np.ndarray, policy: LongAudioPolicy) -> list[np.ndarray]:
        """The model-length pieces of one 48 kHz clip to embed under a long-audio policy."""
        size = self.settings.max_samples
        if wave.shape[0] <= size:
            return [wave]
        if policy == "first":
            return [wave[:size]]
        if policy == "center":
            start = (wave.shape[0] - size) // 2
            return [wave[start : start + size]]
        return [wave[a:b] for a, b in window_bounds(wave.shape[0], size, size)]

    def fit(self, wave: np.ndarray) -> np.ndarray:
        """Repeat-pad a clip of at most the model length to exactly that length, in float64."""
        size = self.settings.max_samples
        w = np.asarray(wave, dtype=np.float64)
        if w.shape[0] > size:
            raise ValueError(f"a clip of {w.shape[0]} samples is longer than {size}")
        if w.shape[0] < size:
            w = np.tile(w, size // w.shape[0])
            w = np.pad(w, (0, size - w.shape[0]))
        return w

    def __call__(self, waves: Sequence[np.ndarray]) -> np.ndarray:
        """Features for clips of at most the model length (10 s)."""
        s = self.settings
        out = np.empty((len(waves), 1, s.frames, s.n_mels), dtype=np.float32)
        for first in range(0, len(waves), _CHUNK):
            block = np.stack([self.fit(w) for w in waves[first : first + _CHUNK]])
            out[first : first + block.shape[0], 0] = self.log_mel(block)
        return out

    def log_mel(self, block: np.ndarray) -> np.ndarray:
        """(B, samples) float64 -> (B, frames, mels) float32, one batched STFT."""
        s = self.settings
        half = s.n_fft // 2
        padded = np.pad(block, ((0, 0), (half, half)), mode="reflect")
        frames = np.lib.stride_tricks.sliding_window_view(padded, s.n_fft, axis=1)[
            :, :: s.hop_length
        ]
        lo, hi, bands = self._mel_bands
        # Rounded to complex64 as the reference does, then |X|^2 in float64.
        spectrum = np.fft.rfft(frames * self.window, axis=-1)[..., lo:hi].astype(np.complex64)
        power = np.abs(spectrum, dtype=np.float64)
        power *= power
        mel = np.empty((*power.shape[:-1], len(bands)), dtype=np.float64)
        for m, (a, b, weights) in enumerate(bands):
            np.einsum("...k,k->...", power[..., a:b], weights, out=mel[..., m])
        np.maximum(mel, 1e-10, out=mel)
        return (10.0 * np.log10(mel)).astype(np.float32)


def _hz_to_mel(freq: np.ndarray) -> np.ndarray:
    freq = np.asarray(freq, dtype=np.float64)
    mels = 3.0 * freq / 200.0
    log_region = freq >= 1000.0
    mels[log_region] = 15.0 + np.log(freq[log_region] / 1000.0) * (27.0 / np.log(6.4))
    return mels


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    mels = np.asarray(mels, dtype=np.float64)
    freq = 200.0 * mels / 3.0
    log_region = mels >= 15.0
    freq[log_region] = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mels[log_region] - 15.0))
    return freq


def slaney_mel_filters(
    sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float
) -> np.ndarray:
    """Triangular Slaney mel filters with Slaney area normalization, (bins, mels) float64.

    Equal to ``librosa.filters.mel(..., htk=False, norm="slaney").T``.
    """
    bins = n_fft // 2 + 1
    mel_points = np.linspace(
        _hz_to_mel(np.array([fmin]))[0], _hz_to_mel(np.array([fmax]))[0], n_mels + 2
    )
    hz_points = _mel_to_hz(mel_points)
    fft_freqs = np.linspace(0, sample_rate // 2, bins)
    diff = np.diff(hz_points)
    slopes = hz_points[None, :] - fft_freqs[:, None]
    down = -slopes[:, :-2] / diff[:-1]
    up = slopes[:, 2:] / diff[1:]
    filters = np.maximum(0.0, np.minimum(down, up))
    filters *= (2.0 / (hz_points[2 : n_mels + 2] - hz_points[:n_mels]))[None, :]
    return filters


def duration_windows(
    n: int, rate: int, window_s: float, hop_s: float | None
) -> list[tuple[int, int]]:
    """Sample ranges for ``embed_audio_segments``: windows of ``window_s`` every ``hop_s``."""
    if not math.isfinite(window_s) or window_s <= 0:
        raise ValueError(f"window_s must be a positive number of seconds, got {window_s!r}")
    hop_s = window_s if hop_s is None else hop_s
    if not math.isfinite(hop_s) or hop_s <= 0:
        raise ValueError(f"hop_s must be a positive number of seconds, got {hop_s!r}")
    window = max(1, round(window_s * rate))
    hop = max(1, round(hop_s * rate))
    return window_bounds(n, window, hop)
