"""Build random-weight CLIPCLAP models of the real architectures, in the real six-file layout.

The Hugging Face Hub is unreachable from the project's machines, so correctness is proven by
parity: a synthetic model (random weights, real CLIP ViT-B/32 and CLAP HTSAT architectures,
real file names, input/output names and dynamic axes) must give the same vectors through the
project's ONNX pipeline as through ``transformers`` + ``torch`` on the same weights.

Needs the ``synthetic`` extra (torch, transformers, onnx); those imports happen inside the
functions. The CLIP tokenizer ships as package data (``data/clip_tokenizer.json.gz``), rebuilt
offline from the BPE file inside the ``open-clip-torch`` wheel by :func:`build_clip_tokenizer`.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.resources
import io
import json
import os
import pathlib
import warnings
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    import onnx
    import tokenizers
    import torch
    from transformers import ClapAudioModelWithProjection, CLIPModel

__all__ = [
    "BUILDER_VERSION",
    "GRAPH_NAMES",
    "ExportCheck",
    "SyntheticTorchModels",
    "build_clip_tokenizer",
    "build_model",
    "build_torch_models",
    "clap_audio_config",
    "clip_config",
    "clip_tokenizer_json",
    "export_graphs",
    "file_digests",
    "torch_reference_vectors",
    "verify_export",
    "write_clip_tokenizer",
]

Size = Literal["tiny", "full"]

BUILDER_VERSION = 1
"""Bump when the same (size, seed) would produce different weights or files."""

GRAPH_NAMES: tuple[str, ...] = (
    "text_model",
    "text_projection",
    "visual_model",
    "visual_projection",
    "audio_model",
    "audio_projection",
)
OPSET_VERSION = 14
PROJECTION_DIM = 512
SAMPLE_RATE = 48_000
MAX_LENGTH_S = 10
AUDIO_FRAMES = 1001  # 10 s at hop 480, centered STFT
NUM_MEL_BINS = 64
IMAGE_SIZE = 224

# CLIP tokenizer constants (openai/clip-vit-base-patch32).
VOCAB_SIZE = 49_408
BOS_ID = 49_406
EOS_ID = 49_407
BOS_TOKEN = "<|startoftext|>"
EOS_TOKEN = "<|endoftext|>"
_NUM_MERGES = 49_152 - 256 - 2  # 48,894
_CLIP_SPLIT_PATTERN = (
    r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d"
    r"|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"
)
_TOKENIZER_DATA = "data/clip_tokenizer.json.gz"
_BPE_IN_WHEEL = "open_clip/bpe_simple_vocab_16e6.txt.gz"

# Architecture sizes. Full = CLIP ViT-B/32 and CLAP HTSAT (larger_clap_music_and_speech).
_TEXT_COMMON: dict[str, Any] = {
    "vocab_size": VOCAB_SIZE,
    "max_position_embeddings": 77,
    # Legacy ids of the real config: they select the argmax pooling path.
    "bos_token_id": 0,
    "eos_token_id": 2,
    "pad_token_id": 1,
    "projection_dim": PROJECTION_DIM,
}
_VISION_COMMON: dict[str, Any] = {
    "image_size": IMAGE_SIZE,
    "patch_size": 32,
    "num_channels": 3,
    "projection_dim": PROJECTION_DIM,
}
_TEXT_SIZES: dict[str, dict[str, int]] = {
    "full": {
        "hidden_size": 512,
        "intermediate_size": 2048,
        "num_hidden_layers": 12,
        "num_attention_heads": 8,
    },
    "tiny": {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
    },
}
_VISION_SIZES: dict[str, dict[str, int]] = {
    "full": {
        "hidden_size": 768,
        "intermediate_size": 3072,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
    },
    "tiny": {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
    },
}
_AUDIO_COMMON: dict[str, Any] = {
    "enable_fusion": False,
    "projection_dim": PROJECTION_DIM,
    "spec_size": 256,
    "num_mel_bins": NUM_MEL_BINS,
    "window_size": 8,
}
_AUDIO_SIZES: dict[str, dict[str, Any]] = {
    "full": {
        "depths": [2, 2, 12, 2],
        "num_attention_heads": [4, 8, 16, 32],
        "hidden_size": 1024,
        "patch_embeds_hidden_size": 128,
    },
    # Same structure; stage 3 has two blocks so shifted-window attention is exercised.
    "tiny": {
        "depths": [1, 1, 2, 1],
        "num_attention_heads": [1, 2, 4, 8],
        "hidden_size": 64,
        "patch_embeds_hidden_size": 8,
    },
}

_INSTALL_HINT = 'pip install "clipclap-integrations[synthetic]"'


def _require(module: str) -> Any:
    """Import an optional dependency of the synthetic extra, with an install hint."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(f"{module} is needed to build synthetic models: {_INSTALL_HINT}") from exc


