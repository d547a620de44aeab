"""Export a synthetic model's torch modules as the six ONNX graphs of a CLIPCLAP folder.

Real file names, input/output names and dynamic axes (``runtime.model.GRAPHS`` names the
files); ``torch.onnx.export`` with the legacy exporter at opset 14, weights inline or, per
graph, in an external ``<name>.onnx.data`` file beside it (the layout the published model may
use).
"""

from __future__ import annotations

import io
import os
import pathlib
import warnings
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..runtime.image_settings import CLIP_IMAGE_SIZE
from ..runtime.model import EOS_ID, GRAPHS, AudioSettings
from .clip_tokenizer import BOS_ID, VOCAB_SIZE
from .torch_models import SyntheticTorchModels, require_extra

if TYPE_CHECKING:
    import onnx

GRAPH_NAMES: tuple[str, ...] = tuple(
    pathlib.Path(name).stem for pair in GRAPHS.values() for name in (pair.encoder, pair.projection)
)
OPSET_VERSION = 14
_AUDIO_SHAPE = (AudioSettings().frames, AudioSettings.n_mels)  # one clip's (frames, mels)


def _export_wrappers(models: SyntheticTorchModels) -> dict[str, Any]:
    """The six modules to export, keyed by graph name, with their export specs."""
    torch = require_extra("torch")
    nn: Any = torch.nn
    functional = torch.nn.functional

    class Encoder(nn.Module):
        """One tower as ``(last_hidden_state, pooler_output)``; ``attr`` names its weights."""

        def __init__(self, attr: str, tower: Any, inputs: tuple[str, ...]) -> None:
            super().__init__()
            self.attr, self.inputs = attr, inputs
            self.add_module(attr, tower)

        def forward(self, *args: Any) -> tuple[Any, Any]:
            kwargs = dict(zip(self.inputs, args, strict=True))
            out = getattr(self, self.attr)(**kwargs, return_dict=True)
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
            Encoder("text_model", models.clip.text_model, ("input_ids", "attention_mask")),
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
            Encoder("vision_model", models.clip.vision_model, ("pixel_values",)),
            (torch.randn(2, 3, CLIP_IMAGE_SIZE, CLIP_IMAGE_SIZE, generator=gen),),
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
            Encoder("audio_model", models.clap.audio_model, ("input_features",)),
            (torch.randn(2, 1, *_AUDIO_SHAPE, generator=gen) * 20 - 50,),
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
    torch = require_extra("torch")
    onnx = require_extra("onnx")
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
    onnx = require_extra("onnx")
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
    """Export the six ONNX graphs of ``models`` into ``out_dir`` (those named in
    ``external_data`` with external weights, as :func:`save_graph` writes); return the files."""
    external = check_graph_names(external_data)
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


def check_graph_names(names: Iterable[str]) -> frozenset[str]:
    chosen = frozenset(names)
    unknown = sorted(chosen - set(GRAPH_NAMES))
    if unknown:
        raise ValueError(f"unknown graph name(s) {unknown}; choose from {list(GRAPH_NAMES)}")
    return chosen
