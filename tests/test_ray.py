"""Ray Data on a local Ray (2 CPUs): the records of the folder indexer, the embedder's vectors,
bad files as error rows, idempotent writes, the CLI's --engine ray, writes from workers to a
Chroma server."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cli_run import clipclap

from clipclap_integrations import ClipClapEmbedder

ray = pytest.importorskip("ray")
chromadb = pytest.importorskip("chromadb")
from test_chroma import chroma_server  # noqa: E402, F401  (a real `chroma run`)

from clipclap_integrations.chroma.indexer import FolderIndexer  # noqa: E402
from clipclap_integrations.ray import (  # noqa: E402
    ClipClapPredictor,
    embed_dataset,
    read_media,
    write_chroma,
)

STORY = "The harbour woke before dawn. Fishing boats slid out past the breakwater. " * 12


def make_folder(root: Path, media_dir: Path) -> Path:
    """A small mixed folder with broken files (shared with the two-node test)."""
    (root / "sub").mkdir(parents=True)
    shutil.copy(media_dir / "rgb_320x200.png", root / "boat.png")
    shutil.copy(media_dir / "tall_150x420.jpg", root / "sub" / "tower.jpg")
    shutil.copy(media_dir / "tone_0p5s_48k.wav", root / "beep.wav")
    shutil.copy(media_dir / "long_25s_16k.flac", root / "sub" / "long.flac")
    (root / "story.txt").write_text(STORY, encoding="utf-8")
    (root / "note.md").write_text("A siren wails at night.", encoding="utf-8")
    (root / "broken.png").write_bytes((media_dir / "rgb_320x200.png").read_bytes()[:120])
    (root / "noise.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk" + bytes(64))
    (root / "empty.txt").write_text("", encoding="utf-8")
    (root / "data.bin").write_bytes(b"\x00\x01\x02 not media")
    if HAS_AV:  # a video: its moments and the whole, made by the actor that decodes it
        from clipclap_integrations.testing.video import make_video

        make_video(root / "sub" / "clip.mp4", [(1.5, (0, 200, 0), 440.0), (1.5, (200, 0, 0), None)])
    return root


BAD = {"broken.png", "noise.wav", "empty.txt"}
HAS_AV = importlib.util.find_spec("av") is not None
GOOD_FILES = 7 if HAS_AV else 6  # files indexed


def short_temp_dir() -> str:
    """Ray's session folder: short (its socket paths must fit 107 bytes), never /tmp/ray."""
    return tempfile.mkdtemp(prefix="ray-", dir="/tmp")


@pytest.fixture(scope="module")
def local_ray() -> Iterator[str]:
    """A local Ray of 2 CPUs; its address, for other processes to join."""
    if ray.is_initialized():
        ray.shutdown()
    temp = short_temp_dir()
    ray.init(num_cpus=2, _temp_dir=temp, include_dashboard=False, log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()
    shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory, media_dir: Path) -> Path:
    return make_folder(tmp_path_factory.mktemp("library") / "lib", media_dir)


@pytest.fixture(scope="module")
def embedded(local_ray: str, folder: Path, tiny_model_dir: Path) -> list[dict[str, Any]]:
    ds = embed_dataset(read_media(folder, tiny_model_dir), tiny_model_dir, actors=2, threads=1)
    return ds.take_all()


def indexer_records(tmp_path: Path, folder: Path, model: Path) -> dict[str, Any]:
    """What the folder indexer writes for ``folder``: id -> (metadata, document, uri, vector)."""
    collection = chromadb.PersistentClient(str(tmp_path / "local-db")).create_collection("local")
    FolderIndexer(collection, ClipClapEmbedder(model)).index([folder])
    got = collection.get(include=["metadatas", "documents", "uris", "embeddings"])
    return {
        rid: (meta, doc, uri, np.asarray(vec))
        for rid, meta, doc, uri, vec in zip(
            got["ids"],
            got["metadatas"],
            got["documents"],
            got["uris"],
            got["embeddings"],
            strict=True,
        )
    }


