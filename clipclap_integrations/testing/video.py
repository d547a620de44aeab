"""Test videos made in code with PyAV (the ``video`` extra): segments of colored frames with a
tone, a sweep or silence, in H.264/AAC MP4 or VP9/Opus WebM; and audio-only M4A/WebM files.

Used by the tests, the video benchmark and the example, so a fresh machine needs nothing but
the wheel: e.g. ``make_video(path, [(6, (255, 0, 0), 440.0), (6, (0, 0, 255), "sweep")])``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

# (seconds, (r, g, b), sound): sound is a frequency in Hz, "sweep" (200 Hz -> 4 kHz), "noise"
# or None (digital silence)
Segment = tuple[float, tuple[int, int, int], float | str | None]

CODECS = {  # codec name -> (container format, video encoder, audio encoder, audio rate)
    "h264": ("mp4", "libx264", "aac", 44_100),
    "vp9": ("webm", "libvpx-vp9", "libopus", 48_000),
}


def sound(kind: float | str | None, seconds: float, rate: int, seed: int = 0) -> np.ndarray:
    """Mono float32 samples of one segment's sound."""
    t = np.arange(round(seconds * rate)) / rate
    if kind is None:
        return np.zeros(t.size, np.float32)
    if kind == "sweep":
        f0, f1 = 200.0, 4000.0
        phase = 2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * max(seconds, 1e-9)))
        return (0.4 * np.sin(phase)).astype(np.float32)
    if kind == "noise":
        return (0.2 * np.random.default_rng(seed).standard_normal(t.size)).astype(np.float32)
    return (0.4 * np.sin(2 * np.pi * float(kind) * t)).astype(np.float32)


def _picture(color: tuple[int, int, int], size: tuple[int, int], index: int, moving: bool):
    width, height = size
    frame = np.empty((height, width, 3), np.uint8)
    frame[:] = color
    if moving:  # a bar sliding across and a texture: something for the codec to work on
        x = (index * 8) % width
        frame[:, x : x + width // 16] = (255 - np.asarray(color)).astype(np.uint8)
        rows = np.arange(height)[:, None]
        cols = np.arange(width)[None, :]
        texture = ((rows * 3 + cols * 5 + index * 7) % 64).astype(np.uint8)
        frame[..., 1] = np.clip(frame[..., 1].astype(np.int16) + texture - 32, 0, 255)
    return frame


def make_video(
    path: str | os.PathLike[str],
    segments: Sequence[Segment],
    *,
    codec: str = "h264",
    audio: bool = True,
    size: tuple[int, int] = (320, 240),
    fps: int = 10,
    moving: bool = False,
    options: dict[str, str] | None = None,
) -> Path:
    """Write a video of ``segments`` (each ``seconds`` of one color with its sound) and
    return its path. ``codec``: "h264" (MP4 with AAC) or "vp9" (WebM with Opus); ``audio``:
    whether it has a soundtrack; ``moving``: add motion and texture (for benchmarks);
    ``options``: encoder options (e.g. ``{"preset": "ultrafast"}``). Frames and sound are
    made segment by segment, so a long video never sits in memory."""
    import av

    fmt, vcodec, acodec, rate = CODECS[codec]
    out = Path(path)
    container = av.open(str(out), mode="w", format=fmt)
    try:
        video = container.add_stream(vcodec, rate=fps, options=options or {})
        video.width, video.height = size
        video.pix_fmt = "yuv420p"
        track = None
        if audio:
            track = container.add_stream(acodec, rate=rate)
            track.layout = "stereo"
        index = 0
        for seconds, color, _ in segments:
            for _ in range(round(seconds * fps)):
                frame = av.VideoFrame.from_ndarray(
                    _picture(color, size, index, moving), format="rgb24"
                )
                frame.pts = index
                frame.time_base = Fraction(1, fps)
                container.mux(video.encode(frame))
                index += 1
        container.mux(video.encode(None))
        if track is not None:
            pts = 0
            for n, (seconds, _, kind) in enumerate(segments):
                mono = sound(kind, seconds, rate, seed=n)
                for at in range(0, mono.size, 4096):
                    chunk = mono[at : at + 4096]
                    stereo = np.ascontiguousarray(np.stack([chunk, 0.5 * chunk]), np.float32)
                    frame = av.AudioFrame.from_ndarray(stereo, format="fltp", layout="stereo")
                    frame.sample_rate = rate
                    frame.pts = pts
                    frame.time_base = Fraction(1, rate)
                    pts += chunk.size
                    container.mux(track.encode(frame))
            container.mux(track.encode(None))
    finally:
        container.close()
    return out


def make_audio(
    path: str | os.PathLike[str], samples: np.ndarray, rate: int, *, codec: str = "aac"
) -> Path:
    """Write a sound-only file: ``codec`` "aac" (M4A) or "opus" (WebM). ``samples``: mono
    (n,) or (channels, n) float in [-1, 1]."""
    import av

    fmt, encoder = {"aac": ("ipod", "aac"), "opus": ("webm", "libopus")}[codec]
    data = np.atleast_2d(np.asarray(samples, np.float32))
    layout = "mono" if data.shape[0] == 1 else "stereo"
    out = Path(path)
    container: Any = av.open(str(out), mode="w", format=fmt)
    try:
        track = container.add_stream(encoder, rate=rate)
        track.layout = layout
        pts = 0
        for at in range(0, data.shape[1], 4096):
            chunk = np.ascontiguousarray(data[:, at : at + 4096])
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
            frame.sample_rate = rate
            frame.pts = pts
            frame.time_base = Fraction(1, rate)
            pts += chunk.shape[1]
            container.mux(track.encode(frame))
        container.mux(track.encode(None))
    finally:
        container.close()
    return out
