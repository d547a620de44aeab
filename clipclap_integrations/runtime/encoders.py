"""Running the model's graphs: one modality's encoder, then its projection, then L2
normalization, for a prepared batch; and which onnxruntime session (plain or an optimized
copy) serves each graph."""

from __future__ import annotations

import os
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import NonFiniteVectorError
from ..types import Modality
from .model import GRAPHS, ModelFolder
from .optimize import OptimizeOption, QuantizeOption, applies_to, load_derived
from .runs import run_all, split
from .sessions import SessionConfig, get_session
from .sessions import run as run_session

# The audio encoder needs ~40 MB of activations per 10 s window and runs as fast 8 windows at a
# time as 32: longer runs only cost memory. The cap is for the runs made at once together.
MAX_RUN: dict[Modality, int] = {Modality.AUDIO: 8}
# Graphs whose onnxruntime memory patterns cost more than they give (see SessionConfig).
NO_MEM_PATTERN = frozenset({GRAPHS[Modality.TEXT].encoder, GRAPHS[Modality.AUDIO].encoder})


def normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm, float32 (an all-zero row stays zero)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


class Encoders:
    """The sessions of one model folder for one embedder, created on first use (shared
    process-wide by ``get_session``), and the encoder + projection runs over them: a batch
    is split between ``runs`` runs made at once (see ``runs``)."""

    def __init__(
        self,
        folder: ModelFolder,
        config: SessionConfig,
        *,
        optimize: OptimizeOption | None = None,
        quantize: QuantizeOption | None = None,
        optimized_dir: str | os.PathLike[str] | None = None,
        runs: int = 1,
    ) -> None:
        self.folder = folder
        self.config = config
        self.runs = max(1, runs)
        self.optimize = optimize
        self.quantize = quantize
        self.optimized_dir = None if optimized_dir is None else Path(optimized_dir).expanduser()
        self._graphs: dict[str, tuple[Path, tuple[Any, ...]]] = {}  # optimized copies in use
        self._warned_providers: set[str] = set()  # dropped providers, warned once per embedder
        self._deriving = threading.Lock()  # one thread builds (or finds) an optimized copy

    def session(self, name: str) -> Any:  # -> onnxruntime.InferenceSession
        """The session running graph ``name`` (an optimized copy when one was asked for)."""
        config = replace(self.config, mem_pattern=False) if name in NO_MEM_PATTERN else self.config
        if (self.optimize or self.quantize) and applies_to(name) and name not in self._graphs:
            with self._deriving:
                if name not in self._graphs:
                    return self._derived_session(name, config)
        path, fingerprint = self._graphs.get(name) or (
            self.folder.graph_path(name),
            self.folder.fingerprint(name),
        )
        return get_session(path, fingerprint, config, self._warned_providers)

    def _derived_session(self, name: str, config: SessionConfig) -> Any:
        """The session of an optimized copy of graph ``name``, built (or found) once per
        embedder."""

        def load(path: Path) -> Any:  # a damaged cached copy is built again (once)
            st = path.stat()
            fingerprint = (str(path), st.st_size, st.st_mtime_ns)
            session = get_session(path, fingerprint, config, self._warned_providers)
            return (path, fingerprint), session

        self._graphs[name], session = load_derived(
            self.folder.graph_path(name),
            load,
            optimize=self.optimize,
            quantize=self.quantize,
            config=self.folder.clip_config,
            cache_dir=self.optimized_dir,
            fingerprint=self.folder.fingerprint(name),
        )
        return session

    def providers_in_use(self) -> list[str]:
        """The providers onnxruntime actually runs this model's graphs with."""
        providers: list[str] = self.session(GRAPHS[Modality.TEXT].projection).get_providers()
        return providers

    def static_dim(self, graph: str, input_name: str, axis: int) -> int | None:
        """The fixed size of one axis of a graph input; None when the graph leaves it free."""
        for node in self.session(graph).get_inputs():
            if node.name == input_name:
                dim = node.shape[axis] if len(node.shape) > axis else None
                return dim if isinstance(dim, int) and dim > 0 else None
        return None

    def project(self, modality: Modality, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """Encoder, then projection, then L2 normalization, for one prepared batch; a row
        with NaN or infinite values raises ``NonFiniteVectorError`` (see ``checked``)."""
        return checked(self.run(modality, feeds))

    def run(self, modality: Modality, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """``project`` without the check of the values."""
        n = next(iter(feeds.values())).shape[0]
        cap = MAX_RUN.get(modality)
        # a capped graph: at most cap rows in flight, in runs of two or more
        runs = self.runs if cap is None else max(1, min(self.runs, cap // 2))
        slices = split(n, runs, None if cap is None else cap // runs)
        if len(slices) <= 1:
            return self._run_one(modality, feeds)

        def one(rows: slice) -> np.ndarray:
            return self._run_one(modality, {k: v[rows] for k, v in feeds.items()})

        return np.concatenate(run_all(one, slices, runs, pool=self.runs))

    def _run_one(self, modality: Modality, feeds: dict[str, np.ndarray]) -> np.ndarray:
        pair = GRAPHS[modality]
        encoder, projection = self.session(pair.encoder), self.session(pair.projection)
        names = {i.name for i in encoder.get_inputs()}
        pooled = run_output(
            encoder, {k: v for k, v in feeds.items() if k in names}, "pooler_output"
        )
        proj_input = projection.get_inputs()[0].name
        return normalize(run_output(projection, {proj_input: pooled}, "output"))


NON_FINITE = (
    "the model gave a vector with NaN or infinite values for it (broken model weights or "
    "preprocessing settings?)"
)


def checked(vectors: np.ndarray) -> np.ndarray:
    """``vectors`` when every value is finite; else ``NonFiniteVectorError`` whose ``index``
    is the first bad row of this batch (the caller names the input). Every vector leaves
    the model through here."""
    bad = ~np.isfinite(vectors).all(axis=-1)
    if bad.any():
        raise NonFiniteVectorError(NON_FINITE, index=int(np.argmax(bad)))
    return vectors


def run_output(session: Any, feeds: dict[str, np.ndarray], prefer: str) -> np.ndarray:
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
