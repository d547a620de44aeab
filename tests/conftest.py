"""Shared fixtures: where the committed synthetic model, test media and references live."""

from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """``tests/fixtures``."""
    return FIXTURES


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    """The committed tiny synthetic CLIPCLAP folder (seed 0)."""
    return FIXTURES / "clipclap-tiny"


@pytest.fixture(scope="session")
def media_dir() -> Path:
    """The committed parity-test media (written by ``tests/fixtures/make_media.py``)."""
    return FIXTURES / "media"


@pytest.fixture(scope="session")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 12 s H.264/AAC MP4 of ``inputs_media.VIDEO_SEGMENTS`` (needs the video extra)."""
    pytest.importorskip("av")
    from inputs_media import VIDEO_SEGMENTS

    from clipclap_integrations.testing.video import make_video

    return make_video(tmp_path_factory.mktemp("video") / "clip.mp4", VIDEO_SEGMENTS)
