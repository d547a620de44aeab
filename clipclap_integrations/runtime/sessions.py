"""onnxruntime sessions: one process-wide cache, created lazily, one graph at a time.

Adapters are rebuilt constantly (Chroma constructs an embedding function several times per
``add``); keying sessions by graph file, providers and threads makes every rebuild free and
means a text-only process never loads the image or audio graphs.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import denormals
from .callers import outside_stacklevel

if TYPE_CHECKING:
    import onnxruntime as ort

logger = logging.getLogger(__name__)

ProviderSpec = str | tuple[str, dict[str, Any]]
_CPU = "CPUExecutionProvider"


@dataclass(frozen=True)
class SessionConfig:
    """How sessions are created: execution providers (in order of preference), threads, and
    whether onnxruntime plans memory per input shape (``mem_pattern``).

    Memory patterns are cached per distinct input shape and sized for the whole run at once:
    for text (a new shape for every batch length) the cache grows with use, and for the audio
    encoder the planned block is ~800 MB larger at 32 windows than allocating as it goes. The
    embedder turns them off for those graphs; the numbers computed are the same.
    """

    providers: tuple[ProviderSpec, ...] | None = None
    threads: int | None = None
    mem_pattern: bool = True

    def key(self) -> tuple[Any, ...]:
        providers = (
            None
            if self.providers is None
            else tuple(
                p if isinstance(p, str) else (p[0], tuple(sorted(p[1].items())))
                for p in self.providers
            )
        )
        return (providers, self.threads, self.mem_pattern)


def normalize_providers(
    providers: Sequence[ProviderSpec] | str | None,
) -> tuple[ProviderSpec, ...] | None:
    """Providers as a tuple; accepts a single name, names, or (name, options) pairs."""
    if providers is None:
        return None
    if isinstance(providers, str):
        return (providers,)
    out: list[ProviderSpec] = []
    for p in providers:
        if isinstance(p, str):
            out.append(p)
        elif isinstance(p, tuple | list) and len(p) == 2 and isinstance(p[0], str):
            options = dict(p[1])
            for key, value in options.items():
                if not isinstance(key, str) or not isinstance(value, str | int | float | bool):
                    raise ValueError(
                        f"provider option {key!r} of {p[0]} must be a string or a number "
                        f"(onnxruntime passes options as strings), got {value!r}"
                    )
            out.append((p[0], options))
        else:
            raise ValueError(f"a provider must be a name or a (name, options) pair, got {p!r}")
    if not out:
        raise ValueError("providers must not be empty; pass None for onnxruntime's default")
    return tuple(out)


def _provider_name(p: ProviderSpec) -> str:
    return p if isinstance(p, str) else p[0]


_sessions: dict[tuple[Any, ...], ort.InferenceSession] = {}
_notes: dict[tuple[Any, ...], _ProviderNotes] = {}
_locks: dict[tuple[Any, ...], threading.Lock] = {}
_registry_lock = threading.Lock()
_warn_lock = threading.Lock()


@dataclass(frozen=True)
class _ProviderNotes:
    """What became of the requested providers when a session was created."""

    graph: str
    missing: tuple[str, ...]  # this onnxruntime does not have them
    dropped: tuple[str, ...]  # it has them, yet the session does not use them
    available: tuple[str, ...]
    used: tuple[str, ...]


def available_providers(config: SessionConfig) -> list[ProviderSpec] | None:
    """The providers of ``config`` that this onnxruntime has, in order (the CPU if none is):
    what sessions are created with. ``None`` (onnxruntime's default) stays ``None``."""
    import onnxruntime as ort

    if config.providers is None:
        return None
    available = set(ort.get_available_providers())
    return [p for p in config.providers if _provider_name(p) in available] or [_CPU]


def session_options(config: SessionConfig) -> ort.SessionOptions:
    """The onnxruntime session options for ``config``, on this machine: decided by the
    providers sessions are created with (:func:`available_providers`), not the ones asked
    for."""
    return _options(config, available_providers(config))


def _options(config: SessionConfig, providers: Sequence[ProviderSpec] | None) -> ort.SessionOptions:
    import onnxruntime as ort

    options = ort.SessionOptions()
    if config.threads is not None:
        options.intra_op_num_threads = config.threads
        options.inter_op_num_threads = 1
    options.enable_mem_pattern = config.mem_pattern
    options.log_severity_level = 3
    if cpu_only(providers) and denormals.supported():
        # pool threads flush subnormals; run() flushes on the calling thread
        options.add_session_config_entry("session.set_denormal_as_zero", "1")
    return options


def cpu_only(providers: Sequence[ProviderSpec] | None) -> bool:
    return providers is None or all(_provider_name(p) == _CPU for p in providers)


def run(session: ort.InferenceSession, names: list[str], feeds: dict[str, Any]) -> list[Any]:
    """``session.run``; on the CPU with subnormal floats flushed to zero on this thread
    meanwhile (see ``denormals``). Decided by the providers the session runs on."""
    if not cpu_only(session.get_providers()):
        return session.run(names, feeds)
    with denormals.flushing():
        return session.run(names, feeds)


def get_session(
    path: Path,
    fingerprint: tuple[Any, ...],
    config: SessionConfig,
    warned: set[str] | None = None,
) -> ort.InferenceSession:
    """The shared session for the graph at ``path``, created on first use.

    A requested provider the session does not use is warned about (attributed to the first
    caller outside this package): once per name for each ``warned`` set (one per embedder,
    however many share the session), or, without one, when the session is created.
    """
    key = (fingerprint, config.key())
    session = _sessions.get(key)
    created = False
    if session is None:
        with _registry_lock:
            lock = _locks.setdefault(key, threading.Lock())
        with lock:  # one thread builds it; the others wait and reuse it
            session = _sessions.get(key)
            if session is None:
                session, notes = _create(path, config)
                _notes[key] = notes
                _sessions[key] = session
                created = True
    found = _notes.get(key)
    if found is not None and (found.missing or found.dropped) and (created or warned is not None):
        _warn(found, warned)
    return session


def _warn(notes: _ProviderNotes, warned: set[str] | None) -> None:
    missing, dropped = list(notes.missing), list(notes.dropped)
    if warned is not None:
        with _warn_lock:
            missing = [name for name in missing if name not in warned]
            dropped = [name for name in dropped if name not in warned]
            warned.update(missing + dropped)
    if not missing and not dropped:
        return

    if missing:
        warnings.warn(
            f"onnxruntime here cannot use {', '.join(missing)} (available: "
            f"{', '.join(sorted(notes.available))}); continuing without it",
            RuntimeWarning,
            stacklevel=outside_stacklevel(),
        )
    if dropped:
        warnings.warn(
            f"onnxruntime dropped the requested provider(s) {', '.join(dropped)} for "
            f"{notes.graph} (it runs on {', '.join(notes.used)})",
            RuntimeWarning,
            stacklevel=outside_stacklevel(),
        )


def _create(path: Path, config: SessionConfig) -> tuple[ort.InferenceSession, _ProviderNotes]:
    import onnxruntime as ort

    available = tuple(ort.get_available_providers())
    providers = available_providers(config)
    missing = tuple(
        _provider_name(p) for p in config.providers or () if _provider_name(p) not in available
    )
    logger.debug("creating onnxruntime session for %s", path)
    session = _new(path, config, providers)
    used = tuple(session.get_providers())
    dropped = tuple(_provider_name(p) for p in providers or () if _provider_name(p) not in used)
    if not cpu_only(providers) and cpu_only(used) and denormals.supported():
        # onnxruntime fell back to the CPU (a provider that failed to load, or failed on this
        # graph): created again for the CPU alone, for its pool threads to flush too (options
        # are fixed at creation); the first session goes first, for peak memory. Not
        # remembered across graphs: a fallback can be one graph's (GPU memory, say).
        cpu = [p for p in providers or () if _provider_name(p) == _CPU] or [_CPU]
        del session
        session = _new(path, config, cpu)
    return session, _ProviderNotes(path.name, missing, dropped, available, used)


def _new(
    path: Path, config: SessionConfig, providers: list[ProviderSpec] | None
) -> ort.InferenceSession:
    import onnxruntime as ort

    # onnxruntime sets the flush flags for good on the thread creating the process's first
    # session: they are put back after
    with denormals.preserving():
        return ort.InferenceSession(
            str(path), sess_options=_options(config, providers), providers=providers
        )


def loaded_graphs() -> list[str]:
    """File paths of the graphs with a live session in this process (for diagnostics)."""
    return sorted({key[0][0] for key in _sessions})


def clear_sessions() -> None:
    """Drop every cached session (frees their memory once no embedder uses them)."""
    with _registry_lock:
        _sessions.clear()
        _notes.clear()
        _locks.clear()
