"""Synthetic CLIPCLAP models and reference vectors for tests and benchmarks.

Needs the ``synthetic`` extra: ``pip install "clipclap-integrations[synthetic]"``
(torch, transformers, onnx). Command line::

    python -m clipclap_integrations.testing build --size tiny --out DIR [--seed N]
    python -m clipclap_integrations.testing tokenizer --wheel OPEN_CLIP_WHEEL --out FILE
"""

from __future__ import annotations

import importlib.util


def _missing(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is None
    except (ImportError, ValueError):
        return True


_MISSING = [name for name in ("torch", "transformers", "onnx") if _missing(name)]
if _MISSING:
    raise ImportError(
        "clipclap_integrations.testing needs "
        + ", ".join(_MISSING)
        + ': pip install "clipclap-integrations[synthetic]"',
        name=_MISSING[0],
    )

from clipclap_integrations.testing.builder import (  # noqa: E402
    GRAPH_NAMES,
    ExportCheck,
    SyntheticTorchModels,
    build_clip_tokenizer,
    build_model,
    build_torch_models,
    clip_tokenizer_json,
    export_graphs,
    file_digests,
    torch_reference_vectors,
    verify_export,
    write_clip_tokenizer,
)

__all__ = [
    "GRAPH_NAMES",
    "ExportCheck",
    "SyntheticTorchModels",
    "build_clip_tokenizer",
    "build_model",
    "build_torch_models",
    "clip_tokenizer_json",
    "export_graphs",
    "file_digests",
    "torch_reference_vectors",
    "verify_export",
    "write_clip_tokenizer",
]