def test_rows_are_the_indexers_records_with_its_vectors(
    embedded: list[dict[str, Any]], folder: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    reference = indexer_records(tmp_path, folder, tiny_model_dir)
    collection = chromadb.PersistentClient(str(tmp_path / "ray-db")).create_collection("ray")
    import ray.data

    report = write_chroma(ray.data.from_items(embedded), collection)
    got = collection.get(include=["metadatas", "documents", "uris", "embeddings"])
    assert set(got["ids"]) == set(reference) and report.written == len(reference)
    for rid, meta, doc, uri, vec in zip(
        got["ids"], got["metadatas"], got["documents"], got["uris"], got["embeddings"], strict=True
    ):
        ref_meta, ref_doc, ref_uri, ref_vec = reference[rid]
        assert (meta, doc, uri) == (ref_meta, ref_doc, ref_uri)
        np.testing.assert_allclose(vec, ref_vec, atol=1e-5)
    kinds = {r["part"] for r in embedded if r["error"] is None}
    assert {"image", "audio", "window-0", "window-2", "chunk-0", "chunk-1"} <= kinds
    if HAS_AV:
        assert {"video", "frames-0", "frames-1", "audio-0"} <= kinds


def test_vectors_equal_the_embedders(embedded: list[dict[str, Any]], tiny_model_dir: Path) -> None:
    e = ClipClapEmbedder(tiny_model_dir)
    by_part = {(Path(r["source"]).name, r["part"]): r for r in embedded if r["error"] is None}
    segments = e.embed_audio_segments(by_part["long.flac", "audio"]["source"])
    assert len(segments) == 3
    for k in range(3):
        np.testing.assert_allclose(
            by_part["long.flac", f"window-{k}"]["embedding"], segments.vectors[k], atol=1e-5
        )
    mean = segments.vectors.mean(axis=0)
    np.testing.assert_allclose(
        by_part["long.flac", "audio"]["embedding"], mean / np.linalg.norm(mean), atol=1e-5
    )
    image = by_part["tower.jpg", "image"]
    np.testing.assert_allclose(image["embedding"], e.embed_images([image["source"]])[0], atol=1e-5)
    chunk = by_part["story.txt", "chunk-1"]
    np.testing.assert_allclose(chunk["embedding"], e.embed_text([chunk["document"]])[0], atol=1e-5)
    beep = by_part["beep.wav", "audio"]
    np.testing.assert_allclose(beep["embedding"], e.embed_audio([beep["source"]])[0], atol=1e-5)


def test_bad_files_are_error_rows_with_reasons(embedded: list[dict[str, Any]]) -> None:
    errors = {Path(r["source"]).name: r for r in embedded if r["error"] is not None}
    assert set(errors) == BAD
    assert all(r["embedding"] is None for r in errors.values())
    assert "truncated" in errors["broken.png"]["error"]
    assert "empty" in errors["empty.txt"]["error"]
    assert "data.bin" not in {Path(r["source"]).name for r in embedded}  # neither media nor text


def test_write_chroma_twice_leaves_the_same_records(
    embedded: list[dict[str, Any]], tmp_path: Path
) -> None:
    import ray.data

    collection = chromadb.PersistentClient(str(tmp_path / "db")).create_collection("twice")
    ds = ray.data.from_items(embedded, override_num_blocks=3)
    with pytest.warns(UserWarning, match="ClipClapEmbeddingFunction"):  # Chroma's default
        first = write_chroma(ds, collection, batch_size=4)
    count = collection.count()
    second = write_chroma(ds, collection, batch_size=4)
    assert count == collection.count() == first.written == second.written
    assert count == sum(1 for r in embedded if r["error"] is None)
    assert {Path(s).name for s, _ in first.failed} == BAD


def test_predictor_on_a_column_of_items_keeps_one_schema(
    local_ray: str, tiny_model_dir: Path, media_dir: Path
) -> None:
    import ray.data

    image, sound = str(media_dir / "rgb_320x200.png"), str(media_dir / "tone_0p5s_48k.wav")
    items = [image, "a dog barking", "/no/such/file.png", "missing.wav", sound, "a quiet street"]

    def embedded(values: list[Any]) -> list[dict[str, Any]]:
        # blocks of two: the second block of ``items`` is all bad (null embeddings)
        ds = ray.data.from_items(
            [{"n": n, "item": v} for n, v in enumerate(values)], override_num_blocks=3
        )
        rows = ds.map_batches(
            ClipClapPredictor,
            fn_constructor_kwargs={"model": str(tiny_model_dir)},
            compute=ray.data.ActorPoolStrategy(size=1),
            num_cpus=1,
            batch_size=2,
        ).take_all()
        return sorted(rows, key=lambda r: r["n"])  # Ray keeps no order unless told

    rows = embedded(items)
    assert [r["error"] is None for r in rows] == [True, True, False, False, True, True]
    e = ClipClapEmbedder(tiny_model_dir)
    good = [0, 1, 4, 5]
    for i, vector in zip(good, e.embed([items[i] for i in good]), strict=True):
        np.testing.assert_allclose(rows[i]["embedding"], vector, atol=1e-5)
    assert [rows[i]["modality"] for i in good] == ["image", "text", "audio", "text"]
    assert "no such file" in rows[2]["error"] and rows[2]["embedding"] is None
    # a column of bytes: one good sound, one neither image nor audio
    data = [Path(sound).read_bytes(), b"\x00junk", Path(image).read_bytes()]
    rows = embedded(data)
    assert [r["modality"] for r in rows] == ["audio", None, "image"]
    assert "neither" in rows[1]["error"]
    np.testing.assert_allclose(rows[2]["embedding"], e.embed_images([image])[0], atol=1e-5)


def test_cli_engine_ray_then_search_then_local_rerun(
    local_ray: str, folder: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    folder = Path(shutil.copytree(folder, tmp_path / "lib"))  # changed below
    db = tmp_path / "cli-db"
    cli = partial(
        clipclap,
        model=tiny_model_dir,
        cwd=tmp_path,
        check=False,
        PYTHONPATH=os.pathsep.join(sys.path),
    )

    engine = ("--engine", "ray", "--address", local_ray, "--actors", "1")  # joins the local Ray
    first = cli("index", str(folder), "--db", str(db), *engine, "--json")
    assert first.returncode == 1, first.stderr  # some files could not be indexed
    summary = json.loads(first.stdout)
    assert {Path(f["path"]).name for f in summary["failed"]} == BAD
    assert len(summary["added"]) == GOOD_FILES and summary["ignored"] == 1
    found = cli("search", "a dog barking", "--db", str(db), "--json", "-k", "3")
    assert found.returncode == 0, found.stderr
    assert len(found.stdout.splitlines()) == 3
    again = cli("index", str(folder), "--db", str(db), "--json")
    summary = json.loads(again.stdout)
    assert len(summary["unchanged"]) == GOOD_FILES and summary["records_written"] == 0
    # a changed file is replaced (its old records go), a deleted one pruned, on Ray too
    (folder / "story.txt").write_text("A short story now. It ends here.", encoding="utf-8")
    (folder / "note.md").unlink()
    changed = cli("index", str(folder), "--db", str(db), *engine, "--prune", "--json")
    summary = json.loads(changed.stdout)
    assert [Path(p).name for p in summary["replaced"]] == ["story.txt"]
    assert [Path(p).name for p in summary["pruned"]] == ["note.md"]
    assert summary["records_written"] == 1
    last = json.loads(cli("index", str(folder), "--db", str(db), "--json").stdout)
    assert len(last["unchanged"]) == GOOD_FILES - 1 and last["records_written"] == 0
    assert last["records_in_collection"] == summary["records_in_collection"]


def test_write_chroma_from_workers_to_a_server(
    embedded: list[dict[str, Any]],
    chroma_server: tuple[str, int],  # noqa: F811
) -> None:
    import ray.data

    host, port = chroma_server
    client = chromadb.HttpClient(host=host, port=port)
    collection = client.create_collection("from-workers")
    ds = ray.data.from_items(embedded, override_num_blocks=2)
    first = write_chroma(ds, collection, batch_size=5)
    second = write_chroma(ds, collection, batch_size=5)
    good = sum(1 for r in embedded if r["error"] is None)
    assert collection.count() == first.written == second.written == good
    assert {Path(s).name for s, _ in first.failed} == BAD


def test_without_ray_the_import_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['ray'] = None\n"
        "try:\n    import clipclap_integrations.ray\n"
        "except ImportError as exc:\n    print(exc)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert 'pip install "clipclap-integrations[ray]"' in out.stdout, out.stderr


HUB_JOB = """
import json, sys
import numpy as np
import ray
from clipclap_integrations.ray import embed_dataset, model_ref, read_media

folder, worker_cache, address, endpoint = sys.argv[1:5]
ref = model_ref("tiny/clipclap")  # resolved on the driver (into $HF_HUB_CACHE), pinned
ray.init(address=address, log_to_driver=False, runtime_env={"env_vars": {
    "HF_HUB_CACHE": worker_cache, "HF_ENDPOINT": endpoint, "HF_HUB_OFFLINE": "0"}})
rows = embed_dataset(read_media(folder, ref), ref, actors=2, threads=1).take_all()
print(json.dumps({"revision": ref.revision, "rows": {
    r["source"] + "#" + r["part"]: np.asarray(r["embedding"]).tolist()
    for r in rows if r["error"] is None}}))
"""


def test_a_hub_model_is_pinned_and_downloaded_once_per_node(
    local_ray: str, tmp_path: Path, media_dir: Path, tiny_model_dir: Path
) -> None:
    """The driver resolves the Hub id to a commit; the node's two actors and its read tasks
    share one download into the node's cache (a file lock), at that commit."""
    from clipclap_integrations.testing.standin_hub import StandinHub

    folder = tmp_path / "lib"
    folder.mkdir()
    shutil.copy(media_dir / "rgb_320x200.png", folder / "boat.png")
    (folder / "note.txt").write_text("A siren wails at night.", encoding="utf-8")
    with StandinHub() as hub:
        commit = hub.add_repo("tiny/clipclap", tiny_model_dir)
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(sys.path),
            "HF_ENDPOINT": hub.url,
            "HF_HUB_CACHE": str(tmp_path / "driver-cache"),
        }
        env.pop("HF_HUB_OFFLINE", None)
        env.pop("CLIPCLAP_MODEL", None)
        node_cache = str(tmp_path / "node-cache")
        done = subprocess.run(
            [sys.executable, "-c", HUB_JOB, str(folder), node_cache, local_ray, hub.url],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        out = json.loads(done.stdout.strip().splitlines()[-1])
        gets = {f.name: len(hub.file_gets(f.name)) for f in tiny_model_dir.iterdir()}
    assert out["revision"] == commit
    assert gets and all(n <= 2 for n in gets.values()), gets  # the driver's, the node's
    assert (tmp_path / "node-cache" / "models--tiny--clipclap").is_dir()
    e = ClipClapEmbedder(tiny_model_dir)
    image = out["rows"][f"{folder / 'boat.png'}#image"]
    np.testing.assert_allclose(image, e.embed_images([folder / "boat.png"])[0], atol=1e-5)
    chunk = out["rows"][f"{folder / 'note.txt'}#chunk-0"]
    np.testing.assert_allclose(chunk, e.embed_text(["A siren wails at night."])[0], atol=1e-5)


def test_a_pool_larger_than_the_cluster_runs_with_what_fits(
    local_ray: str, tiny_model_dir: Path
) -> None:
    """4 actors of 4 threads on 2 CPUs: Ray would wait forever for them; the pool starts
    what fits (and says so), and the job finishes."""
    import ray.data

    texts = ["a dog barking", "rain on a roof"]
    ds = ray.data.from_items([{"n": n, "item": t} for n, t in enumerate(texts)])
    with pytest.warns(UserWarning) as caught:
        ds = embed_dataset(ds, tiny_model_dir, actors=4, threads=4)
    said = " ".join(str(w.message) for w in caught)
    assert "each actor reserves 1.75 CPU" in said and "starting 1" in said
    rows = sorted(ds.take_all(), key=lambda r: r["n"])
    want = ClipClapEmbedder(tiny_model_dir).embed_text(texts)
    np.testing.assert_allclose(np.stack([r["embedding"] for r in rows]), want, atol=1e-5)
