"""Video in Chroma: ``add_media`` and the folder indexer store a video as its moments (track,
start_s, end_s) plus one whole-video record; re-indexing a changed video replaces them all
(``upsert_media`` under the same id too, writing the new before deleting the stale);
a bad video writes nothing; the data loader loads video URIs; a decoded frame finds its moment.

References are independent of the Chroma code: ``embed_video`` (the core's own moments) and
frames decoded with PyAV directly, embedded by ``embed_images``."""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

av = pytest.importorskip("av")
chromadb = pytest.importorskip("chromadb")

from cli_run import clipclap  # noqa: E402
from inputs_media import frame_at  # noqa: E402

from clipclap_integrations import (  # noqa: E402
    ClipClapEmbedder,
    ClipClapInputError,
    IncompleteWriteError,
)
from clipclap_integrations.chroma import (  # noqa: E402
    ClipClapDataLoader,
    ClipClapEmbeddingFunction,
    add_media,
    aupsert_media,
    query_media,
    upsert_media,
)
from clipclap_integrations.chroma.indexer import FolderIndexer  # noqa: E402
from clipclap_integrations.testing.video import make_video  # noqa: E402

SETTINGS = chromadb.Settings(anonymized_telemetry=False)
ATOL = 1e-5
_names = itertools.count()


@pytest.fixture(scope="module")
def embedder(tiny_model_dir: Path) -> ClipClapEmbedder:
    return ClipClapEmbedder(tiny_model_dir)


def _collection(model: Path, **kwargs: Any) -> Any:
    client = chromadb.EphemeralClient(settings=SETTINGS)
    ef = ClipClapEmbeddingFunction(model=str(model))
    return client.create_collection(f"video-{next(_names)}", embedding_function=ef, **kwargs)


def _records(collection: Any) -> dict[str, tuple[dict[str, Any], np.ndarray]]:
    got = collection.get(include=["metadatas", "embeddings"])
    return {
        i: (m, np.asarray(e, np.float32))
        for i, m, e in zip(got["ids"], got["metadatas"], got["embeddings"], strict=True)
    }


def test_add_media_writes_the_moments_and_the_whole_video(
    tiny_model_dir: Path, embedder: ClipClapEmbedder, video: Path
) -> None:
    col = _collection(tiny_model_dir)
    [vid, text] = add_media(col, [str(video), "a red square"], metadatas=[{"tag": "v"}, None])
    reference = embedder.embed_video(str(video))
    stored = _records(col)
    assert len(stored) == 1 + len(reference) + 1  # whole + moments + the text
    meta, vector = stored[vid]
    assert meta["modality"] == "video" and meta["kind"] == "file" and "track" not in meta
    assert meta["tag"] == "v" and meta["mime_type"] == "video/mp4"
    assert meta["start_s"] == 0.0 and meta["end_s"] == pytest.approx(reference.ends.max())
    np.testing.assert_allclose(vector, reference.whole, atol=ATOL)
    counts = {"frames": 0, "audio": 0}
    for k, track in enumerate(reference.tracks):
        rid = f"{vid}-{track}-{counts[track]}"
        counts[track] += 1
        meta, vector = stored[rid]
        assert meta["modality"] == "video" and meta["kind"] == "moment"
        assert meta["track"] == track and meta["tag"] == "v"
        assert meta["start_s"] == pytest.approx(reference.starts[k])
        assert meta["end_s"] == pytest.approx(reference.ends[k])
        np.testing.assert_allclose(vector, reference.vectors[k], atol=ATOL)
    assert counts == {"frames": 12, "audio": 2}
    # a frame moment is the frame decoded independently, embedded as an image
    np.testing.assert_allclose(
        stored[f"{vid}-frames-3"][1], embedder.embed_images([frame_at(video, 3.0)])[0], atol=ATOL
    )
    # the same video again: the same ids, nothing added
    assert add_media(col, [str(video)]) == [vid]
    assert upsert_media(col, [video.read_bytes()]) == [vid]
    assert col.count() == len(stored)
    assert stored[text][0]["modality"] == "text"


@pytest.fixture(scope="module")
def short_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("short") / "short.mp4", [(4, (0, 255, 0), 440.0)])


