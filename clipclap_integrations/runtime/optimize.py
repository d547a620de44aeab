"""Opt-in faster copies of the encoder graphs, built once and cached on disk.

* ``optimize="fusions"``: onnxruntime's transformer graph fusions
  (``onnxruntime.transformers.optimizer``: attention, SkipLayerNorm, QuickGelu, BiasGelu...)
  applied offline; onnxruntime's own default optimizations still run when the copy is loaded.
* ``quantize="int8"``: dynamic int8 quantization of the MatMul weights
  (``onnxruntime.quantization.quantize_dynamic``), after the fusions when both are asked for.

Both change the vectors slightly (the benchmark reports how much); the default graphs stay
untouched. Only the three encoders are rewritten: the projections are tiny. Copies go to
``<cache>/optimized/<key>/``, where ``<key>`` hashes the source graph's identity, the options,
and the onnxruntime version; the cache is ``$CLIPCLAP_CACHE``, else
``$XDG_CACHE_HOME/clipclap-integrations``, else ``~/.cache/clipclap-integrations``. Building
needs the ``onnx`` package; concurrent builders are safe (each writes a temporary file and
renames it into place; in one process builds take turns). A cached copy that cannot be read,
or that fails to load because its bytes no longer match the SHA-256 recorded when it was built,
is removed and built again, once: if the fresh copy cannot be loaded either, a RuntimeError
names the cache folder; other load failures (memory, providers) are raised as they are. A
cache folder that cannot be written falls back to the plain graph, with a warning.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import platform
import shutil
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

from ..types import Modality
from .digests import content_sha256
from .model import GRAPHS
from .onnx_signature import read_signature

logger = logging.getLogger(__name__)

OptimizeOption = Literal["fusions"]
QuantizeOption = Literal["int8"]
OPTIMIZE_CHOICES: tuple[str, ...] = ("fusions",)
QUANTIZE_CHOICES: tuple[str, ...] = ("int8",)
FORMAT_VERSION = 2
_BUILD_LOCK = threading.Lock()  # one build at a time per process (and one log filter)
_STALE_BUILD_S = 6 * 3600  # a .build-* folder this old was left by a killed process
T = TypeVar("T")

# Encoder graph -> (transformers-optimizer model type, clip_config section for heads/width).
_FUSION_TYPES: dict[str, tuple[str, str | None]] = {
    GRAPHS[Modality.TEXT].encoder: ("clip", "text_config"),
    GRAPHS[Modality.IMAGE].encoder: ("clip", "vision_config"),
    GRAPHS[Modality.AUDIO].encoder: ("swin", None),  # heads differ per stage: detected per node
}
CACHE_ENV = "CLIPCLAP_CACHE"


def default_cache_dir() -> Path:
    """Where optimized copies are kept unless ``optimized_dir`` says otherwise."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "clipclap-integrations"


def applies_to(graph: str) -> bool:
    """Whether ``graph`` (a file name) is one of the encoders the options rewrite."""
    return graph in _FUSION_TYPES


def _cpu_has_int8_dot() -> bool:
    """Whether this CPU multiplies u8 x s8 without 16-bit saturation (VNNI, AMX or ARM).

    Without it (plain AVX2), weights are quantized to 7 bits (``reduce_range``) so the
    intermediate sums cannot saturate.
    """
    machine = platform.machine().lower()
    if machine not in ("x86_64", "amd64", "i386", "i686"):
        return True
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return False
    return any(flag in flags.split() for flag in ("avx512_vnni", "avx_vnni", "amx_int8"))


