"""Folder indexing into Chroma: chunking, incremental re-runs, pruning, failures, resumption."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile

from clipclap_integrations import ClipClapEmbedder
from clipclap_integrations.chunking import chunk_text

chromadb = pytest.importorskip("chromadb")
from clipclap_integrations.indexing import FolderIndexer  # noqa: E402

STORY = (
    "The harbour woke before dawn. Fishing boats slid out past the breakwater, their engines "
    "coughing in the cold. Gulls followed them, screaming for scraps!\n\n"
    "By nine the market was loud with bargaining: crates of mackerel, baskets of mussels, a "
    "single enormous halibut that drew a crowd. Children ran between the stalls. " * 3
    + "\n\nAt noon it rained. Everyone went home."
)


@pytest.fixture
def embedder(tiny_model_dir: Path) -> ClipClapEmbedder:
    return ClipClapEmbedder(tiny_model_dir)


def test_chunks_fit_the_window_and_map_back_to_the_text(embedder: ClipClapEmbedder) -> None:
    count = embedder.text_preprocessor.count_tokens
    chunks = chunk_text(STORY, count)
    assert len(chunks) > 2
    assert all(STORY[c.start:c.end] == c.text for c in chunks)
    assert all(n <= 75 for n in count([c.text for c in chunks]))
    # sentence-aware: every chunk ends at the end of a sentence of the story
    assert all(c.text.rstrip()[-1] in ".!" for c in chunks)
    # nothing lost: every word of the story is in some chunk, in order
    assert " ".join(c.text for c in chunks).split() == STORY.split()
    giant = "word " * 400  # no sentence end at all
    pieces = chunk_text(giant, count)
    assert len(pieces) > 3 and all(n <= 75 for n in count([p.text for p in pieces]))


def _folder(tmp_path: Path, media_dir: Path) -> Path:
    root = tmp_path / "library"
    (root / "sub").mkdir(parents=True)
    shutil.copy(media_dir / "rgb_320x200.png", root / "boat.png")
    shutil.copy(media_dir / "tall_150x420.jpg", root / "sub" / "tower.jpg")
    shutil.copy(media_dir / "tone_0p5s_48k.wav", root / "beep.wav")
    shutil.copy(media_dir / "long_25s_16k.flac", root / "sub" / "long.flac")
    (root / "story.txt").write_text(STORY, encoding="utf-8")
    (root / "broken.png").write_bytes((media_dir / "rgb_320x200.png").read_bytes()[:120])
    (root / "data.bin").write_bytes(b"\x00\x01\x02 not media")
    (root / ".hidden.png").write_bytes((media_dir / "rgb_320x200.png").read_bytes())
    return root


def _collection(tmp_path: Path):
    client = chromadb.PersistentClient(path=str(tmp_path / "db"))
    return client.get_or_create_collection("media", embedding_function=None,
                                           configuration={"hnsw": {"space": "cosine"}})


def test_index_a_folder_then_rerun_incrementally(
    embedder: ClipClapEmbedder, tmp_path: Path, media_dir: Path
) -> None:
    root = _folder(tmp_path, media_dir)
    col = _collection(tmp_path)
    report = FolderIndexer(col, embedder).index([root])
    assert sorted(Path(p).name for p in report.added) == [
        "beep.wav", "boat.png", "long.flac", "story.txt", "tower.jpg"]
    assert [Path(p).name for p, _ in report.failed] == ["broken.png"]
    assert "corrupt" in report.failed[0][1] or "truncated" in report.failed[0][1]
    assert report.ignored == 1  # data.bin; hidden files are not walked
    n_chunks = len(chunk_text(STORY, embedder.text_preprocessor.count_tokens))
    assert col.count() == 1 + 1 + 1 + (1 + 3) + n_chunks == report.records

    got = col.get(where={"file_name": "long.flac"}, include=["metadatas", "embeddings"])
    windows = sorted((m["start_s"], m["end_s"]) for m in got["metadatas"] if m["kind"] == "window")
    # Full 10 s windows; the last ends at the end of the 25.27 s clip.
    end = soundfile.info(str(root / "sub" / "long.flac")).duration
    np.testing.assert_allclose(windows, [(0.0, 10.0), (10.0, 20.0), (end - 10.0, end)], atol=1e-3)
    whole = next(e for e, m in zip(got["embeddings"], got["metadatas"], strict=True)
                 if m["kind"] == "file")
    np.testing.assert_allclose(whole, embedder.embed_audio([root / "sub" / "long.flac"])[0],
                               atol=1e-5)  # the whole-file record is the "mean" policy vector

    chunks = col.get(where={"kind": "chunk"}, include=["metadatas", "documents", "embeddings"])
    for meta, doc, vec in zip(chunks["metadatas"], chunks["documents"], chunks["embeddings"],
                              strict=True):
        assert STORY[meta["char_start"]:meta["char_end"]] == doc
        np.testing.assert_allclose(vec, embedder.embed_text([doc])[0], atol=1e-5)

    # The nearest record to the boat picture is the boat picture.
    hit = col.query(query_embeddings=embedder.embed_images([root / "boat.png"]), n_results=1)
    assert hit["metadatas"][0][0]["file_name"] == "boat.png"

    again = FolderIndexer(col, embedder).index([root])
    assert again.added == [] and again.replaced == [] and again.records == 0
    assert len(again.unchanged) == 5 and col.count() == report.records

    (root / "story.txt").write_text("A short new story. It has two sentences.", encoding="utf-8")
    (root / "boat.png").unlink()
    third = FolderIndexer(col, embedder).index([root])
    assert [Path(p).name for p in third.replaced] == ["story.txt"]
    assert col.count() == report.records - n_chunks + 1  # old chunks gone, boat kept (no prune)
    pruned = FolderIndexer(col, embedder).index([root], prune=True)
    assert [Path(p).name for p in pruned.removed] == ["boat.png"]
    assert col.get(where={"file_name": "boat.png"})["ids"] == []


def test_an_interrupted_run_resumes_without_duplicates(
    embedder: ClipClapEmbedder, tmp_path: Path, media_dir: Path
) -> None:
    root = _folder(tmp_path, media_dir)
    clean = _collection(tmp_path / "clean")
    FolderIndexer(clean, embedder).index([root])
    expected = sorted(clean.get()["ids"])

    col = _collection(tmp_path)
    calls = {"n": 0}
    real_upsert = col.upsert

    class Interrupted(Exception):
        pass

    def flaky_upsert(**kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise Interrupted
        return real_upsert(**kwargs)

    indexer = FolderIndexer(col, embedder)
    indexer.collection = type("Wrapped", (), {
        "upsert": staticmethod(flaky_upsert), "get": col.get, "delete": col.delete})()
    with pytest.raises(Interrupted):
        indexer.index([root])
    assert 0 < col.count() < len(expected)
    resumed = FolderIndexer(col, embedder).index([root])
    assert len(resumed.unchanged) == 2  # the two files written before the interruption
    assert sorted(col.get()["ids"]) == expected


def test_a_file_that_turns_bad_loses_its_old_records(
    embedder: ClipClapEmbedder, tmp_path: Path, media_dir: Path
) -> None:
    root = tmp_path / "lib"
    root.mkdir()
    shutil.copy(media_dir / "rgb_320x200.png", root / "boat.png")
    shutil.copy(media_dir / "tone_0p5s_48k.wav", root / "beep.wav")
    col = _collection(tmp_path)
    FolderIndexer(col, embedder).index([root])
    assert col.count() == 2
    (root / "boat.png").write_bytes(b"garbage, not a PNG any more")
    (root / "gone.jpg").symlink_to(root / "no-such-target.jpg")  # a dangling link
    report = FolderIndexer(col, embedder).index([root])
    failed = {Path(p).name: reason for p, reason in report.failed}
    assert "earlier version were removed" in failed["boat.png"]
    assert "cannot read" in failed["gone.jpg"]  # failed (named as the link), not ignored
    assert report.ignored == 0
    assert col.get(where={"file_name": "boat.png"})["ids"] == []  # stale vectors gone
    assert col.count() == 1 and report.unchanged == [str((root / "beep.wav").resolve())]


def test_text_files_with_a_byte_order_mark(embedder: ClipClapEmbedder, tmp_path: Path) -> None:
    root = tmp_path / "notes"
    root.mkdir()
    text = "Gulls over the harbour. A red boat comes in."
    (root / "utf16.txt").write_bytes(text.encode("utf-16"))  # with its BOM (FF FE)
    (root / "utf8sig.md").write_bytes(text.encode("utf-8-sig"))
    col = _collection(tmp_path)
    report = FolderIndexer(col, embedder).index([root])
    assert report.failed == [] and len(report.added) == 2
    docs = col.get(include=["documents"])["documents"]
    assert docs == [text, text]


def test_prune_removes_a_file_that_is_no_longer_media(
    embedder: ClipClapEmbedder, tmp_path: Path, media_dir: Path
) -> None:
    root = tmp_path / "lib"
    root.mkdir()
    (root / "photo").write_bytes((media_dir / "rgb_320x200.png").read_bytes())  # no extension
    col = _collection(tmp_path)
    FolderIndexer(col, embedder).index([root])
    assert col.count() == 1
    (root / "photo").write_bytes(b"plain bytes now, nothing to index")
    report = FolderIndexer(col, embedder).index([root], prune=True)
    assert report.ignored == 1 and [Path(p).name for p in report.removed] == ["photo"]
    assert col.count() == 0