def _stored_as(whole_id: str, reference: Any) -> dict[str, np.ndarray]:
    """The records of a video stored under ``whole_id`` (the documented ids), with the vectors
    ``embed_video`` gives: its whole vector, then each moment's."""
    out = {whole_id: np.asarray(reference.whole, np.float32)}
    counts: dict[str, int] = {}
    for vector, track in zip(reference.vectors, reference.tracks, strict=True):
        k = counts[track] = counts.get(track, -1) + 1
        out[f"{whole_id}-{track}-{k}"] = np.asarray(vector, np.float32)
    return out


def _assert_holds(collection: Any, expected: dict[str, np.ndarray]) -> None:
    stored = _records(collection)
    assert sorted(stored) == sorted(expected) and collection.count() == len(expected)
    for rid, vector in expected.items():
        np.testing.assert_allclose(stored[rid][1], vector, atol=ATOL, err_msg=rid)


class _Died(Exception):
    """The database failing mid-call."""


def test_upserting_another_video_under_an_id_replaces_all_its_records(
    tiny_model_dir: Path, embedder: ClipClapEmbedder, video: Path, short_video: Path
) -> None:
    col = _collection(tiny_model_dir)
    long_ref, short_ref = embedder.embed_video(str(video)), embedder.embed_video(str(short_video))
    # beside it: another video, and a caption whose (given) id looks like a moment of "clip"
    upsert_media(col, [str(video), str(video), "a caption"], ids=["clip", "keep", "clip-frames-20"])
    caption = _records(col)["clip-frames-20"][1]
    old = _stored_as("clip", long_ref)
    _assert_holds(col, {**old, **_stored_as("keep", long_ref), "clip-frames-20": caption})

    assert upsert_media(col, [str(short_video)], ids=["clip"]) == ["clip"]
    new = _stored_as("clip", short_ref)
    assert len(new) == 1 + 4 + 1 < len(old)  # 4 frames, 1 window, the whole: fewer moments
    _assert_holds(col, {**new, **_stored_as("keep", long_ref), "clip-frames-20": caption})
    metas = {i: m for i, (m, _) in _records(col).items()}
    assert {metas[i].get("whole_id") for i in new if i != "clip"} == {"clip"}
    assert "whole_id" not in metas["clip"] and "whole_id" not in metas["clip-frames-20"]
    # a caller's whole_id does not untie the moments; the same video again changes nothing
    upsert_media(col, [str(short_video)], ids=["clip"], metadatas=[{"whole_id": "x"}])
    _assert_holds(col, {**new, **_stored_as("keep", long_ref), "clip-frames-20": caption})
    assert _records(col)["clip-frames-0"][0]["whole_id"] == "clip"
    # an image under a video's id: the video's moments go too
    picture = np.full((32, 32, 3), 200, np.uint8)
    upsert_media(col, [picture], ids=["keep"])
    left = _records(col)
    assert not any(i.startswith("keep-") for i in left) and left["keep"][0]["modality"] == "image"
    np.testing.assert_allclose(left["keep"][1], embedder.embed_images([picture])[0], atol=ATOL)


