"""Synthetic CLIPCLAP models and reference vectors for tests and benchmarks.

Needs the ``synthetic`` extra: ``pip install "clipclap-integrations[synthetic]"``
(torch, transformers, onnx). Command line::

    python -m clipclap_integrations.testing build --size tiny --out DIR [--seed N]
    python -m clipclap_integrations.testing tokenizer --wheel OPEN_CLIP_WHEEL --out FILE
    python -m clipclap_integrations.testing reference --model DIR --media DIR --out FILE

Importing this package is cheap and needs no torch (so ``testing.reference``'s preprocessing
functions work with transformers alone); the builder's names load on first use, and the
functions that need torch raise ImportError with the install hint.
"""

from __future__ import annotations

from typing import Any

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


def __getattr__(name: str) -> Any:
    if name in __all__:
        from clipclap_integrations.testing import builder

        return getattr(builder, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