def _check_size(size: str) -> Size:
    if size not in ("tiny", "full"):
        raise ValueError(f"size must be 'tiny' or 'full', not {size!r}")
    return size  # type: ignore[return-value]


# --------------------------------------------------------------------------- configs


def clip_config(size: Size = "tiny") -> Any:
    """The ``transformers.CLIPConfig`` of a synthetic model (eager attention)."""
    transformers = _require("transformers")
    size = _check_size(size)
    config = transformers.CLIPConfig(
        text_config={**_TEXT_COMMON, **_TEXT_SIZES[size]},
        vision_config={**_VISION_COMMON, **_VISION_SIZES[size]},
        projection_dim=PROJECTION_DIM,
    )
    return config


def clap_audio_config(size: Size = "tiny") -> Any:
    """The ``transformers.ClapAudioConfig`` of a synthetic model (unfused HTSAT)."""
    transformers = _require("transformers")
    size = _check_size(size)
    spec = _AUDIO_SIZES[size]
    if spec["hidden_size"] != spec["patch_embeds_hidden_size"] * 2 ** (len(spec["depths"]) - 1):
        raise AssertionError("hidden_size must equal patch_embeds_hidden_size * 2**(stages-1)")
    return transformers.ClapAudioConfig(**_AUDIO_COMMON, **spec)


# --------------------------------------------------------------------------- torch models


@dataclass
class SyntheticTorchModels:
    """The torch modules behind a synthetic CLIPCLAP folder, all in eval mode."""

    clip: CLIPModel
    clap: ClapAudioModelWithProjection
    audio_map: torch.nn.Linear
    size: Size
    seed: int

    def eval(self) -> SyntheticTorchModels:
        """Put every module in eval mode (the ONNX exporter may have flipped them)."""
        self.clip.eval()
        self.clap.eval()
        self.audio_map.eval()
        return self


def build_torch_models(size: Size = "tiny", seed: int = 0) -> SyntheticTorchModels:
    """Construct the random-weight CLIP, CLAP audio model and audio map for ``(size, seed)``.

    The torch generator is seeded before each model, in a fixed order (CLIP ``seed``, CLAP
    ``seed + 1``, audio map ``seed + 2``), so the same arguments give the same weights with the
    same torch/transformers versions. The caller's global RNG state is left untouched.
    """
    torch = _require("torch")
    transformers = _require("transformers")
    size = _check_size(size)
    seed = int(seed)
    clip_cfg = clip_config(size)
    clap_cfg = clap_audio_config(size)
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        clip = transformers.CLIPModel._from_config(clip_cfg, attn_implementation="eager")
        torch.manual_seed(seed + 1)
        clap = transformers.ClapAudioModelWithProjection._from_config(
            clap_cfg, attn_implementation="eager"
        )
        torch.manual_seed(seed + 2)
        audio_map = torch.nn.Linear(PROJECTION_DIM, PROJECTION_DIM, bias=False)
        _set_log_mel_statistics(clap, torch.Generator().manual_seed(seed + 3))
    models = SyntheticTorchModels(clip=clip, clap=clap, audio_map=audio_map, size=size, seed=seed)
    for module in (clip, clap, audio_map):
        module.float()
        module.requires_grad_(False)
    return models.eval()


def _set_log_mel_statistics(clap: Any, generator: torch.Generator) -> None:
    """Give CLAP's input BatchNorm running statistics of the scale of real log-mel features.

    ``transformers`` initialises them to mean 0, variance 1, which leaves features in dB
    (around -100..0) un-normalised: the random audio tower then barely depends on its input
    (a 0.1 dB error moved vectors by < 1e-5) and parity tests could not see preprocessing
    errors. Means -50..-30 dB and deviations 15..25 dB per mel bin make it sensitive.
    """
    torch = _require("torch")
    batch_norm = clap.audio_model.audio_encoder.batch_norm
    bins = batch_norm.running_mean.shape[0]
    mean = -50.0 + 20.0 * torch.rand(bins, generator=generator)
    std = 15.0 + 10.0 * torch.rand(bins, generator=generator)
    batch_norm.running_mean.copy_(mean)
    batch_norm.running_var.copy_(std * std)


