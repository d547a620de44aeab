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
from .parts import Part, PartRunner

FRAMES = "frames"
AUDIO = "audio"
WHOLE = "whole"


@dataclass(frozen=True)
class VideoPart:
    """One part of a video with its place: a moment (``track`` "frames" or "audio", its
    [start_s, end_s) and a ``Part`` with its prepared row), or a derived part (``track``
    "frames_mean", "audio_mean" or "whole", spanning the video, a ``Part`` with ``mean_of``)."""

    track: str
    start_s: float
    end_s: float
    part: Part


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

    def prepare(self) -> None:
        self.image.prepare()
        self.audio.prepare()

    def check_window(self, window_s: float) -> None:
        self.audio.check_window(window_s)

    def parts(
        self,
        item: Item,
        index: int = 0,
        *,
        every_s: float | None = None,
        window_s: float = CLAP_WINDOW_S,
        keyframes_only: bool = False,
    ) -> Iterator[VideoPart]:
        """The parts of one video, decoded and prepared as they are asked for: the frames
        (in time), the soundtrack windows, then the derived frame mean, soundtrack mean (when
        there is sound) and whole-video vector (the last part). Failures name the item.
        Feed ``p.part`` of each to a ``PartRunner``: a video is batched with everything else."""
        every = self.options.frame_every_s if every_s is None else every_s
        positions: dict[str, list[int]] = {FRAMES: [], AUDIO: []}
        end = 0.0
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
                positions[FRAMES].append(len(positions[FRAMES]))
                end = max(end, frame.end_s)
                yield VideoPart(FRAMES, frame.time_s, frame.end_s, Part(Modality.IMAGE, row))
            if info.has_audio:
                rate = self.folder.audio.sample_rate
                pre = self.audio.preprocessor
                for a, b, samples in soundtrack_windows(
                    source, rate=rate, window_s=window_s, max_seconds=self.options.max_video_seconds
                ):
                    positions[AUDIO].append(len(positions[FRAMES]) + len(positions[AUDIO]))
                    end = max(end, b / rate)
                    part = Part(Modality.AUDIO, pre([samples])[0])
                    yield VideoPart(AUDIO, a / rate, b / rate, part)
        count = len(positions[FRAMES]) + len(positions[AUDIO])
        means = []
        for track in (FRAMES, AUDIO):
            if positions[track]:
                means.append(count + len(means))
                part = Part(Modality.VIDEO, None, tuple(positions[track]))
                yield VideoPart(f"{track}_mean", 0.0, end, part)
        if not means:
            raise ClipClapInputError(
                "the video has neither frames nor sound to embed",
                index=index,
                item=item.description,
            )
        yield VideoPart(WHOLE, 0.0, end, Part(Modality.VIDEO, None, tuple(means)))

    def runner(self) -> PartRunner:
        """A ``PartRunner`` over the image and audio pipelines this one embeds with."""
        return PartRunner(
            {Modality.IMAGE: self.image, Modality.AUDIO: self.audio}, self.options.batch_size
        )

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
        # (track, start, end) of each part: not the parts, whose rows (600 KB a frame) would
        # otherwise stay in memory for the whole video
        places: list[tuple[str, float, float]] = []

        def parts() -> Iterator[Part]:
            made = self.parts(
                item, index, every_s=every_s, window_s=window_s, keyframes_only=keyframes_only
            )
            for placed in ahead(made, 2 * self.options.batch_size):
                places.append((placed.track, placed.start_s, placed.end_s))
                yield placed.part

        [(_, vectors)] = list(self.runner().run([(0, parts())]))
        if isinstance(vectors, ClipClapInputError):
            raise _named(vectors, index, item)
        moments = [i for i, p in enumerate(places) if p[0] in (FRAMES, AUDIO)]
        return VideoMoments(
            vectors=vectors[moments],
            starts=np.asarray([places[i][1] for i in moments], dtype=np.float64),
            ends=np.asarray([places[i][2] for i in moments], dtype=np.float64),
            tracks=tuple(places[i][0] for i in moments),
            whole=vectors[-1],
        )

    def embed(self, items: Sequence[Item], indices: Sequence[int]) -> np.ndarray:
        """The whole-video vector of each video (see the module); the frames and windows of
        consecutive videos share model batches, each video decoded ahead of the model."""
        out = np.empty((len(items), self.folder.dim), dtype=np.float32)
        size = self.options.batch_size

        def owners() -> Iterator[tuple[int, Iterator[Part]]]:
            for r, (item, index) in enumerate(zip(items, indices, strict=True)):
                made = self.parts(item, index)
                yield r, (placed.part for placed in ahead(made, 2 * size))

        for r, vectors in self.runner().run(owners()):
            if isinstance(vectors, ClipClapInputError):
                raise _named(vectors, indices[r], items[r])
            out[r] = vectors[-1]
        return out


def _named(error: ClipClapInputError, index: int, item: Item) -> ClipClapInputError:
    if error.item_description:
        return error
    return ClipClapInputError(error.reason, index=index, item=item.description)


def _source(item: Item) -> bytes | Path:
    payload = item.payload
    if not isinstance(payload, Media):
        raise ClipClapInputError("not a video (give a path, URL, data: URI, bytes or file object)")
    return payload.source
