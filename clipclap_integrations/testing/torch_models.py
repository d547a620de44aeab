"""Random-weight CLIP and CLAP torch models of the real architectures, and their vectors.

The Hugging Face Hub is unreachable from the project's machines, so correctness is proven by
parity: the same random weights, exported to ONNX in the real layout, must give through the
project's pipeline the vectors these torch models give through ``transformers``. Full size is
CLIP ViT-B/32 and CLAP HTSAT (larger_clap_music_and_speech); tiny has the same structure with
small widths, for tests.

Needs the ``synthetic`` extra (torch, transformers, onnx); those imports happen inside the
functions, through :func:`require_extra`, which names the extra when one is missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..runtime.image_settings import CLIP_IMAGE_SIZE
from ..runtime.model import MAX_TOKENS, PROJECTION_DIM, AudioSettings
from .clip_tokenizer import VOCAB_SIZE

if TYPE_CHECKING:
    import torch
    from transformers import ClapAudioModelWithProjection, CLIPModel

Size = Literal["tiny", "full"]

INSTALL_HINT = 'pip install "clipclap-integrations[synthetic]"'

_TEXT_COMMON: dict[str, Any] = {
    "vocab_size": VOCAB_SIZE,
    "max_position_embeddings": MAX_TOKENS,
    # Legacy ids of the real config: they select the argmax pooling path.
    "bos_token_id": 0,
    "eos_token_id": 2,
    "pad_token_id": 1,
    "projection_dim": PROJECTION_DIM,
}
_VISION_COMMON: dict[str, Any] = {
    "image_size": CLIP_IMAGE_SIZE,
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
    "num_mel_bins": AudioSettings.n_mels,
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


def require_extra(module: str) -> Any:
    """Import an optional dependency of the synthetic extra, with an install hint."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(f"{module} is needed to build synthetic models: {INSTALL_HINT}") from exc


def _check_size(size: str) -> Size:
    if size not in ("tiny", "full"):
        raise ValueError(f"size must be 'tiny' or 'full', not {size!r}")
    return size  # type: ignore[return-value]


def clip_config(size: Size = "tiny") -> Any:
    """The ``transformers.CLIPConfig`` of a synthetic model (eager attention)."""
    transformers = require_extra("transformers")
    size = _check_size(size)
    config = transformers.CLIPConfig(
        text_config={**_TEXT_COMMON, **_TEXT_SIZES[size]},
        vision_config={**_VISION_COMMON, **_VISION_SIZES[size]},
        projection_dim=PROJECTION_DIM,
    )
    return config


def clap_audio_config(size: Size = "tiny") -> Any:
    """The ``transformers.ClapAudioConfig`` of a synthetic model (unfused HTSAT)."""
    transformers = require_extra("transformers")
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
    torch = require_extra("torch")
    transformers = require_extra("transformers")
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
    torch = require_extra("torch")
    batch_norm = clap.audio_model.audio_encoder.batch_norm
    bins = batch_norm.running_mean.shape[0]
    mean = -50.0 + 20.0 * torch.rand(bins, generator=generator)
    std = 15.0 + 10.0 * torch.rand(bins, generator=generator)
    batch_norm.running_mean.copy_(mean)
    batch_norm.running_var.copy_(std * std)


def _as_tensor(value: Any, dtype: Any) -> torch.Tensor:
    torch = require_extra("torch")
    if isinstance(value, torch.Tensor):
        return value.to(dtype)
    return torch.from_numpy(np.ascontiguousarray(value)).to(dtype)


def _pooled(output: Any) -> torch.Tensor:
    """``get_*_features`` returns a tensor in transformers 4 and a ModelOutput in 5."""
    torch = require_extra("torch")
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
    torch = require_extra("torch")
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
