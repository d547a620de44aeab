"""``ClipClapEmbedder``: text, images and audio into one 512-d, L2-normalized space."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from .checks import is_finite_number, is_int
from .errors import ClipClapInputError
from .inputs import (
    URLS_PER_FETCH,
    InputOptions,
    Item,
    Media,
    RemoteURL,
    Waveform,
    classify,
    classify_all,
    describe,
    fetch_groups,
    input_list,
    is_remote,
    resolve_remote,
)
from .media.audio import (
    DEFAULT_MAX_SECONDS,
    LONG_AUDIO_POLICIES,
    AudioPreprocessor,
    LongAudioPolicy,
    check_waveform,
    decode_audio,
    duration_windows,
    to_mono,
)
from .media.image import (
    DEFAULT_MAX_PIXELS,
    ImagePreprocessor,
    check_image_size,
    image_from_array,
    open_image,
)
from .media.text import TextPreprocessor
from .runtime.hub import resolve_model
from .runtime.model import GRAPHS, ModelFolder
from .runtime.optimize import (
    OptimizeOption,
    QuantizeOption,
    applies_to,
    check_options,
    load_derived,
)
from .runtime.prefetch import Prefetch
from .runtime.sessions import ProviderSpec, SessionConfig, get_session, normalize_providers
from .runtime.sessions import run as run_session
from .types import AudioSegments, Modality

# The audio encoder needs ~40 MB of activations per 10 s window and runs as fast 8 windows at a
# time as 32: longer runs only cost memory.
_MAX_RUN: dict[Modality, int] = {Modality.AUDIO: 8}
# A text model run costs about as much as this many padded tokens: measured on the full model
# (2 cores, calls of 32 captions of 5-60 tokens), throughput is flat from 48 to 256 and drops
# on either side (many small runs use the cores poorly; few runs pad too much).
_RUN_OVERHEAD_TOKENS = 96
# Graphs whose onnxruntime memory patterns cost more than they give (see SessionConfig).
_NO_MEM_PATTERN = frozenset({GRAPHS[Modality.TEXT].encoder, GRAPHS[Modality.AUDIO].encoder})


def _normalize(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


class ClipClapEmbedder:
    """Embeds text, images and audio with CLIPCLAP through onnxruntime.

    Construction is cheap: the model folder is located and validated (once per process), but
    onnxruntime sessions are created on first use of each modality and shared by every
    embedder in the process with the same model, providers and threads.

    Args:
        model: a local model folder or a Hub repo id (default ``$CLIPCLAP_MODEL`` or
            ``antflydb/clipclap``).
        revision: Hub branch, tag or commit to use.
        cache_dir: where Hub downloads go (default: the Hugging Face cache).
        local_files_only: never contact the Hub; use the cache only.
        providers: onnxruntime execution providers in order of preference.
        threads: intra-op threads per session (default: onnxruntime's choice).
        batch_size: items per model run (audio: 10 s windows per batch, run by the audio
            encoder at most 8 at a time: the same speed, a fraction of the memory).
        long_audio: clips over 10 s: ``"mean"`` of consecutive windows, ``"first"`` or
            ``"center"`` 10 s.
        allow_remote: fetch http(s) URLs; set False for untrusted input.
        allow_private_urls: fetch URLs whose host is a loopback, private or link-local
            address; set False for untrusted input (a server would otherwise fetch from
            its own network for whoever sends it a URL).
        allow_local_files: read paths and ``file:`` URLs; set False for untrusted input
            (strings are then always text, never looked up on disk).
        strict_paths: refuse strings that look like missing media files instead of
            embedding them as text.
        max_remote_bytes / remote_timeout: limits on each URL download.
        max_image_pixels: refuse larger images (decompression bombs).
        max_audio_seconds: refuse longer audio (bounds memory).
        fast_jpeg: decode JPEGs at reduced size (Pillow draft mode): much faster on large
            photos, at a small parity cost.
        optimize: ``"fusions"`` runs a copy of each encoder with onnxruntime's transformer
            graph fusions applied (built once, cached on disk). Opt-in: vectors move slightly.
        quantize: ``"int8"`` runs a dynamically int8-quantized copy of each encoder (built
            once, cached): much faster on CPUs, at a small parity cost.
        optimized_dir: where those copies are cached (default ``$CLIPCLAP_CACHE``, else
            ``~/.cache/clipclap-integrations``).
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        revision: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        local_files_only: bool | None = None,
        providers: Sequence[ProviderSpec] | str | None = None,
        threads: int | None = None,
        batch_size: int = 32,
        long_audio: LongAudioPolicy = "mean",
        allow_remote: bool = True,
        allow_private_urls: bool = True,
        allow_local_files: bool = True,
        strict_paths: bool = False,
        max_remote_bytes: int = 64 * 1024 * 1024,
        remote_timeout: float = 30.0,
        max_image_pixels: int | None = DEFAULT_MAX_PIXELS,
        max_audio_seconds: float | None = DEFAULT_MAX_SECONDS,
        fast_jpeg: bool = False,
        optimize: OptimizeOption | None = None,
        quantize: QuantizeOption | None = None,
        optimized_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        if not is_int(batch_size) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if long_audio not in LONG_AUDIO_POLICIES:
            raise ValueError(
                f"long_audio must be one of {', '.join(LONG_AUDIO_POLICIES)}, got {long_audio!r}"
            )
        if threads is not None and (not is_int(threads) or not 1 <= threads <= 1024):
            raise ValueError(f"threads must be an integer from 1 to 1024 or None, got {threads!r}")
        if not is_int(max_remote_bytes) or max_remote_bytes < 1:
            raise ValueError(
                f"max_remote_bytes must be a positive integer, got {max_remote_bytes!r}"
            )
        if not is_finite_number(remote_timeout) or remote_timeout <= 0:
            raise ValueError(
                f"remote_timeout must be a positive number of seconds, got {remote_timeout!r}"
            )
        if max_image_pixels is not None and (not is_int(max_image_pixels) or max_image_pixels < 1):
            raise ValueError(
                f"max_image_pixels must be a positive integer or None, got {max_image_pixels!r}"
            )
        if max_audio_seconds is not None and (
            not is_finite_number(max_audio_seconds) or max_audio_seconds <= 0
        ):
            raise ValueError(
                f"max_audio_seconds must be a positive number or None, got {max_audio_seconds!r}"
            )
        for flag, value in (
            ("fast_jpeg", fast_jpeg),
            ("allow_remote", allow_remote),
            ("allow_private_urls", allow_private_urls),
            ("allow_local_files", allow_local_files),
            ("strict_paths", strict_paths),
        ):
            if not isinstance(value, bool):
                raise ValueError(f"{flag} must be True or False, got {value!r}")
        self.folder: ModelFolder = resolve_model(
            model, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only
        )
        threads = None if threads is None else int(threads)  # numpy ints too: plain ints
        self.session_config = SessionConfig(normalize_providers(providers), threads)
        self.batch_size = int(batch_size)
        self.long_audio: LongAudioPolicy = long_audio
        self.input_options = InputOptions(
            allow_remote=allow_remote,
            allow_private_urls=allow_private_urls,
            allow_local_files=allow_local_files,
            strict_paths=strict_paths,
            max_remote_bytes=int(max_remote_bytes),
            remote_timeout=float(remote_timeout),
        )
        self.max_image_pixels = max_image_pixels
        self.max_audio_seconds = max_audio_seconds
        self.fast_jpeg = fast_jpeg
        check_options(optimize, quantize)
        self.optimize: OptimizeOption | None = optimize
        self.quantize: QuantizeOption | None = quantize
        self.optimized_dir = None if optimized_dir is None else Path(optimized_dir).expanduser()
        self._graphs: dict[str, tuple[Path, tuple[Any, ...]]] = {}
        self._warned_providers: set[str] = set()  # dropped providers, warned once per embedder

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

    # -- preprocessors (cheap objects; heavy state is cached per process) --------------------
    @cached_property
    def text_preprocessor(self) -> TextPreprocessor:
        return TextPreprocessor(self.folder.path, self.folder.text.max_length)

    @cached_property
    def image_preprocessor(self) -> ImagePreprocessor:
        return ImagePreprocessor(self.folder.image)

    @cached_property
    def audio_preprocessor(self) -> AudioPreprocessor:
        return AudioPreprocessor(self.folder.audio)

    # -- public embedding API ---------------------------------------------------------------
    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors of strings, (N, dim) float32, rows in input order."""
        items = _checked(texts, str, "a string")
        return self._embed_texts(items)

    def embed_images(self, images: Sequence[Any]) -> np.ndarray:
        """Vectors of images: paths, bytes, file objects, URLs, PIL images or uint8 arrays."""
        return self._embed_items(images, Modality.IMAGE)

    def embed_audio(self, clips: Sequence[Any]) -> np.ndarray:
        """Vectors of sounds: paths, bytes, URLs, ``(samples, rate)`` pairs or 48 kHz arrays."""
        return self._embed_items(clips, Modality.AUDIO)

    def embed(self, inputs: Sequence[Any], modality: Modality | str | None = None) -> np.ndarray:
        """Vectors of a list that may mix modalities; ``modality`` forces one for all."""
        return self._embed_items(inputs, Modality.parse(modality) if modality is not None else None)

    def _embed_items(self, inputs: Sequence[Any], forced: Modality | None) -> np.ndarray:
        """Classify everything first (bad items fail before any work), then embed."""
        return self.embed_classified(self.classify(inputs, forced))

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
            for m in Modality:
                idx = [i for i in rows if items[i].modality is m]
                if idx:
                    out[idx] = self._embed_group(m, [items[i] for i in idx], idx)
            for i in remote:
                items[i].payload = None  # the downloaded bytes are no longer needed
        return out

    def __call__(self, inputs: Sequence[Any]) -> np.ndarray:
        return self.embed(inputs)

    def detect(self, item: Any) -> Modality:
        """The modality ``embed`` would use for ``item`` (fetches a URL only if it must)."""
        it = classify(item, self.input_options)
        if it.modality is None:
            resolve_remote([it], [0], self.input_options)
        assert it.modality is not None
        return it.modality

    def embed_audio_segments(
        self, clip: Any, window_s: float = 10.0, hop_s: float | None = None
    ) -> AudioSegments:
        """One vector per window of a recording, with start and end times in seconds.

        Windows of ``window_s`` seconds (at most the model's 10 s) start every ``hop_s``
        seconds (default: ``window_s``). Every window is full: the last ends at the clip's
        end, overlapping the one before (a clip shorter than one window is one window,
        repeat-padded as the model expects).
        """
        limit = self.folder.audio.max_length_s
        if not 0 < window_s <= limit:
            raise ValueError(f"window_s must be in (0, {limit:g}] seconds, got {window_s!r}")
        items = self._classify([clip], Modality.AUDIO)
        wave = self._load_waveform(items[0], 0)
        rate = self.folder.audio.sample_rate
        bounds = duration_windows(wave.shape[0], rate, window_s, hop_s)
        vectors = self._run_audio_windows([wave[a:b] for a, b in bounds])
        starts = np.array([a / rate for a, _ in bounds], dtype=np.float64)
        ends = np.array([b / rate for _, b in bounds], dtype=np.float64)
        return AudioSegments(vectors, starts, ends)

    # -- preprocessing only -----------------------------------------------------------------
    def preprocess_text(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """``input_ids`` and ``attention_mask`` (int64), padded to the longest text."""
        return self.text_preprocessor(_checked(texts, str, "a string"))

    def preprocess_images(self, images: Sequence[Any]) -> np.ndarray:
        """``pixel_values`` (B, 3, 224, 224) float32."""
        items = self._classify(images, Modality.IMAGE)
        return (
            np.stack([self._load_pixels(it, i) for i, it in enumerate(items)])
            if items
            else self.image_preprocessor([])
        )

    def preprocess_audio(self, clips: Sequence[Any]) -> np.ndarray:
        """``input_features`` (B, 1, 1001, 64) float32 of clips of at most 10 s."""
        items = self._classify(clips, Modality.AUDIO)
        waves = [self._load_waveform(it, i) for i, it in enumerate(items)]
        for i, w in enumerate(waves):
            if w.shape[0] > self.folder.audio.max_samples:
                raise ClipClapInputError(
                    "longer than 10 s: use embed_audio, which windows it",
                    index=i,
                    item=items[i].description,
                )
        return self.audio_preprocessor(waves)

    # -- internals --------------------------------------------------------------------------
    def _classify(self, inputs: Sequence[Any], forced: Modality | None) -> list[Item]:
        return classify_all(inputs, self.input_options, forced)

    def _session(self, name: str):  # -> onnxruntime.InferenceSession
        config = self.session_config
        if name in _NO_MEM_PATTERN:
            config = replace(config, mem_pattern=False)
        if (self.optimize or self.quantize) and applies_to(name):
            graph = self._graphs.get(name)
            if graph is not None:
                return get_session(graph[0], graph[1], config, self._warned_providers)

            def load(path: Path) -> Any:  # a damaged cached copy is built again (once)
                st = path.stat()
                fingerprint = (str(path), st.st_size, st.st_mtime_ns)
                session = get_session(path, fingerprint, config, self._warned_providers)
                return (path, fingerprint), session

            # an optimized copy, built (or found) once per embedder
            graph, session = load_derived(
                self.folder.graph_path(name),
                load,
                optimize=self.optimize,
                quantize=self.quantize,
                config=self._clip_config,
                cache_dir=self.optimized_dir,
                fingerprint=self.folder.fingerprint(name),
            )
            self._graphs[name] = graph
            return session
        return get_session(
            self.folder.graph_path(name),
            self.folder.fingerprint(name),
            config,
            self._warned_providers,
        )

    @cached_property
    def _clip_config(self) -> dict[str, Any]:
        try:
            config = json.loads((self.folder.path / "clip_config.json").read_text("utf-8"))
        except (OSError, ValueError):
            return {}
        return config if isinstance(config, dict) else {}

    def _project(self, modality: Modality, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """Encoder, then projection, then L2 normalization, for one prepared batch."""
        n = next(iter(feeds.values())).shape[0]
        cap = _MAX_RUN.get(modality)
        if cap is not None and n > cap:
            return np.concatenate(
                [
                    self._project(modality, {k: v[s : s + cap] for k, v in feeds.items()})
                    for s in range(0, n, cap)
                ]
            )
        pair = GRAPHS[modality]
        encoder, projection = self._session(pair.encoder), self._session(pair.projection)
        names = {i.name for i in encoder.get_inputs()}
        pooled = _run(encoder, {k: v for k, v in feeds.items() if k in names}, "pooler_output")
        proj_input = projection.get_inputs()[0].name
        return _normalize(_run(projection, {proj_input: pooled}, "output"))

    def _embed_group(
        self, modality: Modality, items: list[Item], indices: Sequence[int] | None = None
    ) -> np.ndarray:
        indices = list(range(len(items))) if indices is None else list(indices)
        if modality is Modality.TEXT:
            return self._embed_texts([it.payload for it in items])
        if modality is Modality.IMAGE:
            return self._embed_images(items, indices)
        return self._embed_audio(items, indices)

    def _embed_texts(self, texts: list[str]) -> np.ndarray:
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        pre = self.text_preprocessor
        ids = pre.token_ids(texts)
        static_len = _static_dim(self._session(GRAPHS[Modality.TEXT].encoder), "input_ids", 1)
        if static_len is None:  # bucket by length: runs padded only as far as they must be
            runs = _length_runs([len(i) for i in ids], self.batch_size)
        else:
            order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
            runs = [order[s : s + self.batch_size] for s in range(0, len(order), self.batch_size)]
        for rows in runs:
            feeds = pre.pad([ids[i] for i in rows], pad_to=static_len)
            out[rows] = self._project(Modality.TEXT, feeds)
        return out

    def _load_pixels(self, item: Item, index: int) -> np.ndarray:
        edge = self.folder.image.shortest_edge if self.folder.image.do_resize else None
        limit = self.max_image_pixels
        try:
            payload = item.payload
            if isinstance(payload, Media):
                draft = (edge, edge) if self.fast_jpeg and edge else None
                image = open_image(payload.source, max_pixels=limit, draft=draft, resize_to=edge)
            elif isinstance(payload, np.ndarray):
                image = image_from_array(payload, max_pixels=limit, resize_to=edge)
            elif isinstance(payload, Waveform | RemoteURL | str):
                raise ClipClapInputError("not an image")
            else:
                image = _upright(payload, limit, edge)
            return self.image_preprocessor.pixels(image)
        except ClipClapInputError as exc:
            raise ClipClapInputError(exc.reason, index=index, item=item.description) from None
        except MemoryError:
            raise ClipClapInputError(
                "the image is too large to process in memory", index=index, item=item.description
            ) from None
        except Exception as exc:  # a Pillow plugin failing in a way nobody listed
            raise ClipClapInputError(
                f"the image cannot be processed ({type(exc).__name__}: {exc})",
                index=index,
                item=item.description,
            ) from None

    def _embed_images(self, items: list[Item], indices: list[int]) -> np.ndarray:
        out = np.empty((len(items), self.dim), dtype=np.float32)
        size = self.batch_size

        def load(r: int) -> np.ndarray:
            return self._load_pixels(items[r], indices[r])

        # Images are decoded in the worker threads, the next batch while this one runs.
        with Prefetch(len(items), load, budget=2 * size) as feed:
            for start in range(0, len(items), size):
                rows = range(start, min(start + size, len(items)))
                pixels = np.stack([feed.get(r) for r in rows])
                out[start : rows.stop] = self._project(Modality.IMAGE, {"pixel_values": pixels})
        return out

    def _load_waveform(self, item: Item, index: int) -> np.ndarray:
        """Any audio payload -> mono float32 at the model's sample rate, checked."""
        try:
            payload = item.payload
            if isinstance(payload, Media):
                # decoded to mono and resampled block by block: one 48 kHz copy in memory
                samples, rate = decode_audio(
                    payload.source,
                    max_seconds=self.max_audio_seconds,
                    target_rate=self.folder.audio.sample_rate,
                )
            elif isinstance(payload, Waveform):
                samples, rate = payload.samples, payload.sample_rate
            else:
                raise ClipClapInputError("not audio")
            mono = to_mono(samples)
            check_waveform(mono, rate, self.max_audio_seconds)
            return self.audio_preprocessor.prepare(mono, rate)
        except ClipClapInputError as exc:
            raise ClipClapInputError(exc.reason, index=index, item=item.description) from None
        except MemoryError:
            raise ClipClapInputError(
                "the audio is too large to process in memory", index=index, item=item.description
            ) from None
        except Exception as exc:  # a decoder or resampler failing in a way nobody listed
            raise ClipClapInputError(
                f"the audio cannot be processed ({type(exc).__name__}: {exc})",
                index=index,
                item=item.description,
            ) from None

    def _run_audio_windows(self, windows: list[np.ndarray]) -> np.ndarray:
        out = np.empty((len(windows), self.dim), dtype=np.float32)
        size = self.batch_size
        pre = self.audio_preprocessor

        def load(r: int) -> np.ndarray:
            return pre([windows[r]])[0]

        with Prefetch(len(windows), load, budget=2 * size) as feed:
            for start in range(0, len(windows), size):
                rows = range(start, min(start + size, len(windows)))
                features = np.stack([feed.get(r) for r in rows])
                out[start : rows.stop] = self._project(Modality.AUDIO, {"input_features": features})
        return out

    def _embed_audio(self, items: list[Item], indices: list[int]) -> np.ndarray:
        """Clips are decoded, resampled and turned into features (all their windows at once)
        in the worker threads while the model runs; windows of consecutive clips share
        batches; a clip's vector is its window's, or the normalized mean of its windows'."""
        out = np.empty((len(items), self.dim), dtype=np.float32)
        pre = self.audio_preprocessor
        size = self.batch_size

        def load(r: int) -> np.ndarray:
            wave = self._load_waveform(items[r], indices[r])
            return pre(pre.windows(wave, self.long_audio))

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
                vectors = self._project(
                    Modality.AUDIO, {"input_features": np.stack(pending[:take])}
                )
                for r, vector in zip(owners[:take], vectors, strict=True):
                    mine = done.setdefault(r, [])
                    mine.append(vector)
                    if len(mine) == count[r]:
                        out[r] = mine[0] if len(mine) == 1 else _normalize(np.mean(mine, axis=0))
                        del done[r]
                del pending[:take], owners[:take]
        return out


def _length_runs(
    lengths: Sequence[int], batch_size: int, overhead: int = _RUN_OVERHEAD_TOKENS
) -> list[list[int]]:
    """Indices grouped into text model runs of at most ``batch_size``, padding minimized.

    Sorted by length, then cut where padding would cost more than starting another run:
    dynamic programming over the sorted lengths, a run of n texts padded to L costing
    ``overhead + n * L`` token-steps. Padding changes no vector (the attention is causal and
    pooling takes the first end token), only the work: on captions of 5-60 tokens this does
    about 30% fewer token-steps than padding each batch to its longest text.
    """
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    sizes = np.asarray([lengths[i] for i in order], dtype=np.float64)
    n = len(order)
    best = np.zeros(n + 1)
    cut = np.zeros(n + 1, dtype=np.int64)
    for k in range(1, n + 1):
        first = max(0, k - batch_size)
        starts = np.arange(first, k)
        costs = best[first:k] + overhead + (k - starts) * sizes[k - 1]
        j = int(np.argmin(costs))  # the first minimum: the longest run among equals
        best[k], cut[k] = costs[j], first + j
    runs: list[list[int]] = []
    k = n
    while k > 0:
        runs.append(order[int(cut[k]) : k])
        k = int(cut[k])
    return runs[::-1]


def _checked(values: Sequence[Any], kind: type, what: str) -> list[Any]:
    out = list(input_list(values))
    for i, v in enumerate(out):
        if not isinstance(v, kind):
            raise ClipClapInputError(
                f"expected {what}, got {type(v).__name__}", index=i, item=describe(v)
            )
        if isinstance(v, str):
            try:
                v.encode("utf-8")  # the tokenizer raises TypeError on unpaired surrogates
            except UnicodeEncodeError:
                raise ClipClapInputError(
                    "the text is not valid Unicode (it holds unpaired surrogate code points)",
                    index=i,
                    item=describe(v),
                ) from None
    return out


def _upright(image: Any, max_pixels: int | None, resize_to: int | None = None) -> Any:
    """A caller's PIL image, checked, loaded and EXIF-upright, copied only if it must be
    (rotated, or in a mode ``to_rgb`` cannot convert); the caller's object is not changed."""
    from PIL import ImageOps

    given = image
    width, height = image.size
    check_image_size(width, height, max_pixels, resize_to)
    try:
        image.load()  # a lazily opened file that is truncated fails here, not in to_rgb
        try:
            orientation = image.getexif().get(0x0112, 1)
        except Exception:
            orientation = 1
        if orientation in (2, 3, 4, 5, 6, 7, 8):
            image = ImageOps.exif_transpose(image)
        if image.mode == "La":  # premultiplied gray+alpha: Pillow converts it only to LA
            image = image.convert("LA")
        return image
    except Exception as exc:  # a broken lazily-loaded PIL image, or a closed one
        raise ClipClapInputError(f"the image cannot be read ({_pil_failure(given, exc)})") from None


def _pil_failure(image: Any, exc: Exception) -> str:
    """Why a caller's PIL image could not be loaded; Pillow often raises a bare
    ``AssertionError`` or ``ValueError`` for an image whose file was closed."""
    detail = str(exc).strip()
    detail = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    closed = "closed" in str(exc) or (
        getattr(image, "fp", "") is None and isinstance(exc, AssertionError | ValueError)
    )
    if closed:
        detail += (
            "; the image was closed (or its file was, as on leaving `with Image.open(...)`): "
            "pass it while it is open, or a copy made while it was (image.copy())"
        )
    return detail


def _static_dim(session: Any, name: str, axis: int) -> int | None:
    for node in session.get_inputs():
        if node.name == name:
            dim = node.shape[axis] if len(node.shape) > axis else None
            return dim if isinstance(dim, int) and dim > 0 else None
    return None


def _run(session: Any, feeds: dict[str, np.ndarray], prefer: str) -> np.ndarray:
    """Run ``session`` and return its ``prefer`` output (else its first 2-D output).

    A graph whose batch axis is static (say 1) is run in chunks of that size, the last chunk
    padded with copies of its last row.
    """
    outputs = session.get_outputs()
    names = [o.name for o in outputs]
    name = (
        prefer
        if prefer in names
        else next((o.name for o in outputs if len(o.shape) == 2), names[0])
    )
    n = next(iter(feeds.values())).shape[0]
    static = session.get_inputs()[0].shape[0]
    if not isinstance(static, int) or static <= 0 or static == n:
        return run_session(session, [name], feeds)[0]
    parts = []
    for start in range(0, n, static):
        chunk = {k: v[start : start + static] for k, v in feeds.items()}
        got = next(iter(chunk.values())).shape[0]
        if got < static:
            chunk = {
                k: np.concatenate([v, np.repeat(v[-1:], static - got, axis=0)])
                for k, v in chunk.items()
            }
        parts.append(run_session(session, [name], chunk)[0][:got])
    return np.concatenate(parts)
