"""Video with PyAV (the ``video`` extra: FFmpeg's libraries in the wheel, no system ffmpeg):
what a container holds, its frames sampled in time, and its soundtrack as mono samples.

Everything streams: frames are decoded one after the other and only the sampled ones are
converted to RGB, so memory holds a frame or two whatever the video's length; the soundtrack
goes through the same block-by-block mono + resampling path as every other sound
(``pcm.MonoStream``), so its samples equal those of ``decode_audio`` on the same file.
PyAV is imported inside the functions: ``import clipclap_integrations`` never loads it.
"""

from __future__ import annotations

import io
import math
import os
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ClipClapInputError
from ..inputs.arrays import is_supported_rate
from .failures import brief, decoding
from .image import check_image_size
from .pcm import MonoStream, mix_to_mono, pcm_to_float

INSTALL_HINT = 'pip install "clipclap-integrations[video]"'
DEFAULT_MAX_VIDEO_SECONDS = 4 * 3600.0
DEFAULT_MAX_VIDEO_FRAMES = 20_000
# FFmpeg's video decoder threads (0: as many as it sees fit). One: the model keeps every core
# busy meanwhile, and FFmpeg's frame threads cost 75 % more CPU for the same frames on 2 cores
# (benchmarks/video.py: 30 CPU-s instead of 17 for a 10-minute 720p H.264 video).
DECODER_THREADS = 1
BLOCK_FRAMES = 1 << 16  # audio samples gathered before a resampling step

Source = bytes | Path | str


def av_available() -> bool:
    """Whether PyAV (the ``video`` extra) can be imported."""
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


def require_av() -> Any:
    """The ``av`` module, or a ``ClipClapInputError`` saying which extra to install."""
    try:
        import av
    except ImportError:
        raise ClipClapInputError(f"decoding video needs PyAV: {INSTALL_HINT}") from None
    return av


@contextmanager
def open_input(source: Source) -> Iterator[Any]:
    """An open PyAV input container on a file or bytes; failures are input errors."""
    av = require_av()

    def broken(exc: Exception) -> str:
        return f"not a readable video or audio container ({brief(exc)})"

    with decoding("video", broken, verb="open"):
        target: Any = (
            io.BytesIO(bytes(source))
            if isinstance(source, bytes | bytearray | memoryview)
            else os.fspath(source)
        )
        container = av.open(target, mode="r")
    try:
        yield container
    finally:
        container.close()


@dataclass(frozen=True)
class VideoInfo:
    """What a container declares: duration (None when unknown), the first video stream's
    size and frame rate, and which kinds of stream it holds."""

    duration_s: float | None
    width: int
    height: int
    fps: float | None
    has_video: bool
    has_audio: bool
    format: str = ""
    video_codec: str | None = None
    audio_codec: str | None = None


def _info(container: Any) -> VideoInfo:
    video = container.streams.video[0] if container.streams.video else None
    audio = container.streams.audio[0] if container.streams.audio else None
    duration = None
    if container.duration is not None and container.duration > 0:
        duration = container.duration / 1_000_000
    elif video is not None and video.duration is not None and video.time_base is not None:
        duration = float(video.duration * video.time_base)
    fps = None
    if video is not None and video.average_rate:
        fps = float(video.average_rate)
    return VideoInfo(
        duration_s=duration,
        width=int(video.codec_context.width or 0) if video is not None else 0,
        height=int(video.codec_context.height or 0) if video is not None else 0,
        fps=fps,
        has_video=video is not None,
        has_audio=audio is not None,
        format=str(container.format.name),
        video_codec=video.codec_context.name if video is not None else None,
        audio_codec=audio.codec_context.name if audio is not None else None,
    )


def probe_video(source: Source) -> VideoInfo:
    """The ``VideoInfo`` of a file or bytes, read from its headers (nothing decoded but the
    few packets FFmpeg reads to find its streams)."""
    with open_input(source) as container:
        return _info(container)


def check_video(
    info: VideoInfo,
    *,
    max_seconds: float | None,
    max_pixels: int | None,
    resize_to: int | None = 224,
) -> None:
    """Refuse, by what the header declares, a video over the duration or frame-size limits."""
    if not info.has_video:
        raise ClipClapInputError("the file holds no video stream")
    check_image_size(info.width, info.height, max_pixels, resize_to)
    if max_seconds is not None and info.duration_s is not None and info.duration_s > max_seconds:
        raise ClipClapInputError(
            f"the video lasts {info.duration_s:,.1f} s, over the limit of {max_seconds:,.0f} s "
            "(max_video_seconds)"
        )


