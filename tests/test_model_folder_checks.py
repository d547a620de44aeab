"""Model folder validation of what a session would trip over: cut-short external weights and
unusable numbers in ``clip_config.json``. Each case is one ``ModelFolderError`` naming the file.

Folders are copies of the committed tiny model made in ``tmp_path``; no session is created.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from clipclap_integrations import ModelFolderError
from clipclap_integrations.runtime.model import load_model_folder
from clipclap_integrations.runtime.onnx_signature import read_signature

DATA = "text_model.onnx.data"


def _external_copy(tiny_model_dir: Path, dest: Path, *, drop_length: bool = False) -> int:
    """Copy the tiny model to ``dest`` with text_model.onnx's weights in text_model.onnx.data;
    return how many bytes those weights take. ``drop_length`` removes the "length" entries
    (onnx writes them, but the format does not require them)."""
    onnx = pytest.importorskip("onnx")
    shutil.copytree(tiny_model_dir, dest)
    proto = onnx.load(str(dest / "text_model.onnx"))
    onnx.save_model(
        proto,
        str(dest / "text_model.onnx"),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=DATA,
        size_threshold=1024,
    )
    proto = onnx.load(str(dest / "text_model.onnx"), load_external_data=False)
    end = 0
    for tensor in proto.graph.initializer:
        entries = {e.key: e.value for e in tensor.external_data}
        if "location" in entries:
            end = max(end, int(entries.get("offset", 0)) + int(entries["length"]))
        if drop_length:
            keep = [e for e in tensor.external_data if e.key != "length"]
            del tensor.external_data[:]
            tensor.external_data.extend(keep)
    if drop_length:
        onnx.save_model(proto, str(dest / "text_model.onnx"))
    return end


def _no_tokenizer_length(folder: Path) -> None:
    """Give tokenizer_config.json the "no limit" sentinel transformers writes, so the text
    length comes from clip_config.json's text_config.max_position_embeddings."""
    path = folder / "tokenizer_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config["model_max_length"] = 1000000000000000019884624838656
    path.write_text(json.dumps(config), encoding="utf-8")


def _truncate(path: Path, size: int) -> None:
    with open(path, "r+b") as f:
        f.truncate(size)


@pytest.mark.parametrize("drop_length", [False, True])
def test_truncated_external_weights_are_reported(
    tiny_model_dir: Path, tmp_path: Path, drop_length: bool
) -> None:
    folder = tmp_path / "model"
    need = _external_copy(tiny_model_dir, folder, drop_length=drop_length)
    assert (folder / DATA).stat().st_size == need > 1_000_000
    assert dict(read_signature(folder / "text_model.onnx").external_extents) == {DATA: need}
    load_model_folder(folder)  # whole: fine

    _truncate(folder / DATA, 1_000_000)
    with pytest.raises(ModelFolderError) as caught:
        load_model_folder(folder)
    assert caught.value.problems == [
        f"{DATA} is 1000000 bytes, but the weights text_model.onnx keeps there need {need} "
        "(the file is truncated or damaged)"
    ]