def _as_tensor(value: Any, dtype: Any) -> torch.Tensor:
    torch = _require("torch")
    if isinstance(value, torch.Tensor):
        return value.to(dtype)
    return torch.from_numpy(np.ascontiguousarray(value)).to(dtype)


def _pooled(output: Any) -> torch.Tensor:
    """``get_*_features`` returns a tensor in transformers 4 and a ModelOutput in 5."""
    torch = _require("torch")
    if isinstance(output, torch.Tensor):
        return output
    return output.pooler_output


def torch_reference_vectors(
    models: SyntheticTorchModels,
    *,
    input_ids: Any = None,
    attention_mask: Any = None,
    pixel_values: Any = None,
    input_features: Any = None,
) -> np.ndarray:
    """Reference CLIPCLAP vectors computed with transformers + torch, float32 ``(B, 512)``.

    Pass exactly one modality (numpy arrays or tensors):
    text ``normalize(clip.get_text_features(input_ids, attention_mask))``;
    image ``normalize(clip.get_image_features(pixel_values))``;
    audio ``normalize(audio_map(normalize(clap(input_features).audio_embeds)))``.
    """
    torch = _require("torch")
    functional = torch.nn.functional
    given = [
        name
        for name, value in (
            ("input_ids", input_ids),
            ("pixel_values", pixel_values),
            ("input_features", input_features),
        )
        if value is not None
    ]
    if len(given) != 1:
        raise ValueError(
            "pass exactly one of input_ids, pixel_values, input_features; got "
            + (", ".join(given) or "none")
        )
    if attention_mask is not None and input_ids is None:
        raise ValueError("attention_mask goes with input_ids")
    models.eval()
    with torch.no_grad():
        if input_ids is not None:
            ids = _as_tensor(input_ids, torch.int64)
            mask = (
                torch.ones_like(ids)
                if attention_mask is None
                else _as_tensor(attention_mask, torch.int64)
            )
            out = _pooled(models.clip.get_text_features(input_ids=ids, attention_mask=mask))
        elif pixel_values is not None:
            pixels = _as_tensor(pixel_values, torch.float32)
            out = _pooled(models.clip.get_image_features(pixel_values=pixels))
        else:
            feats = _as_tensor(input_features, torch.float32)
            embeds = models.clap(input_features=feats).audio_embeds
            out = models.audio_map(functional.normalize(embeds, dim=-1))
        vectors = functional.normalize(out, dim=-1)
    return vectors.detach().cpu().numpy().astype(np.float32)


# --------------------------------------------------------------------------- ONNX export


