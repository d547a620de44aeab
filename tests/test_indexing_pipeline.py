"""The folder indexer as a pipeline: model batches shared across files and modalities, records
written in few large upserts, a failed write leaving each file whole or absent, and vectors
equal to the embedder's."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from inputs_media import audio_bytes, image_bytes, rgb_array, tone

from clipclap_integrations import ClipClapEmbedder
from clipclap_integrations.media.chunking import chunk_text
from clipclap_integrations.types import Modality

chromadb = pytest.importorskip("chromadb")
from clipclap_integrations.chroma.indexer import FolderIndexer  # noqa: E402

NOTE = (
    "Note {k}. The harbour woke before dawn and the boats slid out past the breakwater. "
    "Gulls followed them, screaming for scraps, while the market filled with crates of fish. "
)


def _collection(tmp_path: Path):
    client = chromadb.PersistentClient(path=str(tmp_path / "db"))
    return client.get_or_create_collection(
        "media", embedding_function=None, configuration={"hnsw": {"space": "cosine"}}
    )


class Counted:
    """A collection whose client takes ``limit`` records per write; counts upserts, and
    makes upsert number ``fail_at`` fail."""

    def __init__(self, col, limit: int, fail_at: int | None = None) -> None:
        self.col, self.limit, self.fail_at = col, limit, fail_at
        self.upserts: list[int] = []
        self._client = type("Client", (), {"get_max_batch_size": lambda _self: limit})()

    def upsert(self, **kwargs):
        n = len(kwargs["ids"])
        assert n <= self.limit
        if len(self.upserts) + 1 == self.fail_at:
            self.fail_at = None
            raise RuntimeError("the server hiccuped")
        self.upserts.append(n)
        return self.col.upsert(**kwargs)

    def get(self, **kwargs):
        return self.col.get(**kwargs)

    def count(self):
        return self.col.count()

    def delete(self, **kwargs):
        return self.col.delete(**kwargs)


def _mixed(root: Path, images: int, sounds: int, notes: int, sentences: int = 1) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for k in range(images):
        (root / f"img{k:03d}.png").write_bytes(image_bytes(array=rgb_array(40, 30, seed=k)))
    for k in range(sounds):
        wave = tone(0.3 + 0.1 * k, freq=300.0 + 50 * k)
        (root / f"snd{k:03d}.wav").write_bytes(audio_bytes(samples=wave))
    for k in range(notes):
        (root / f"note{k:03d}.txt").write_text(NOTE.format(k=k) * sentences, encoding="utf-8")
    return root


def test_files_of_all_modalities_share_model_batches(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedder = ClipClapEmbedder(tiny_model_dir, batch_size=32)
    root = _mixed(tmp_path / "lib", images=40, sounds=6, notes=5)
    real = embedder.encoders.project
    runs: list[tuple[Modality, int]] = []

    def project(modality: Modality, feeds: dict[str, np.ndarray]) -> np.ndarray:
        runs.append((modality, next(iter(feeds.values())).shape[0]))
        return real(modality, feeds)

    monkeypatch.setattr(embedder.encoders, "project", project)
    report = FolderIndexer(_collection(tmp_path), embedder).index([root])
    assert len(report.added) == 51 and report.failed == []
    assert [n for m, n in runs if m is Modality.IMAGE] == [32, 8]  # 2 runs, not 40
    assert [n for m, n in runs if m is Modality.AUDIO] == [6]
    assert sum(n for m, n in runs if m is Modality.TEXT) == 5  # the notes' 5 chunks together
    assert len([m for m, _ in runs if m is Modality.TEXT]) <= 2  # (bucketed by length)


def test_records_are_written_in_few_upserts(tiny_model_dir: Path, tmp_path: Path) -> None:
    embedder = ClipClapEmbedder(tiny_model_dir)
    root = _mixed(tmp_path / "lib", images=60, sounds=0, notes=40)
    big = Counted(_collection(tmp_path / "a"), limit=1000)
    report = FolderIndexer(big, embedder).index([root])
    assert report.records == 100 and big.upserts == [100]
    small = Counted(_collection(tmp_path / "b"), limit=30)
    report = FolderIndexer(small, embedder).index([root])
    assert report.records == 100 and small.upserts == [30, 30, 30, 10]


def test_a_failed_write_leaves_each_file_whole_or_absent_and_a_rerun_completes_it(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    embedder = ClipClapEmbedder(tiny_model_dir)
    root = _mixed(tmp_path / "lib", images=6, sounds=3, notes=6, sentences=4)
    clean = _collection(tmp_path / "clean")
    FolderIndexer(clean, embedder).index([root])
    expected = sorted(clean.get()["ids"])
    per_note = len(chunk_text(NOTE.format(k=0) * 4, embedder.text_preprocessor.count_tokens))
    assert per_note > 1 and len(expected) == 6 + 3 + 6 * per_note

    col = _collection(tmp_path)
    flaky = Counted(col, limit=7, fail_at=2)
    report = FolderIndexer(flaky, embedder).index([root])
    assert report.failed and all("could not be written" in why for _, why in report.failed)
    assert len(report.added) + len(report.failed) == 15
    assert len(flaky.upserts) == math.ceil(len(expected) / 7) - 1  # the run went on
    stored = col.get(include=["metadatas"])
    counts = Counter(m["source"] for m in stored["metadatas"])
    parts = {m["source"]: m["parts"] for m in stored["metadatas"]}
    assert all(counts[s] == parts[s] for s in counts)  # whole ...
    assert not set(counts) & {p for p, _ in report.failed}  # ... or absent
    assert set(counts) == set(report.added)

    again = FolderIndexer(Counted(col, limit=7), embedder).index([root])
    assert sorted(again.added) == sorted(p for p, _ in report.failed)
    assert len(again.unchanged) == len(report.added)
    assert sorted(col.get()["ids"]) == expected  # nothing lost, nothing twice


def test_vectors_equal_the_embedders(tiny_model_dir: Path, tmp_path: Path, media_dir: Path) -> None:
    embedder = ClipClapEmbedder(tiny_model_dir, batch_size=4)
    root = _mixed(tmp_path / "lib", images=5, sounds=3, notes=3, sentences=3)
    long = root / "long.flac"
    long.write_bytes((media_dir / "long_25s_16k.flac").read_bytes())
    col = _collection(tmp_path)
    FolderIndexer(col, embedder).index([root])
    got = col.get(include=["metadatas", "embeddings", "documents"])
    assert len(got["ids"]) > 15
    for meta, vec, doc in zip(got["metadatas"], got["embeddings"], got["documents"], strict=True):
        path = Path(meta["source"])
        if meta["modality"] == "image":
            ref = embedder.embed_images([path])[0]
        elif meta["kind"] == "window":
            seg = embedder.embed_audio_segments(path)
            ref = seg.vectors[int(np.argmin(np.abs(seg.starts - meta["start_s"])))]
        elif meta["modality"] == "audio":
            ref = embedder.embed_audio([path])[0]
        else:
            ref = embedder.embed_text([doc])[0]
        np.testing.assert_allclose(vec, ref, atol=1e-5, err_msg=f"{path.name} {meta['kind']}")
