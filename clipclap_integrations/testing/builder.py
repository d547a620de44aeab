"""Build a synthetic CLIPCLAP folder: the six ONNX graphs and the side files of the real layout.

The torch models come from :mod:`.torch_models`, the graphs from :mod:`.export`, the tokenizer
from :mod:`.clip_tokenizer`; this module writes the folder around them (``clip_config.json``,
the tokenizer files, ``preprocessor_config.json``, the training metadata) with the values the
project reads (:mod:`clipclap_integrations.runtime.model`), so that the same ``(size, seed)``
and library versions give byte-identical files.
"""

from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Iterable, Mapping
from typing import Any

from ..runtime.digests import content_sha256
from ..runtime.image_settings import (
    BICUBIC,
    CLIP_IMAGE_SIZE,
    CLIP_MEAN,
    CLIP_STD,
    PREPROCESSOR_CONFIG,
    ImageSettings,
)
from ..runtime.model import (
    CLIP_CONFIG,
    MAX_TOKENS,
    PROJECTION_DIM,
    TOKENIZER,
    TOKENIZER_CONFIG,
    TRAINING_METADATA,
    AudioSettings,
)
from .clip_tokenizer import BOS_TOKEN, EOS_TOKEN, clip_tokenizer_json
from .export import check_graph_names, export_graphs
from .torch_models import Size, SyntheticTorchModels, build_torch_models, require_extra

BUILDER_VERSION = 1
"""Bump when the same (size, seed) would produce different weights or files."""


def _config_section(config: Any) -> dict[str, Any]:
    section = config.to_dict()
    section.pop("transformers_version", None)  # recorded once, under "synthetic"
    return section


def _versions() -> dict[str, str]:
    versions: dict[str, str] = {}
    for module in ("torch", "transformers", "onnx"):
        versions[module] = str(require_extra(module).__version__)
    return versions


def _clip_config_json(models: SyntheticTorchModels) -> dict[str, Any]:
    audio = _config_section(models.clap.config)
    audio["sample_rate"] = AudioSettings.sample_rate
    audio["max_length_s"] = _json_number(AudioSettings.max_length_s)
    return {
        "model_type": "clipclap",
        "projection_dim": PROJECTION_DIM,
        "text_config": _config_section(models.clip.config.text_config),
        "vision_config": _config_section(models.clip.config.vision_config),
        "audio_config": audio,
        "synthetic": {
            "size": models.size,
            "seed": models.seed,
            "builder_version": BUILDER_VERSION,
            "built_with": _versions(),
        },
    }


def _tokenizer_config_json() -> dict[str, Any]:
    def added(content: str) -> dict[str, Any]:
        return {
            "__type": "AddedToken",
            "content": content,
            "lstrip": False,
            "normalized": True,
            "rstrip": False,
            "single_word": False,
        }

    return {
        "add_prefix_space": False,
        "bos_token": added(BOS_TOKEN),
        "clean_up_tokenization_spaces": True,
        "do_lower_case": True,
        "eos_token": added(EOS_TOKEN),
        "errors": "replace",
        "model_max_length": MAX_TOKENS,
        "pad_token": EOS_TOKEN,
        "tokenizer_class": "CLIPTokenizer",
        "unk_token": added(EOS_TOKEN),
    }


def _preprocessor_config_json() -> dict[str, Any]:
    return {
        "crop_size": {"height": CLIP_IMAGE_SIZE, "width": CLIP_IMAGE_SIZE},
        "do_center_crop": True,
        "do_convert_rgb": True,
        "do_normalize": True,
        "do_rescale": True,
        "do_resize": True,
        "image_mean": list(CLIP_MEAN),
        "image_processor_type": "CLIPImageProcessor",
        "image_std": list(CLIP_STD),
        "processor_class": "CLIPProcessor",
        "resample": BICUBIC,
        "rescale_factor": ImageSettings.rescale_factor,
        "size": {"shortest_edge": CLIP_IMAGE_SIZE},
    }


def _training_metadata_json(models: SyntheticTorchModels) -> dict[str, Any]:
    return {
        "synthetic": True,
        "description": (
            "Synthetic CLIPCLAP for tests and benchmarks: random weights in the real "
            "architectures (CLIP ViT-B/32 layout, CLAP HTSAT unfused) and a random bias-free "
            f"{PROJECTION_DIM}x{PROJECTION_DIM} audio-to-text map. Nothing was trained; the "
            "vectors are meaningful only for parity checks."
        ),
        "size": models.size,
        "seed": models.seed,
        "builder_version": BUILDER_VERSION,
        "trained": False,
        "input_dim": PROJECTION_DIM,
        "output_dim": PROJECTION_DIM,
        "bias": False,
    }


def _json_number(value: float) -> float | int:
    """A whole number as an int, as the published config writes ``max_length_s: 10``."""
    return int(value) if float(value).is_integer() else value


def _write_json(path: pathlib.Path, data: Mapping[str, Any]) -> None:
    text = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    path.write_bytes(text.encode("utf-8"))


def build_model(
    out_dir: str | os.PathLike[str],
    size: Size = "tiny",
    seed: int = 0,
    external_data: Iterable[str] = (),
) -> pathlib.Path:
    """Build a synthetic CLIPCLAP folder (six ONNX graphs and the side files); return its path.

    ``external_data`` names graphs (e.g. ``"text_model"``) whose weights go to
    ``<name>.onnx.data`` beside the graph.
    """
    external = check_graph_names(external_data)
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    models = build_torch_models(size, seed)
    export_graphs(models, out, external)
    _write_json(out / CLIP_CONFIG, _clip_config_json(models))
    (out / TOKENIZER).write_bytes(clip_tokenizer_json())
    _write_json(out / TOKENIZER_CONFIG, _tokenizer_config_json())
    _write_json(out / PREPROCESSOR_CONFIG, _preprocessor_config_json())
    _write_json(out / TRAINING_METADATA, _training_metadata_json(models))
    return out


def file_digests(folder: str | os.PathLike[str]) -> dict[str, str]:
    """SHA-256 of every file under ``folder``, keyed by relative POSIX path."""
    root = pathlib.Path(folder)
    return {
        path.relative_to(root).as_posix(): content_sha256(path)
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }
