"""Sessions made ahead: ``ClipClapEmbedder.prepare`` and the warm-up ``clipclap index`` runs
while it imports Chroma. The vectors must not change, whichever thread made the session."""

from __future__ import annotations

import argparse
import threading
from pathlib import Path

import numpy as np
import pytest
from inputs_media import audio_bytes, image_bytes, rgb_array, tone

from clipclap_integrations import ClipClapEmbedder
from clipclap_integrations.cli_index import WarmUp, model_known
from clipclap_integrations.runtime.sessions import clear_sessions, loaded_graphs


def graphs() -> set[str]:
    return {Path(g).name for g in loaded_graphs()}


TEXT = {"text_model.onnx", "text_projection.onnx"}
IMAGE = {"visual_model.onnx", "visual_projection.onnx"}
AUDIO = {"audio_model.onnx", "audio_projection.onnx"}


def test_prepare_makes_the_sessions_of_the_modalities_asked(tiny_model_dir: Path) -> None:
    clear_sessions()
    e = ClipClapEmbedder(tiny_model_dir)
    assert graphs() == set()
    e.prepare(["text"])
    assert graphs() == TEXT
    e.prepare(["video"])  # a video is embedded by the image and audio graphs
    assert graphs() == TEXT | IMAGE | AUDIO


def test_prepare_in_a_thread_while_embedding_gives_the_same_vectors(
    tiny_model_dir: Path,
) -> None:
    inputs = [
        "a red bicycle",
        image_bytes("PNG", rgb_array(64, 48, seed=3)),
        audio_bytes("WAV", samples=tone(1.5)),
        "gulls over the harbour",
    ]
    clear_sessions()
    reference = ClipClapEmbedder(tiny_model_dir).embed(inputs)  # sessions made on first use
    for _ in range(3):
        clear_sessions()
        e = ClipClapEmbedder(tiny_model_dir)
        thread = threading.Thread(target=e.prepare)
        thread.start()
        got = e.embed(inputs)
        thread.join()
        np.testing.assert_array_equal(got, reference)
        assert graphs() == TEXT | IMAGE | AUDIO


def test_warm_up_walks_and_prepares_what_the_file_names_suggest(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.md").write_text("gulls", encoding="utf-8")
    (tmp_path / "b.wav").write_bytes(audio_bytes("WAV", samples=tone(0.5)))
    (tmp_path / "c.bin").write_bytes(b"\0" * 10)
    (tmp_path / ".hidden.png").write_bytes(image_bytes("PNG", rgb_array(8, 8)))
    clear_sessions()
    warm = WarmUp(ClipClapEmbedder(tiny_model_dir), [str(tmp_path)])
    assert warm.count() == 3  # hidden entries are not walked
    warm.join()
    assert graphs() == TEXT | AUDIO  # no image session: no file is named like an image
    warm.stop()


def test_a_warm_up_that_fails_leaves_the_run_to_report(tmp_path: Path) -> None:
    class Broken:
        def prepare(self, modalities: object) -> None:
            raise RuntimeError("no")

    (tmp_path / "a.txt").write_text("x", encoding="utf-8")
    warm = WarmUp(Broken(), [str(tmp_path)])
    assert warm.count() == 1
    warm.stop()  # nothing raised
    missing = WarmUp(Broken(), [str(tmp_path / "nope")])
    assert missing.count() is None  # the walk failed: the run's own walk says why
    missing.stop()


@pytest.mark.parametrize(
    ("model", "host", "db_exists", "known"),
    [
        ("m", None, True, True),  # --model
        (None, None, False, True),  # no database yet: the default model
        (None, None, True, False),  # the collection may name the model
        (None, "localhost", False, False),  # a server: only it knows
    ],
)
def test_the_model_is_known_before_the_collection_is_read(
    model: str | None,
    host: str | None,
    db_exists: bool,
    known: bool,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CLIPCLAP_MODEL", raising=False)
    db = tmp_path / "db"
    if db_exists:
        db.mkdir()
    args = argparse.Namespace(model=model, host=host, db=str(db))
    assert model_known(args) is known
    monkeypatch.setenv("CLIPCLAP_MODEL", "x")
    assert model_known(args) is True
