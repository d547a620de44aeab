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

import importlib
from typing import Any

# Each public name and the module (of this package) that defines it.
_HOMES: dict[str, str] = {
    "BUILDER_VERSION": "builder",
    "GRAPH_NAMES": "export",
    "ExportCheck": "verify",
    "SyntheticTorchModels": "torch_models",
    "build_clip_tokenizer": "clip_tokenizer",
    "build_model": "builder",
    "build_torch_models": "torch_models",
    "clap_audio_config": "torch_models",
    "clip_config": "torch_models",
    "clip_tokenizer_json": "clip_tokenizer",
    "export_graphs": "export",
    "file_digests": "builder",
    "save_graph": "export",
    "torch_reference_vectors": "torch_models",
    "verify_export": "verify",
    "write_clip_tokenizer": "clip_tokenizer",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
