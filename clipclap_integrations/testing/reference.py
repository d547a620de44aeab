"""The independent ``transformers`` + ``torch`` reference for parity tests.

Everything here is the Hugging Face pipeline, never the project's own preprocessing:
``CLIPTokenizerFast`` for text, Pillow + ``exif_transpose`` + ``CLIPImageProcessorPil`` for
images, ``librosa.load`` (48 kHz, mono) + ``ClapFeatureExtractor`` for audio, and the torch
models rebuilt from the synthetic folder's seed by :mod:`.torch_models`. The published model's
preprocessing settings (48 kHz, 10 s windows, 77 tokens, the CLAP feature extractor's) are
written here again on purpose, not taken from ``runtime.model``: the reference is the
independent statement the project's values are checked against.

The preprocessing functions need ``transformers`` but not ``torch``; the vector functions need
both (the ``synthetic`` extra). Reference files are ``.npz`` archives of float32 vectors keyed
``text/<name>``, ``image/<file>``, ``audio/<file>`` (clips <= 10 s) and
``audio/<file>/<policy>`` (longer clips, one per long-audio policy), plus a ``meta`` entry
holding a JSON string.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..runtime.model import CLIP_CONFIG, GRAPHS, PREPROCESSOR_CONFIG
from ..types import Modality

if TYPE_CHECKING:
    from PIL import Image as PILImage

SAMPLE_RATE = 48_000
WINDOW_SAMPLES = 480_000  # 10 s at 48 kHz
MAX_TEXT_TOKENS = 77
LONG_AUDIO_POLICIES: tuple[str, ...] = ("first", "center", "mean")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
TEXTS_FILE = "texts.json"
FORMAT_VERSION = 1

PathLike = str | os.PathLike[str]


# --------------------------------------------------------------------------- media listing


def load_texts(media_dir: PathLike) -> list[tuple[str, str]]:
    """``(name, text)`` pairs from ``texts.json`` (a list of ``{"name", "text"}`` objects)."""
    raw = json.loads((Path(media_dir) / TEXTS_FILE).read_text(encoding="utf-8"))
    return [(str(item["name"]), str(item["text"])) for item in raw]


def image_files(media_dir: PathLike) -> list[Path]:
    """The image files of a media folder, sorted by name."""
    return sorted(p for p in Path(media_dir).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def audio_files(media_dir: PathLike) -> list[Path]:
    """The audio files of a media folder, sorted by name."""
    return sorted(p for p in Path(media_dir).iterdir() if p.suffix.lower() in AUDIO_SUFFIXES)


def load_audio(path: PathLike) -> np.ndarray:
    """Decode, mix to mono and resample to 48 kHz exactly as the reference does (librosa)."""
    import librosa

    samples, _ = librosa.load(str(path), sr=SAMPLE_RATE, mono=True)
    return np.asarray(samples, dtype=np.float32)


def is_long(samples: np.ndarray) -> bool:
    """Whether a 48 kHz clip is longer than the 10 s model window."""
    return len(samples) > WINDOW_SAMPLES


def long_audio_windows(samples: np.ndarray, policy: str) -> list[np.ndarray]:
    """The deterministic 10 s window(s) a long-audio policy embeds (sliced before features)."""
    n = len(samples)
    if n <= WINDOW_SAMPLES:
        return [samples]
    if policy == "first":
        return [samples[:WINDOW_SAMPLES]]
    if policy == "center":
        start = (n - WINDOW_SAMPLES) // 2
        return [samples[start : start + WINDOW_SAMPLES]]
    if policy == "mean":  # full windows; the last ends at the end; a <= 0.1 s tail is dropped
        starts = [0]
        while starts[-1] + WINDOW_SAMPLES < n - WINDOW_SAMPLES // 100:
            starts.append(starts[-1] + WINDOW_SAMPLES)
        return [samples[min(k, n - WINDOW_SAMPLES) :][:WINDOW_SAMPLES] for k in starts]
    raise ValueError(f"unknown long-audio policy {policy!r}; expected one of {LONG_AUDIO_POLICIES}")


# --------------------------------------------------------------------------- preprocessing


def reference_tokenizer(model_dir: PathLike) -> Any:
    """``CLIPTokenizerFast`` loaded from the model folder's tokenizer files."""
    from transformers import CLIPTokenizerFast  # type: ignore[attr-defined]  # lazy export

    return CLIPTokenizerFast.from_pretrained(str(model_dir))


def reference_image_processor(model_dir: PathLike) -> Any:
    """``CLIPImageProcessorPil`` from ``preprocessor_config.json`` (flat or nested form)."""
    from transformers import CLIPImageProcessorPil

    cfg = json.loads((Path(model_dir) / PREPROCESSOR_CONFIG).read_text(encoding="utf-8"))
    nested = cfg.get("image_processor")
    if isinstance(nested, Mapping):
        # ``from_pretrained`` ignores the nested (CLIPProcessor) layout and would fall back to
        # the class defaults silently.
        return CLIPImageProcessorPil.from_dict(dict(nested))
    return CLIPImageProcessorPil.from_pretrained(str(model_dir))