def _export_wrappers(models: SyntheticTorchModels) -> dict[str, Any]:
    """The six modules to export, keyed by graph name, with their export specs."""
    torch = _require("torch")
    nn: Any = torch.nn
    functional = torch.nn.functional

    class TextModel(nn.Module):
        def __init__(self, clip: Any) -> None:
            super().__init__()
            self.text_model = clip.text_model

        def forward(self, input_ids: Any, attention_mask: Any) -> tuple[Any, Any]:
            out = self.text_model(
                input_ids=input_ids, attention_mask=attention_mask, return_dict=True
            )
            return out.last_hidden_state, out.pooler_output

    class VisualModel(nn.Module):
        def __init__(self, clip: Any) -> None:
            super().__init__()
            self.vision_model = clip.vision_model

        def forward(self, pixel_values: Any) -> tuple[Any, Any]:
            out = self.vision_model(pixel_values=pixel_values, return_dict=True)
            return out.last_hidden_state, out.pooler_output

    class AudioModel(nn.Module):
        def __init__(self, clap: Any) -> None:
            super().__init__()
            self.audio_model = clap.audio_model

        def forward(self, input_features: Any) -> tuple[Any, Any]:
            out = self.audio_model(input_features=input_features, return_dict=True)
            return out.last_hidden_state, out.pooler_output

    class AudioProjection(nn.Module):
        def __init__(self, clap: Any, audio_map: Any) -> None:
            super().__init__()
            self.audio_projection = clap.audio_projection
            self.audio_map = audio_map

        def forward(self, hidden: Any) -> Any:
            projected = functional.normalize(self.audio_projection(hidden), dim=-1)
            return self.audio_map(projected)

    gen = torch.Generator().manual_seed(1234)
    clip_config: Any = models.clip.config
    text_hidden = clip_config.text_config.hidden_size
    vision_hidden = clip_config.vision_config.hidden_size
    audio_hidden = models.clap.config.hidden_size
    ids = torch.randint(1, VOCAB_SIZE - 2, (2, 7), generator=gen)
    ids[:, 0] = BOS_ID
    ids[0, 6] = EOS_ID
    ids[1, 4:] = EOS_ID
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    batch = {0: "batch"}
    projection_axes = {"input": batch, "output": batch}
    return {
        "text_model": (
            TextModel(models.clip),
            (ids, mask),
            ["input_ids", "attention_mask"],
            ["last_hidden_state", "pooler_output"],
            {
                "input_ids": {0: "batch", 1: "sequence"},
                "attention_mask": {0: "batch", 1: "sequence"},
                "last_hidden_state": {0: "batch", 1: "sequence"},
                "pooler_output": batch,
            },
        ),
        "text_projection": (
            models.clip.text_projection,
            (torch.randn(2, text_hidden, generator=gen),),
            ["input"],
            ["output"],
            projection_axes,
        ),
        "visual_model": (
            VisualModel(models.clip),
            (torch.randn(2, 3, IMAGE_SIZE, IMAGE_SIZE, generator=gen),),
            ["pixel_values"],
            ["last_hidden_state", "pooler_output"],
            {"pixel_values": batch, "last_hidden_state": batch, "pooler_output": batch},
        ),
        "visual_projection": (
            models.clip.visual_projection,
            (torch.randn(2, vision_hidden, generator=gen),),
            ["input"],
            ["output"],
            projection_axes,
        ),
        "audio_model": (
            AudioModel(models.clap),
            (torch.randn(2, 1, AUDIO_FRAMES, NUM_MEL_BINS, generator=gen) * 20 - 50,),
            ["input_features"],
            ["last_hidden_state", "pooler_output"],
            {
                "input_features": {0: "batch", 2: "time"},
                "last_hidden_state": batch,
                "pooler_output": batch,
            },
        ),
        "audio_projection": (
            AudioProjection(models.clap, models.audio_map),
            (torch.randn(2, audio_hidden, generator=gen),),
            ["input"],
            ["output"],
            projection_axes,
        ),
    }


def _export_one(
    module: Any,
    args: tuple[Any, ...],
    input_names: list[str],
    output_names: list[str],
    dynamic_axes: Mapping[str, Mapping[int, str]],
) -> onnx.ModelProto:
    torch = _require("torch")
    onnx = _require("onnx")
    buffer = io.BytesIO()
    module.eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            args,
            buffer,
            input_names=input_names,
            output_names=output_names,
            dynamic_axes={k: dict(v) for k, v in dynamic_axes.items()},
            opset_version=OPSET_VERSION,
            do_constant_folding=True,
            dynamo=False,
        )
    # The legacy exporter restores each module's previous training flag; a freshly created
    # wrapper starts in training mode, which would put CLAP's BatchNorm on batch statistics.
    module.eval()
    return onnx.load_model_from_string(buffer.getvalue())


def save_graph(proto: onnx.ModelProto, out_dir: pathlib.Path, name: str, external: bool) -> None:
    """Write ``<name>.onnx`` into ``out_dir``; with ``external``, its weights in
    ``<name>.onnx.data`` beside it (the layout the published model may use)."""
    onnx = _require("onnx")
    graph_path = out_dir / f"{name}.onnx"
    data_path = out_dir / f"{name}.onnx.data"
    for stale in (graph_path, data_path):
        stale.unlink(missing_ok=True)  # onnx appends to an existing external-data file
    if external:
        onnx.save_model(
            proto,
            str(graph_path),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=data_path.name,
            size_threshold=0,
        )
        # onnx creates the data file private (0600); match the graph's permissions.
        data_path.chmod(graph_path.stat().st_mode & 0o777)
    else:
        onnx.save_model(proto, str(graph_path))


