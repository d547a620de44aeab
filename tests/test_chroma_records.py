"""One record schema (``chroma/records.py``) for both writers: ``add_media``/``upsert_media``
and the folder indexer; and one reader for what either (or an older version) wrote."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from PIL import Image as PILImage

chromadb = pytest.importorskip("chromadb")

from clipclap_integrations import ClipClapEmbedder  # noqa: E402
from clipclap_integrations.chroma import ClipClapEmbeddingFunction, add_media  # noqa: E402
from clipclap_integrations.chroma import records as schema  # noqa: E402
from clipclap_integrations.chroma.indexer import FolderIndexer  # noqa: E402

README = Path(__file__).resolve().parents[1] / "README.md"
SETTINGS = chromadb.Settings(anonymized_telemetry=False)
NOTE = "A red boat on a quiet lake."


def _library(root: Path, media_dir: Path) -> dict[str, Path]:
    root.mkdir()
    files = {
        "image": root / "boat.png",
        "audio": root / "beep.wav",
        "flac": root / "chirp.flac",
        "text": root / "note.txt",
    }
    shutil.copy(media_dir / "rgb_320x200.png", files["image"])
    shutil.copy(media_dir / "tone_0p5s_48k.wav", files["audio"])
    shutil.copy(media_dir / "chirp_3p3s_48k.flac", files["flac"])
    files["text"].write_text(NOTE, encoding="utf-8")
    # No signature the sniffer knows: only its name tells its type.
    files["ppm"] = root / "boat.ppm"
    PILImage.open(media_dir / "tall_150x420.jpg").convert("RGB").save(files["ppm"])
    return files


def _both_writers(tiny_model_dir: Path, media_dir: Path, tmp_path: Path) -> tuple[Any, Any]:
    """The same files written by add_media into one collection, by the indexer into another."""
    files = _library(tmp_path / "library", media_dir)
    client = chromadb.PersistentClient(path=str(tmp_path / "db"), settings=SETTINGS)
    ef = ClipClapEmbeddingFunction(tiny_model_dir)
    api = client.create_collection("api", embedding_function=ef)
    add_media(api, [files["image"], files["audio"], files["flac"], files["ppm"], NOTE])
    indexed = client.create_collection("indexed", embedding_function=ef)
    FolderIndexer(indexed, ClipClapEmbedder(tiny_model_dir)).index([tmp_path / "library"])
    return api, indexed


def _by_modality_and_mime(collection: Any) -> dict[str, dict[str, Any]]:
    metas = collection.get(include=["metadatas"])["metadatas"]
    return {f"{m['modality']} {m.get('mime_type')}": m for m in metas}


def test_both_writers_write_the_common_keys_alike(
    tiny_model_dir: Path, media_dir: Path, tmp_path: Path
) -> None:
    api, indexed = _both_writers(tiny_model_dir, media_dir, tmp_path)
    from_api, from_indexer = _by_modality_and_mime(api), _by_modality_and_mime(indexed)
    # One MIME rule: the same file gets the same type from either writer (the .ppm's from its
    # name: nothing in its first bytes tells).
    assert sorted(from_api) == sorted(from_indexer)
    assert sorted(from_api) == [
        "audio audio/flac",
        "audio audio/wav",
        "image image/png",
        "image image/x-portable-pixmap",
        "text text/plain",
    ]
    for key, meta in from_api.items():
        common = {k: meta[k] for k in schema.COMMON_KEYS}
        assert common == {k: from_indexer[key][k] for k in schema.COMMON_KEYS}
        assert set(meta) == set(schema.COMMON_KEYS)  # add_media: no file keys
        assert set(schema.FILE_KEYS) <= set(from_indexer[key]) <= set(schema.METADATA_KEYS)


def test_a_field_for_every_record_is_added_in_one_place(
    tiny_model_dir: Path, media_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = schema.metadata
    monkeypatch.setattr(schema, "metadata", lambda record: {**real(record), "team": "gulls"})
    api, indexed = _both_writers(tiny_model_dir, media_dir, tmp_path)
    for collection in (api, indexed):
        metas = collection.get(include=["metadatas"])["metadatas"]
        assert len(metas) >= 5 and all(m["team"] == "gulls" for m in metas)


def test_the_reader_takes_what_any_writer_wrote() -> None:
    from_add_media = schema.read_record(
        "image-0f", {"modality": "image", "mime_type": "image/png"}, None, "/pics/boat.png"
    )
    assert (from_add_media.origin, from_add_media.where) == ("/pics/boat.png", "whole")
    caption = schema.read_record("text-1a", {"modality": "text"}, "a bird " * 20)
    assert caption.origin == ("a bird " * 20)[:60] and caption.document == "a bird " * 20
    in_memory = schema.read_record("audio-2b", {"modality": "audio", "mime_type": "audio/wav"})
    assert (in_memory.origin, in_memory.where) == ("id audio-2b", "whole")
    plain = schema.read_record("x", None)
    assert (plain.modality, plain.origin, plain.where) == (None, "id x", "whole")
    # An indexer window from before window_s was stored: its length tells the window.
    window = schema.read_record(
        "h-c-window-1",
        {
            "source": "/s/long.flac",
            "modality": "audio",
            "kind": "window",
            "start_s": 5,
            "end_s": 10,
        },
    )
    assert (window.window_s, window.where, window.origin) == (5.0, "5.0-10.0 s", "/s/long.flac")
    whole = schema.read_record("h-c-audio", {"modality": "audio", "kind": "file", "end_s": 3.25})
    assert whole.window_s is None and whole.where == "whole (3.2 s)"
    chunk = schema.read_record("h-c-chunk-0", {"kind": "chunk", "char_start": 0, "char_end": 12})
    assert chunk.where == "chars 0-12"
    odd = schema.read_record(
        "y", {"modality": 3, "parts": "two", "start_s": True, "kind": "window"}
    )
    assert (odd.modality, odd.parts, odd.start_s, odd.where) == (None, None, None, "0.0-0.0 s")


def test_the_readme_documents_every_metadata_key() -> None:
    chroma = README.read_text(encoding="utf-8").split("## Chroma", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([a-z_]+)`", chroma, flags=re.MULTILINE))
    assert documented == set(schema.METADATA_KEYS)