def reference_feature_extractor() -> Any:
    """``ClapFeatureExtractor`` with the settings of ``laion/larger_clap_music_and_speech``."""
    from transformers import ClapFeatureExtractor

    return ClapFeatureExtractor(
        feature_size=64,
        sampling_rate=SAMPLE_RATE,
        hop_length=480,
        max_length_s=10,
        fft_window_size=1024,
        frequency_min=50,
        frequency_max=14_000,
        top_db=None,
        truncation="rand_trunc",
        padding="repeatpad",
    )


def preprocess_text(model_dir: PathLike, texts: Sequence[str]) -> dict[str, np.ndarray]:
    """Reference ``input_ids`` / ``attention_mask`` (int64, padded to the longest, <= 77)."""
    tok = reference_tokenizer(model_dir)
    enc = tok(
        list(texts),
        padding=True,
        truncation=True,
        max_length=MAX_TEXT_TOKENS,
        return_tensors="np",
    )
    return {
        "input_ids": np.asarray(enc["input_ids"], dtype=np.int64),
        "attention_mask": np.asarray(enc["attention_mask"], dtype=np.int64),
    }


def open_image(path: PathLike) -> PILImage.Image:
    """Open an image file as the reference does: Pillow, then ``ImageOps.exif_transpose``."""
    from PIL import Image, ImageOps

    img = Image.open(str(path))
    transposed = ImageOps.exif_transpose(img)
    return transposed if transposed is not None else img


def preprocess_images(model_dir: PathLike, paths: Sequence[PathLike]) -> np.ndarray:
    """Reference ``pixel_values`` float32 (B, 3, 224, 224) for image files."""
    proc = reference_image_processor(model_dir)
    images = [open_image(p) for p in paths]
    out = proc(images=images, return_tensors="np")
    return np.asarray(out["pixel_values"], dtype=np.float32)


def audio_features(waves: Sequence[np.ndarray]) -> np.ndarray:
    """Reference ``input_features`` float32 (B, 1, 1001, 64) for 48 kHz clips of <= 10 s."""
    for i, w in enumerate(waves):
        if len(w) > WINDOW_SAMPLES:
            raise ValueError(
                f"clip {i} has {len(w)} samples; the reference crops longer clips at random, "
                "slice it with long_audio_windows() first"
            )
    fe = reference_feature_extractor()
    out = fe(list(waves), sampling_rate=SAMPLE_RATE, return_tensors="np")
    return np.asarray(out["input_features"], dtype=np.float32)


def preprocess_audio(paths: Sequence[PathLike]) -> np.ndarray:
    """Reference ``input_features`` for audio files of <= 10 s."""
    return audio_features([load_audio(p) for p in paths])


# --------------------------------------------------------------------------- vectors (torch)


def synthetic_spec(model_dir: PathLike) -> dict[str, Any]:
    """The ``synthetic`` section ({size, seed}) of a synthetic folder's ``clip_config.json``."""
    cfg = json.loads((Path(model_dir) / CLIP_CONFIG).read_text(encoding="utf-8"))
    spec = cfg.get("synthetic")
    if not isinstance(spec, Mapping) or "seed" not in spec:
        raise ValueError(f"{model_dir} is not a synthetic model folder (no synthetic.seed)")
    return {"size": str(spec.get("size", "tiny")), "seed": int(spec["seed"])}


