"""Whether a container that can hold video (MP4/MOV, Matroska/WebM, AVI, MPEG-TS/PS) is a
video or a sound: the one rule for paths, bytes, streams and downloads.

With PyAV (the ``video`` extra) the container's header is read: it is a video when it holds
a video stream, a sound when it holds only audio (an M4A named .mp4, a WebM recorded by a
browser's microphone). Without PyAV, or when FFmpeg cannot read the header, the file's name
decides: a video extension (.mp4, .mov, .mkv, .webm, .avi, .ts, ...) is a video (embedding
it then says which extra to install, or why the file is unreadable), anything else stays a
sound as before (AVI and MPEG-TS/PS, which no audio decoder reads, stay video). Nothing is
decoded here: opening the header reads at most the few packets FFmpeg needs to know the
streams.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

from ..types import Modality
from .sniff import VIDEO_EXTENSIONS

# the MIME type a video container has when it turns out to hold only sound
AUDIO_MIME = {
    "video/mp4": "audio/mp4",
    "video/quicktime": "audio/mp4",
    "video/webm": "audio/webm",
    "video/x-matroska": "audio/x-matroska",
}


def stream_kinds(source: bytes | Path | str) -> tuple[bool, bool] | None:
    """(has a video stream, has an audio stream) of a container read with PyAV; None when
    PyAV is not installed or cannot read the data."""
    try:
        import av
    except ImportError:
        return None
    target: Any = io.BytesIO(source) if isinstance(source, bytes | bytearray) else os.fspath(source)
    try:
        with av.open(target, mode="r") as container:
            # a cover picture attached to a sound (MP4/Matroska art) is not a video
            video = [s for s in container.streams.video if not _attached_picture(s)]
            return bool(video), bool(container.streams.audio)
    except Exception:  # not a container FFmpeg can read: the decoders will say what it is
        return None


def _attached_picture(stream: Any) -> bool:
    try:
        return bool(stream.disposition & stream.disposition.__class__.attached_pic)
    except Exception:
        return False


def settle(
    kind: tuple[Modality, str | None] | None, source: bytes | Path | str, name: str = ""
) -> tuple[Modality, str | None] | None:
    """``kind`` (from ``sniff``) made exact for a video container: video or audio by its
    streams (see the module). Any other kind is returned as it is."""
    if kind is None or kind[0] is not Modality.VIDEO:
        return kind
    mime = kind[1]
    streams = stream_kinds(source)
    if streams is not None:
        has_video, has_audio = streams
        if has_video or not has_audio:  # no stream of either kind: let the video path say so
            return kind
        return Modality.AUDIO, AUDIO_MIME.get(mime or "", mime)
    if mime not in AUDIO_MIME:  # AVI, MPEG-TS/PS: no audio decoder reads them
        return kind
    if Path(name).suffix.lower() in VIDEO_EXTENSIONS:
        return kind
    return Modality.AUDIO, AUDIO_MIME[mime or ""]