# -- the soundtrack -------------------------------------------------------------------------
def _audio_blocks(container: Any, stream: Any) -> Iterator[tuple[np.ndarray, int]]:
    """(channels, frames) float32 blocks of ``stream`` and their sample rate, as decoded."""
    for frame in container.decode(stream):
        arr = frame.to_ndarray()
        channels = int(frame.layout.nb_channels)
        if not frame.format.is_planar:  # interleaved: (1, frames * channels)
            arr = arr.reshape(-1, channels).T
        yield pcm_to_float(np.ascontiguousarray(arr)), int(frame.sample_rate)


def iter_soundtrack(
    source: Source, *, target_rate: int | None, max_seconds: float | None
) -> Iterator[np.ndarray]:
    """The first audio stream of a container as mono float32 pieces at ``target_rate``.

    The generator's return value (``StopIteration.value``) is the ``MonoStream`` that made
    them: its ``length`` is the track's final length (librosa's rule). Raises
    ``ClipClapInputError`` for a container without audio, a broken stream, or a track longer
    than ``max_seconds``.
    """
    with open_input(source) as container:
        if not container.streams.audio:
            raise ClipClapInputError("the file holds no audio stream")
        stream = container.streams.audio[0]
        stream.thread_type = "AUTO"
        resampling: MonoStream | None = None
        gathered: list[np.ndarray] = []
        size = 0
        with decoding("audio", lambda exc: f"corrupt or truncated audio stream ({brief(exc)})"):
            for block, rate in _audio_blocks(container, stream):
                if resampling is None:
                    if not is_supported_rate(rate):
                        raise ClipClapInputError(f"unsupported audio stream ({rate} Hz)")
                    resampling = MonoStream(rate, target_rate, max_seconds)
                elif rate != resampling.rate:
                    raise ClipClapInputError(
                        f"the audio stream changes sample rate ({resampling.rate} -> {rate} Hz)"
                    )
                gathered.append(mix_to_mono(block))
                size += block.shape[1]
                if size >= BLOCK_FRAMES:
                    yield resampling.push(np.concatenate(gathered))
                    gathered, size = [], 0
        if resampling is None:
            raise ClipClapInputError("the audio stream holds no samples")
        if gathered:
            yield resampling.push(np.concatenate(gathered))
        yield resampling.flush()
        declared = _info(container).duration_s
    decoded = resampling.total / resampling.rate
    if declared is not None and decoded < declared - max(1.0, 0.02 * declared):
        raise ClipClapInputError(
            f"corrupt or truncated audio stream (decoded {decoded:,.1f} s of the "
            f"{declared:,.1f} s the container declares)"
        )
    return resampling


def decode_audio_track(
    source: Source, *, target_rate: int | None = None, max_seconds: float | None = None
) -> tuple[np.ndarray, int]:
    """The first audio stream of a container (a video's soundtrack, an M4A, a WebM/Opus) as
    (samples (1, n) mono float32, rate): the same samples ``decode_audio`` gives."""
    pieces: list[np.ndarray] = []
    reading = iter_soundtrack(source, target_rate=target_rate, max_seconds=max_seconds)
    while True:
        try:
            pieces.append(next(reading))
        except StopIteration as stop:
            resampling: MonoStream = stop.value
            break
    return resampling.finish(pieces)[None, :], resampling.out_rate


def decode_with_av(
    source: Source, max_seconds: float | None, target_rate: int | None
) -> tuple[np.ndarray, int] | None:
    """``decode_audio_track`` for ``decode_audio``'s fallback; None when PyAV is not
    installed or FFmpeg does not recognize the data (the next fallback may)."""
    if not av_available():
        return None
    try:
        with open_input(source) as container:
            if not container.streams.audio:
                return None
    except ClipClapInputError:
        return None
    return decode_audio_track(source, target_rate=target_rate, max_seconds=max_seconds)


# -- frames ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class VideoFrame:
    """One sampled frame: the moment it stands for, [time_s, end_s), and its RGB pixels
    (H, W, 3) uint8 as PyAV converts the decoded picture (``frame.to_ndarray(format="rgb24")``)."""

    time_s: float
    rgb: np.ndarray
    end_s: float


_EPS = 1e-3  # seconds: a frame time within this of a sample time counts as at it


def _frame_time(frame: Any, origin: float, index: int, fps: float | None) -> float:
    if frame.time is not None:
        return float(frame.time) - origin
    return index / fps if fps else float(index)


