"""Audio: any sound payload -> mono 48 kHz -> CLAP's log-mel windows; a clip's vector is its
window's, or the normalized mean of its windows'; or one vector per window, with times."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property

import numpy as np

from ..errors import ClipClapInputError
from ..inputs import Item, Media, Waveform
from ..media.audio import (
    AudioPreprocessor,
    check_waveform,
    decode_audio,
    duration_windows,
    to_mono,
)
from ..runtime.encoders import normalize
from ..runtime.model import CLAP_WINDOW_S
from ..runtime.prefetch import Prefetch
from ..types import AudioSegments, Modality
from .base import ModalityPipeline, blaming, loading


class AudioPipeline(ModalityPipeline):
    modality = Modality.AUDIO

    @cached_property
    def preprocessor(self) -> AudioPreprocessor:
        return AudioPreprocessor(self.folder.audio)

    def load(self, item: Item, index: int) -> np.ndarray:
        """Any audio payload -> mono float32 at the model's sample rate, checked."""
        limit = self.options.max_audio_seconds
        with loading(item, index, "audio"):
            payload = item.payload
            if isinstance(payload, Media):
                # decoded to mono and resampled block by block: one 48 kHz copy in memory
                samples, rate = decode_audio(
                    payload.source, max_seconds=limit, target_rate=self.folder.audio.sample_rate
                )
            elif isinstance(payload, Waveform):
                samples, rate = payload.samples, payload.sample_rate
            else:
                raise ClipClapInputError("not audio")
            mono = to_mono(samples)
            check_waveform(mono, rate, limit)
            return self.preprocessor.prepare(mono, rate)

    def embed(self, items: Sequence[Item], indices: Sequence[int]) -> np.ndarray:
        """Clips are decoded, resampled and turned into features (all their windows at once)
        in the worker threads while the model runs; windows of consecutive clips share
        batches; a clip's vector is its window's, or the normalized mean of its windows'."""
        out = np.empty((len(items), self.folder.dim), dtype=np.float32)
        pre = self.preprocessor
        size = self.options.batch_size

        def load(r: int) -> np.ndarray:
            wave = self.load(items[r], indices[r])
            return pre(pre.windows(wave, self.options.long_audio))

        pending: list[np.ndarray] = []  # features of windows waiting for a batch
        owners: list[int] = []
        done: dict[int, list[np.ndarray]] = {}
        count = [0] * len(items)
        with Prefetch(len(items), load, budget=2 * size, size=len) as feed:
            following = 0
            while following < len(items) or pending:
                while following < len(items) and len(pending) < size:
                    features = feed.get(following)
                    count[following] = len(features)
                    pending.extend(features)
                    owners.extend([following] * len(features))
                    following += 1
                take = min(size, len(pending))
                with blaming(lambda r: (indices[r], items[r].description), owners[:take]):
                    vectors = self.encoders.project(
                        Modality.AUDIO, {"input_features": np.stack(pending[:take])}
                    )
                for r, vector in zip(owners[:take], vectors, strict=True):
                    mine = done.setdefault(r, [])
                    mine.append(vector)
                    if len(mine) == count[r]:
                        out[r] = mine[0] if len(mine) == 1 else normalize(np.mean(mine, axis=0))
                        del done[r]
                del pending[:take], owners[:take]
        return out

    def segments(
        self, item: Item, window_s: float = CLAP_WINDOW_S, hop_s: float | None = None
    ) -> AudioSegments:
        """One vector per window of a recording, with start and end times in seconds
        (``window_s`` checked by ``check_window`` first, before the clip is fetched)."""
        wave = self.load(item, 0)
        rate = self.folder.audio.sample_rate
        bounds = duration_windows(wave.shape[0], rate, window_s, hop_s)
        vectors = self.run_windows([wave[a:b] for a, b in bounds], item.description)
        starts = np.array([a / rate for a, _ in bounds], dtype=np.float64)
        ends = np.array([b / rate for _, b in bounds], dtype=np.float64)
        return AudioSegments(vectors, starts, ends)

    def check_window(self, window_s: float) -> None:
        limit = self.folder.audio.max_length_s
        if not 0 < window_s <= limit:
            raise ValueError(f"window_s must be in (0, {limit:g}] seconds, got {window_s!r}")

    def run_windows(self, windows: list[np.ndarray], description: str = "") -> np.ndarray:
        """One vector per window of one recording (``description``, for messages)."""
        pre = self.preprocessor
        return self.run_batches(
            len(windows),
            lambda r: pre([windows[r]])[0],
            "input_features",
            lambda r: (0, f"{description}, window {r}" if description else f"window {r}"),
        )
