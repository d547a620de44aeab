"""Folder indexing into Chroma: chunking, incremental re-runs, pruning, failures, resumption."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile

from clipclap_integrations import ClipClapEmbedder
from clipclap_integrations.media.chunking import chunk_text

chromadb = pytest.importorskip("chromadb")
from clipclap_integrations.chroma.indexer import DatabaseGoneError, FolderIndexer  # noqa: E402

STORY = (
    "The harbour woke before dawn. Fishing boats slid out past the breakwater, their engines "
    "coughing in the cold. Gulls followed them, screaming for scraps!\n\n"
    "By nine the market was loud with bargaining: crates of mackerel, baskets of mussels, a "
    "single enormous halibut that drew a crowd. Children ran between the stalls. "
    * 3
    + "\n\nAt noon it rained. Everyone went home."
)


@pytest.fixture
def embedder(tiny_model_dir: Path) -> ClipClapEmbedder:
    return ClipClapEmbedder(tiny_model_dir)


def test_chunks_fit_the_window_and_map_back_to_the_text(embedder: ClipClapEmbedder) -> None:
    count = embedder.text_preprocessor.count_tokens
    chunks = chunk_text(STORY, count)
    assert len(chunks) > 2
    assert all(STORY[c.start : c.end] == c.text for c in chunks)
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
    return client.get_or_create_collection(
        "media", embedding_function=None, configuration={"hnsw": {"space": "cosine"}}
    )


def test_index_a_folder_then_rerun_incrementally(
    embedder: ClipClapEmbedder, tmp_path: Path, media_dir: Path
) -> None:
    root = _folder(tmp_path, media_dir)
    col = _collection(tmp_path)
    report = FolderIndexer(col, embedder).index([root])
    assert sorted(Path(p).name for p in report.added) == [
        "beep.wav",
        "boat.png",
        "long.flac",
        "story.txt",
        "tower.jpg",
    ]
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
    whole = next(
        e for e, m in zip(got["embeddings"], got["metadatas"], strict=True) if m["kind"] == "file"
    )
    np.testing.assert_allclose(
        whole, embedder.embed_audio([root / "sub" / "long.flac"])[0], atol=1e-5
    )  # the whole-file record is the "mean" policy vector

    chunks = col.get(where={"kind": "chunk"}, include=["metadatas", "documents", "embeddings"])
    for meta, doc, vec in zip(
        chunks["metadatas"], chunks["documents"], chunks["embeddings"], strict=True
    ):
        assert STORY[meta["char_start"] : meta["char_end"]] == doc
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

    class Interrupted(KeyboardInterrupt):  # an interruption, not a failure of one file
        pass

    def flaky_upsert(**kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise Interrupted
        return real_upsert(**kwargs)

    indexer = FolderIndexer(col, embedder)
    indexer.collection = type(
        "Wrapped", (), {"upsert": staticmethod(flaky_upsert), "get": col.get, "delete": col.delete}
    )()
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


class _SmallBatches:
    """A collection whose client takes at most ``limit`` records per write, like Chroma's
    (``get_max_batch_size``), refusing more as Chroma does; ``fail_on`` (a file name) makes
    the second write of that file fail, and ``fail_delete`` makes deletes fail too."""

    def __init__(self, col, limit: int, fail_on: str | None = None, fail_delete: bool = False):
        self.col, self.limit, self.fail_on, self.fail_delete = col, limit, fail_on, fail_delete
        self.sizes: list[int] = []
        self.writes_of: dict[str, int] = {}
        self._client = type("Client", (), {"get_max_batch_size": lambda _self: limit})()
        self.down_after_failure = self.down = False

    def upsert(self, **kwargs):
        n = len(kwargs["ids"])
        if n > self.limit:
            raise ValueError(f"Batch size of {n} is greater than max batch size of {self.limit}")
        name = kwargs["metadatas"][0]["file_name"]
        self.writes_of[name] = self.writes_of.get(name, 0) + 1
        if name == self.fail_on and self.writes_of[name] == 2:
            if self.down_after_failure:
                self.down = True
                raise ConnectionError("connection refused")
            raise RuntimeError("the server went away for a moment")
        self.sizes.append(n)
        return self.col.upsert(**kwargs)

    def get(self, **kwargs):
        return self.col.get(**kwargs)

    def count(self):
        if self.down:
            raise ConnectionError("connection refused")
        return self.col.count()

    def delete(self, **kwargs):
        if self.fail_delete:
            raise RuntimeError("cannot delete now")
        return self.col.delete(**kwargs)


LONG_STORY = "\n\n".join([STORY] * 3)


def _story_and_picture(tmp_path: Path, media_dir: Path) -> Path:
    root = tmp_path / "lib"
    root.mkdir()
    (root / "story.txt").write_text(LONG_STORY, encoding="utf-8")
    shutil.copy(media_dir / "rgb_320x200.png", root / "boat.png")
    return root


def test_a_file_with_more_records_than_one_write_takes_is_written_in_batches(
    embedder: ClipClapEmbedder, tmp_path: Path, media_dir: Path
) -> None:
    root = _story_and_picture(tmp_path, media_dir)
    chunks = chunk_text(LONG_STORY, embedder.text_preprocessor.count_tokens)
    assert len(chunks) > 4  # more than two writes of 2
    col = _collection(tmp_path)
    limited = _SmallBatches(col, limit=2)
    report = FolderIndexer(limited, embedder).index([root])
    assert report.failed == [] and sorted(Path(p).name for p in report.added) == [
        "boat.png",
        "story.txt",
    ]
    assert max(limited.sizes) == 2 and sum(limited.sizes) == len(chunks) + 1 == report.records
    docs = col.get(where={"kind": "chunk"}, include=["documents"])["documents"]
    assert sorted(docs) == sorted(c.text for c in chunks)
    again = FolderIndexer(_SmallBatches(col, limit=2), embedder).index([root])
    assert len(again.unchanged) == 2 and again.records == 0
    # A real client's limit is the one used.
    client = chromadb.PersistentClient(path=str(tmp_path / "db"))
    assert FolderIndexer(col, embedder).max_batch == client.get_max_batch_size()


def test_a_file_that_cannot_be_written_fails_alone_and_is_redone_next_run(
    embedder: ClipClapEmbedder, tmp_path: Path, media_dir: Path
) -> None:
    root = _story_and_picture(tmp_path, media_dir)
    clean = _collection(tmp_path / "clean")
    FolderIndexer(clean, embedder).index([root])
    expected = sorted(clean.get()["ids"])

    col = _collection(tmp_path)
    # The story's second write fails, and so does taking back its first: it is left partly
    # written.
    broken = _SmallBatches(col, limit=2, fail_on="story.txt", fail_delete=True)
    report = FolderIndexer(broken, embedder).index([root])
    assert [Path(p).name for p in report.added] == ["boat.png"]
    assert [Path(p).name for p, _ in report.failed] == ["story.txt"]
    assert "could not be written" in report.failed[0][1] and "went away" in report.failed[0][1]
    assert col.get(where={"file_name": "boat.png"})["ids"] != []
    assert 0 < len(col.get(where={"file_name": "story.txt"})["ids"]) < len(expected) - 1

    resumed = FolderIndexer(_SmallBatches(col, limit=2), embedder).index([root])
    assert [Path(p).name for p in resumed.added + resumed.replaced] == ["story.txt"]
    assert [Path(p).name for p in resumed.unchanged] == ["boat.png"]
    assert sorted(col.get()["ids"]) == expected

    # Taken back when it can be: a failed write leaves none of the file's records.
    col2 = _collection(tmp_path / "other")
    report = FolderIndexer(_SmallBatches(col2, limit=2, fail_on="story.txt"), embedder).index(
        [root]
    )
    assert [Path(p).name for p, _ in report.failed] == ["story.txt"]
    assert col2.get(where={"file_name": "story.txt"})["ids"] == []


def test_a_database_that_goes_away_stops_the_run(
    embedder: ClipClapEmbedder, tmp_path: Path, media_dir: Path
) -> None:
    root = _story_and_picture(tmp_path, media_dir)
    (root / "zz_after.png").write_bytes((media_dir / "tall_150x420.jpg").read_bytes())
    gone = _SmallBatches(_collection(tmp_path), limit=2, fail_on="story.txt")
    gone.down_after_failure = True
    with pytest.raises(DatabaseGoneError, match=r"story\.txt.*run again") as caught:
        FolderIndexer(gone, embedder).index([root])  # not "every remaining file failed"
    assert isinstance(caught.value.__cause__, ConnectionError)


def test_a_file_name_that_is_not_utf8_fails_alone(
    embedder: ClipClapEmbedder, tmp_path: Path, media_dir: Path
) -> None:
    root = tmp_path / "lib"
    root.mkdir()
    picture = (media_dir / "rgb_320x200.png").read_bytes()
    bad = os.path.join(os.fsencode(root), b"caf\xe9.png")  # Latin-1 bytes, not UTF-8
    with open(bad, "wb") as f:
        f.write(picture)
    (root / "boat.png").write_bytes(picture)
    col = _collection(tmp_path)
    report = FolderIndexer(col, embedder).index([root])
    assert [Path(p).name for p in report.added] == ["boat.png"]
    assert len(report.failed) == 1
    path, reason = report.failed[0]
    assert os.fsencode(path) == bad and "not valid UTF-8" in reason
    assert col.count() == 1


def test_prune_keeps_the_records_of_a_folder_that_cannot_be_read(
    embedder: ClipClapEmbedder, tmp_path: Path, media_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "lib"
    (root / "sub" / "deeper").mkdir(parents=True)
    shutil.copy(media_dir / "rgb_320x200.png", root / "boat.png")
    shutil.copy(media_dir / "tall_150x420.jpg", root / "sub" / "tower.jpg")
    shutil.copy(media_dir / "tone_0p5s_48k.wav", root / "sub" / "deeper" / "beep.wav")
    shutil.copy(media_dir / "cmyk_280x210.jpg", root / "gone.jpg")
    col = _collection(tmp_path)
    FolderIndexer(col, embedder).index([root])
    assert col.count() == 4
    (root / "gone.jpg").unlink()

    real_scandir = os.scandir
    locked = str(root / "sub")

    def scandir(path=".", *args, **kwargs):  # what a folder without read permission does
        if os.fspath(path) == locked:
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path, *args, **kwargs)

    monkeypatch.setattr(os, "scandir", scandir)
    report = FolderIndexer(col, embedder).index([root], prune=True)
    assert [Path(p).name for p in report.removed] == ["gone.jpg"]  # pruning still works
    assert report.failed == [
        (
            str((root / "sub").resolve()),
            "cannot read the folder (Permission denied): its files were skipped and their "
            "records kept",
        )
    ]
    names = sorted(m["file_name"] for m in col.get(include=["metadatas"])["metadatas"])
    assert names == ["beep.wav", "boat.png", "tower.jpg"]


def test_another_window_reindexes_sounds(
    embedder: ClipClapEmbedder, tmp_path: Path, media_dir: Path
) -> None:
    root = tmp_path / "lib"
    root.mkdir()
    shutil.copy(media_dir / "long_25s_16k.flac", root / "long.flac")
    shutil.copy(media_dir / "rgb_320x200.png", root / "boat.png")
    end = soundfile.info(str(root / "long.flac")).duration  # 25.27 s
    col = _collection(tmp_path)
    FolderIndexer(col, embedder).index([root])
    assert col.count() == 1 + (1 + 3)
    report = FolderIndexer(col, embedder, window_s=5.0).index([root])
    assert [Path(p).name for p in report.replaced] == ["long.flac"]
    assert [Path(p).name for p in report.unchanged] == ["boat.png"]
    metas = col.get(where={"file_name": "long.flac"}, include=["metadatas"])["metadatas"]
    windows = sorted((m["start_s"], m["end_s"]) for m in metas if m["kind"] == "window")
    expected = [(0.0, 5.0), (5.0, 10.0), (10.0, 15.0), (15.0, 20.0), (20.0, 25.0), (end - 5.0, end)]
    np.testing.assert_allclose(windows, expected, atol=1e-3)
    assert {m["window_s"] for m in metas} == {5.0} and col.count() == 1 + (1 + 6)
    same = FolderIndexer(col, embedder, window_s=5.0).index([root])
    assert len(same.unchanged) == 2 and same.records == 0


def test_sounds_indexed_before_the_window_was_stored_are_not_redone(
    embedder: ClipClapEmbedder, tmp_path: Path, media_dir: Path
) -> None:
    root = tmp_path / "lib"
    root.mkdir()
    shutil.copy(media_dir / "long_25s_16k.flac", root / "long.flac")
    shutil.copy(media_dir / "tone_0p5s_48k.wav", root / "short.wav")
    col = _collection(tmp_path)
    FolderIndexer(col, embedder, window_s=5.0).index([root])
    # As an older version wrote them: no window_s in the metadata.
    stored = col.get(include=["metadatas"])
    legacy = [{**m, "window_s": None} for m in stored["metadatas"]]  # None: key removed
    col.update(ids=stored["ids"], metadatas=legacy)
    assert all("window_s" not in m for m in col.get(include=["metadatas"])["metadatas"])
    again = FolderIndexer(col, embedder, window_s=5.0).index([root])  # the windows tell 5 s
    assert sorted(Path(p).name for p in again.unchanged) == ["long.flac"]
    assert [Path(p).name for p in again.replaced] == ["short.wav"]  # no windows: taken as 10 s
    other = FolderIndexer(col, embedder, window_s=8.0).index([root])
    assert sorted(Path(p).name for p in other.replaced) == ["long.flac", "short.wav"]


@pytest.mark.parametrize(
    "start",
    [
        "caffeine and sleep",
        "ID3 tags explained",
        "OggS notes",
        "fLaC vs ALAC",
        ".snd files on old Macs",
        "RIFF intervals",
        "GIF89a or PNG?",
    ],
)
def test_notes_that_begin_like_a_media_signature_are_text(
    embedder: ClipClapEmbedder, tmp_path: Path, media_dir: Path, start: str
) -> None:
    root = tmp_path / "notes"
    root.mkdir()
    text = f"{start}. A short note about formats."
    (root / "note.txt").write_text(text, encoding="utf-8")
    (root / "note16.md").write_bytes(text.encode("utf-16"))  # with its BOM
    # A real sound saved under a text name is still a sound.
    shutil.copy(media_dir / "tone_0p5s_48k.wav", root / "really-a-sound.txt")
    col = _collection(tmp_path)
    report = FolderIndexer(col, embedder).index([root])
    assert report.failed == [] and len(report.added) == 3
    got = col.get(include=["metadatas", "documents"])
    kinds = {
        m["file_name"]: (m["modality"], d)
        for m, d in zip(got["metadatas"], got["documents"], strict=True)
    }
    assert kinds == {
        "note.txt": ("text", text),
        "note16.md": ("text", text),
        "really-a-sound.txt": ("audio", None),
    }


def test_a_fifo_or_a_socket_in_the_folder_is_skipped_and_never_opened(
    embedder: ClipClapEmbedder, tmp_path: Path, media_dir: Path
) -> None:
    import socket
    import threading

    root = tmp_path / "lib"
    root.mkdir()
    shutil.copy(media_dir / "rgb_320x200.png", root / "boat.png")
    os.mkfifo(root / "pipe.wav")
    os.mkfifo(root / "pipe.txt")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(root / "talk.png"))
    opened: list[str] = []
    stop = threading.Event()

    def writer(fifo: Path) -> None:  # open() returns only once a reader opens the FIFO
        while not stop.is_set():  # a writer each time it is read: no run hangs on it
            with open(fifo, "wb"):
                opened.append(fifo.name)

    names = ("pipe.wav", "pipe.txt")
    threads = [threading.Thread(target=writer, args=(root / n,), name=n) for n in names]
    for t in threads:
        t.start()
    try:
        report = FolderIndexer(_collection(tmp_path), embedder).index([root])
        opened_by_the_run = list(opened)
    finally:
        stop.set()
        for t in threads:
            while t.is_alive():  # release a writer waiting in open()
                os.close(os.open(root / t.name, os.O_RDONLY | os.O_NONBLOCK))
                t.join(0.01)
        server.close()
    assert opened_by_the_run == []  # never read: a FIFO without a writer blocks a reader forever
    assert [Path(p).name for p in report.added] == ["boat.png"]
    assert report.failed == []
    assert sorted((Path(p).name, why.split(",")[0]) for p, why in report.skipped) == [
        ("pipe.txt", "a FIFO"),
        ("pipe.wav", "a FIFO"),
        ("talk.png", "a socket"),
    ]
    assert "3 skipped" in report.summary()


def test_symlink_loops_and_deep_folders_never_abort_the_run(
    embedder: ClipClapEmbedder, tmp_path: Path, media_dir: Path
) -> None:
    root = tmp_path / "lib"
    root.mkdir()
    shutil.copy(media_dir / "rgb_320x200.png", root / "boat.png")
    os.symlink("b", root / "a")
    os.symlink("a", root / "b")
    os.symlink("self", root / "self")
    chain = [root / "deep"]
    for _ in range(1000):  # ~2,000 characters of path: legal, and deeper than the recursion limit
        chain.append(chain[-1] / "d")
    for folder in chain:
        folder.mkdir()
    (chain[-1] / "bottom.txt").write_text("The bottom of a deep well.", encoding="utf-8")
    try:
        report = FolderIndexer(_collection(tmp_path), embedder).index([root])
    finally:  # bottom up: pytest's (recursive) cleanup would not get through them
        (chain[-1] / "bottom.txt").unlink()
        for folder in reversed(chain):
            folder.rmdir()
    assert sorted(Path(p).name for p in report.added) == ["boat.png", "bottom.txt"], report
    assert sorted(Path(p).name for p, _ in report.failed) == ["a", "b", "self"]
    assert all("symbolic links" in why for _, why in report.failed), report.failed
