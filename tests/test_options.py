"""One options object: declared once, checked once, read by the core and every adapter."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from clipclap_integrations import ClipClapEmbedder, EmbedderOptions
from clipclap_integrations.options import OPTION_NAMES, config_problems, option_info


def test_every_option_has_a_declaration_and_a_valid_default() -> None:
    default = EmbedderOptions()
    for name in OPTION_NAMES:
        info = option_info(name)
        assert info.help and info.expected
        assert info.problem(name, getattr(default, name)) is None, name
    # the ones that change vectors are exactly these: a collection records them
    changing = {n for n in OPTION_NAMES if option_info(n).changes_vectors}
    assert changing == {"long_audio", "fast_jpeg", "optimize", "quantize"}


def test_options_reach_the_embedder_and_read_back(tiny_model_dir: Path) -> None:
    opts = EmbedderOptions(batch_size=4, long_audio="first", max_image_pixels=None)
    e = ClipClapEmbedder(tiny_model_dir, options=opts, batch_size=np.int64(6))
    assert e.options == dataclasses.replace(opts, batch_size=6)
    assert (e.batch_size, e.long_audio, e.max_image_pixels) == (6, "first", None)
    assert type(e.batch_size) is int
    plain = EmbedderOptions(remote_timeout=np.int64(5), max_audio_seconds=7, threads=np.int32(2))
    assert (type(plain.remote_timeout), type(plain.max_audio_seconds)) == (float, float)
    assert type(plain.threads) is int and plain.threads == 2
    with pytest.raises(AttributeError):
        _ = e.no_such_option
    with pytest.raises(TypeError, match="colour"):
        ClipClapEmbedder(tiny_model_dir, colour="blue")


def test_every_problem_is_listed_at_once() -> None:
    with pytest.raises(ValueError) as info:
        EmbedderOptions(batch_size=0, remote_timeout=-1, quantize="int4")  # type: ignore[arg-type]
    message = str(info.value)
    for words in ("batch_size must be", "remote_timeout must be", 'quantize must be "int8"'):
        assert words in message


def test_stored_options_round_trip_through_json(tmp_path: Path) -> None:
    from clipclap_integrations.options import json_value

    opts = EmbedderOptions(
        providers=("CPUExecutionProvider",), optimized_dir=tmp_path, fast_jpeg=True, threads=2
    )
    stored = json.loads(
        json.dumps({n: json_value(getattr(opts, n)) for n in ("providers", "optimized_dir")})
    )
    assert stored == {"providers": ["CPUExecutionProvider"], "optimized_dir": str(tmp_path)}
    assert config_problems(stored) == []
    again = EmbedderOptions.from_config({**stored, "fast_jpeg": True, "threads": 2})
    assert again.vector_settings() == {
        "long_audio": "mean",
        "fast_jpeg": True,
        "optimize": None,
        "quantize": None,
    }
    assert config_problems({"colour": 1, "threads": "2"}) == [
        f"unknown option 'colour' (known: {', '.join(OPTION_NAMES)})",
        "'threads' must be an integer from 1 to 1024 or None, got '2'",
    ]
    with pytest.raises(ValueError, match="unknown option 'colour'"):
        EmbedderOptions.from_config({"colour": 1})


def test_every_option_is_a_llama_index_field_that_reaches_the_core(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    pytest.importorskip("llama_index.core")
    from pydantic import ValidationError

    from clipclap_integrations.llama_index import ClipClapEmbedding
    from clipclap_integrations.options import option_default

    fields = ClipClapEmbedding.model_fields
    for name in OPTION_NAMES:
        if name == "batch_size":  # LlamaIndex's own embed_batch_size
            assert fields["embed_batch_size"].default == option_default(name)
            continue
        assert fields[name].default == option_default(name), name
        assert fields[name].description == option_info(name).help, name
    changed = {
        "local_files_only": True,
        "providers": ["CPUExecutionProvider"],
        "threads": 1,
        "long_audio": "first",
        "allow_remote": False,
        "allow_private_urls": False,
        "allow_local_files": False,
        "strict_paths": True,
        "max_remote_bytes": 5,
        "remote_timeout": 3.0,
        "max_image_pixels": None,
        "max_audio_seconds": 60.0,
        "fast_jpeg": True,
        "optimized_dir": str(tmp_path),
    }
    model = ClipClapEmbedding(str(tiny_model_dir), embed_batch_size=7, **changed)
    expected = EmbedderOptions(batch_size=7, **changed)
    assert model.embedder.options == expected
    with pytest.raises(ValidationError, match="max_remote_bytes must be a positive integer"):
        model.max_remote_bytes = 0