def export_graphs(
    models: SyntheticTorchModels,
    out_dir: str | os.PathLike[str],
    external_data: Iterable[str] = (),
) -> list[pathlib.Path]:
    """Export the six ONNX graphs of ``models`` into ``out_dir``; return the files written.

    Graph names in ``external_data`` get their weights in ``<name>.onnx.data`` beside them.
    """
    external = _check_graph_names(external_data)
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[pathlib.Path] = []
    try:
        for name, (module, args, inputs, outputs, axes) in _export_wrappers(models).items():
            proto = _export_one(module, args, inputs, outputs, axes)
            save_graph(proto, out, name, name in external)
            written.append(out / f"{name}.onnx")
            if name in external:
                written.append(out / f"{name}.onnx.data")
    finally:
        models.eval()
    return written


def _check_graph_names(names: Iterable[str]) -> frozenset[str]:
    chosen = frozenset(names)
    unknown = sorted(chosen - set(GRAPH_NAMES))
    if unknown:
        raise ValueError(f"unknown graph name(s) {unknown}; choose from {list(GRAPH_NAMES)}")
    return chosen


# --------------------------------------------------------------------------- side files


def _config_section(config: Any) -> dict[str, Any]:
    section = config.to_dict()
    section.pop("transformers_version", None)  # recorded once, under "synthetic"
    return section


def _versions() -> dict[str, str]:
    versions: dict[str, str] = {}
    for module in ("torch", "transformers", "onnx"):
        versions[module] = str(_require(module).__version__)
    return versions


def _clip_config_json(models: SyntheticTorchModels) -> dict[str, Any]:
    audio = _config_section(models.clap.config)
    audio["sample_rate"] = SAMPLE_RATE
    audio["max_length_s"] = MAX_LENGTH_S
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
        "model_max_length": 77,
        "pad_token": EOS_TOKEN,
        "tokenizer_class": "CLIPTokenizer",
        "unk_token": added(EOS_TOKEN),
    }


