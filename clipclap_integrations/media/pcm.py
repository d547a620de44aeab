"""Decoded samples -> mono float32 at the model's rate: the one conversion every decoder's
output goes through (soundfile, PyAV, audioread, a caller's waveform), so the same samples
give bit-identical features whatever container they came in."""

from __future__ import annotations

import numpy as np

from ..errors import ClipClapInputError
from ..inputs.arrays import check_sample_dtype, check_samples, numeric_array


def pcm_to_float(samples: np.ndarray) -> np.ndarray:
    """Integer PCM to float32 in [-1, 1) as soundfile scales it (uint8 is offset binary);
    floats as float32. Which sample types are accepted is ``check_sample_dtype``'s rule."""
    dtype = samples.dtype
    check_sample_dtype(dtype)
    if dtype.kind == "f":
        return samples.astype(np.float32, copy=False)
    if dtype == np.uint8:
        return ((samples.astype(np.float32) - 128.0) / 128.0).astype(np.float32)
    if dtype.kind in "iu":  # int8, int16, int32
        scale = float(2 ** (8 * dtype.itemsize - 1))
        return (samples.astype(np.float64) / scale).astype(np.float32)
    return samples.astype(np.float32)  # bool


def to_mono(samples: np.ndarray) -> np.ndarray:
    """Mono float32 from a 1-D clip, or a 2-D clip whose channel axis is the shorter one."""
    arr = numeric_array(samples, "audio samples")
    check_samples(arr)
    arr = pcm_to_float(arr)
    if arr.ndim == 2:
        if arr.shape[0] > arr.shape[1]:  # (frames, channels) -> (channels, frames)
            arr = arr.T
        arr = np.mean(arr, axis=0) if arr.shape[0] > 1 else arr[0]  # librosa.to_mono
    return np.ascontiguousarray(arr, dtype=np.float32)


def resample(mono: np.ndarray, sample_rate: int, target_rate: int) -> np.ndarray:
    """soxr high-quality resampling with librosa's length fix (ceil(n * ratio) samples)."""
    if sample_rate == target_rate:
        return mono
    import soxr

    out = soxr.resample(mono, sample_rate, target_rate, quality="soxr_hq")
    return librosa_length(out, mono.shape[-1], sample_rate, target_rate)


def librosa_length(wave: np.ndarray, frames: int, rate: int, target_rate: int) -> np.ndarray:
    """``wave`` cut or padded to librosa's length after resampling: ceil(frames * ratio)."""
    n = int(np.ceil(frames * (float(target_rate) / rate)))  # librosa's order of operations
    wave = wave[:n] if wave.shape[-1] >= n else np.pad(wave, (0, n - wave.shape[-1]))
    return np.asarray(wave, dtype=np.float32)


def too_long(max_seconds: float, seconds: float | None = None) -> ClipClapInputError:
    """The error for audio over ``max_audio_seconds``; ``seconds``: its length, when known."""
    if seconds is None:
        return ClipClapInputError(
            f"the audio lasts over {max_seconds:,.0f} s, the limit (max_audio_seconds)"
        )
    return ClipClapInputError(
        f"the audio lasts {seconds:,.1f} s, over the limit of {max_seconds:,.0f} s "
        "(max_audio_seconds)"
    )


def mix_to_mono(block: np.ndarray) -> np.ndarray:
    """(channels, frames) float32 -> (frames,) float32 by channel mean (``librosa.to_mono``)."""
    return block[0].copy() if block.shape[0] == 1 else np.mean(block, axis=0)


class MonoStream:
    """Mono blocks at ``rate`` in, pieces at ``target_rate`` out, block by block.

    soxr's stream resampler gives the same samples as resampling the whole clip at once, so
    a long file never needs to sit in memory at its own rate; ``finish`` applies librosa's
    length rule to the concatenated pieces. Refuses more than ``max_seconds`` as it goes.
    """

    def __init__(self, rate: int, target_rate: int | None, max_seconds: float | None) -> None:
        self.rate = rate
        self.out_rate = target_rate or rate
        self.max_seconds = max_seconds
        self.limit = None if max_seconds is None else int(max_seconds * rate)
        self.total = 0  # input frames seen
        self.resampler = None
        if self.out_rate != rate:
            import soxr

            self.resampler = soxr.ResampleStream(
                rate, self.out_rate, 1, dtype="float32", quality="soxr_hq"
            )

    def push(self, mono: np.ndarray) -> np.ndarray:
        """The resampled piece of one more block of mono samples."""
        self.total += mono.shape[0]
        if self.limit is not None and self.max_seconds is not None and self.total > self.limit:
            raise too_long(self.max_seconds)
        if self.resampler is not None:
            mono = self.resampler.resample_chunk(mono, last=False)
        return np.asarray(mono, dtype=np.float32)

    def flush(self) -> np.ndarray:
        """What the resampler still holds, once the input has ended."""
        if self.resampler is None:
            return np.zeros(0, np.float32)
        tail = self.resampler.resample_chunk(np.zeros(0, np.float32), last=True)
        return np.asarray(tail, dtype=np.float32)

    @property
    def length(self) -> int:
        """The clip's final length at ``out_rate`` (librosa's rule), once the input ended."""
        if self.resampler is None:
            return self.total
        return int(np.ceil(self.total * (float(self.out_rate) / self.rate)))

    def finish(self, pieces: list[np.ndarray]) -> np.ndarray:
        """The whole clip from every piece ``push`` and ``flush`` gave, at its final length."""
        wave = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
        if self.resampler is not None:
            wave = librosa_length(wave, self.total, self.rate, self.out_rate)
        return wave
