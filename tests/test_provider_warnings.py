"""A requested provider that onnxruntime cannot use is warned about for every embedder that
asks for it (once per embedder), and the warning points at the caller's code."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from clipclap_integrations import ClipClapEmbedder
from clipclap_integrations.runtime import sessions

MISSING = "NoSuchExecutionProvider"


def _provider_warnings(caught: list[warnings.WarningMessage]) -> list[warnings.WarningMessage]:
    return [w for w in caught if MISSING in str(w.message)]


def test_each_embedder_warns_once_at_the_callers_line(tiny_model_dir: Path) -> None:
    providers = [MISSING, "CPUExecutionProvider"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = ClipClapEmbedder(tiny_model_dir, providers=providers, threads=3)
        first.embed_text(["a red boat"])
        first.embed_text(["a red boat", "the same embedder: no second warning"])
        first.embed_audio([[0.1] * 4800])  # other graphs, same embedder: still once
    (one,) = _provider_warnings(caught)
    assert issubclass(one.category, RuntimeWarning)
    assert one.filename == __file__  # this test's line, not the package's internals

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # the sessions are shared (already created): the new embedder is warned all the same
        second = ClipClapEmbedder(tiny_model_dir, providers=providers, threads=3)
        second.embed_text(["a red boat"])
    assert second.encoders.session("text_model.onnx") is first.encoders.session("text_model.onnx")
    (again,) = _provider_warnings(caught)
    assert again.filename == __file__


def test_without_an_embedder_the_creating_call_is_warned(
    tiny_model_dir: Path,
) -> None:
    path = tiny_model_dir / "text_projection.onnx"
    config = sessions.SessionConfig(providers=(MISSING,), threads=5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sessions.get_session(path, (str(path), "warn-direct"), config)
        sessions.get_session(path, (str(path), "warn-direct"), config)  # reused: silent
    (one,) = _provider_warnings(caught)
    assert one.filename == __file__


@pytest.fixture(autouse=True)
def _fresh_sessions() -> None:
    sessions.clear_sessions()  # so the first embedder here is the one creating the sessions