def iter_frames(
    source: Source,
    every_s: float = 1.0,
    *,
    keyframes_only: bool = False,
    max_seconds: float | None = DEFAULT_MAX_VIDEO_SECONDS,
    max_frames: int | None = DEFAULT_MAX_VIDEO_FRAMES,
    max_pixels: int | None = None,
    resize_to: int | None = 224,
) -> Iterator[VideoFrame]:
    """The frames of the first video stream, one per moment, decoded as a stream.

    Every ``every_s`` seconds from the start (t = 0, every_s, 2 every_s, ... while t is before
    the end), the frame on screen at t: the last frame whose time is at most t (the first
    frame for a stream that starts late); the moment is [t, min(t + every_s, end)). With
    ``keyframes_only`` the decoder skips every frame but the keyframes (no other picture is
    decoded at all: several times faster) and each keyframe is a moment, up to the next one.
    Times are seconds from the container's start. Limits are checked from the header before
    decoding (duration, frame size, the number of moments) and again while decoding.
    """
    if not (math.isfinite(every_s) and every_s > 0):
        raise ValueError(f"every_s must be a positive number of seconds, got {every_s!r}")
    with open_input(source) as container:
        info = _info(container)
        check_video(info, max_seconds=max_seconds, max_pixels=max_pixels, resize_to=resize_to)
        if info.duration_s is not None and max_frames is not None and not keyframes_only:
            planned = math.ceil(info.duration_s / every_s - _EPS)
            if planned > max_frames:
                raise ClipClapInputError(
                    f"sampling the video every {every_s:g} s makes {planned:,} frames, over "
                    f"the limit of {max_frames:,} (max_video_frames)"
                )
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = DECODER_THREADS
        if keyframes_only:
            stream.codec_context.skip_frame = "NONKEY"
        origin = container.start_time / 1_000_000 if container.start_time else 0.0
        shown = None if keyframes_only else shown_between(every_s)
        frames = _decoded(
            container, stream, origin, info, max_seconds, max_pixels, resize_to, shown
        )
        if keyframes_only:
            yield from _keyframes(frames, info, max_frames)
        else:
            yield from _sampled(frames, info, every_s, max_frames)


def _decoded(
    container: Any,
    stream: Any,
    origin: float,
    info: VideoInfo,
    max_seconds: float | None,
    max_pixels: int | None,
    resize_to: int | None,
    shown: ShownBetween | None = None,
) -> Iterator[tuple[float, Any]]:
    """(time, PyAV frame) of every decoded frame; decoding errors become input errors, and a
    stream that ends well before its declared duration is refused as truncated. With
    ``shown``, non-reference frames that are on screen at no sample time are not decoded."""
    last = -math.inf  # the latest time of a packet read (a skipped frame's too)
    count = 0
    frames = _frames_of_packets(container, stream, origin, shown)
    while True:
        with decoding("video", lambda exc: f"corrupt or truncated video ({brief(exc)})"):
            got = next(frames, None)
        if got is None:
            break
        packet_t, frame = got
        if packet_t is not None:
            last = max(last, packet_t)
        if frame is None:
            continue
        t = _frame_time(frame, origin, count, info.fps)
        count += 1
        if frame.width != info.width or frame.height != info.height:  # a mid-stream change
            check_image_size(int(frame.width), int(frame.height), max_pixels, resize_to)
        if max_seconds is not None and t > max_seconds:
            raise ClipClapInputError(
                f"the video lasts over {max_seconds:,.0f} s, the limit (max_video_seconds)"
            )
        last = max(last, t)
        yield t, frame
    if count == 0:
        raise ClipClapInputError("the video holds no frames")
    declared = info.duration_s
    if declared is not None and last < declared - max(1.0, 0.05 * declared):
        raise ClipClapInputError(
            f"corrupt or truncated video (frames end at {last:,.1f} s of the {declared:,.1f} s "
            "the container declares)"
        )


ShownBetween = Callable[[float, float], bool]
LOOKAHEAD = 40  # packets demuxed ahead: more than any decoder reorders (H.264: 16 frames)


def shown_between(every_s: float) -> ShownBetween:
    """Whether a frame at ``p`` followed on screen by one at ``q`` is the frame shown at a
    sample time ``k * every_s`` (``_sampled``'s rule: the last frame at most the time,
    within ``_EPS``). Errs towards yes: deciding wrongly only costs a decoded frame."""
    slack = 1e-6

    def shown(p: float, q: float) -> bool:
        low = max(p - _EPS, 0.0)
        k = math.floor(low / every_s)
        return any(
            low - slack <= j * every_s < q - _EPS + slack for j in (k - 1, k, k + 1) if j >= 0
        )

    return shown