def test_validation_stays_cheap(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Reading the external-data extents does not read weights: validating the tiny model
    (graphs with inline weights, and one with external weights) takes milliseconds."""
    folder = tmp_path / "model"
    _external_copy(tiny_model_dir, folder)
    from clipclap_integrations.runtime.model import _validate

    for path in (tiny_model_dir, folder):
        best = min(_timed(_validate, path) for _ in range(5))
        assert best < 0.25, f"validating {path} took {best:.3f} s"


def _timed(fn: Any, path: Path) -> float:
    start = time.perf_counter()
    fn(path, revision=None, source="")
    return time.perf_counter() - start


@pytest.mark.parametrize(
    ("section", "key", "value", "shown"),
    [
        ("audio_config", "sample_rate", None, "audio_config.sample_rate (None)"),
        ("audio_config", "sample_rate", "48k", "audio_config.sample_rate ('48k')"),
        ("audio_config", "sample_rate", 0, "audio_config.sample_rate (0)"),
        ("audio_config", "sample_rate", 10**400, "audio_config.sample_rate (1000"),
        ("audio_config", "max_length_s", 0, "audio_config.max_length_s (0)"),
        ("audio_config", "max_length_s", -1.5, "audio_config.max_length_s (-1.5)"),
        ("audio_config", "max_length_s", [10], "audio_config.max_length_s ([10])"),
        ("text_config", "max_position_embeddings", None, "text_config.max_position_embeddings"),
        ("text_config", "max_position_embeddings", "x", "text_config.max_position_embeddings"),
        ("text_config", "max_position_embeddings", 0, "text_config.max_position_embeddings (0)"),
    ],
)
def test_unusable_clip_config_values(
    tiny_model_dir: Path, tmp_path: Path, section: str, key: str, value: Any, shown: str
) -> None:
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    config = json.loads((folder / "clip_config.json").read_text(encoding="utf-8"))
    config.setdefault(section, {})[key] = value
    (folder / "clip_config.json").write_text(json.dumps(config), encoding="utf-8")
    if section == "text_config":
        _no_tokenizer_length(folder)
    with pytest.raises(ModelFolderError) as caught:
        load_model_folder(folder)
    assert any(p.startswith("clip_config.json has unusable") for p in caught.value.problems)
    assert shown in str(caught.value)


def test_usable_clip_config_values(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Numbers written as numeric strings or floats with an integer value are accepted."""
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    config = json.loads((folder / "clip_config.json").read_text(encoding="utf-8"))
    config.setdefault("audio_config", {}).update(sample_rate=44100.0, max_length_s="5")
    config.setdefault("text_config", {})["max_position_embeddings"] = 64
    (folder / "clip_config.json").write_text(json.dumps(config), encoding="utf-8")
    _no_tokenizer_length(folder)
    described = load_model_folder(folder)
    assert (described.audio.sample_rate, described.audio.max_length_s) == (44100, 5.0)
    assert described.text.max_length == 64


@pytest.mark.parametrize(
    "content",
    [b'{"version": "1.0", "model": {"type": "BPE", "vocab": {', b"", b'{"a": 1}', b"\xff\xfe"],
)
def test_corrupt_tokenizer_is_found_when_the_folder_is_validated(
    tiny_model_dir: Path, tmp_path: Path, content: bytes
) -> None:
    """A cut-short or foreign tokenizer.json is a ModelFolderError naming the file, raised
    when the folder is validated (not a bare Exception on the first text embedded)."""
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    (folder / "tokenizer.json").write_bytes(content)
    with pytest.raises(ModelFolderError) as caught:
        load_model_folder(folder)
    assert any(p.startswith("tokenizer.json cannot be loaded") for p in caught.value.problems)


def test_tokenizer_damaged_after_validation_is_a_model_folder_error(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    from clipclap_integrations.media.text import load_tokenizer

    path = tmp_path / "tokenizer.json"
    path.write_text('{"version": "1.0", "model": {', encoding="utf-8")
    with pytest.raises(ModelFolderError, match=r"tokenizer\.json cannot be loaded"):
        load_tokenizer(path, 77)


def _with_processor_value(tiny_model_dir: Path, folder: Path, key: str, value: Any) -> None:
    shutil.copytree(tiny_model_dir, folder)
    path = folder / "preprocessor_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    outer, _, inner = key.partition(".")
    if inner:
        config[outer] = {**config[outer], inner: value}
    else:
        config[outer] = value
    path.write_text(json.dumps(config), encoding="utf-8")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("image_std", [0, 0, 0]),
        ("image_std", [0.3, -0.2, 0.3]),
        ("image_std", "0.27"),
        ("image_mean", [0.5, 0.5]),
        ("image_mean", [0.5, None, 0.5]),
        ("crop_size.height", -5),
        ("crop_size", 0),
        ("crop_size", 100000),
        ("size", 100000),
        ("size.shortest_edge", 2.5),
        ("size.shortest_edge", True),
        ("resample", 99),
        ("resample", "bicubic"),
        ("rescale_factor", 0),
        ("do_normalize", "yes"),
        ("do_center_crop", False),
    ],
)
def test_unusable_preprocessor_values(
    tiny_model_dir: Path, tmp_path: Path, key: str, value: Any
) -> None:
    """Each unusable image setting is reported when the folder is validated, by name; not
    NaN vectors, a raw onnxruntime error or an input error blaming a good image later."""
    folder = tmp_path / "model"
    _with_processor_value(tiny_model_dir, folder, key, value)
    with pytest.raises(ModelFolderError) as caught:
        load_model_folder(folder)
    assert any(p.startswith("preprocessor_config.json ") for p in caught.value.problems)
    assert key.split(".")[0] in str(caught.value)


def test_every_unusable_preprocessor_value_is_listed(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    path = folder / "preprocessor_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config.update(image_std=[0, 0, 0], image_mean=[0.5, 0.5], resample=99)
    path.write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(ModelFolderError) as caught:
        load_model_folder(folder)
    shown = str(caught.value)
    assert all(key in shown for key in ("image_std", "image_mean", "resample"))


def test_crop_must_fit_a_visual_model_of_fixed_size(tiny_model_dir: Path, tmp_path: Path) -> None:
    """A crop of another size than the visual graph's fixed pixel input is caught up front
    (onnxruntime would otherwise fail on the first image)."""
    folder = tmp_path / "model"
    _with_processor_value(tiny_model_dir, folder, "crop_size", {"height": 200, "width": 224})
    sig = read_signature(folder / "visual_model.onnx")
    if not all(isinstance(d, int) for d in sig.input("pixel_values").shape[2:]):
        pytest.skip("the tiny visual model takes any size")
    with pytest.raises(ModelFolderError, match="crops images to 200x224"):
        load_model_folder(folder)


def test_usable_preprocessor_values(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Both saved forms, ints for sizes and one number for all channels are accepted."""
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    path = folder / "preprocessor_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config.update(size=224, crop_size=224, image_mean=0.5, resample=2)
    path.write_text(json.dumps({"image_processor": config}), encoding="utf-8")
    image = load_model_folder(folder).image
    assert (image.shortest_edge, image.crop_height, image.crop_width) == (224, 224, 224)
    assert image.mean == (0.5, 0.5, 0.5) and image.resample == 2
