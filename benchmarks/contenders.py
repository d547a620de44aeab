"""The contenders: what each one does to turn a workload into vectors.

* ``limit``: raw onnxruntime sessions (default options) on tensors prepared beforehand,
  untimed, by the project's own preprocessing: the time the model itself needs.
* ``ours``: ``ClipClapEmbedder`` end to end from the files and strings (``ours+<option>``:
  the same with an opt-in speed option).
* ``torch``: transformers + torch on the same weights: ``CLIPTokenizerFast`` (padding to the
  longest), ``CLIPImageProcessorPil``, ``librosa.load`` + ``ClapFeatureExtractor``.
* ``plain``: fastembed-style plain ONNX: the same sessions with a naive per-item
  preprocessing loop, text padded to 77 tokens (no audio: fastembed has no audio model).

Every contender does the same job: one vector per item, long audio as the mean of consecutive
10 s windows. A workload is a list of items split into calls of ``batch`` items.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.data import BenchInputs

MODALITIES = ("text", "image", "audio")
BATCHES = (1, 8, 32)
# Items per workload, by batch size (calls of ``batch`` items each).
ITEMS = {
    "text": {1: 32, 8: 64, 32: 256},
    "image": {1: 8, 8: 16, 32: 64},
    "audio": {1: 4, 8: 8, 32: 32},
}
QUICK_ITEMS = {
    "text": {1: 8, 8: 16, 32: 64},
    "image": {1: 4, 8: 8, 32: 32},
    "audio": {1: 2, 8: 8, 32: 32},
}
OPTIONS: dict[str, dict[str, Any]] = {
    "ours+fastjpeg": {"fast_jpeg": True},
    "ours+fusions": {"optimize": "fusions"},
    "ours+int8": {"quantize": "int8"},
}
OPTION_MODALITIES = {"ours+fastjpeg": ("image",)}
# Image sets restricted to one file format: (the set, the file suffix).
FORMAT_SETS = {"img-1280-jpg": ("img-1280", ".jpg"), "img-1280-png": ("img-1280", ".png")}


@dataclass(frozen=True)
class Workload:
    """One row of the table: a modality, an input set and a batch size."""

    modality: str
    set: str
    batch: int

    @property
    def key(self) -> str:
        return f"{self.modality}/{self.set}/b{self.batch}"

    def items(self, inputs: BenchInputs, quick: bool) -> list[Any]:
        n = (QUICK_ITEMS if quick else ITEMS)[self.modality][self.batch]
        if self.modality == "text":
            pool: Sequence[Any] = inputs.captions
        elif self.modality == "image":
            base, suffix = FORMAT_SETS.get(self.set, (self.set, ""))
            pool = [str(p) for p in inputs.images[base] if p.suffix.lower().endswith(suffix)]
        else:
            pool = [str(p) for p in inputs.audio]
        return list(pool[: min(n, len(pool))])

    def calls(self, items: list[Any]) -> list[list[Any]]:
        return [items[i : i + self.batch] for i in range(0, len(items), self.batch)]


def workloads(modality: str, quick: bool) -> list[Workload]:
    """The table rows of a modality."""
    if modality == "text":
        return [Workload("text", "captions", b) for b in BATCHES]
    if modality == "audio":
        return [Workload("audio", "clips-3-30s", b) for b in BATCHES]
    rows = [Workload("image", "img-1280", b) for b in BATCHES]
    rows.insert(2, Workload("image", "img-640", 32))
    rows += [Workload("image", s, 32) for s in FORMAT_SETS]  # where the 1280 time goes
    rows.append(Workload("image", "img-12mp", 32))
    return rows


def contenders_for(modality: str, names: Sequence[str]) -> list[str]:
    out = []
    for name in names:
        if name == "plain" and modality == "audio":
            continue
        if name in OPTION_MODALITIES and modality not in OPTION_MODALITIES[name]:
            continue
        out.append(name)
    return out


def _normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _mean_per_owner(vectors: np.ndarray, owners: list[int], n: int) -> np.ndarray:
    out = np.empty((n, vectors.shape[1]), dtype=np.float32)
    owner_arr = np.asarray(owners)
    for i in range(n):
        mine = vectors[owner_arr == i]
        out[i] = mine[0] if len(mine) == 1 else _normalize(mine.mean(axis=0))
    return out


Runner = Callable[[], np.ndarray]


class Contender:
    """Loads what it needs in ``setup``; ``prepare`` returns the timed function of a workload."""

    name = "?"

    def __init__(self, inputs: BenchInputs, modality: str, quick: bool) -> None:
        self.inputs = inputs
        self.modality = modality
        self.quick = quick

    def setup(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def prepare(self, workload: Workload) -> Runner:  # pragma: no cover - overridden
        raise NotImplementedError


# --------------------------------------------------------------------------- ours


class Ours(Contender):
    name = "ours"

    def __init__(
        self, inputs: BenchInputs, modality: str, quick: bool, options: dict[str, Any]
    ) -> None:
        super().__init__(inputs, modality, quick)
        self.options = options

    def setup(self) -> None:
        from clipclap_integrations import ClipClapEmbedder

        options = dict(self.options)
        if "optimize" in options or "quantize" in options:  # copies live in the cache folder
            options["optimized_dir"] = self.inputs.model.parent / "optimized"
        self.make = lambda batch: ClipClapEmbedder(self.inputs.model, batch_size=batch, **options)
        probe = self.make(1)  # fails here if an option is not supported
        if options.keys() & {"optimize", "quantize"}:  # build the optimized copies now
            graphs = {
                "text": "text_model.onnx",
                "image": "visual_model.onnx",
                "audio": "audio_model.onnx",
            }
            probe.encoders.session(graphs[self.modality])

    def prepare(self, workload: Workload) -> Runner:
        embedder = self.make(workload.batch)
        method = {
            "text": embedder.embed_text,
            "image": embedder.embed_images,
            "audio": embedder.embed_audio,
        }[workload.modality]
        calls = workload.calls(workload.items(self.inputs, self.quick))

        def run() -> np.ndarray:
            return np.concatenate([method(call) for call in calls])

        return run


# --------------------------------------------------------------------------- limit


class Limit(Contender):
    """Raw sessions with default options on already-preprocessed tensors."""

    name = "limit"

    def setup(self) -> None:
        import onnxruntime as ort

        from clipclap_integrations import ClipClapEmbedder

        graphs = {
            "text": ("text_model.onnx", "text_projection.onnx"),
            "image": ("visual_model.onnx", "visual_projection.onnx"),
            "audio": ("audio_model.onnx", "audio_projection.onnx"),
        }[self.modality]
        options = ort.SessionOptions()
        self.encoder, self.projection = (
            ort.InferenceSession(str(self.inputs.model / g), options) for g in graphs
        )
        self.proj_input = self.projection.get_inputs()[0].name
        self.embedder = ClipClapEmbedder(self.inputs.model)  # for preprocessing only

    def _model(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        pooled = self.encoder.run(["pooler_output"], feeds)[0]
        return _normalize(self.projection.run(["output"], {self.proj_input: pooled})[0])

    def prepare(self, workload: Workload) -> Runner:
        calls = workload.calls(workload.items(self.inputs, self.quick))
        e = self.embedder
        # Per call: the feeds of its model runs, and how their outputs become its rows.
        plan: list[tuple[list[dict[str, np.ndarray]], Callable[[list[np.ndarray]], np.ndarray]]]
        plan = []
        for call in calls:
            if workload.modality == "text":
                pre = e.text_preprocessor
                ids = pre.token_ids(call)
                order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
                inverse = np.argsort(order)
                plan.append(
                    ([pre.pad([ids[i] for i in order])], lambda outs, inv=inverse: outs[0][inv])
                )
            elif workload.modality == "image":
                plan.append(([{"pixel_values": e.preprocess_images(call)}], lambda outs: outs[0]))
            else:
                audio = e.audio_preprocessor
                windows: list[np.ndarray] = []
                owners: list[int] = []
                from clipclap_integrations.types import Modality

                loader = e.pipelines[Modality.AUDIO]
                for i, item in enumerate(e.classify(call)):
                    pieces = audio.windows(loader.load(item, i), "mean")
                    windows += pieces
                    owners += [i] * len(pieces)
                feeds = [
                    {"input_features": audio(windows[s : s + workload.batch])}
                    for s in range(0, len(windows), workload.batch)
                ]
                n = len(call)
                plan.append(
                    (feeds, lambda outs, o=owners, n=n: _mean_per_owner(np.concatenate(outs), o, n))
                )

        def run() -> np.ndarray:
            return np.concatenate(
                [combine([self._model(f) for f in feeds]) for feeds, combine in plan]
            )

        return run


# --------------------------------------------------------------------------- torch peer


class TorchPeer(Contender):
    """transformers + torch: the processors and models a Hugging Face user would run."""

    name = "torch"

    def setup(self) -> None:
        import torch

        from clipclap_integrations.testing import reference, torch_models

        spec = json.loads((self.inputs.model / "clip_config.json").read_text("utf-8"))
        seed = int(spec.get("synthetic", {}).get("seed", 0))
        self.torch = torch
        self.models = torch_models.build_torch_models("full", seed)
        if self.modality == "text":
            self.tokenizer = reference.reference_tokenizer(self.inputs.model)
        elif self.modality == "image":
            self.processor = reference.reference_image_processor(self.inputs.model)
        else:
            self.extractor = reference.reference_feature_extractor()
            self.reference = reference
        # Drop the towers this process does not use (as a single-modality user would).
        if self.modality != "audio":
            del self.models.clap
        else:
            del self.models.clip

    def _normalize(self, x: Any) -> Any:
        return self.torch.nn.functional.normalize(x, dim=-1)

    def prepare(self, workload: Workload) -> Runner:
        calls = workload.calls(workload.items(self.inputs, self.quick))
        torch = self.torch
        m = self.models

        def text(call: list[str]) -> np.ndarray:
            enc = self.tokenizer(
                call, padding=True, truncation=True, max_length=77, return_tensors="pt"
            )
            out = m.clip.get_text_features(
                input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]
            )
            out = out if isinstance(out, torch.Tensor) else out.pooler_output
            return self._normalize(out).numpy()

        def image(call: list[str]) -> np.ndarray:
            from PIL import Image, ImageOps

            images = []
            for p in call:
                im = Image.open(p)
                images.append(ImageOps.exif_transpose(im) or im)
            pixels = self.processor(images=images, return_tensors="pt")["pixel_values"]
            out = m.clip.get_image_features(pixel_values=pixels)
            out = out if isinstance(out, torch.Tensor) else out.pooler_output
            return self._normalize(out).numpy()

        def audio(call: list[str]) -> np.ndarray:
            windows: list[np.ndarray] = []
            owners: list[int] = []
            for i, p in enumerate(call):
                pieces = self.reference.long_audio_windows(self.reference.load_audio(p), "mean")
                windows += pieces
                owners += [i] * len(pieces)
            feats = self.extractor(windows, sampling_rate=48_000, return_tensors="pt")
            features = feats["input_features"]
            outs = []
            for s in range(0, len(windows), workload.batch):
                embeds = m.clap(input_features=features[s : s + workload.batch]).audio_embeds
                outs.append(self._normalize(m.audio_map(self._normalize(embeds))))
            return _mean_per_owner(torch.cat(outs).numpy(), owners, len(call))

        fn = {"text": text, "image": image, "audio": audio}[workload.modality]

        def run() -> np.ndarray:
            with torch.inference_mode():
                return np.concatenate([fn(call) for call in calls])

        return run


# --------------------------------------------------------------------------- plain ONNX


class PlainOnnx(Contender):
    """fastembed-style: plain sessions, per-item preprocessing in a loop, text padded to 77."""

    name = "plain"

    def setup(self) -> None:
        import onnxruntime as ort

        model = self.inputs.model
        if self.modality == "text":
            from tokenizers import Tokenizer

            self.tokenizer = Tokenizer.from_file(str(model / "tokenizer.json"))
            self.tokenizer.enable_truncation(max_length=77)
            self.tokenizer.enable_padding(length=77, pad_id=49407, pad_token="<|endoftext|>")
            names = ("text_model.onnx", "text_projection.onnx")
        elif self.modality == "image":
            names = ("visual_model.onnx", "visual_projection.onnx")
        else:
            raise ValueError("fastembed has no audio model")
        self.encoder, self.projection = (
            ort.InferenceSession(str(model / n), ort.SessionOptions()) for n in names
        )
        self.proj_input = self.projection.get_inputs()[0].name
        self.mean = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
        self.std = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)

    def _pixels(self, path: str) -> np.ndarray:
        from PIL import Image, ImageOps

        im = Image.open(path)
        im = (ImageOps.exif_transpose(im) or im).convert("RGB")
        w, h = im.size
        size = (224, int(224 * h / w)) if w <= h else (int(224 * w / h), 224)
        im = im.resize(size, Image.BICUBIC)
        arr = np.asarray(im, dtype=np.float32) / 255.0
        top, left = (arr.shape[0] - 224) // 2, (arr.shape[1] - 224) // 2
        arr = (arr[top : top + 224, left : left + 224] - self.mean) / self.std
        return arr.transpose(2, 0, 1)

    def prepare(self, workload: Workload) -> Runner:
        calls = workload.calls(workload.items(self.inputs, self.quick))

        def embed(call: list[str]) -> np.ndarray:
            if workload.modality == "text":
                enc = self.tokenizer.encode_batch(call)
                feeds = {
                    "input_ids": np.array([e.ids for e in enc], dtype=np.int64),
                    "attention_mask": np.array([e.attention_mask for e in enc], dtype=np.int64),
                }
            else:
                feeds = {"pixel_values": np.stack([self._pixels(p) for p in call])}
            pooled = self.encoder.run(["pooler_output"], feeds)[0]
            return _normalize(self.projection.run(["output"], {self.proj_input: pooled})[0])

        def run() -> np.ndarray:
            return np.concatenate([embed(call) for call in calls])

        return run


def make_contender(name: str, inputs: BenchInputs, modality: str, quick: bool) -> Contender:
    if name == "ours":
        return Ours(inputs, modality, quick, {})
    if name in OPTIONS:
        ours = Ours(inputs, modality, quick, OPTIONS[name])
        ours.name = name
        return ours
    classes: dict[str, type[Contender]] = {"limit": Limit, "torch": TorchPeer, "plain": PlainOnnx}
    if name not in classes:
        raise ValueError(f"unknown contender {name!r}")
    return classes[name](inputs, modality, quick)


def save_vectors(path: Path, vectors: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.asarray(vectors, dtype=np.float32))