def derived_graph(
    source: Path,
    *,
    optimize: str | None,
    quantize: str | None,
    config: dict[str, Any],
    cache_dir: Path | None = None,
    fingerprint: Any = None,
) -> Path:
    """The cached optimized copy of the encoder graph ``source``; built if missing.

    ``fingerprint`` identifies the source with its external weights (``ModelFolder
    .fingerprint``): a change to either gives a new copy. Returns ``source`` itself, with a
    warning, when the cache folder cannot be written.
    """
    import onnxruntime

    st = source.stat()
    reduce_range = quantize == "int8" and not _cpu_has_int8_dot()
    identity = {
        "format": FORMAT_VERSION,
        "source": str(source.resolve()),
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "fingerprint": repr(fingerprint),
        "optimize": optimize,
        "quantize": quantize,
        "reduce_range": reduce_range,
        "onnxruntime": onnxruntime.__version__,
    }
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:20]
    folder = (cache_dir or default_cache_dir()) / "optimized" / key
    target = folder / source.name
    if _readable(target):
        return target
    with _BUILD_LOCK:
        if _readable(target):  # another thread built it meanwhile
            return target
        try:
            folder.mkdir(parents=True, exist_ok=True)
            _remove_stale_builds(folder)
            return _build(source, folder, target, identity, optimize, quantize, config)
        except OSError as exc:  # no permission, a read-only file system, a full disk...
            warnings.warn(
                f"cannot write the optimized copy of {source.name} to {folder} ({exc}); "
                f"using the plain graph. Set optimized_dir= (or ${CACHE_ENV}) to a writable "
                "folder to get the optimize/quantize speed-up",
                RuntimeWarning,
                stacklevel=3,
            )
            return source


def _unreadable_graph(exc: BaseException) -> bool:
    """Whether onnxruntime failed because the graph file itself is bad (truncated, damaged),
    rather than for memory, a provider or the options."""
    name, text = type(exc).__name__, str(exc)
    if "bad_alloc" in text or "allocate" in text or "memory" in text.lower():
        return False
    if name in ("InvalidProtobuf", "InvalidGraph", "NoSuchFile", "UnicodeDecodeError"):
        return True  # UnicodeDecodeError: a damaged name or op type in onnxruntime's message
    return name in ("InvalidArgument", "Fail") and any(
        marker in text
        for marker in (
            "Load model",
            "is not a graph input",
            "Deserialize tensor",
            "No Op registered",
            "Protobuf parsing failed",
            "ShapeInferenceError",
            "TypeInferenceError",
        )
    )


def load_derived(
    source: Path,
    load: Callable[[Path], T],
    *,
    optimize: str | None,
    quantize: str | None,
    config: dict[str, Any],
    cache_dir: Path | None = None,
    fingerprint: Any = None,
) -> T:
    """``load`` (an onnxruntime session, say) of the cached copy :func:`derived_graph` gives;
    a copy that fails because it is damaged is built again once (see the module docstring).
    A failure to load the plain graph (the cache could not be written) is raised as it is."""
    for attempt in (1, 2):
        path = derived_graph(
            source,
            optimize=optimize,
            quantize=quantize,
            config=config,
            cache_dir=cache_dir,
            fingerprint=fingerprint,
        )
        stamp = _stamp(path)
        try:
            return load(path)
        except Exception as exc:
            if path == source or not _damaged(path, exc):
                raise  # out of memory, a provider error...: not the copy's fault
            if attempt == 2:
                raise RuntimeError(
                    f"onnxruntime cannot load {path.name}, the optimized copy of {source} in the "
                    f"cache folder {path.parent}, even just built again: {exc}. Delete that "
                    "folder to start over, or run without optimize=/quantize="
                ) from exc
            logger.warning(
                "onnxruntime cannot load the cached copy %s (%s): building it again", path, exc
            )
            _discard(path, stamp)
    raise AssertionError("unreachable")


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _discard(path: Path, stamp: tuple[int, int, int] | None) -> None:
    """Remove the cached copy at ``path`` if it is still the one that failed (another thread
    may have built it again meanwhile)."""
    with _BUILD_LOCK:
        if stamp is not None and _stamp(path) == stamp:
            with contextlib.suppress(OSError):
                path.unlink()


def _readable(target: Path) -> bool:
    """Whether a cached copy is there and onnxruntime can read it (a truncated or emptied
    copy is not, and is built again)."""
    if not target.is_file():
        return False
    try:
        read_signature(target)
        return True
    except Exception:
        logger.warning("the cached copy %s is unreadable: building it again", target)
        return False


def _remove_stale_builds(folder: Path) -> None:
    """Temporary build folders left by killed processes (live ones are recent)."""
    for stale in folder.glob(".build-*"):
        with contextlib.suppress(OSError):
            if time.time() - stale.stat().st_mtime > _STALE_BUILD_S:
                shutil.rmtree(stale, ignore_errors=True)


