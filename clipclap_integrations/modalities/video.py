"""Video: a composed input. Its sampled frames are images and its soundtrack is audio, each
embedded exactly as the image and audio pipelines embed them, each with its time; the video's
own vector is derived from theirs.

The whole-video vector: the normalized sum of the normalized mean of the frame vectors and
the normalized mean of the soundtrack window vectors (the normalized frame mean alone for a
video without sound, or whose sound is digital silence). Each track weighs the same whatever
the number of its moments, and both live in the one space, so the sum answers a query about
either the picture or the sound.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from ..errors import ClipClapInputError
from ..inputs import Item, Media
from ..media.soundtrack import soundtrack_windows
from ..media.video import iter_frames, probe_video, require_av
from ..runtime.ahead import ahead
from ..runtime.encoders import normalize
from ..runtime.model import CLAP_WINDOW_S
from ..types import Modality, VideoMoments
from .audio import AudioPipeline
from .base import ModalityPipeline, loading
from .image import ImagePipeline

FRAMES = "frames"
AUDIO = "audio"


@dataclass(frozen=True)
class Moment:
    """One moment of a video, ready for the model: which track, when, and the prepared row
    (``pixel_values`` (3, 224, 224) of a frame, ``input_features`` (1, 1001, 64) of a window)."""

    track: str
    start_s: float
    end_s: float
    modality: Modality
    row: np.ndarray


def whole_vector(frames: np.ndarray, audio: np.ndarray) -> np.ndarray:
    """The whole-video vector from the frame vectors and the soundtrack window vectors."""
    if len(frames) == 0 and len(audio) == 0:
        raise ClipClapInputError("the video has neither frames nor sound to embed")
    means = [normalize(np.mean(v, axis=0)) for v in (frames, audio) if len(v)]
    return normalize(np.sum(means, axis=0)).astype(np.float32)


class VideoPipeline(ModalityPipeline):
    modality = Modality.VIDEO

    @cached_property
    def image(self) -> ImagePipeline:
        return ImagePipeline(self.folder, self.options, self.encoders)

    @cached_property
    def audio(self) -> AudioPipeline:
        return AudioPipeline(self.folder, self.options, self.encoders)

    def check_window(self, window_s: float) -> None:
        self.audio.check_window(window_s)

    def moments(
        self,
        item: Item,
        index: int = 0,
        *,
        every_s: float | None = None,
        window_s: float = CLAP_WINDOW_S,
        keyframes_only: bool = False,
    ) -> Iterator[Moment]:
        """The moments of one video, frames first (in time), then the soundtrack windows,
        decoded and prepared as they are asked for; failures name the item."""
        every = self.options.frame_every_s if every_s is None else every_s
        with loading(item, index, "video"):
            require_av()
            source = _source(item)
            info = probe_video(source)
            settings = self.folder.image
            for frame in iter_frames(
                source,
                every,
                keyframes_only=keyframes_only,
                max_seconds=self.options.max_video_seconds,
                max_frames=self.options.max_video_frames,
                max_pixels=self.options.max_image_pixels,
                resize_to=settings.shortest_edge if settings.do_resize else None,
            ):
                row = self.image.load(Item(Modality.IMAGE, frame.rgb, item.description), index)
                yield Moment(FRAMES, frame.time_s, frame.end_s, Modality.IMAGE, row)
            if not info.has_audio:
                return
            rate = self.folder.audio.sample_rate
            pre = self.audio.preprocessor
            for a, b, samples in soundtrack_windows(
                source, rate=rate, window_s=window_s, max_seconds=self.options.max_video_seconds
            ):
                yield Moment(AUDIO, a / rate, b / rate, Modality.AUDIO, pre([samples])[0])

    def video(
        self,
        item: Item,
        index: int = 0,
        *,
        every_s: float | None = None,
        window_s: float = CLAP_WINDOW_S,
        keyframes_only: bool = False,
    ) -> VideoMoments:
        """Every moment's vector with its times and track, and the whole-video vector."""
        size = self.options.batch_size
        moments = self.moments(
            item, index, every_s=every_s, window_s=window_s, keyframes_only=keyframes_only
        )
        vectors: list[np.ndarray] = []
        starts: list[float] = []
        ends: list[float] = []
        tracks: list[str] = []
        pending: dict[Modality, list[tuple[int, np.ndarray]]] = {
            Modality.IMAGE: [],
            Modality.AUDIO: [],
        }

        def run(modality: Modality) -> None:
            rows = pending[modality]
            feed = "pixel_values" if modality is Modality.IMAGE else "input_features"
            try:
                out = self.encoders.project(modality, {feed: np.stack([r for _, r in rows])})
            except ClipClapInputError as exc:
                raise ClipClapInputError(exc.reason, index=index, item=item.description) from None
            for (position, _), vector in zip(rows, out, strict=True):
                vectors[position] = vector
            rows.clear()

        for moment in ahead(moments, 2 * size):
            position = len(vectors)
            vectors.append(np.empty(0, np.float32))
            starts.append(moment.start_s)
            ends.append(moment.end_s)
            tracks.append(moment.track)
            pending[moment.modality].append((position, moment.row))
            if len(pending[moment.modality]) >= size:
                run(moment.modality)
        for modality, rows in pending.items():
            if rows:
                run(modality)
        stacked = np.stack(vectors) if vectors else np.zeros((0, self.folder.dim), np.float32)
        mask = np.asarray([t == FRAMES for t in tracks], dtype=bool)
        with loading(item, index, "video"):
            whole = whole_vector(stacked[mask], stacked[~mask])
        return VideoMoments(
            vectors=stacked.astype(np.float32, copy=False),
            starts=np.asarray(starts, dtype=np.float64),
            ends=np.asarray(ends, dtype=np.float64),
            tracks=tuple(tracks),
            whole=whole,
        )

    def embed(self, items: Sequence[Item], indices: Sequence[int]) -> np.ndarray:
        """The whole-video vector of each video (see the module)."""
        out = np.empty((len(items), self.folder.dim), dtype=np.float32)
        for r, (item, index) in enumerate(zip(items, indices, strict=True)):
            out[r] = self.video(item, index).whole
        return out


def _source(item: Item) -> bytes | Path:
    payload = item.payload
    if not isinstance(payload, Media):
        raise ClipClapInputError("not a video (give a path, URL, data: URI, bytes or file object)")
    return payload.source