def _l2(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


class ReferenceModel:
    """The torch models of a synthetic folder plus the transformers preprocessors."""

    def __init__(self, model_dir: PathLike, *, verify: bool = True) -> None:
        from clipclap_integrations.testing.torch_models import build_torch_models

        self.model_dir = Path(model_dir)
        self.spec = synthetic_spec(self.model_dir)
        self.models = build_torch_models(size=self.spec["size"], seed=self.spec["seed"])
        if verify:
            self.verify_onnx_folder()

    def _vectors(self, **inputs: np.ndarray) -> np.ndarray:
        from clipclap_integrations.testing.torch_models import torch_reference_vectors

        return np.asarray(torch_reference_vectors(self.models, **inputs), dtype=np.float32)

    def verify_onnx_folder(self, atol: float = 1e-4) -> None:
        """Check the folder's ONNX text graphs match the rebuilt torch weights (one output)."""
        import onnxruntime as ort

        enc = preprocess_text(self.model_dir, ["a photo of a cat"])
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        cpu = ["CPUExecutionProvider"]
        graphs = GRAPHS[Modality.TEXT]
        text = ort.InferenceSession(str(self.model_dir / graphs.encoder), opts, providers=cpu)
        names = [o.name for o in text.get_outputs()]
        pooled = text.run(["pooler_output" if "pooler_output" in names else names[-1]], enc)[0]
        proj_sess = ort.InferenceSession(
            str(self.model_dir / graphs.projection), opts, providers=cpu
        )
        proj = proj_sess.run(None, {proj_sess.get_inputs()[0].name: pooled})[0]
        got = _l2(proj)
        want = self._vectors(**enc)
        diff = float(np.max(np.abs(got - want)))
        if diff > atol:
            raise ValueError(
                f"{self.model_dir}: ONNX text vector differs from the torch model rebuilt from "
                f"{self.spec} by {diff:.3g} > {atol}; the folder does not match its seed"
            )

    def text_vectors(self, texts: Sequence[str]) -> np.ndarray:
        """Reference text vectors (N, 512)."""
        return self._vectors(**preprocess_text(self.model_dir, texts))

    def image_vectors(self, paths: Sequence[PathLike]) -> np.ndarray:
        """Reference image vectors (N, 512) for image files."""
        return self._vectors(pixel_values=preprocess_images(self.model_dir, paths))

    def wave_vectors(self, waves: Sequence[np.ndarray]) -> np.ndarray:
        """Reference audio vectors (N, 512) for 48 kHz clips of <= 10 s."""
        return self._vectors(input_features=audio_features(waves))

    def audio_vectors(self, paths: Sequence[PathLike]) -> np.ndarray:
        """Reference audio vectors (N, 512) for audio files of <= 10 s."""
        return self.wave_vectors([load_audio(p) for p in paths])

    def long_audio_vector(self, samples: np.ndarray, policy: str) -> np.ndarray:
        """Reference vector (512,) of a 48 kHz clip under a deterministic long-audio policy."""
        windows = long_audio_windows(samples, policy)
        vecs = self.wave_vectors(windows)
        return _l2(vecs.astype(np.float64).mean(axis=0))


def reference_vectors(model_dir: PathLike, media_dir: PathLike) -> dict[str, np.ndarray]:
    """All reference vectors for a media folder, keyed as described in the module docstring."""
    ref = ReferenceModel(model_dir)
    out: dict[str, np.ndarray] = {}

    texts = load_texts(media_dir)
    for (name, _), vec in zip(texts, ref.text_vectors([t for _, t in texts]), strict=True):
        out[f"text/{name}"] = vec

    images = image_files(media_dir)
    for path, vec in zip(images, ref.image_vectors(images), strict=True):
        out[f"image/{path.name}"] = vec

    short: list[tuple[str, np.ndarray]] = []
    for path in audio_files(media_dir):
        samples = load_audio(path)
        if is_long(samples):
            for policy in LONG_AUDIO_POLICIES:
                out[f"audio/{path.name}/{policy}"] = ref.long_audio_vector(samples, policy)
        else:
            short.append((path.name, samples))
    for (name, _), vec in zip(short, ref.wave_vectors([s for _, s in short]), strict=True):
        out[f"audio/{name}"] = vec
    return out


def _meta(model_dir: PathLike, media_dir: PathLike, keys: Sequence[str]) -> dict[str, Any]:
    import transformers

    try:
        import torch

        torch_version = str(torch.__version__)
    except ImportError:  # pragma: no cover - vectors need torch anyway
        torch_version = None
    return {
        "format_version": FORMAT_VERSION,
        "synthetic": synthetic_spec(model_dir),
        "model_dir": Path(model_dir).name,
        "media_dir": Path(media_dir).name,
        "texts": dict(load_texts(media_dir)),
        "long_audio_policies": list(LONG_AUDIO_POLICIES),
        "keys": list(keys),
        "transformers": transformers.__version__,
        "torch": torch_version,
    }


def write_reference(model_dir: PathLike, media_dir: PathLike, out_file: PathLike) -> Path:
    """Compute the reference vectors and write them as a compressed ``.npz``; return its path."""
    vectors = reference_vectors(model_dir, media_dir)
    meta = json.dumps(_meta(model_dir, media_dir, list(vectors)), ensure_ascii=False, indent=1)
    out = Path(out_file)
    out.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {k: np.asarray(v, dtype=np.float32) for k, v in vectors.items()}
    arrays["meta"] = np.array(meta)
    _write_npz(out, arrays)
    return out


def _write_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """A compressed ``.npz`` with fixed timestamps, so regenerating it gives the same bytes."""
    import io
    import zipfile

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(arrays[key]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, buf.getvalue())


def read_reference(path: PathLike) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Load a reference file: ``(vectors by key, meta)``. Needs only numpy."""
    with np.load(str(path), allow_pickle=False) as data:
        vectors = {k: np.asarray(data[k], dtype=np.float32) for k in data.files if k != "meta"}
        meta = json.loads(str(data["meta"])) if "meta" in data.files else {}
    return vectors, meta