def _build(
    source: Path,
    folder: Path,
    target: Path,
    identity: dict[str, Any],
    optimize: str | None,
    quantize: str | None,
    config: dict[str, Any],
) -> Path:
    reduce_range = bool(identity["reduce_range"])
    logger.info(
        "building %s (optimize=%s, quantize=%s) into %s", source.name, optimize, quantize, folder
    )
    with tempfile.TemporaryDirectory(dir=folder, prefix=".build-") as tmp:
        current = source
        if optimize == "fusions":
            current = _fuse(current, Path(tmp) / "fused.onnx", config)
        if quantize == "int8":
            current = _quantize(current, Path(tmp) / "int8.onnx", reduce_range)
        if current == source:  # nothing to do (cannot happen with valid options)
            return source
        if any(Path(tmp).glob("*.data")):
            raise RuntimeError("optimized copies over 2 GB (external data) are not supported")
        digest = content_sha256(current)
        os.replace(current, target)
    (folder / "identity.json").write_text(json.dumps(identity, indent=1), encoding="utf-8")
    _digest_file(target).write_text(digest, encoding="ascii")
    return target


def _digest_file(target: Path) -> Path:
    return target.with_name(target.name + ".sha256")


def _damaged(path: Path, exc: BaseException) -> bool:
    """Whether the cached copy ``path`` that failed to load is itself bad: its bytes no longer
    match the hash recorded when it was built. Copies from before hashes were recorded are
    judged by onnxruntime's message (a graph that does not parse), never for memory."""
    try:
        recorded = _digest_file(path).read_text(encoding="ascii").strip()
    except OSError:
        recorded = ""
    if recorded:
        try:
            return content_sha256(path) != recorded
        except OSError:
            return True
    return _unreadable_graph(exc)


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            "optimize= and quantize= build their copies with the onnx package: pip install onnx"
        ) from exc


def _fuse(source: Path, out: Path, config: dict[str, Any]) -> Path:
    _require_onnx()
    from onnxruntime.transformers.optimizer import optimize_model

    model_type, section = _FUSION_TYPES[source.name]
    heads = hidden = 0
    spec = config.get(section) if section else None
    if isinstance(spec, dict):
        h, w = spec.get("num_attention_heads"), spec.get("hidden_size")
        if isinstance(h, int) and isinstance(w, int):
            heads, hidden = h, w
    with _quiet():
        model = optimize_model(
            str(source), model_type=model_type, num_heads=heads, hidden_size=hidden, opt_level=0
        )
        model.save_model_to_file(str(out), use_external_data_format=False)
    logger.info("fusions in %s: %s", source.name, model.get_fused_operator_statistics())
    return out


def _quantize(source: Path, out: Path, reduce_range: bool) -> Path:
    _require_onnx()
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet():
        quantize_dynamic(
            source,
            out,
            weight_type=QuantType.QInt8,
            per_channel=False,
            reduce_range=reduce_range,
            extra_options={
                "MatMulConstBOnly": True,  # weights only; activations are quantized per run
                "DefaultTensorType": onnx.TensorProto.FLOAT,  # fused contrib ops lack shapes
            },
        )
    return out


class _FromOnnxruntime(logging.Filter):
    """Drops warnings logged from onnxruntime's own Python code (optimizer, quantizer)."""

    def __init__(self) -> None:
        super().__init__()
        import onnxruntime

        self.prefix = os.path.dirname(os.path.abspath(onnxruntime.__file__)) + os.sep

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or not record.pathname.startswith(self.prefix)


@contextlib.contextmanager
def _quiet() -> Any:
    """The optimizer and quantizer log freely (on the root logger too); keep their warnings
    out of the user's output without touching anything else: a filter on the root logger and
    its handlers drops records that come from onnxruntime's files, from any thread. Callers
    hold ``_BUILD_LOCK``, so filters are added and removed in order."""
    quiet = _FromOnnxruntime()
    root = logging.getLogger()
    targets: list[Any] = [root, *root.handlers]
    if logging.lastResort is not None:
        targets.append(logging.lastResort)
    for target in targets:
        target.addFilter(quiet)
    try:
        yield
    finally:
        for target in targets:
            target.removeFilter(quiet)
