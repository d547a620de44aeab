"""``ClipClapEmbedder``: text, images, audio and video into one 512-d, L2-normalized space.

The facade: it classifies inputs (``inputs/``), hands each modality's items to its pipeline
(the table in ``modalities/``), which preprocesses them (``media/``) and runs the model
(``runtime/``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import numpy as np

from .errors import ClipClapInputError
from .inputs import (
    URLS_PER_FETCH,
    Item,
    check_text,
    classify,
    classify_all,
    describe,
    fetch_groups,
    input_list,
    is_remote,
    resolve_remote,
)
from .media.audio import AudioPreprocessor
from .media.image import ImagePreprocessor
from .media.text import TextPreprocessor
from .modalities import (
    PIPELINES,
    AudioPipeline,
    ImagePipeline,
    ModalityPipeline,
    TextPipeline,
    VideoPipeline,
)
from .options import OPTION_NAMES, EmbedderOptions
from .runtime.encoders import Encoders
from .runtime.hub import resolve_model
from .runtime.model import CLAP_WINDOW_S, ModelFolder
from .runtime.runs import plan_runs
from .runtime.sessions import SessionConfig, normalize_providers
from .types import AudioSegments, Modality, VideoMoments


class ClipClapEmbedder:
    """Embeds text, images and audio with CLIPCLAP through onnxruntime.

    Construction is cheap: the model folder is located and validated (once per process), but
    onnxruntime sessions are created on first use of each modality and shared by every
    embedder in the process with the same model, providers and threads.

    Args:
        model: a local model folder or a Hub repo id (default ``$CLIPCLAP_MODEL`` or
            ``antflydb/clipclap``).
        options: an ``EmbedderOptions``; keyword arguments are its fields (revision,
            batch_size, long_audio, allow_remote, max_image_pixels, quantize, ...), each
            documented there, and override ``options``. Read them back as attributes
            (``embedder.batch_size``) or as ``embedder.options``.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        options: EmbedderOptions | None = None,
        **kwargs: Any,
    ) -> None:
        opts = EmbedderOptions(**kwargs) if options is None else replace(options, **kwargs)
        self.options = opts
        self.folder: ModelFolder = resolve_model(
            model,
            revision=opts.revision,
            cache_dir=opts.cache_dir,
            local_files_only=opts.local_files_only,
        )
        self.session_config, runs = plan_runs(
            SessionConfig(normalize_providers(opts.providers), opts.threads), opts.parallel_runs
        )
        self.input_options = opts.input_options()
        self.encoders = Encoders(
            self.folder,
            self.session_config,
            optimize=opts.optimize,
            quantize=opts.quantize,
            optimized_dir=opts.optimized_dir,
            runs=runs,
        )
        self.pipelines: dict[Modality, ModalityPipeline] = {
            m: pipeline(self.folder, opts, self.encoders) for m, pipeline in PIPELINES.items()
        }

    def __getattr__(self, name: str) -> Any:
        """Options read as attributes (``embedder.batch_size``); set them at construction."""
        if name in OPTION_NAMES and "options" in self.__dict__:
            return getattr(self.__dict__["options"], name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # -- what the model is ------------------------------------------------------------------
    @property
    def dim(self) -> int:
        """Size of every vector (512 for CLIPCLAP)."""
        return self.folder.dim

    @property
    def model_path(self) -> Path:
        """The local folder holding the model files."""
        return self.folder.path

    @property
    def model_revision(self) -> str | None:
        """The Hub commit the files came from, or None for a plain local folder."""
        return self.folder.revision

    def __repr__(self) -> str:
        return f"ClipClapEmbedder(model={self.folder.source!r}, dim={self.dim})"

    def prepare(self, modalities: Iterable[Modality | str] | None = None) -> None:
        """Create now what embedding ``modalities`` (default: all) needs, the onnxruntime
        sessions above all, instead of on first use (a command can make them while it does
        something else). Safe from another thread while this embedder embeds: a run that
        needs a session being created waits for it."""
        wanted = list(PIPELINES) if modalities is None else map(Modality.parse, modalities)
        for modality in dict.fromkeys(wanted):
            self.pipelines[modality].prepare()

    # -- preprocessors (cheap objects; heavy state is cached per process) --------------------
    @property
    def text_preprocessor(self) -> TextPreprocessor:
        return self._text.preprocessor

    @property
    def image_preprocessor(self) -> ImagePreprocessor:
        return self._image.preprocessor

    @property
    def audio_preprocessor(self) -> AudioPreprocessor:
        return self._audio.preprocessor

    @property
    def _video(self) -> VideoPipeline:
        return cast(VideoPipeline, self.pipelines[Modality.VIDEO])

    @property
    def _text(self) -> TextPipeline:
        return cast(TextPipeline, self.pipelines[Modality.TEXT])

    @property
    def _image(self) -> ImagePipeline:
        return cast(ImagePipeline, self.pipelines[Modality.IMAGE])

    @property
    def _audio(self) -> AudioPipeline:
        return cast(AudioPipeline, self.pipelines[Modality.AUDIO])

    # -- public embedding API ---------------------------------------------------------------
    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors of strings, (N, dim) float32, rows in input order."""
        return self._text.embed_texts(_texts(texts))

    def embed_images(self, images: Sequence[Any]) -> np.ndarray:
        """Vectors of images: paths, bytes, file objects, URLs, PIL images or uint8 arrays."""
        return self.embed_classified(self.classify(images, Modality.IMAGE))

    def embed_audio(self, clips: Sequence[Any]) -> np.ndarray:
        """Vectors of sounds: paths, bytes, URLs, ``(samples, rate)`` pairs or 48 kHz arrays."""
        return self.embed_classified(self.classify(clips, Modality.AUDIO))

    def embed(self, inputs: Sequence[Any], modality: Modality | str | None = None) -> np.ndarray:
        """Vectors of a list that may mix modalities; ``modality`` forces one for all.
        Everything is classified first: a bad item fails the call before any work."""
        return self.embed_classified(self.classify(inputs, modality))

    def __call__(self, inputs: Sequence[Any]) -> np.ndarray:
        return self.embed(inputs)

    def classify(self, inputs: Sequence[Any], modality: Modality | str | None = None) -> list[Item]:
        """Every input as a typed ``Item`` (its modality and payload), checked, nothing
        fetched yet; a bad input raises ``ClipClapInputError`` naming its position. Hand the
        items to ``embed_classified``: each input is classified once per call."""
        forced = Modality.parse(modality) if modality is not None else None
        return classify_all(inputs, self.input_options, forced, fetch=False)

    def embed_classified(
        self,
        items: Sequence[Item],
        on_fetched: Callable[[Sequence[int]], None] | None = None,
    ) -> np.ndarray:
        """Vectors of items from ``classify``, rows in order. URLs are fetched
        ``URLS_PER_FETCH`` at a time, each group just before it is embedded and released
        after, so a long list of URLs never sits in memory whole; ``on_fetched(rows)`` sees
        each group's items once fetched (an adapter's chance to describe them)."""
        out = np.empty((len(items), self.dim), dtype=np.float32)
        for rows in fetch_groups(items, URLS_PER_FETCH):
            remote = [i for i in rows if is_remote(items[i])]
            resolve_remote([items[i] for i in remote], remote, self.input_options)
            if on_fetched is not None:
                on_fetched(rows)
            for modality, pipeline in self.pipelines.items():
                idx = [i for i in rows if items[i].modality is modality]
                if idx:
                    out[idx] = pipeline.embed([items[i] for i in idx], idx)
            for i in remote:
                items[i].payload = None  # the downloaded bytes are no longer needed
        return out

    def detect(self, item: Any) -> Modality:
        """The modality ``embed`` would use for ``item`` (fetches a URL only if it must)."""
        it = classify(item, self.input_options)
        if it.modality is None:
            resolve_remote([it], [0], self.input_options)
        assert it.modality is not None
        return it.modality

    def embed_audio_segments(
        self, clip: Any, window_s: float = CLAP_WINDOW_S, hop_s: float | None = None
    ) -> AudioSegments:
        """One vector per window of a recording, with start and end times in seconds.

        Windows of ``window_s`` seconds (at most the model's 10 s) start every ``hop_s``
        seconds (default: ``window_s``). Every window is full: the last ends at the clip's
        end, overlapping the one before (a clip shorter than one window is one window,
        repeat-padded as the model expects).
        """
        self._audio.check_window(window_s)
        return self._audio.segments(self._fetched([clip], Modality.AUDIO)[0], window_s, hop_s)

    def embed_video(
        self,
        source: Any,
        frame_every_s: float | None = None,
        window_s: float = CLAP_WINDOW_S,
        keyframes_only: bool = False,
    ) -> VideoMoments:
        """The moments of a video with their times, and its whole vector (needs the
        ``video`` extra: ``pip install "clipclap-integrations[video]"``).

        A frame every ``frame_every_s`` seconds (default: the ``frame_every_s`` option), the
        one on screen at t, embedded exactly as ``embed_images`` embeds that frame's RGB
        array, its moment [t, t + frame_every_s); with ``keyframes_only`` only the keyframes
        are decoded, each a moment up to the next (much faster; encoders put keyframes at
        scene cuts). The soundtrack is embedded in windows of ``window_s`` exactly as
        ``embed_audio_segments`` embeds the decoded track. ``whole`` is what ``embed`` gives
        for the video (the ``VideoMoments`` docstring defines it).
        """
        self._video.check_window(window_s)
        item = self._fetched([source], Modality.VIDEO)[0]
        return self._video.video(
            item, 0, every_s=frame_every_s, window_s=window_s, keyframes_only=keyframes_only
        )

    # -- preprocessing only -----------------------------------------------------------------
    def preprocess_text(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """``input_ids`` and ``attention_mask`` (int64), padded to the longest text."""
        return self.text_preprocessor(_texts(texts))

    def preprocess_images(self, images: Sequence[Any]) -> np.ndarray:
        """``pixel_values`` (B, 3, 224, 224) float32."""
        items = self._fetched(images, Modality.IMAGE)
        if not items:
            return self.image_preprocessor([])
        return np.stack([self._image.load(it, i) for i, it in enumerate(items)])

    def preprocess_audio(self, clips: Sequence[Any]) -> np.ndarray:
        """``input_features`` (B, 1, 1001, 64) float32 of clips of at most 10 s."""
        items = self._fetched(clips, Modality.AUDIO)
        waves = [self._audio.load(it, i) for i, it in enumerate(items)]
        for i, w in enumerate(waves):
            if w.shape[0] > self.folder.audio.max_samples:
                raise ClipClapInputError(
                    "longer than 10 s: use embed_audio, which windows it",
                    index=i,
                    item=items[i].description,
                )
        return self.audio_preprocessor(waves)

    def _fetched(self, inputs: Sequence[Any], forced: Modality) -> list[Item]:
        return classify_all(inputs, self.input_options, forced)


def _texts(values: Sequence[Any]) -> list[str]:
    """The strings of ``values``, each checked as text; errors name the position."""
    out = []
    for i, v in enumerate(input_list(values)):
        try:
            if not isinstance(v, str):
                raise ClipClapInputError(f"expected a string, got {type(v).__name__}")
            out.append(check_text(v))
        except ClipClapInputError as exc:
            raise ClipClapInputError(exc.reason, index=i, item=describe(v)) from None
    return out
