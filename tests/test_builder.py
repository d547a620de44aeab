"""The synthetic-model builder: layout, determinism, ONNX-vs-torch agreement, tokenizer."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "clipclap-tiny"
PACKAGE_TOKENIZER = ROOT / "clipclap_integrations" / "testing" / "data" / "clip_tokenizer.json.gz"
GRAPHS = (
    "text_model",
    "text_projection",
    "visual_model",
    "visual_projection",
    "audio_model",
    "audio_projection",
)
SIDE_FILES = (
    "clip_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "preprocessor_config.json",
    "projection_training_metadata.json",
)

# Ids checked against two independent implementations: OpenAI's pure-Python BPE
# (open_clip's SimpleTokenizer.bpe, with the Hugging Face normalisation) and transformers 5's
# CLIPTokenizer built from the same vocabulary and merges.
KNOWN_IDS: list[tuple[str, list[int]]] = [
    ("a photo of a cat", [49406, 320, 1125, 539, 320, 2368, 49407]),
    ("  A   PHOTO\tof a\nCAT ", [49406, 320, 1125, 539, 320, 2368, 49407]),
    (
        "A dog playing fetch in the park!",
        [49406, 320, 1929, 1629, 30271, 530, 518, 1452, 256, 49407],
    ),
    (
        "naïve café, 3.14 🐱",
        [49406, 1097, 35689, 563, 15304, 267, 274, 269, 272, 275, 22979, 49407],
    ),
    ("don't", [49406, 847, 713, 49407]),
    ("日本語", [49406, 39121, 44353, 34002, 508, 49407]),
    ("<|endoftext|>", [49406, 49407, 49407]),
    ("", [49406, 49407]),
]

VARIED_TEXTS = [
    "a photo of a cat",
    "HELLO   world\n\tagain",
    "I'm he's they're we've you'll I'd",
    "3.14159 and 2,718,281",
    "naïve café résumé Ünïcödé",
    "cafe\u0301 (decomposed accent)",
    "中文文本测试 한국어 Привет, мир! Γειά σου مرحبا",
    "emoji 🐱🐶👍🏽 🇫🇷 👨‍👩‍👧‍👦",
    "<|startoftext|>inline specials<|endoftext|>",
    "https://example.com/path?q=1&x=y #tag @user $100 50%",
    "ſtraße İstanbul ﬁ ligature ½ ² ⅷ",
    "\u00a0nbsp\u2003em\u3000ideographic zero\u200bwidth",
    "x" * 300,
    "the quick brown fox jumps over the lazy dog " * 10,
]


def _json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


# --------------------------------------------------------------------- no torch needed


def test_fixture_layout_and_size() -> None:
    names = {p.name for p in FIXTURE.iterdir()}
    assert names == {f"{g}.onnx" for g in GRAPHS} | set(SIDE_FILES)
    total = sum(p.stat().st_size for p in FIXTURE.iterdir())
    assert total < 13_000_000, f"fixture is {total:,} bytes"


def test_fixture_configs() -> None:
    cfg = _json(FIXTURE / "clip_config.json")
    assert cfg["model_type"] == "clipclap"
    assert cfg["projection_dim"] == 512
    assert cfg["synthetic"]["size"] == "tiny"
    assert cfg["synthetic"]["seed"] == 0
    assert cfg["synthetic"]["builder_version"] == 1
    text = cfg["text_config"]
    assert (text["bos_token_id"], text["eos_token_id"], text["pad_token_id"]) == (0, 2, 1)
    assert text["vocab_size"] == 49408
    assert text["max_position_embeddings"] == 77
    assert cfg["vision_config"]["image_size"] == 224
    assert cfg["vision_config"]["patch_size"] == 32
    audio = cfg["audio_config"]
    assert audio["sample_rate"] == 48000
    assert audio["max_length_s"] == 10
    assert audio["num_mel_bins"] == 64
    assert audio["enable_fusion"] is False
    assert audio["hidden_size"] == audio["patch_embeds_hidden_size"] * 2 ** (
        len(audio["depths"]) - 1
    )

    tok = _json(FIXTURE / "tokenizer_config.json")
    assert tok["model_max_length"] == 77
    assert tok["tokenizer_class"] == "CLIPTokenizer"
    assert tok["do_lower_case"] is True

    pre = _json(FIXTURE / "preprocessor_config.json")
    assert pre["crop_size"] == {"height": 224, "width": 224}
    assert pre["size"] == {"shortest_edge": 224}
    assert pre["resample"] == 3
    assert pre["image_mean"] == [0.48145466, 0.4578275, 0.40821073]
    assert pre["image_std"] == [0.26862954, 0.26130258, 0.27577711]

    assert _json(FIXTURE / "projection_training_metadata.json")["synthetic"] is True


def test_fixture_graph_signatures() -> None:
    ort = pytest.importorskip("onnxruntime")

    def signature(name: str) -> tuple[list[Any], list[Any]]:
        sess = ort.InferenceSession(
            str(FIXTURE / f"{name}.onnx"), providers=["CPUExecutionProvider"]
        )
        ins = [(i.name, i.type, i.shape) for i in sess.get_inputs()]
        outs = [o.name for o in sess.get_outputs()]
        return ins, outs

    ins, outs = signature("text_model")
    assert ins == [
        ("input_ids", "tensor(int64)", ["batch", "sequence"]),
        ("attention_mask", "tensor(int64)", ["batch", "sequence"]),
    ]
    assert outs == ["last_hidden_state", "pooler_output"]
    ins, outs = signature("visual_model")
    assert ins == [("pixel_values", "tensor(float)", ["batch", 3, 224, 224])]
    assert outs == ["last_hidden_state", "pooler_output"]
    ins, outs = signature("audio_model")
    assert ins == [("input_features", "tensor(float)", ["batch", 1, "time", 64])]
    assert outs == ["last_hidden_state", "pooler_output"]
    for name in ("text_projection", "visual_projection", "audio_projection"):
        ins, outs = signature(name)
        assert [(n, t) for n, t, _ in ins] == [("input", "tensor(float)")]
        assert ins[0][2][0] == "batch"
        assert outs == ["output"]
    sess = ort.InferenceSession(str(FIXTURE / "audio_projection.onnx"))
    assert sess.get_outputs()[0].shape == ["batch", 512]


def test_fixture_graphs_run_with_other_batch_and_lengths() -> None:
    ort = pytest.importorskip("onnxruntime")
    rng = np.random.default_rng(1)
    text = ort.InferenceSession(str(FIXTURE / "text_model.onnx"))
    ids = np.full((1, 77), 49407, dtype=np.int64)
    ids[0, 0] = 49406
    ids[0, 1:76] = rng.integers(0, 49406, 75)
    hidden, pooled = text.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})
    assert hidden.shape[:2] == (1, 77)
    assert pooled.shape[0] == 1
    audio = ort.InferenceSession(str(FIXTURE / "audio_model.onnx"))
    feats = (rng.standard_normal((4, 1, 1001, 64)) * 20 - 50).astype(np.float32)
    _, pooled = audio.run(None, {"input_features": feats})
    assert pooled.shape[0] == 4
    assert np.isfinite(pooled).all()


def test_tokenizer_known_ids() -> None:
    tokenizers = pytest.importorskip("tokenizers")
    tok = tokenizers.Tokenizer.from_file(str(FIXTURE / "tokenizer.json"))
    assert tok.get_vocab_size() == 49408
    assert tok.token_to_id("<|startoftext|>") == 49406
    assert tok.token_to_id("<|endoftext|>") == 49407
    for text, ids in KNOWN_IDS:
        assert tok.encode(text).ids == ids, text


def test_package_tokenizer_is_the_fixture_tokenizer() -> None:
    data = gzip.decompress(PACKAGE_TOKENIZER.read_bytes())
    assert data == (FIXTURE / "tokenizer.json").read_bytes()
    spec = json.loads(data)
    assert spec["normalizer"]["normalizers"][0]["type"] == "NFC"
    assert spec["post_processor"]["type"] == "RobertaProcessing"
    assert len(spec["model"]["merges"]) == 48894


def test_tokenizer_matches_transformers_clip_recipe() -> None:
    """transformers' own CLIPTokenizer, given our vocab and merges, tokenizes identically."""
    transformers = pytest.importorskip("transformers")
    tokenizers = pytest.importorskip("tokenizers")
    if not hasattr(transformers.CLIPTokenizer, "_wrap_decode_method_backend_tokenizer"):
        pytest.skip("needs the transformers 5 (tokenizers-backed) CLIPTokenizer")
    spec = _json(FIXTURE / "tokenizer.json")
    merges = [
        tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in spec["model"]["merges"]
    ]
    reference = transformers.CLIPTokenizer(vocab=spec["model"]["vocab"], merges=merges)
    ours = tokenizers.Tokenizer.from_file(str(FIXTURE / "tokenizer.json"))
    for text in VARIED_TEXTS:
        assert ours.encode(text).ids == reference(text)["input_ids"], text