def _frames_of_packets(
    container: Any, stream: Any, origin: float = 0.0, shown: ShownBetween | None = None
) -> Iterator[tuple[float | None, Any]]:
    """(packet time, None) for every packet read, then (None, frame) for each frame it
    completes: the demuxed times tell how far the stream goes even when frames are skipped.

    With ``shown``, packets are demuxed ``LOOKAHEAD`` ahead, so each packet's successor on
    screen (the next larger time) is known before it is decoded; when no sample time falls
    between the two, the decoder is told to skip the packet if it is not a reference
    (``skip_frame="NONREF"``: FFmpeg then decodes nothing of it, and no other picture
    depends on it, so every frame decoded is the same). The first and the last frame on
    screen, and packets without a time, are always decoded.
    """
    context = stream.codec_context
    keyframes_only = context.skip_frame == "NONKEY"
    packets = container.demux(stream)
    if shown is None:
        for packet in packets:
            t = _packet_time(packet, origin)
            if t is not None:
                yield t, None
            if keyframes_only and packet.size and not packet.is_keyframe:
                continue  # some decoders (VP9) ignore skip_frame: never hand them the packet
            for frame in packet.decode():
                yield None, frame
        return
    window: deque[tuple[Any, float | None]] = deque()
    earliest = math.inf  # the smallest time read so far
    skipping = False
    more = True
    while window or more:
        while more and len(window) <= LOOKAHEAD:
            packet = next(packets, None)
            if packet is None:
                more = False
                break
            t = _packet_time(packet, origin)
            window.append((packet, t))
            if t is not None:
                earliest = min(earliest, t)
                yield t, None
        if not window:
            break
        packet, t = window.popleft()
        skip = False
        if t is not None and t > earliest and packet.size:
            later = [u for _, u in window if u is not None and u > t]
            skip = bool(later) and not shown(t, min(later))
        if skip != skipping:
            context.skip_frame = "NONREF" if skip else "DEFAULT"
            skipping = skip
        for frame in packet.decode():
            yield None, frame


def _packet_time(packet: Any, origin: float) -> float | None:
    if packet.pts is None or packet.time_base is None:
        return None
    return float(packet.pts * packet.time_base) - origin


def _rgb(frame: Any) -> np.ndarray:
    return frame.to_ndarray(format="rgb24")


def _sampled(
    frames: Iterator[tuple[float, Any]], info: VideoInfo, every_s: float, max_frames: int | None
) -> Iterator[VideoFrame]:
    step = 0  # the next sample time is step * every_s
    shown: Any = None  # the frame on screen at the next sample time, not yet converted
    shown_t = 0.0
    rgb: np.ndarray | None = None  # ``shown`` converted, when it stands for several samples
    # moments whose frame is known but whose end may still be the video's end (unknown yet)
    pending: list[tuple[float, np.ndarray]] = []

    def take() -> None:
        nonlocal step, rgb
        if max_frames is not None and step >= max_frames:
            raise ClipClapInputError(
                f"the video has more than {max_frames:,} frames to sample (max_video_frames)"
            )
        if rgb is None:
            rgb = _rgb(shown)
        pending.append((step * every_s, rgb))
        step += 1

    for t, frame in frames:
        while shown is not None and t > step * every_s + _EPS:
            take()
        while pending and pending[0][0] + every_s <= t + _EPS:  # the video goes on past it
            start, pixels = pending.pop(0)
            yield VideoFrame(start, pixels, start + every_s)
        shown, shown_t, rgb = frame, t, None
    if shown is None:
        return
    end = shown_t + (1.0 / info.fps if info.fps else 0.0)  # the last frame's end
    while step * every_s < end - _EPS or step == 0:
        take()
    for start, pixels in pending:
        yield VideoFrame(start, pixels, max(min(start + every_s, end), start))


def _keyframes(
    frames: Iterator[tuple[float, Any]], info: VideoInfo, max_frames: int | None
) -> Iterator[VideoFrame]:
    held: tuple[float, np.ndarray] | None = None
    last_t = 0.0
    for count, (t, frame) in enumerate(frames, 1):
        if held is not None:
            yield VideoFrame(held[0], held[1], t)
        if max_frames is not None and count > max_frames:
            raise ClipClapInputError(
                f"the video has more than {max_frames:,} keyframes (max_video_frames)"
            )
        held, last_t = (t, _rgb(frame)), t
    if held is not None:
        gap = 1.0 / info.fps if info.fps else 1.0
        yield VideoFrame(held[0], held[1], max(info.duration_s or 0.0, last_t + gap))
