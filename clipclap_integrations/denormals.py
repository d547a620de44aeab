"""Subnormal floats flushed to zero while onnxruntime runs, and only then.

CLAP's shifted-window attention adds -100 to masked scores, so softmax writes probabilities
around 1e-44: subnormal floats, which x86 CPUs compute on through a microcode assist ~100x
slower than on normal numbers. In the full-size audio encoder the products of those
probabilities took a fifth of the run. Flushing them to zero (FTZ) and reading them as zero
(DAZ) removes that cost; their weight is below float32 resolution, and no output bit moved on
the synthetic models (the parity tests compare with torch, which keeps them).

onnxruntime sets the flags on its own pool threads when a session asks
(``session.set_denormal_as_zero``), but the thread calling ``run`` computes its share too, and
onnxruntime also sets the flags, for good, on the thread that creates the process's first
session. :func:`flushing_denormals` sets them on the calling thread for the duration of a block
and restores the thread's floating-point state after, so no user thread is left changed.

It needs the C library's ``fegetenv``/``fesetenv`` and the layout of ``fenv_t``, checked here
for x86-64 Linux (glibc and musl: MXCSR at byte 28) by a self-test on first use. Elsewhere
:func:`supported` is False and sessions are created and run as onnxruntime's defaults have it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

_FENV_SIZE = 64  # larger than fenv_t (32 bytes on x86-64 Linux): room to spare
_MXCSR_OFFSET = 28
_FTZ_DAZ = 0x8040  # MXCSR bit 15 flush-to-zero, bit 6 denormals-are-zero
_EXCEPTION_MASKS = 0x1F80  # all set unless a program unmasked FP exceptions

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


def _load() -> Any:
    if not sys.platform.startswith("linux") or platform.machine().lower() not in (
        "x86_64",
        "amd64",
    ):
        return None
    try:
        lib = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
        for name in ("fegetenv", "fesetenv"):
            fn = getattr(lib, name)
            fn.argtypes = [ctypes.c_void_p]
            fn.restype = ctypes.c_int
    except (OSError, AttributeError):
        return None
    return lib if _self_test(lib) else None


def _self_test(lib: Any) -> bool:
    """True if writing MXCSR through ``fenv_t`` flushes subnormals and restoring undoes it."""
    saved = ctypes.create_string_buffer(_FENV_SIZE)
    if lib.fegetenv(saved) != 0:
        return False
    mxcsr = int.from_bytes(saved.raw[_MXCSR_OFFSET : _MXCSR_OFFSET + 4], "little")
    if mxcsr & _EXCEPTION_MASKS != _EXCEPTION_MASKS:
        return False  # not the layout expected
    try:
        lib.fesetenv(_with_flags(saved, on=True))
        flushed = not _keeps_subnormals()
        lib.fesetenv(_with_flags(saved, on=False))
        kept = _keeps_subnormals()
    finally:
        lib.fesetenv(saved)
    return flushed and kept


def _keeps_subnormals() -> bool:
    tiny = np.array([1e-40], dtype=np.float32)  # subnormal in float32
    return bool((tiny * np.float32(1.0))[0] != 0)


def _with_flags(saved: Any, *, on: bool) -> Any:
    env = ctypes.create_string_buffer(saved.raw, _FENV_SIZE)
    mxcsr = int.from_bytes(saved.raw[_MXCSR_OFFSET : _MXCSR_OFFSET + 4], "little")
    mxcsr = mxcsr | _FTZ_DAZ if on else mxcsr & ~_FTZ_DAZ
    env[_MXCSR_OFFSET : _MXCSR_OFFSET + 4] = mxcsr.to_bytes(4, "little")
    return env


@contextmanager
def flushing_denormals() -> Iterator[None]:
    """Flush subnormals to zero on this thread inside the block; restore its state after.

    A no-op where :func:`supported` is False.
    """
    if not supported():
        yield
        return
    saved = ctypes.create_string_buffer(_FENV_SIZE)
    if _libm.fegetenv(saved) != 0:
        yield
        return
    _libm.fesetenv(_with_flags(saved, on=True))
    try:
        yield
    finally:
        _libm.fesetenv(saved)
