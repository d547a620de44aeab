"""Subnormal floats flushed to zero while onnxruntime computes for us on the CPU, and only then.

CLAP's shifted-window attention adds -100 to masked scores, so softmax writes probabilities
around 1e-44: subnormal floats, which x86 CPUs compute on through a microcode assist ~100x
slower than on normal numbers. In the full-size audio encoder the products of those
probabilities took a fifth of the run. Flushing them to zero (FTZ) and reading them as zero
(DAZ) removes that cost; their weight is below float32 resolution, and no output bit moved on
the synthetic models (the parity tests compare with torch, which keeps them).

onnxruntime sets the flags on a session's own pool threads when asked
(``session.set_denormal_as_zero``), but the thread calling ``run`` computes its share too, and
onnxruntime also sets them, for good, on the thread creating the process's first session.
:func:`flushing` sets them on the calling thread around a ``run``; :func:`preserving` puts back
whatever session creation changed. Only the two flag bits are touched on the way out, so other
floating-point state changed meanwhile (exception flags, say) is kept.

It needs the C library's ``fegetenv``/``fesetenv`` and the layout of ``fenv_t``: checked for
64-bit x86 Linux (glibc and musl both keep MXCSR at byte 28), and by a self-test on first use.
Elsewhere :func:`supported` is False and sessions run as onnxruntime's defaults have it.

The blocks must not span a ``yield``, an ``await`` or the start of a thread that outlives them
(threads inherit the flags): each wraps one call into onnxruntime.
"""

from __future__ import annotations

import ctypes
import platform
import sys
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import numpy as np

_FENV_SIZE = 64  # fenv_t is 32 bytes on x86-64 Linux: room to spare
_MXCSR_AT = 28
_FTZ_DAZ = 0x8040  # MXCSR bit 15 flush-to-zero, bit 6 denormals-are-zero
_EXCEPTION_MASKS = 0x1F80  # all set unless a program unmasked floating-point exceptions

_lock = threading.Lock()
_libm: Any = None
_checked = False


def supported() -> bool:
    """Whether the calling thread's flags can be set and restored here (checked once)."""
    global _libm, _checked
    if not _checked:
        with _lock:
            if not _checked:
                _libm = _load()
                _checked = True
    return _libm is not None


def platform_expected() -> bool:
    """64-bit x86 Linux with SSE3: where :func:`supported` should be True."""
    if not sys.platform.startswith("linux") or ctypes.sizeof(ctypes.c_void_p) != 8:
        return False
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    try:  # DAZ needs SSE3 ("pni"), as onnxruntime checks before setting it
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            return any(line.startswith("flags") and " pni" in line for line in f)
    except OSError:
        return False


def _load() -> Any:
    if not platform_expected():
        return None
    for name in ("libm.so.6", None):  # glibc; musl (and a static libm) through the process
        try:
            lib = ctypes.CDLL(name)
            for fn in (lib.fegetenv, lib.fesetenv):
                fn.argtypes = [ctypes.c_void_p]
                fn.restype = ctypes.c_int
        except (OSError, AttributeError):
            continue
        return lib if _self_test(lib) else None
    return None


def _self_test(lib: Any) -> bool:
    """True if MXCSR written through ``fenv_t`` flushes subnormals and restoring undoes it."""
    saved = _get(lib)
    if saved is None or _mxcsr(saved) & _EXCEPTION_MASKS != _EXCEPTION_MASKS:
        return False  # not the layout expected
    try:
        lib.fesetenv(_with_bits(saved, _mxcsr(saved) | _FTZ_DAZ))
        flushed = not _keeps_subnormals()
        lib.fesetenv(_with_bits(saved, _mxcsr(saved) & ~_FTZ_DAZ))
        kept = _keeps_subnormals()
    finally:
        lib.fesetenv(saved)
    after = _get(lib)
    return flushed and kept and after is not None and _mxcsr(after) == _mxcsr(saved)


def _keeps_subnormals() -> bool:
    tiny = np.array([1e-40], dtype=np.float32)  # subnormal in float32
    return bool((tiny * np.float32(1.5))[0] != 0)


def _get(lib: Any) -> Any:
    env = ctypes.create_string_buffer(_FENV_SIZE)
    return env if lib.fegetenv(env) == 0 else None


def _mxcsr(env: Any) -> int:
    return int.from_bytes(env.raw[_MXCSR_AT : _MXCSR_AT + 4], "little")


def _with_bits(env: Any, mxcsr: int) -> Any:
    raw = bytearray(env.raw)
    raw[_MXCSR_AT : _MXCSR_AT + 4] = (mxcsr & 0xFFFFFFFF).to_bytes(4, "little")
    return ctypes.create_string_buffer(bytes(raw), _FENV_SIZE)


@contextmanager
def _flags(on: bool) -> Iterator[None]:
    if not supported():
        yield
        return
    saved = _get(_libm)
    if saved is None:
        yield
        return
    thread = threading.get_ident()
    try:
        if on:
            _libm.fesetenv(_with_bits(saved, _mxcsr(saved) | _FTZ_DAZ))
        yield
    finally:
        now = _get(_libm) if threading.get_ident() == thread else None
        if now is not None:  # put back the two flag bits only
            bits = (_mxcsr(now) & ~_FTZ_DAZ) | (_mxcsr(saved) & _FTZ_DAZ)
            if bits != _mxcsr(now):
                _libm.fesetenv(_with_bits(now, bits))


def flushing() -> AbstractContextManager[None]:
    """Flush subnormals to zero on this thread inside the block; restore the flags after.

    A no-op where :func:`supported` is False.
    """
    return _flags(True)


def preserving() -> AbstractContextManager[None]:
    """Restore this thread's flush flags after the block (which may set them: onnxruntime
    does when it creates the process's first session)."""
    return _flags(False)