# --------------------------------------------------------------------- torch needed


def _torch_stack() -> Any:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    import clipclap_integrations.testing as testing

    return testing


@pytest.fixture(scope="module")
def testing() -> Any:
    return _torch_stack()


@pytest.fixture(scope="module")
def fresh_tiny(testing: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny seed-0 build made now, with the installed library versions."""
    return testing.build_model(tmp_path_factory.mktemp("tiny-a"), size="tiny", seed=0)


def test_tokenizer_rebuilds_from_bpe_file(testing: Any, tmp_path: Path) -> None:
    """build_clip_tokenizer, fed the BPE merge file (bare and inside a wheel), gives our JSON."""
    spec = _json(FIXTURE / "tokenizer.json")
    lines = ["#version: 0.2"] + [" ".join(m) for m in spec["model"]["merges"]] + ["extra ignored"]
    bpe = gzip.compress("\n".join(lines).encode("utf-8"))
    (tmp_path / "bpe_simple_vocab_16e6.txt.gz").write_bytes(bpe)
    wheel = tmp_path / "open_clip_torch-0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("open_clip/bpe_simple_vocab_16e6.txt.gz", bpe)
    expected = gzip.decompress(PACKAGE_TOKENIZER.read_bytes())
    out = testing.write_clip_tokenizer(
        tmp_path / "bpe_simple_vocab_16e6.txt.gz", tmp_path / "t.json"
    )
    assert out.read_bytes() == expected
    out = testing.write_clip_tokenizer(wheel, tmp_path / "t.json.gz")
    assert out.read_bytes() == PACKAGE_TOKENIZER.read_bytes()


@pytest.mark.torch
def test_build_is_deterministic(testing: Any, fresh_tiny: Path, tmp_path: Path) -> None:
    again = testing.build_model(tmp_path, size="tiny", seed=0)
    assert testing.file_digests(again) == testing.file_digests(fresh_tiny)


@pytest.mark.torch
def test_committed_fixture_equals_fresh_build(testing: Any, fresh_tiny: Path) -> None:
    import onnx
    import torch
    import transformers

    built_with = _json(FIXTURE / "clip_config.json")["synthetic"]["built_with"]
    installed = {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "onnx": onnx.__version__,
    }
    if built_with != installed:
        pytest.skip(f"fixture built with {built_with}, installed {installed}")
    assert testing.file_digests(FIXTURE) == testing.file_digests(fresh_tiny)


@pytest.mark.torch
def test_seed_changes_every_weight_and_same_seed_repeats(testing: Any) -> None:
    import torch

    a = testing.build_torch_models("tiny", seed=0)
    b = testing.build_torch_models("tiny", seed=0)
    c = testing.build_torch_models("tiny", seed=1)
    for name in ("clip", "clap", "audio_map"):
        sa, sb, sc = (getattr(m, name).state_dict() for m in (a, b, c))
        assert all(torch.equal(sa[k], sb[k]) for k in sa), name
        random_weights = [
            k for k, v in sa.items() if v.is_floating_point() and v.numel() > 1 and v.std() > 0
        ]
        assert random_weights, name
        assert all(not torch.equal(sa[k], sc[k]) for k in random_weights), name


@pytest.mark.torch
def test_models_stay_in_eval_mode_after_export(testing: Any, tmp_path: Path) -> None:
    models = testing.build_torch_models("tiny", seed=0)
    testing.export_graphs(models, tmp_path)
    for module in (models.clip, models.clap, models.audio_map):
        assert not any(m.training for m in module.modules())


@pytest.mark.torch
def test_onnx_graphs_agree_with_torch(testing: Any, fresh_tiny: Path) -> None:
    models = testing.build_torch_models("tiny", seed=0)
    check = testing.verify_export(models, fresh_tiny, batch=3, seed=7)
    assert set(check.vectors) == {"text", "image", "audio"}
    assert max(check.vectors.values()) < 1e-5, check.vectors
    assert max(check.outputs.values()) < 1e-4, check.outputs
    assert check.ok()


@pytest.mark.torch
def test_audio_tower_is_sensitive_to_small_feature_errors(testing: Any) -> None:
    """Parity tests at 1e-5 must be able to see a 0.1 dB preprocessing error."""
    models = testing.build_torch_models("tiny", seed=0)
    rng = np.random.default_rng(0)
    frames = np.arange(1001)[:, None]
    bins = np.arange(64)[None, :]
    feats = -30 - 0.5 * bins + 8 * np.sin(frames / 40) * np.cos(bins / 7)
    feats = (feats + 3 * rng.standard_normal((1001, 64)))[None, None].astype(np.float32)
    base = testing.torch_reference_vectors(models, input_features=feats)
    shifted = testing.torch_reference_vectors(models, input_features=feats + 0.1)
    assert np.max(np.abs(base - shifted)) > 1e-4


@pytest.mark.torch
def test_external_data_variant(testing: Any, fresh_tiny: Path, tmp_path: Path) -> None:
    import onnxruntime as ort

    out = testing.build_model(tmp_path / "ext", size="tiny", seed=0, external_data=["text_model"])
    graph, data = out / "text_model.onnx", out / "text_model.onnx.data"
    assert data.is_file()
    assert graph.stat().st_size < 200_000 < data.stat().st_size
    digests, plain = testing.file_digests(out), testing.file_digests(fresh_tiny)
    assert {k: v for k, v in digests.items() if not k.startswith("text_model.")} == {
        k: v for k, v in plain.items() if not k.startswith("text_model.")
    }
    ids = np.array([[49406, 320, 1125, 539, 320, 2368, 49407]], dtype=np.int64)
    feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    got = ort.InferenceSession(str(graph)).run(None, feeds)
    want = ort.InferenceSession(str(fresh_tiny / "text_model.onnx")).run(None, feeds)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=0, atol=1e-6)
    assert testing.verify_export(testing.build_torch_models("tiny", 0), out).ok()


@pytest.mark.torch
def test_external_data_rejects_unknown_graph(testing: Any, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown graph"):
        testing.build_model(tmp_path, external_data=["text_encoder"])


@pytest.mark.torch
def test_torch_reference_vectors(testing: Any) -> None:
    models = testing.build_torch_models("tiny", seed=0)
    ids = np.array(
        [
            [49406, 320, 1125, 539, 320, 2368, 49407],
            [49406, 1929, 49407, 49407, 49407, 49407, 49407],
        ]
    )
    mask = (np.arange(7)[None, :] < np.array([[7], [3]])).astype(np.int64)
    text = testing.torch_reference_vectors(models, input_ids=ids, attention_mask=mask)
    assert text.shape == (2, 512)
    assert text.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(text, axis=1), 1.0, atol=1e-6)
    # Padding after the first EOS does not change the vector (argmax pooling, causal mask).
    short = testing.torch_reference_vectors(models, input_ids=ids[1:, :3])
    np.testing.assert_allclose(short[0], text[1], atol=1e-6)
    pixels = np.zeros((1, 3, 224, 224), dtype=np.float32)
    assert testing.torch_reference_vectors(models, pixel_values=pixels).shape == (1, 512)
    with pytest.raises(ValueError, match="exactly one"):
        testing.torch_reference_vectors(models)
    with pytest.raises(ValueError, match="exactly one"):
        testing.torch_reference_vectors(models, input_ids=ids, pixel_values=pixels)


def test_import_without_torch_names_the_extra() -> None:
    code = (
        "import sys\n"
        "sys.modules['torch'] = None\n"
        "import clipclap_integrations.testing\n"
        "try:\n"
        "    clipclap_integrations.testing.build_torch_models()\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert 'pip install "clipclap-integrations[synthetic]"' in result.stdout