def _preprocessor_config_json() -> dict[str, Any]:
    return {
        "crop_size": {"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        "do_center_crop": True,
        "do_convert_rgb": True,
        "do_normalize": True,
        "do_rescale": True,
        "do_resize": True,
        "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_processor_type": "CLIPImageProcessor",
        "image_std": [0.26862954, 0.26130258, 0.27577711],
        "processor_class": "CLIPProcessor",
        "resample": 3,
        "rescale_factor": 1 / 255,
        "size": {"shortest_edge": IMAGE_SIZE},
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


def _write_json(path: pathlib.Path, data: Mapping[str, Any]) -> None:
    text = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    path.write_bytes(text.encode("utf-8"))


# --------------------------------------------------------------------------- build


def build_model(
    out_dir: str | os.PathLike[str],
    size: Size = "tiny",
    seed: int = 0,
    external_data: Iterable[str] = (),
) -> pathlib.Path:
    """Build a synthetic CLIPCLAP folder (six ONNX graphs and the side files); return its path.

    Same ``(size, seed)`` and library versions give byte-identical files.
    ``external_data`` names graphs (e.g. ``"text_model"``) whose weights go to
    ``<name>.onnx.data`` beside the graph.
    """
    external = _check_graph_names(external_data)
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    models = build_torch_models(size, seed)
    export_graphs(models, out, external)
    _write_json(out / "clip_config.json", _clip_config_json(models))
    (out / "tokenizer.json").write_bytes(clip_tokenizer_json())
    _write_json(out / "tokenizer_config.json", _tokenizer_config_json())
    _write_json(out / "preprocessor_config.json", _preprocessor_config_json())
    _write_json(out / "projection_training_metadata.json", _training_metadata_json(models))
    return out


def file_digests(folder: str | os.PathLike[str]) -> dict[str, str]:
    """SHA-256 of every file under ``folder``, keyed by relative POSIX path."""
    root = pathlib.Path(folder)
    return {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


# --------------------------------------------------------------------------- verification


def _random_inputs(models: SyntheticTorchModels, batch: int, seed: int) -> dict[str, Any]:
    """Inputs for :func:`verify_export`: padded text, images, log-mel-like audio features."""
    rng = np.random.default_rng(seed)
    lengths = [int(rng.integers(3, 20)) for _ in range(batch)]
    width = max(lengths)
    ids = np.full((batch, width), EOS_ID, dtype=np.int64)
    mask = np.zeros((batch, width), dtype=np.int64)
    for row, length in enumerate(lengths):
        ids[row, 0] = BOS_ID
        ids[row, 1 : length - 1] = rng.integers(0, BOS_ID, size=length - 2)
        mask[row, :length] = 1
    pixels = rng.standard_normal((batch, 3, IMAGE_SIZE, IMAGE_SIZE)).astype(np.float32)
    feats = (rng.standard_normal((batch, 1, AUDIO_FRAMES, NUM_MEL_BINS)) * 20 - 50).astype(
        np.float32
    )
    return {"input_ids": ids, "attention_mask": mask, "pixels": pixels, "features": feats}


@dataclass(frozen=True)
class ExportCheck:
    """How far onnxruntime is from torch on the graphs of a synthetic folder.

    ``outputs``: per ``"graph/output"``, ``max|onnx - torch| / max(1, max|torch|)`` with
    torch's own inputs fed to each graph. ``vectors``: per modality, the max absolute
    difference of the final L2-normalized vectors, ONNX graphs chained end to end vs
    :func:`torch_reference_vectors`.
    """

    outputs: dict[str, float]
    vectors: dict[str, float]

    def ok(self, output_tol: float = 1e-4, vector_tol: float = 1e-5) -> bool:
        """Whether every difference is within the given tolerances."""
        return all(v <= output_tol for v in self.outputs.values()) and all(
            v <= vector_tol for v in self.vectors.values()
        )


def verify_export(
    models: SyntheticTorchModels,
    folder: str | os.PathLike[str],
    *,
    batch: int = 3,
    seed: int = 0,
) -> ExportCheck:
    """Run every graph in ``folder`` with onnxruntime and compare with ``models`` in torch.

    Inputs are random, with a batch size and sequence length different from the export's.
    Graphs with external data are loaded from their path (the ``.onnx.data`` beside them).
    """
    torch = _require("torch")
    ort = _require("onnxruntime")
    functional = torch.nn.functional
    root = pathlib.Path(folder)
    data = _random_inputs(models, batch, seed)
    models.eval()
    clip, clap = models.clip, models.clap
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1

    def run(name: str, feeds: dict[str, np.ndarray], names: list[str]) -> list[np.ndarray]:
        session = ort.InferenceSession(
            str(root / f"{name}.onnx"), options, providers=["CPUExecutionProvider"]
        )
        return list(session.run(names, feeds))

    with torch.no_grad():
        text = clip.text_model(
            input_ids=torch.from_numpy(data["input_ids"]),
            attention_mask=torch.from_numpy(data["attention_mask"]),
            return_dict=True,
        )
        vision = clip.vision_model(pixel_values=torch.from_numpy(data["pixels"]), return_dict=True)
        audio = clap.audio_model(
            input_features=torch.from_numpy(data["features"]), return_dict=True
        )
        audio_proj = models.audio_map(
            functional.normalize(clap.audio_projection(audio.pooler_output), dim=-1)
        )
    tower_feeds = {
        "text": {"input_ids": data["input_ids"], "attention_mask": data["attention_mask"]},
        "image": {"pixel_values": data["pixels"]},
        "audio": {"input_features": data["features"]},
    }
    towers = {
        "text": ("text_model", "text_projection", text, clip.text_projection(text.pooler_output)),
        "image": (
            "visual_model",
            "visual_projection",
            vision,
            clip.visual_projection(vision.pooler_output),
        ),
        "audio": ("audio_model", "audio_projection", audio, audio_proj),
    }
    references = {
        "text": torch_reference_vectors(
            models, input_ids=data["input_ids"], attention_mask=data["attention_mask"]
        ),
        "image": torch_reference_vectors(models, pixel_values=data["pixels"]),
        "audio": torch_reference_vectors(models, input_features=data["features"]),
    }

    def scaled_diff(got: np.ndarray, ref: Any, label: str) -> float:
        expected = ref.detach().numpy() if hasattr(ref, "detach") else np.asarray(ref)
        if got.shape != expected.shape:
            raise AssertionError(f"{label}: shape {got.shape} != {expected.shape}")
        scale = max(1.0, float(np.max(np.abs(expected))))
        return float(np.max(np.abs(got - expected))) / scale

    outputs: dict[str, float] = {}
    vectors: dict[str, float] = {}
    for modality, (model_name, proj_name, out, projected) in towers.items():
        hidden, pooled = run(
            model_name, tower_feeds[modality], ["last_hidden_state", "pooler_output"]
        )
        outputs[f"{model_name}/last_hidden_state"] = scaled_diff(
            hidden, out.last_hidden_state, model_name
        )
        outputs[f"{model_name}/pooler_output"] = scaled_diff(pooled, out.pooler_output, model_name)
        (alone,) = run(proj_name, {"input": out.pooler_output.numpy()}, ["output"])
        outputs[f"{proj_name}/output"] = scaled_diff(alone, projected, proj_name)
        (chained,) = run(proj_name, {"input": pooled}, ["output"])
        chained = chained / np.linalg.norm(chained, axis=-1, keepdims=True)
        vectors[modality] = float(np.max(np.abs(chained - references[modality])))
    return ExportCheck(outputs=outputs, vectors=vectors)


# --------------------------------------------------------------------------- tokenizer


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable character table (256 entries)."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs), strict=True))


def _read_bpe_merges(source: str | os.PathLike[str]) -> list[tuple[str, str]]:
    """The 48,894 CLIP merges from ``bpe_simple_vocab_16e6.txt.gz`` or a wheel holding it."""
    path = pathlib.Path(source)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as wheel:
            names = [n for n in wheel.namelist() if n.endswith("bpe_simple_vocab_16e6.txt.gz")]
            if not names:
                raise FileNotFoundError(f"{path} holds no bpe_simple_vocab_16e6.txt.gz")
            member = _BPE_IN_WHEEL if _BPE_IN_WHEEL in names else names[0]
            raw = wheel.read(member)
    else:
        raw = path.read_bytes()
    text = gzip.decompress(raw).decode("utf-8")
    lines = text.split("\n")[1 : _NUM_MERGES + 1]
    merges = [tuple(line.split()) for line in lines]
    if len(merges) != _NUM_MERGES or any(len(m) != 2 for m in merges):
        raise ValueError(f"{path}: not CLIP's BPE merge list")
    return merges  # type: ignore[return-value]


def build_clip_tokenizer(source: str | os.PathLike[str]) -> tokenizers.Tokenizer:
    """Rebuild the Hub's CLIP ``tokenizer.json`` (openai/clip-vit-base-patch32) offline.

    ``source`` is the ``open-clip-torch`` wheel or its ``bpe_simple_vocab_16e6.txt.gz``.
    Mirrors ``transformers``' ``CLIPConverter``: 49,408 ids = 256 byte characters, the same
    with ``</w>``, the 48,894 merges joined, then ``<|startoftext|>`` and ``<|endoftext|>``.
    """
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        normalizers,
        pre_tokenizers,
        processors,
    )
    from tokenizers.models import BPE

    merges = _read_bpe_merges(source)
    chars = list(_bytes_to_unicode().values())
    words = chars + [c + "</w>" for c in chars] + ["".join(m) for m in merges]
    words += [BOS_TOKEN, EOS_TOKEN]
    vocab = {word: index for index, word in enumerate(words)}
    if len(vocab) != VOCAB_SIZE or vocab[BOS_TOKEN] != BOS_ID or vocab[EOS_TOKEN] != EOS_ID:
        raise ValueError("unexpected CLIP vocabulary layout")
    tokenizer = Tokenizer(
        BPE(
            vocab=vocab,
            merges=merges,
            dropout=None,
            continuing_subword_prefix="",
            end_of_word_suffix="</w>",
            fuse_unk=False,
            unk_token=EOS_TOKEN,
        )
    )
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_CLIP_SPLIT_PATTERN), behavior="removed", invert=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.RobertaProcessing(
        (EOS_TOKEN, EOS_ID),  # sep
        (BOS_TOKEN, BOS_ID),  # cls
        trim_offsets=False,
        add_prefix_space=False,
    )
    tokenizer.add_special_tokens(
        [AddedToken(token, special=True, normalized=True) for token in (BOS_TOKEN, EOS_TOKEN)]
    )
    return tokenizer


def write_clip_tokenizer(
    source: str | os.PathLike[str], out_file: str | os.PathLike[str]
) -> pathlib.Path:
    """Write the rebuilt CLIP tokenizer JSON; gzip-compressed (reproducibly) if ``*.gz``."""
    data = build_clip_tokenizer(source).to_str(pretty=False).encode("utf-8")
    out = pathlib.Path(out_file)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".gz":
        data = gzip.compress(data, compresslevel=9, mtime=0)
    out.write_bytes(data)
    return out


def clip_tokenizer_json() -> bytes:
    """The CLIP ``tokenizer.json`` bytes shipped as package data (uncompressed)."""
    resource = importlib.resources.files(__package__ or "clipclap_integrations.testing")
    return gzip.decompress(resource.joinpath(_TOKENIZER_DATA).read_bytes())
