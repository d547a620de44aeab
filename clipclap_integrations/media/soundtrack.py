"""A soundtrack as the windows ``embed_audio_segments`` would cut from it, streamed: the
track is decoded and resampled block by block and each window is handed out as soon as it
is complete, so memory holds a window or two, not the whole track."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..errors import ClipClapInputError
from .audio import duration_windows, window_bounds
from .pcm import MonoStream, librosa_length
from .video import iter_soundtrack

_MARGIN = 4096  # samples of the final length that resampling's last block may still move


def soundtrack_windows(
    source: bytes | Path | str,
    *,
    rate: int,
    window_s: float,
    hop_s: float | None = None,
    max_seconds: float | None = None,
) -> Iterator[tuple[int, int, np.ndarray]]:
    """(start, end, samples) of each window of a container's first audio stream at ``rate``.

    The windows and their samples are those of ``duration_windows`` over the whole decoded
    track (``decode_audio`` of the same file): full windows every hop, the last moved back to
    end at the track's end. A track that is digital silence throughout gives no window (it
    has nothing to embed); a silent stretch inside a track is embedded as it is.
    """
    bounds0 = duration_windows(1, rate, window_s, hop_s)  # checks window_s and hop_s
    del bounds0
    window = max(1, round(window_s * rate))
    hop = max(1, round((hop_s if hop_s is not None else window_s) * rate))
    slack = window // 100
    buffer = np.zeros(0, np.float32)
    buffer_start = 0  # sample index of buffer[0]
    received = 0
    emitted = 0  # regular windows handed out (or held, while all is silence)
    held = 0  # of those, windows of pure silence not yet handed out
    loud = False
    reading = iter_soundtrack(source, target_rate=rate, max_seconds=max_seconds)
    while True:
        try:
            piece = next(reading)
        except StopIteration as stop:
            resampling: MonoStream = stop.value
            break
        if piece.size == 0:
            continue
        if not np.all(np.isfinite(piece)):
            raise ClipClapInputError("the soundtrack holds NaN or infinite samples")
        if not loud and np.any(piece != 0.0):
            loud = True
            for k in range(emitted - held, emitted):  # the silence before: zeros, as it was
                yield k * hop, k * hop + window, np.zeros(window, np.float32)
            held = 0
        buffer = np.concatenate([buffer, piece])
        received += piece.size
        while (emitted * hop) + window + slack + _MARGIN < received:
            start = emitted * hop
            if loud:
                yield (
                    start,
                    start + window,
                    buffer[start - buffer_start : start + window - buffer_start],
                )
            else:
                held += 1
            emitted += 1
        keep = min(emitted * hop, received - window - _MARGIN)  # the last window may go back
        if keep > buffer_start:
            buffer = buffer[keep - buffer_start :]
            buffer_start = keep
    if not loud:
        return
    n = resampling.length
    tail = librosa_length(buffer, n - buffer_start, 1, 1) if n >= buffer_start else buffer
    for k, (a, b) in enumerate(window_bounds(n, window, hop)):
        if k < emitted:
            continue
        yield a, b, tail[a - buffer_start : b - buffer_start]
