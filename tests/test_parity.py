"""End-to-end parity: our ONNX vectors vs the committed transformers + torch reference.

The reference (``tests/fixtures/clipclap-tiny-reference.npz``) was computed by
``clipclap_integrations.testing.reference`` from the independent Hugging Face pipeline; the
last tests here recompute it (when torch is installed) to prove it is reproducible.
These tests need no torch: the reference file is read with numpy alone.
"""

from __future__ import annotations

import importlib.util
import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from clipclap_integrations import ClipClapEmbedder, Text

FIXTURES = Path(__file__).resolve().parent / "fixtures"
TINY = FIXTURES / "clipclap-tiny"
MEDIA = FIXTURES / "media"
REFERENCE = FIXTURES / "clipclap-tiny-reference.npz"

ATOL = 1e-4  # max |ours - reference| per component
MIN_COSINE = 0.99999
CONSISTENCY_ATOL = 1e-5  # same inputs, different batching or order
POLICIES = ("first", "center", "mean")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif"}
AUDIO_SUFFIXES = {".wav", ".flac"}


def _load_reference(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    with np.load(path, allow_pickle=False) as data:
        vectors = {k: np.asarray(data[k]) for k in data.files if k != "meta"}
        meta = json.loads(str(data["meta"]))
    return vectors, meta


REF, META = _load_reference(REFERENCE)
TEXTS: list[tuple[str, str]] = [
    (t["name"], t["text"]) for t in json.loads((MEDIA / "texts.json").read_text(encoding="utf-8"))
]
IMAGES = sorted(p for p in MEDIA.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
AUDIO = sorted(p for p in MEDIA.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES)
LONG_AUDIO = sorted({k.split("/")[1] for k in REF if k.startswith("audio/") and k.count("/") == 2})
SHORT_AUDIO = [p for p in AUDIO if p.name not in LONG_AUDIO]


def _assert_matches(got: np.ndarray, want: np.ndarray, label: str) -> None:
    assert got.dtype == np.float32, f"{label}: dtype {got.dtype}"
    assert got.shape == want.shape == (512,), f"{label}: shape {got.shape} vs {want.shape}"
    diff = float(np.max(np.abs(got.astype(np.float64) - want)))
    cos = float(np.dot(got.astype(np.float64), want) / np.linalg.norm(got) / np.linalg.norm(want))
    assert abs(float(np.linalg.norm(got)) - 1.0) < 1e-5, f"{label}: not L2-normalized"
    assert diff <= ATOL and cos >= MIN_COSINE, (
        f"{label}: max |ours - reference| = {diff:.3g} (limit {ATOL}), cosine = {cos:.8f}"
    )


def _mixed_inputs() -> list[Any]:
    return [Text(t) for _, t in TEXTS] + list(IMAGES) + list(AUDIO)


def _mixed_reference() -> np.ndarray:
    rows = [REF[f"text/{n}"] for n, _ in TEXTS] + [REF[f"image/{p.name}"] for p in IMAGES]
    for p in AUDIO:
        rows.append(REF[f"audio/{p.name}/mean"] if p.name in LONG_AUDIO else REF[f"audio/{p.name}"])
    return np.stack(rows)


@pytest.fixture(scope="module")
def embedder() -> ClipClapEmbedder:
    return ClipClapEmbedder(TINY)


@pytest.fixture(scope="module")
def text_vectors(embedder: ClipClapEmbedder) -> dict[str, np.ndarray]:
    vecs = embedder.embed_text([t for _, t in TEXTS])
    assert vecs.shape == (len(TEXTS), 512)
    return {name: v for (name, _), v in zip(TEXTS, vecs, strict=True)}


@pytest.fixture(scope="module")
def image_vectors(embedder: ClipClapEmbedder) -> dict[str, np.ndarray]:
    vecs = embedder.embed_images(IMAGES)
    assert vecs.shape == (len(IMAGES), 512)
    return {p.name: v for p, v in zip(IMAGES, vecs, strict=True)}


@pytest.fixture(scope="module")
def audio_vectors(embedder: ClipClapEmbedder) -> dict[str, np.ndarray]:
    vecs = embedder.embed_audio(SHORT_AUDIO)
    assert vecs.shape == (len(SHORT_AUDIO), 512)
    return {p.name: v for p, v in zip(SHORT_AUDIO, vecs, strict=True)}


@pytest.fixture(scope="module")
def mixed_vectors(embedder: ClipClapEmbedder) -> np.ndarray:
    return embedder.embed(_mixed_inputs())


# --------------------------------------------------------------------------- the fixtures


def test_reference_covers_every_fixture() -> None:
    expected = {f"text/{n}" for n, _ in TEXTS} | {f"image/{p.name}" for p in IMAGES}
    expected |= {f"audio/{p.name}" for p in SHORT_AUDIO}
    expected |= {f"audio/{name}/{pol}" for name in LONG_AUDIO for pol in POLICIES}
    assert set(REF) == expected
    assert (
        META["synthetic"]["seed"]
        == json.loads((TINY / "clip_config.json").read_text(encoding="utf-8"))["synthetic"]["seed"]
    )
    assert LONG_AUDIO, "no clip over 10 s: the long-audio policies would go untested"
    for name in LONG_AUDIO:  # the policies must be distinguishable, or their tests prove nothing
        a, b, c = (REF[f"audio/{name}/{pol}"] for pol in POLICIES)
        assert min(np.abs(a - b).max(), np.abs(a - c).max(), np.abs(b - c).max()) > 100 * ATOL
    assert len(IMAGES) >= 10 and len(SHORT_AUDIO) >= 8 and len(TEXTS) >= 7


def _load_make_media() -> Any:
    spec = importlib.util.spec_from_file_location("make_media", FIXTURES / "make_media.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_media_fixtures_are_regenerated_by_make_media(tmp_path: Path) -> None:
    """The committed media are exactly what the seeded script writes (decoded content)."""
    _load_make_media().main([str(tmp_path)])
    committed = sorted(p.name for p in MEDIA.iterdir())
    assert sorted(p.name for p in tmp_path.iterdir()) == committed
    for name in committed:
        old, new = MEDIA / name, tmp_path / name
        suffix = old.suffix.lower()
        if suffix == ".json":
            assert old.read_bytes() == new.read_bytes(), name
        elif suffix in AUDIO_SUFFIXES:
            a, ra = sf.read(old, dtype="float64", always_2d=True)
            b, rb = sf.read(new, dtype="float64", always_2d=True)
            assert ra == rb and sf.info(old).subtype == sf.info(new).subtype, name
            np.testing.assert_array_equal(a, b, err_msg=name)
        else:
            with Image.open(old) as ia, Image.open(new) as ib:
                assert (ia.mode, ia.size) == (ib.mode, ib.size), name
                assert ia.getexif().get(0x0112) == ib.getexif().get(0x0112), name
                assert ia.info.get("transparency") == ib.info.get("transparency"), name
                pa, pb = np.asarray(ia).astype(np.int32), np.asarray(ib).astype(np.int32)
            if suffix in {".jpg", ".jpeg"}:  # lossy: allow an encoder-version difference
                assert np.abs(pa - pb).mean() < 0.5, name
            else:
                np.testing.assert_array_equal(pa, pb, err_msg=name)


# --------------------------------------------------------------------------- vectors


@pytest.mark.parametrize("name", [n for n, _ in TEXTS])
def test_text_vector_matches_reference(text_vectors: dict[str, np.ndarray], name: str) -> None:
    _assert_matches(text_vectors[name], REF[f"text/{name}"], f"text {name!r}")


@pytest.mark.parametrize("name", [p.name for p in IMAGES])
def test_image_vector_matches_reference(image_vectors: dict[str, np.ndarray], name: str) -> None:
    _assert_matches(image_vectors[name], REF[f"image/{name}"], f"image {name}")


@pytest.mark.parametrize("name", [p.name for p in SHORT_AUDIO])
def test_audio_vector_matches_reference(audio_vectors: dict[str, np.ndarray], name: str) -> None:
    _assert_matches(audio_vectors[name], REF[f"audio/{name}"], f"audio {name}")


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("name", LONG_AUDIO)
def test_long_audio_vector_matches_reference(name: str, policy: str) -> None:
    vec = ClipClapEmbedder(TINY, long_audio=policy).embed_audio([MEDIA / name])  # type: ignore[arg-type]
    assert vec.shape == (1, 512)
    _assert_matches(vec[0], REF[f"audio/{name}/{policy}"], f"audio {name} long_audio={policy}")


def test_long_audio_default_policy_is_mean(embedder: ClipClapEmbedder) -> None:
    for name in LONG_AUDIO:
        vec = embedder.embed_audio([MEDIA / name])
        _assert_matches(vec[0], REF[f"audio/{name}/mean"], f"audio {name} default policy")


def test_mixed_embed_matches_reference(mixed_vectors: np.ndarray) -> None:
    want = _mixed_reference()
    assert mixed_vectors.shape == want.shape
    for i, item in enumerate(_mixed_inputs()):
        _assert_matches(mixed_vectors[i], want[i], f"mixed row {i} ({item!r})")


# --------------------------------------------------------------------------- consistency


@pytest.mark.parametrize("modality", ["text", "image", "audio"])
def test_batch_size_does_not_change_vectors(modality: str) -> None:
    inputs: dict[str, list[Any]] = {
        "text": [t for _, t in TEXTS],
        "image": list(IMAGES),
        "audio": list(AUDIO),
    }
    method = {"text": "embed_text", "image": "embed_images", "audio": "embed_audio"}[modality]
    one = getattr(ClipClapEmbedder(TINY, batch_size=1), method)(inputs[modality])
    many = getattr(ClipClapEmbedder(TINY, batch_size=32), method)(inputs[modality])
    three = getattr(ClipClapEmbedder(TINY, batch_size=3), method)(inputs[modality])
    assert one.shape == many.shape == three.shape == (len(inputs[modality]), 512)
    np.testing.assert_allclose(one, many, rtol=0, atol=CONSISTENCY_ATOL)
    np.testing.assert_allclose(three, many, rtol=0, atol=CONSISTENCY_ATOL)


def test_input_order_does_not_change_vectors(
    embedder: ClipClapEmbedder, mixed_vectors: np.ndarray
) -> None:
    items = _mixed_inputs()
    for seed in (1, 2):
        perm = np.random.default_rng(seed).permutation(len(items))
        shuffled = embedder.embed([items[i] for i in perm])
        np.testing.assert_allclose(shuffled, mixed_vectors[perm], rtol=0, atol=CONSISTENCY_ATOL)
    reversed_vecs = embedder.embed(items[::-1])
    np.testing.assert_allclose(reversed_vecs, mixed_vectors[::-1], rtol=0, atol=CONSISTENCY_ATOL)


def test_repeated_calls_are_bit_identical(
    embedder: ClipClapEmbedder, mixed_vectors: np.ndarray
) -> None:
    again = embedder.embed(_mixed_inputs())
    np.testing.assert_array_equal(again, mixed_vectors)
    fresh = ClipClapEmbedder(TINY).embed(_mixed_inputs())
    np.testing.assert_array_equal(fresh, mixed_vectors)


def test_eight_threads_give_the_same_vectors_as_one(mixed_vectors: np.ndarray) -> None:
    items = _mixed_inputs()
    barrier = threading.Barrier(8)
    results: list[np.ndarray | None] = [None] * 8
    errors: list[BaseException] = []

    def work(slot: int) -> None:
        try:
            emb = ClipClapEmbedder(TINY)
            barrier.wait(timeout=60)
            results[slot] = emb.embed(items)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not errors, errors
    for slot, got in enumerate(results):
        assert got is not None, f"thread {slot} produced nothing"
        np.testing.assert_array_equal(got, mixed_vectors, err_msg=f"thread {slot}")


# --------------------------------------------------------------------------- reproducibility


def _same_versions_as_fixture(*modules: str) -> None:
    built = json.loads((TINY / "clip_config.json").read_text(encoding="utf-8"))["synthetic"]
    for module in modules:
        mod = pytest.importorskip(module)
        want = built.get("built_with", {}).get(module)
        if want is not None and str(mod.__version__) != want:
            pytest.skip(f"fixture built with {module} {want}, installed {mod.__version__}")


@pytest.mark.torch
def test_tiny_fixture_rebuilds_byte_identical(tmp_path: Path) -> None:
    _same_versions_as_fixture("torch", "transformers", "onnx")
    from clipclap_integrations.testing.builder import build_model, file_digests

    built = json.loads((TINY / "clip_config.json").read_text(encoding="utf-8"))["synthetic"]
    out = build_model(tmp_path / "tiny", size=built["size"], seed=built["seed"])
    assert file_digests(out) == file_digests(TINY)


@pytest.mark.torch
def test_reference_vectors_are_reproducible() -> None:
    _same_versions_as_fixture("torch", "transformers")
    from clipclap_integrations.testing import reference

    vectors = reference.reference_vectors(TINY, MEDIA)
    assert set(vectors) == set(REF)
    for key, vec in vectors.items():
        diff = float(np.max(np.abs(vec.astype(np.float64) - REF[key])))
        assert diff <= 1e-6, f"{key}: recomputed reference differs by {diff:.3g}"
