"""Stage-by-stage parity of our preprocessing with the transformers reference.

Text: ``CLIPTokenizerFast``; images: Pillow + ``exif_transpose`` + ``CLIPImageProcessorPil``;
audio: ``librosa.load`` (48 kHz mono) + ``ClapFeatureExtractor``. The reference tensors are
computed live (never committed) by ``clipclap_integrations.testing.reference``.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("transformers")
# The ``testing`` package needs the synthetic extra (torch) as a whole for now; the functions used
# here need only transformers.
reference = pytest.importorskip("clipclap_integrations.testing.reference", exc_type=ImportError)

from clipclap_integrations import ClipClapEmbedder  # noqa: E402

FIXTURES = Path(__file__).resolve().parent / "fixtures"
TINY = FIXTURES / "clipclap-tiny"
MEDIA = FIXTURES / "media"

PAD_ID = 49407
MAX_TOKENS = 77
PIXEL_ATOL = 1e-6
MEL_DB_ATOL = 1e-3

TEXTS: list[tuple[str, str]] = [
    (t["name"], t["text"]) for t in json.loads((MEDIA / "texts.json").read_text(encoding="utf-8"))
]
IMAGES = reference.image_files(MEDIA)
SHORT_AUDIO = [
    p for p in reference.audio_files(MEDIA) if not reference.is_long(reference.load_audio(p))
]
# transformers 5 refuses to build ClapFeatureExtractor without torch (text and image need none).
needs_torch = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None,
    reason="transformers' ClapFeatureExtractor requires torch",
)


@pytest.fixture(scope="module")
def embedder() -> ClipClapEmbedder:
    return ClipClapEmbedder(TINY)


# --------------------------------------------------------------------------- text


def test_text_tokenizer_batch_matches_clip_tokenizer(embedder: ClipClapEmbedder) -> None:
    texts = [t for _, t in TEXTS]
    ours = embedder.preprocess_text(texts)
    ref = reference.preprocess_text(TINY, texts)
    assert set(ours) >= {"input_ids", "attention_mask"}
    ids, mask = ours["input_ids"], ours["attention_mask"]
    assert ids.dtype == np.int64 and mask.dtype == np.int64
    assert ref["input_ids"].shape[1] == MAX_TOKENS, "fixture texts must include one > 77 tokens"
    assert ids.shape == ref["input_ids"].shape, "not padded to the longest text in the batch"
    for row, (name, _) in enumerate(TEXTS):
        n = int(ref["attention_mask"][row].sum())
        np.testing.assert_array_equal(ids[row, :n], ref["input_ids"][row, :n], err_msg=name)
        np.testing.assert_array_equal(mask[row, :n], 1, err_msg=name)
        assert (ids[row, n:] == PAD_ID).all(), f"{name}: pad id is not {PAD_ID}"
        assert (mask[row, n:] == 0).all(), f"{name}: padding not masked"


@pytest.mark.parametrize("name", [n for n, _ in TEXTS])
def test_text_tokenizer_single_matches_clip_tokenizer(
    embedder: ClipClapEmbedder, name: str
) -> None:
    text = dict(TEXTS)[name]
    ours = embedder.preprocess_text([text])
    ref = reference.preprocess_text(TINY, [text])
    np.testing.assert_array_equal(ours["input_ids"], ref["input_ids"])
    np.testing.assert_array_equal(ours["attention_mask"], ref["attention_mask"])


# --------------------------------------------------------------------------- images


@pytest.mark.parametrize("path", IMAGES, ids=lambda p: p.name)
def test_image_pixels_match_clip_image_processor(embedder: ClipClapEmbedder, path: Path) -> None:
    ours = embedder.preprocess_images([path])
    ref = reference.preprocess_images(TINY, [path])
    assert ours.dtype == np.float32
    assert ours.shape == ref.shape == (1, 3, 224, 224)
    diff = float(np.max(np.abs(ours - ref)))
    assert diff <= PIXEL_ATOL, (
        f"{path.name}: max |ours - CLIPImageProcessorPil| = {diff:.3g}; "
        f"{int((np.abs(ours - ref) > PIXEL_ATOL).sum())} of {ref.size} values differ"
    )


def test_image_pixels_batch_matches_clip_image_processor(embedder: ClipClapEmbedder) -> None:
    ours = embedder.preprocess_images(IMAGES)
    ref = reference.preprocess_images(TINY, IMAGES)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=0, atol=PIXEL_ATOL)


# --------------------------------------------------------------------------- audio


@needs_torch
@pytest.mark.parametrize("path", SHORT_AUDIO, ids=lambda p: p.name)
def test_audio_log_mel_matches_clap_feature_extractor(
    embedder: ClipClapEmbedder, path: Path, record_property: Callable[[str, object], None]
) -> None:
    ours = embedder.preprocess_audio([path])
    ref = reference.preprocess_audio([path])
    assert ours.dtype == np.float32
    assert ours.shape == ref.shape == (1, 1, 1001, 64)
    diff = float(np.max(np.abs(ours.astype(np.float64) - ref)))
    record_property("max_abs_db", diff)
    print(f"{path.name}: max |ours - ClapFeatureExtractor| = {diff:.3g} dB")
    assert diff <= MEL_DB_ATOL, f"{path.name}: log-mel differs by up to {diff:.4g} dB"


@needs_torch
def test_audio_log_mel_batch_matches_clap_feature_extractor(embedder: ClipClapEmbedder) -> None:
    ours = embedder.preprocess_audio(SHORT_AUDIO)
    ref = reference.preprocess_audio(SHORT_AUDIO)
    assert ours.shape == ref.shape == (len(SHORT_AUDIO), 1, 1001, 64)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=MEL_DB_ATOL)
