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
from typing import Any, Literal

import numpy as np

from .errors import ClipClapInputError
from .model import AudioSettings

LongAudioPolicy = Literal["mean", "first", "center"]
LONG_AUDIO_POLICIES: tuple[str, ...] = ("mean", "first", "center")
DEFAULT_MAX_SECONDS = 3600.0
_CHUNK = 8  # clips per STFT block: bounds the float64 frame buffer to ~65 MB


def _pcm_to_float(samples: np.ndarray) -> np.ndarray:
    """Integer PCM to float32 in [-1, 1) as soundfile scales it; floats as float32."""
    if np.issubdtype(samples.dtype, np.floating):
        return samples.astype(np.float32, copy=False)
    if samples.dtype == np.uint8:
        return ((samples.astype(np.float32) - 128.0) / 128.0).astype(np.float32)
    if np.issubdtype(samples.dtype, np.signedinteger):
        scale = float(2 ** (8 * samples.dtype.itemsize - 1))
        return (samples.astype(np.float64) / scale).astype(np.float32)
    if samples.dtype == np.bool_:
        return samples.astype(np.float32)
    raise ClipClapInputError(f"audio samples must be numbers, got dtype {samples.dtype}")


def to_mono(samples: np.ndarray) -> np.ndarray:
    """Mono float32 from a 1-D clip, or a 2-D clip whose channel axis is the shorter one."""
    arr = _pcm_to_float(np.asarray(samples))
    if arr.ndim == 2:
        if arr.shape[0] > arr.shape[1]:  # (frames, channels) -> (channels, frames)
            arr = arr.T
        arr = np.mean(arr, axis=0) if arr.shape[0] > 1 else arr[0]  # librosa.to_mono
    elif arr.ndim != 1:
        raise ClipClapInputError(
            f"a waveform must be 1-D (mono) or 2-D (multichannel), got shape {tuple(arr.shape)}"
        )
    return np.ascontiguousarray(arr, dtype=np.float32)


def resample(mono: np.ndarray, sample_rate: int, target_rate: int) -> np.ndarray:
    """soxr high-quality resampling with librosa's length fix (ceil(n * ratio) samples)."""
    if sample_rate == target_rate:
        return mono
    import soxr

    out = soxr.resample(mono, sample_rate, target_rate, quality="soxr_hq")
    ratio = float(target_rate) / sample_rate  # librosa's order of operations, for its rounding
    n = int(np.ceil(mono.shape[-1] * ratio))
    if out.shape[-1] > n:
        out = out[:n]
    elif out.shape[-1] < n:
        out = np.pad(out, (0, n - out.shape[-1]))
    return np.asarray(out, dtype=np.float32)


def check_waveform(mono: np.ndarray, sample_rate: int, max_seconds: float | None) -> None:
    if mono.size == 0:
        raise ClipClapInputError("the audio is empty (no samples)")
    if max_seconds is not None and mono.size > max_seconds * sample_rate:
        raise ClipClapInputError(
            f"the audio lasts {mono.size / sample_rate:,.1f} s, over the limit of "
            f"{max_seconds:,.0f} s (raise max_audio_seconds to allow it)"
        )
    if not np.all(np.isfinite(mono)):
        raise ClipClapInputError("the audio holds NaN or infinite samples")


def decode_audio(
    source: bytes | Path | str, *, max_seconds: float | None = DEFAULT_MAX_SECONDS
) -> tuple[np.ndarray, int]:
    """Decode an audio file (or its bytes) into (samples (channels, frames) float32, rate)."""
    import soundfile as sf

    stream: Any = io.BytesIO(source) if isinstance(source, bytes | bytearray) else source
    try:
        with sf.SoundFile(stream) as f:
            rate, frames = f.samplerate, f.frames
            if rate <= 0:
                raise ClipClapInputError("the audio file declares no sample rate")
            if max_seconds is not None and frames > max_seconds * rate:
                raise ClipClapInputError(
                    f"the audio lasts {frames / rate:,.1f} s, over the limit of "
                    f"{max_seconds:,.0f} s (raise max_audio_seconds to allow it)"
                )
            data = f.read(dtype="float32", always_2d=True)
        return np.ascontiguousarray(data.T), int(rate)
    except ClipClapInputError:
        raise
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError, TypeError):
        pass
    return _decode_with_librosa(source, max_seconds)


def _decode_with_librosa(source: bytes | Path | str, max_seconds: float | None):
    """Fallback for formats libsndfile cannot read (uses audioread/ffmpeg when present)."""
    import tempfile
    import warnings

    try:
        import librosa
    except ImportError:  # pragma: no cover - librosa is a core dependency
        raise ClipClapInputError("not a recognizable audio file") from None
    tmp: Path | None = None
    try:
        path = source
        if isinstance(source, bytes | bytearray):
            fd, name = tempfile.mkstemp(suffix=".audio")
            tmp = Path(name)
            with os.fdopen(fd, "wb") as f:
                f.write(source)
            path = name
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            y, rate = librosa.load(path, sr=None, mono=False, duration=max_seconds)
    except Exception:
        raise ClipClapInputError(
            "not a decodable audio file (corrupt, truncated, or a format without a decoder here)"
        ) from None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
    y = np.atleast_2d(np.asarray(y, dtype=np.float32))
    return y, int(rate)


def window_bounds(n: int, window: int, hop: int) -> list[tuple[int, int]]:
    """[start, end) sample ranges of consecutive windows covering ``n`` samples.

    Windows start every ``hop`` samples; the last one ends at the clip's end (it may be
    shorter), and no window lies wholly inside the one before it.
    """
    if n <= window:
        return [(0, n)]
    bounds = []
    start = 0
    while True:
        end = min(start + window, n)
        bounds.append((start, end))
        if end >= n:
            return bounds
        start += hop


class AudioPreprocessor:
    """48 kHz mono waveforms -> CLAP ``input_features`` (B, 1, frames, mels) float32."""

    def __init__(self, settings: AudioSettings) -> None:
        self.settings = settings

    @cached_property
    def mel_filters(self) -> np.ndarray:
        """Slaney-scale, Slaney-normalized mel filter bank, (n_fft // 2 + 1, n_mels) float64."""
        s = self.settings
        return slaney_mel_filters(s.sample_rate, s.n_fft, s.n_mels, s.fmin, s.fmax)

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
        spectrum = np.fft.rfft(frames * self.window, axis=-1).astype(np.complex64)
        power = np.abs(spectrum, dtype=np.float64) ** 2
        mel = np.maximum(1e-10, power @ self.mel_filters)
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
