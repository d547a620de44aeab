"""Check an exported synthetic folder against its torch models, graph by graph, under onnxruntime.

Random inputs, with a batch size and sequence length different from the export's, go through
each graph and through the torch module it came from; the final vectors are compared too, the
ONNX graphs chained end to end against :func:`torch_reference_vectors`.
"""

from __future__ import annotations

import os
import pathlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..runtime.image_settings import CLIP_IMAGE_SIZE
from ..runtime.model import EOS_ID, AudioSettings
from .clip_tokenizer import BOS_ID
from .torch_models import SyntheticTorchModels, require_extra, torch_reference_vectors


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
    pixels = rng.standard_normal((batch, 3, CLIP_IMAGE_SIZE, CLIP_IMAGE_SIZE)).astype(np.float32)
    frames, mels = AudioSettings().frames, AudioSettings.n_mels
    feats = (rng.standard_normal((batch, 1, frames, mels)) * 20 - 50).astype(np.float32)
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

    Graphs with external data are loaded from their path (the ``.onnx.data`` beside them).
    """
    torch = require_extra("torch")
    ort = require_extra("onnxruntime")
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