def test_a_failed_video_upsert_loses_nothing_and_a_rerun_finishes_it(
    tiny_model_dir: Path,
    embedder: ClipClapEmbedder,
    video: Path,
    short_video: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    col = _collection(tiny_model_dir)
    upsert_media(col, [str(video)], ids=["clip"])
    old = _stored_as("clip", embedder.embed_video(str(video)))
    new = _stored_as("clip", embedder.embed_video(str(short_video)))
    _assert_holds(col, old)
    kind, real_upsert, real_delete = type(col), type(col).upsert, type(col).delete
    calls: list[int] = []

    def upsert_dies(self: Any, **kwargs: Any) -> Any:
        calls.append(len(kwargs["ids"]))
        if len(calls) == fail_at:
            raise _Died("server went away")
        return real_upsert(self, **kwargs)

    monkeypatch.setattr(kind, "upsert", upsert_dies)
    fail_at = 1  # the first batch: nothing written, the database's error
    with pytest.raises(_Died):
        upsert_media(col, [str(short_video)], ids=["clip"])
    _assert_holds(col, old)

    monkeypatch.setattr(col._client, "get_max_batch_size", lambda: 4)  # batches of 4
    calls.clear()
    fail_at = 2  # part way: the first 4 new records written, no old one deleted
    with pytest.raises(IncompleteWriteError) as caught:
        upsert_media(col, [str(short_video)], ids=["clip"])
    assert (caught.value.written, caught.value.total) == (4, len(new))
    written = list(new)[:4]
    _assert_holds(col, {**old, **{i: new[i] for i in written}})

    monkeypatch.setattr(kind, "upsert", real_upsert)

    def delete_dies(self: Any, **kwargs: Any) -> Any:
        raise _Died("server went away")

    monkeypatch.setattr(kind, "delete", delete_dies)  # all new written, the stale not removed
    with pytest.raises(IncompleteWriteError, match="earlier version") as caught:
        upsert_media(col, [str(short_video)], ids=["clip"])
    assert caught.value.written == caught.value.total == len(new)
    _assert_holds(col, {**old, **new})

    monkeypatch.setattr(kind, "delete", real_delete)
    assert upsert_media(col, [str(short_video)], ids=["clip"]) == ["clip"]
    _assert_holds(col, new)


class _AsyncOver:
    """An ``AsyncCollection`` stand-in over a collection (Chroma's needs a server)."""

    def __init__(self, collection: Any) -> None:
        self._col = collection
        self.name = collection.name
        self.configuration_json = collection.configuration_json
        self._embedding_function = collection._embedding_function
        self.fail_delete = False

    async def add(self, **kwargs: Any) -> None:
        self._col.add(**kwargs)

    async def upsert(self, **kwargs: Any) -> None:
        self._col.upsert(**kwargs)

    async def get(self, **kwargs: Any) -> Any:
        return self._col.get(**kwargs)

    async def delete(self, **kwargs: Any) -> None:
        if self.fail_delete:
            raise _Died("server went away")
        self._col.delete(**kwargs)


def test_aupsert_media_replaces_a_video_too(
    tiny_model_dir: Path, embedder: ClipClapEmbedder, video: Path, short_video: Path
) -> None:
    import asyncio

    col = _collection(tiny_model_dir)
    facade = _AsyncOver(col)
    old = _stored_as("clip", embedder.embed_video(str(video)))
    new = _stored_as("clip", embedder.embed_video(str(short_video)))
    assert asyncio.run(aupsert_media(facade, [str(video)], ids=["clip"])) == ["clip"]
    _assert_holds(col, old)
    facade.fail_delete = True
    with pytest.raises(IncompleteWriteError, match="aupsert_media wrote all"):
        asyncio.run(aupsert_media(facade, [str(short_video)], ids=["clip"]))
    _assert_holds(col, {**old, **new})
    facade.fail_delete = False
    asyncio.run(aupsert_media(facade, [str(short_video)], ids=["clip"]))
    _assert_holds(col, new)


def test_a_bad_video_writes_nothing_and_is_named(
    tiny_model_dir: Path, video: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "cut.mp4"
    data = video.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    col = _collection(tiny_model_dir)
    with pytest.raises(ClipClapInputError) as info:
        add_media(col, [str(video), str(bad), "text"])
    assert info.value.index == 1 and "cut.mp4" in str(info.value)
    assert col.count() == 0


def test_a_decoded_frame_and_a_sentence_find_moments(
    tiny_model_dir: Path, embedder: ClipClapEmbedder, video: Path
) -> None:
    col = _collection(tiny_model_dir)
    add_media(col, [str(video), "a dog", "a boat"])
    for t, red in ((2.0, True), (8.0, False)):
        got = query_media(col, frame_at(video, t), n_results=3)
        top = got["metadatas"][0][0]
        assert top["track"] == "frames" and (top["start_s"] < 6) == red
    only = query_media(col, "a red square", n_results=50, modality="video")
    metas = only["metadatas"][0]
    assert len(metas) == 15 and {m["modality"] for m in metas} == {"video"}
    # the ranking is the one of the plain vectors
    reference = embedder.embed_video(str(video))
    query = embedder.embed_text(["a red square"])[0]
    scores = np.concatenate([reference.vectors @ query, [reference.whole @ query]])
    assert 1 - only["distances"][0][0] == pytest.approx(scores.max(), abs=1e-4)


def test_the_data_loader_loads_video_uris_as_their_whole_vector(
    tiny_model_dir: Path, embedder: ClipClapEmbedder, video: Path
) -> None:
    col = _collection(tiny_model_dir, data_loader=ClipClapDataLoader())
    col.add(ids=["v"], uris=[str(video)])
    got = col.get(include=["embeddings"])
    whole = embedder.embed_video(str(video)).whole
    np.testing.assert_allclose(np.asarray(got["embeddings"][0]), whole, atol=ATOL)
    assert col.query(query_uris=[str(video)], n_results=1)["ids"] == [["v"]]
    with pytest.raises(ClipClapInputError, match=r"nope\.mp4"):
        col.query(query_uris=[str(video.parent / "nope.mp4")], n_results=1)


def test_the_indexer_indexes_and_replaces_a_video(
    tiny_model_dir: Path, embedder: ClipClapEmbedder, video: Path, tmp_path: Path
) -> None:
    folder, clip = _folder(video, tmp_path)
    col = _collection(tiny_model_dir)

    report = FolderIndexer(col, embedder).index([folder])
    assert sorted(Path(p).name for p in report.added) == ["clip.mp4", "note.txt"]
    assert [Path(p).name for p, _ in report.failed] == ["cut.mp4"]
    stored = _records(col)
    reference = embedder.embed_video(str(video))
    video_ids = {i for i, (m, _) in stored.items() if m.get("modality") == "video"}
    assert len(video_ids) == len(reference) + 1
    assert all(stored[i][0]["source"] == str(clip.resolve()) for i in video_ids)
    assert not any("cut.mp4" in m.get("source", "") for m, _ in stored.values())
    moments = sorted(
        (m["track"], m["start_s"], m["end_s"], v)
        for m, v in (stored[i] for i in video_ids)
        if m["kind"] == "moment"
    )
    expected = sorted(
        zip(reference.tracks, reference.starts, reference.ends, reference.vectors, strict=True)
    )
    for got, want in zip(moments, expected, strict=True):
        assert got[0] == want[0]
        assert got[1:3] == pytest.approx(want[1:3])
        np.testing.assert_allclose(got[3], want[3], atol=ATOL)
    [whole] = [stored[i] for i in video_ids if stored[i][0]["kind"] == "file"]
    np.testing.assert_allclose(whole[1], reference.whole, atol=ATOL)
    assert {stored[i][0]["parts"] for i in video_ids} == {len(video_ids)}

    again = FolderIndexer(col, embedder).index([folder])
    assert len(again.unchanged) == 2 and again.records == 0

    make_video(clip, [(3, (0, 255, 0), 440.0)])  # shorter: fewer moments
    changed = FolderIndexer(col, embedder).index([folder])
    assert [Path(p).name for p in changed.replaced] == ["clip.mp4"]
    after = _records(col)
    new_ids = {i for i, (m, _) in after.items() if m.get("modality") == "video"}
    assert not new_ids & video_ids  # every old record went
    assert len(new_ids) == len(embedder.embed_video(str(clip))) + 1
    assert len(after) == len(new_ids) + 1  # and the note

    # another frame interval re-indexes the video, nothing else
    other = ClipClapEmbedder(tiny_model_dir, frame_every_s=0.5)
    redone = FolderIndexer(col, other).index([folder])
    assert [Path(p).name for p in redone.replaced] == ["clip.mp4"]
    assert [Path(p).name for p in redone.unchanged] == ["note.txt"]
    frames = col.get(where={"track": "frames"})["ids"]
    assert len(frames) == 6


def test_the_video_example_runs(tiny_model_dir: Path) -> None:
    script = Path(__file__).resolve().parents[1] / "examples" / "video_moments.py"
    env = {**os.environ, "CLIPCLAP_MODEL": str(tiny_model_dir), "ANONYMIZED_TELEMETRY": "False"}
    run = subprocess.run(
        [sys.executable, str(script), "-k", "2"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert run.returncode == 0, run.stderr
    blocks = dict(
        (block.split(":", 1)[0], block.splitlines()[1:])
        for block in run.stdout.strip().split("\n\n")[1:]
    )
    assert set(blocks) == {"sentence", "image", "sound"}
    moment = re.compile(r"^  \S+clip\.mp4  (\d\d:\d\d)-(\d\d:\d\d)  -?\d\.\d{4}  \((\w+)\)$")
    for lines in blocks.values():
        assert len(lines) == 2 and all(moment.match(x) or "(whole video)" in x for x in lines)
    red = moment.match(blocks["image"][0])  # the red picture: a frame of the red part first
    assert red is not None and red.group(3) == "frames" and red.group(1) < "00:06"


def _clipclap(model: Path, cwd: Path, *args: str, expect: int = 0) -> str:
    return clipclap(*args, model=model, cwd=cwd, expect=expect, ANONYMIZED_TELEMETRY="False").stdout


def _folder(video: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A folder ``f`` holding a copy of ``video`` (returned too), a note and a cut video."""
    folder = tmp_path / "f"
    folder.mkdir()
    clip = folder / "clip.mp4"
    data = video.read_bytes()
    clip.write_bytes(data)
    (folder / "note.txt").write_text("a red car on a road")
    (folder / "cut.mp4").write_bytes(data[: len(data) // 2])
    return folder, clip


def test_the_cli_indexes_and_searches_moments(
    tiny_model_dir: Path, video: Path, tmp_path: Path
) -> None:
    _, clip = _folder(video, tmp_path)
    out = _clipclap(tiny_model_dir, tmp_path, "index", "f", "--db", "db", "--json", expect=1)
    summary = json.loads(out)
    assert [Path(p).name for p in summary["added"]] == ["clip.mp4", "note.txt"]
    assert [Path(f["path"]).name for f in summary["failed"]] == ["cut.mp4"]
    assert summary["records_in_collection"] == 12 + 2 + 1 + 1  # frames, windows, whole, note

    red = tmp_path / "red.png"
    from PIL import Image

    Image.fromarray(frame_at(video, 2.0)).save(red)
    listing = _clipclap(tiny_model_dir, tmp_path, "search", "red.png", "--db", "db", "-k", "20")
    lines = listing.splitlines()[1:]
    moment = re.compile(r"\S*clip\.mp4  (\d\d):(\d\d)-(\d\d):(\d\d)\s+(frames|audio)$")
    first = moment.search(lines[0])  # the decoded red frame: a red moment first
    assert first is not None and first.group(5) == "frames" and int(first.group(2)) < 6
    whole = re.compile(rf"  {re.escape(str(clip.resolve()))}\s+whole video$")
    assert sum(bool(whole.search(line)) for line in lines) == 1
    assert any("note.txt" in line and line.endswith("chars 0-19") for line in lines)

    only = _clipclap(
        tiny_model_dir,
        tmp_path,
        "search",
        "a red car",
        "--db",
        "db",
        "-k",
        "30",
        "--modality",
        "video",
        "--json",
    )
    rows = [json.loads(line) for line in only.splitlines()]
    assert len(rows) == 15 and {r["modality"] for r in rows} == {"video"}
    moments = [r for r in rows if r["track"] is not None]
    assert {r["track"] for r in moments} == {"frames", "audio"}
    assert all(r["end_s"] > r["start_s"] >= 0 for r in moments)
    assert {(r["start_s"], r["end_s"]) for r in moments if r["track"] == "frames"} == {
        (float(k), float(k + 1)) for k in range(12)
    }
    [whole] = [r for r in rows if r["track"] is None]
    assert whole["start_s"] == 0.0 and whole["source"] == str(clip.resolve())

    # another frame interval: the video is indexed again, every other file is unchanged
    again = json.loads(
        _clipclap(
            tiny_model_dir,
            tmp_path,
            "index",
            "f",
            "--db",
            "db",
            "--json",
            "--frame-every",
            "2",
            expect=1,
        )
    )
    assert [Path(p).name for p in again["replaced"]] == ["clip.mp4"]
    assert again["records_in_collection"] == 6 + 2 + 1 + 1
