"""Chroma adapter, used as Chroma users do: an embedded PersistentClient and a real `chroma run`
server (``-m server``), each re-opened from a second Python process.

Every test runs the tiny synthetic model: its vectors mean nothing, but they are deterministic
and distinct, so "the nearest neighbour of an item is itself" and "the stored vector equals
the core's vector" are exact checks of the plumbing.
"""

from __future__ import annotations

import base64
import json
import os
import pickle
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

chromadb = pytest.importorskip("chromadb")

from chromadb.utils.data_loaders import ImageLoader  # noqa: E402
from chromadb.utils.embedding_functions import (  # noqa: E402
    config_to_embedding_function,
    known_embedding_functions,
)
from PIL import Image as PILImage  # noqa: E402

from clipclap_integrations import (  # noqa: E402
    Audio,
    ClipClapEmbedder,
    ClipClapInputError,
    Image,
    Text,
)
from clipclap_integrations.chroma import (  # noqa: E402
    AudioArray,
    ClipClapDataLoader,
    ClipClapEmbeddingFunction,
    add_media,
    query_media,
    upsert_media,
)

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "examples" / "chroma_quickstart.py"
CHROMA_CLI = Path(sys.executable).with_name("chroma")
QUIET = {"ANONYMIZED_TELEMETRY": "False"}
SETTINGS = chromadb.Settings(anonymized_telemetry=False)
ATOL = 1e-5

IMAGE_FILES = {
    "gray": "gray_L_300x180.png",
    "rgb": "rgb_320x200.png",
    "rgba": "rgba_partial_240x160.png",
}
URI_FILES = {
    "uri-jpg": "cmyk_280x210.jpg",
    "uri-png": "p_transparency_200x260.png",
    "uri-wav": "tone_0p5s_48k.wav",
    "uri-flac": "chirp_3p3s_48k.flac",
    "uri-stereo": "stereo_1p2s_48k.wav",
}
DOCS = {"doc-dog": "a dog barking at the mailman", "doc-boat": "a small red boat on a lake"}


# -- fixtures ------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def model_dir(tiny_model_dir: Path) -> Path:
    """The committed tiny synthetic model (seed 0)."""
    if not (tiny_model_dir / "text_model.onnx").is_file():
        pytest.skip(f"the tiny model is missing from {tiny_model_dir}")
    return tiny_model_dir


@pytest.fixture(scope="session")
def embedder(model_dir: Path) -> ClipClapEmbedder:
    return ClipClapEmbedder(model_dir)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_heartbeat(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"chroma run exited with {proc.returncode}:\n{log.read_text()[-2000:]}")
        try:
            url = f"http://127.0.0.1:{port}/api/v2/heartbeat"
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"chroma run did not answer its heartbeat in 30 s:\n{log.read_text()[-2000:]}")


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """A real Chroma server (`chroma run`) on a free loopback port, stopped by PID afterwards."""
    if not CHROMA_CLI.exists():
        pytest.skip(f"no chroma CLI at {CHROMA_CLI}")
    root = tmp_path_factory.mktemp("chroma-server")
    port = _free_port()
    log = root / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                str(CHROMA_CLI),
                "run",
                "--path",
                str(root / "data"),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **QUIET},
        )
    try:
        _wait_for_heartbeat(port, proc, log)
        yield "127.0.0.1", port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@dataclass
class Target:
    """A Chroma deployment, and how a second process connects to it."""

    kind: str
    client: Any
    spec: dict[str, Any]


def _connect(spec: dict[str, Any]) -> Any:
    if spec["kind"] == "embedded":
        return chromadb.PersistentClient(path=spec["path"], settings=SETTINGS)
    return chromadb.HttpClient(host=spec["host"], port=spec["port"], settings=SETTINGS)


@pytest.fixture(
    scope="module", params=["embedded", pytest.param("server", marks=pytest.mark.server)]
)
def target(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Target:
    if request.param == "embedded":
        spec: dict[str, Any] = {"kind": "embedded", "path": str(tmp_path_factory.mktemp("db"))}
    else:
        host, port = request.getfixturevalue("chroma_server")
        spec = {"kind": "server", "host": host, "port": port}
    return Target(request.param, _connect(spec), spec)


_names = iter(range(10_000))


def _new_collection(target: Target, model_dir: Path, stem: str) -> Any:
    return target.client.create_collection(
        f"{stem}-{next(_names)}",
        embedding_function=ClipClapEmbeddingFunction(model_dir),
        data_loader=ClipClapDataLoader(),
    )


@dataclass
class Populated:
    collection: Any
    images: dict[str, np.ndarray]  # id -> array as Chroma's ImageLoader gives it
    uris: dict[str, str]  # id -> path


@pytest.fixture(scope="module")
def populated(target: Target, model_dir: Path, media_dir: Path) -> Populated:
    """A collection filled the Chroma way: documents=, images= (ImageLoader arrays), uris=."""
    collection = _new_collection(target, model_dir, "everything")
    arrays = ImageLoader()([str(media_dir / f) for f in IMAGE_FILES.values()])
    images = {f"img-{k}": a for k, a in zip(IMAGE_FILES, arrays, strict=True)}
    assert [a.ndim for a in arrays] == [2, 3, 3] and arrays[2].shape[-1] == 4
    uris = {k: str(media_dir / f) for k, f in URI_FILES.items()}
    collection.add(ids=list(DOCS), documents=list(DOCS.values()))
    collection.add(ids=list(images), images=list(images.values()))
    collection.add(ids=list(uris), uris=list(uris.values()))
    return Populated(collection, images, uris)


def _query_summary(result: Any) -> dict[str, Any]:
    return {"ids": result["ids"], "distances": np.asarray(result["distances"]).tolist()}


# -- one collection, every modality ------------------------------------------------------------
def test_stored_vectors_equal_the_core_vectors(populated: Populated, embedder: ClipClapEmbedder):
    col = populated.collection
    assert col.count() == len(DOCS) + len(populated.images) + len(populated.uris)
    ids = list(DOCS) + list(populated.images) + list(populated.uris)
    got = col.get(ids=ids, include=["embeddings"])
    stored = dict(zip(got["ids"], np.asarray(got["embeddings"]), strict=True))
    expected = np.concatenate(
        [
            embedder.embed_text(list(DOCS.values())),
            embedder.embed_images(list(populated.images.values())),
            embedder.embed([Path(p) for p in populated.uris.values()]),
        ]
    )
    np.testing.assert_allclose(np.stack([stored[i] for i in ids]), expected, atol=ATOL)


def test_nearest_neighbour_of_each_item_is_itself(populated: Populated):
    col = populated.collection
    by_text = col.query(query_texts=list(DOCS.values()), n_results=2)
    by_image = col.query(query_images=list(populated.images.values()), n_results=2)
    by_uri = col.query(query_uris=list(populated.uris.values()), n_results=2)
    for result, ids in [(by_text, DOCS), (by_image, populated.images), (by_uri, populated.uris)]:
        assert [hits[0] for hits in result["ids"]] == list(ids)
        assert max(d[0] for d in result["distances"]) < 1e-4
        assert min(d[1] for d in result["distances"]) > 1e-3  # a different item is not at 0


def test_include_data_returns_what_the_loader_loads(populated: Populated, media_dir: Path):
    got = populated.collection.get(ids=["doc-dog", "uri-png", "uri-stereo"], include=["data"])
    data = dict(zip(got["ids"], got["data"], strict=True))
    assert data["doc-dog"] is None  # stored without a URI
    image = data["uri-png"]
    assert (
        isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.shape == (260, 200, 3)
    )
    sound = data["uri-stereo"]
    assert isinstance(sound, AudioArray) and sound.sample_rate == 48_000
    assert sound.dtype == np.float32 and sound.shape[-1] == round(1.2 * 48_000)
    hits = populated.collection.query(
        query_uris=[populated.uris["uri-flac"]], n_results=1, include=["data", "uris"]
    )
    assert hits["uris"][0][0] == populated.uris["uri-flac"]
    assert isinstance(hits["data"][0][0], AudioArray)


CHILD = textwrap.dedent(
    """
    import json, sys
    import chromadb
    spec, name, docs, uris, images = json.loads(sys.argv[1])
    settings = chromadb.Settings(anonymized_telemetry=False)
    if spec["kind"] == "embedded":
        client = chromadb.PersistentClient(path=spec["path"], settings=settings)
    else:
        client = chromadb.HttpClient(host=spec["host"], port=spec["port"], settings=settings)
    out = {}
    try:  # the adapter is not imported yet: Chroma's own error
        client.get_collection(name).query(query_texts=docs, n_results=1)
        out["without_import"] = None
    except ValueError as exc:
        out["without_import"] = str(exc)

    import clipclap_integrations.chroma as adapter
    from chromadb.utils.data_loaders import ImageLoader

    col = client.get_collection(name)  # no embedding function: rebuilt from the stored config
    def summary(result):
        return {"ids": result["ids"], "distances": [list(map(float, row))
                                                    for row in result["distances"]]}

    out["texts"] = summary(col.query(query_texts=docs, n_results=3))
    out["images"] = summary(col.query(query_images=ImageLoader()(images), n_results=3))
    col = client.get_collection(name, data_loader=adapter.ClipClapDataLoader())
    out["uris"] = summary(col.query(query_uris=uris, n_results=3))
    col.add(ids=["added-by-child"], documents=["written by a second process"])
    stored = col.get(ids=["added-by-child"], include=["embeddings"])["embeddings"][0]
    out["added"] = [float(x) for x in stored]
    col.delete(ids=["added-by-child"])  # one process per database: the parent never sees it
    print(json.dumps(out))
    """
)


def test_reopen_in_a_new_process_gives_the_same_results(
    target: Target, populated: Populated, media_dir: Path, embedder: ClipClapEmbedder
):
    col = populated.collection
    image_paths = [str(media_dir / f) for f in IMAGE_FILES.values()]
    expected = {
        "texts": _query_summary(col.query(query_texts=list(DOCS.values()), n_results=3)),
        "images": _query_summary(
            col.query(query_images=list(populated.images.values()), n_results=3)
        ),
        "uris": _query_summary(col.query(query_uris=list(populated.uris.values()), n_results=3)),
    }
    args = [target.spec, col.name, list(DOCS.values()), list(populated.uris.values()), image_paths]
    run = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **QUIET},
    )
    assert run.returncode == 0, run.stderr
    child = json.loads(run.stdout.strip().splitlines()[-1])
    assert "Embedding function clipclap not found" in child["without_import"]
    for kind, summary in expected.items():
        assert child[kind]["ids"] == summary["ids"], kind
        np.testing.assert_allclose(child[kind]["distances"], summary["distances"], atol=ATOL)
    np.testing.assert_allclose(
        child["added"], embedder.embed_text(["written by a second process"])[0], atol=ATOL
    )


def _linked_copy(model_dir: Path, folder: Path) -> Path:
    """The model's files, linked into another folder."""
    folder.mkdir()
    for f in model_dir.iterdir():
        (folder / f.name).symlink_to(f)
    return folder


def _another_model(model_dir: Path, folder: Path) -> Path:
    """A copy of the model whose text projection weights are negated: another model."""
    import onnx
    from onnx import numpy_helper

    _linked_copy(model_dir, folder)
    graph = onnx.load(str(model_dir / "text_projection.onnx"))
    for init in graph.graph.initializer:
        init.CopyFrom(numpy_helper.from_array(-numpy_helper.to_array(init), init.name))
    (folder / "text_projection.onnx").unlink()
    onnx.save(graph, str(folder / "text_projection.onnx"))
    return folder


def test_reopen_with_another_model_is_refused(
    target: Target, populated: Populated, model_dir: Path, tmp_path: Path
):
    other = _another_model(model_dir, tmp_path / "another-model")
    name, count = populated.collection.name, populated.collection.count()
    same = target.client.get_collection(
        name, embedding_function=ClipClapEmbeddingFunction(model_dir)
    )
    assert same.query(query_texts=[DOCS["doc-dog"]], n_results=1)["ids"] == [["doc-dog"]]

    wrong = target.client.get_collection(name, embedding_function=ClipClapEmbeddingFunction(other))
    with pytest.raises(ValueError, match="not comparable") as info:
        wrong.query(query_texts=["anything"], n_results=1)
    assert str(other.resolve()) in str(info.value) and str(model_dir.resolve()) in str(info.value)
    with pytest.raises(ValueError, match="not comparable"):
        wrong.add(ids=["never"], documents=["never written"])
    with pytest.raises(ValueError, match="not comparable"):
        add_media(wrong, ["never written"])
    with pytest.raises(ValueError, match="cannot change the embedding model"):
        same.modify(configuration={"embedding_function": ClipClapEmbeddingFunction(other)})
    # refused before Chroma stored anything (Chroma itself validates only after storing)
    reopened = target.client.get_collection(name)
    assert reopened.count() == count
    stored = reopened.configuration_json["embedding_function"]["config"]
    assert stored["model"] == str(model_dir.resolve())


def test_the_same_files_in_another_folder_are_the_same_model(
    target: Target, populated: Populated, model_dir: Path, tmp_path: Path
):
    stored = populated.collection.configuration_json["embedding_function"]["config"]
    assert stored["model_digest"] == ClipClapEmbedder(model_dir).folder.digest
    moved = _linked_copy(model_dir, tmp_path / "moved-model")
    name = populated.collection.name
    col = target.client.get_collection(name, embedding_function=ClipClapEmbeddingFunction(moved))
    assert col.query(query_texts=[DOCS["doc-dog"]], n_results=1)["ids"] == [["doc-dog"]]
    col.add(ids=["via-moved"], documents=["written through the moved folder"])
    add_media(col, ["also through the moved folder"], ids=["via-moved-2"])
    col.modify(configuration={"embedding_function": ClipClapEmbeddingFunction(moved)})
    got = target.client.get_collection(name).get(ids=["via-moved"], include=["embeddings"])
    np.testing.assert_allclose(
        got["embeddings"][0],
        ClipClapEmbedder(model_dir).embed_text(["written through the moved folder"])[0],
        atol=ATOL,
    )


def test_model_files_changed_in_place_are_noticed(target: Target, model_dir: Path, tmp_path: Path):
    folder = _linked_copy(model_dir, tmp_path / "edited-model")
    col = _new_collection(target, folder, "edited")
    col.add(ids=["a"], documents=["made with the original files"])
    replacement = _another_model(model_dir, tmp_path / "replacement")
    (folder / "text_projection.onnx").unlink()
    (folder / "text_projection.onnx").write_bytes(
        (replacement / "text_projection.onnx").read_bytes()
    )
    reopened = target.client.get_collection(col.name)  # rebuilt from the stored config
    with pytest.raises(ValueError, match="files there are now different"):
        reopened.query(query_texts=["anything"], n_results=1)
    with pytest.raises(ValueError, match="files there are now different"):
        target.client.get_collection(
            col.name, embedding_function=ClipClapEmbeddingFunction(folder)
        ).add(ids=["b"], documents=["never written"])
    assert target.client.get_collection(col.name).count() == 1


def test_a_corrupt_file_fails_the_whole_add(
    target: Target, model_dir: Path, media_dir: Path, tmp_path: Path
):
    col = _new_collection(target, model_dir, "corrupt")
    col.add(ids=["doc"], documents=["already here"])
    broken_png = tmp_path / "broken.png"
    broken_png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0garbage" * 40)
    broken_wav = tmp_path / "broken.wav"
    broken_wav.write_bytes(b"RIFF\x24\0\0\0WAVEfmt " + b"\x01" * 30)
    good = [str(media_dir / "rgb_320x200.png"), str(media_dir / "tone_0p5s_48k.wav")]

    with pytest.raises(ClipClapInputError) as info:
        col.add(ids=["a", "b", "c"], uris=[good[0], str(broken_png), good[1]])
    assert info.value.index == 1 and str(broken_png) in str(info.value)
    with pytest.raises(ClipClapInputError) as info:
        add_media(col, ["fine text", *good, broken_wav])
    assert info.value.index == 3 and "broken.wav" in str(info.value)
    with pytest.raises(ClipClapInputError, match="no such file") as info:
        col.add(ids=["x"], uris=[str(tmp_path / "missing.wav")])
    assert "missing.wav" in str(info.value)
    assert col.count() == 1


def test_add_media_mixes_modalities_and_filters_by_modality(
    target: Target, model_dir: Path, media_dir: Path, embedder: ClipClapEmbedder
):
    col = _new_collection(target, model_dir, "mixed")
    png = media_dir / "rgb_320x200.png"
    wav = media_dir / "tone_0p5s_48k.wav"
    flac = media_dir / "chirp_3p3s_48k.flac"
    rgba_b64 = base64.b64encode((media_dir / "rgba_partial_240x160.png").read_bytes()).decode()
    samples = np.sin(np.linspace(0, 800 * np.pi, 16_000)).astype(np.float32)
    sources: list[Any] = [
        "a sunny beach",  # text
        png,  # Path
        str(wav),  # a path string
        flac.as_uri(),  # file:// URL
        f"data:image/png;base64,{rgba_b64}",  # data: URI
        PILImage.open(media_dir / "gray_L_300x180.png"),  # PIL image
        (samples, 16_000),  # a waveform
        Text(str(wav)),  # a file name, embedded as text
    ]
    ids = add_media(col, sources, metadatas=[{"tag": i} for i in range(len(sources))])
    assert len(set(ids)) == len(ids) == col.count() == len(sources)
    assert add_media(col, sources) == ids and col.count() == len(sources)  # content-hash ids

    got = col.get(ids=ids, include=["embeddings", "documents", "uris", "metadatas"])
    np.testing.assert_allclose(
        np.asarray(got["embeddings"]),
        embedder.embed([sources[0], png, wav, flac, *sources[4:]]),
        atol=ATOL,
    )
    modalities = [m["modality"] for m in got["metadatas"]]
    assert modalities == ["text", "image", "audio", "audio", "image", "image", "audio", "text"]
    assert [m["tag"] for m in got["metadatas"]] == list(range(len(sources)))
    assert got["metadatas"][1]["mime_type"] == "image/png"
    assert got["metadatas"][3]["mime_type"] == "audio/flac"
    assert got["documents"] == ["a sunny beach", None, None, None, None, None, None, str(wav)]
    assert got["uris"] == [None, str(png), str(wav), flac.as_uri(), None, None, None, None]

    audio = query_media(col, str(wav), n_results=10, modality="audio", include=["metadatas"])
    assert audio["ids"][0][0] == ids[2]
    assert {m["modality"] for m in audio["metadatas"][0]} == {"audio"}
    assert len(audio["ids"][0]) == 3
    images = query_media(
        col,
        "a sunny beach",
        n_results=10,
        modality="image",
        where={"tag": {"$gte": 4}},
        include=["metadatas"],
    )
    assert sorted(images["ids"][0]) == sorted([ids[4], ids[5]])
    several = query_media(col, [png, Audio(str(flac))], n_results=1)
    assert several["ids"] == [[ids[1]], [ids[3]]]
    native = col.query(query_texts=["a sunny beach"], where={"modality": "text"}, n_results=5)
    assert native["ids"][0][0] == ids[0] and set(native["ids"][0]) == {ids[0], ids[7]}


def test_upsert_media_replaces_the_vector(
    target: Target,
    model_dir: Path,
    media_dir: Path,
    embedder: ClipClapEmbedder,
    monkeypatch: pytest.MonkeyPatch,
):
    col = _new_collection(target, model_dir, "upsert")
    png, wav = media_dir / "rgb_320x200.png", media_dir / "tone_0p5s_48k.wav"
    assert add_media(col, [png], ids=["thing"]) == ["thing"]
    assert upsert_media(col, [wav], ids=["thing"]) == ["thing"]
    got = col.get(ids=["thing"], include=["embeddings", "metadatas", "uris"])
    np.testing.assert_allclose(got["embeddings"][0], embedder.embed([wav])[0], atol=ATOL)
    assert got["metadatas"][0]["modality"] == "audio" and got["uris"] == [str(wav)]
    upsert_media(col, [png, png, wav])  # the same content twice: one record
    assert col.count() == 3
    monkeypatch.setattr(col._client, "get_max_batch_size", lambda: 2)  # written in chunks
    sizes: list[int] = []
    real_upsert = col.upsert
    monkeypatch.setattr(
        col, "upsert", lambda **kw: sizes.append(len(kw["ids"])) or real_upsert(**kw)
    )
    assert len(upsert_media(col, [f"caption number {i}" for i in range(5)])) == 5
    assert sizes == [2, 2, 1] and col.count() == 8


# -- the embedding function on its own --------------------------------------------------------
def test_embedding_function_takes_any_mix_in_order(
    model_dir: Path, media_dir: Path, embedder: ClipClapEmbedder
):
    ef = ClipClapEmbeddingFunction(model_dir)
    png, wav = media_dir / "rgba_partial_240x160.png", media_dir / "stereo_1p2s_48k.wav"
    gray, rgba = ImageLoader()([str(media_dir / "gray_L_300x180.png"), str(png)])
    loaded_image, loaded_sound = ClipClapDataLoader()([str(png), str(wav)])
    pil = PILImage.open(media_dir / "rgb_320x200.png")
    inputs = ["a caption", str(png), gray, rgba, loaded_sound, loaded_image, pil]
    vectors = ef(inputs)
    assert isinstance(vectors, list) and len(vectors) == len(inputs)
    assert all(v.dtype == np.float32 and v.shape == (embedder.dim,) for v in vectors)
    expected = embedder.embed(
        [Text("a caption"), Text(str(png)), Image(gray), Image(rgba), Audio(wav), Image(png), pil]
    )
    np.testing.assert_allclose(np.stack(vectors), expected, atol=ATOL)  # strings are text
    queried = ef.embed_query(inputs[::-1])
    assert isinstance(queried, list) and all(isinstance(v, np.ndarray) for v in queried)
    np.testing.assert_allclose(np.stack(queried), expected[::-1], atol=ATOL)
    with pytest.raises(ClipClapInputError) as info:
        ef(["fine", None])  # never dropped silently
    assert info.value.index == 1


def test_construction_is_free_and_errors_come_on_use(tmp_path: Path):
    missing = tmp_path / "no-model-here"
    ef = ClipClapEmbeddingFunction(missing)  # nothing is read yet
    assert ef.get_config()["model"] == str(missing)
    rebuilt = ClipClapEmbeddingFunction.build_from_config(ef.get_config())
    assert not rebuilt.is_legacy() and rebuilt._embedder is None
    with pytest.raises(FileNotFoundError, match="no-model-here"):
        ef(["hello"])


def test_config_contract(model_dir: Path, monkeypatch: pytest.MonkeyPatch):
    ef = ClipClapEmbeddingFunction(model_dir)
    assert ClipClapEmbeddingFunction.name() == "clipclap" and not ef.is_legacy()
    assert known_embedding_functions["clipclap"] is ClipClapEmbeddingFunction
    assert ef.default_space() == "cosine" and "cosine" in ef.supported_spaces()
    digest = ClipClapEmbedder(model_dir).folder.digest  # the model files, wherever they are
    assert ef.get_config() == {
        "model": str(model_dir.resolve()),
        "revision": None,
        "model_digest": digest,
    }

    monkeypatch.chdir(model_dir.parent)  # a relative folder is stored absolute
    assert ClipClapEmbeddingFunction(model_dir.name).get_config() == ef.get_config()
    hub = ClipClapEmbeddingFunction("antflydb/clipclap", revision="v1").get_config()
    assert hub == {"model": "antflydb/clipclap", "revision": "v1"}

    custom = ClipClapEmbeddingFunction(
        model_dir,
        providers=[("CPUExecutionProvider", {}), "CPUExecutionProvider"],
        batch_size=4,
        long_audio="first",
        max_image_pixels=None,
        cache_dir=model_dir,
    )
    config = custom.get_config()
    assert set(config) == {
        "model",
        "revision",
        "model_digest",
        "providers",
        "batch_size",
        "long_audio",
        "max_image_pixels",
        "cache_dir",
    }
    stored = json.loads(json.dumps(config))
    assert stored == config
    assert ClipClapEmbeddingFunction.build_from_config(stored).get_config() == config
    built = config_to_embedding_function({"name": "clipclap", "config": stored})
    assert isinstance(built, ClipClapEmbeddingFunction) and built.get_config() == config

    for bad, words in [
        ({"revision": None}, "'model'"),
        ({"model": "m", "batch_size": 0}, "'batch_size'"),
        ({"model": "m", "long_audio": "loudest"}, "'long_audio'"),
        ({"model": "m", "threads": "2"}, "'threads'"),
        ({"model": "m", "providers": [3]}, "'providers'"),
        ({"model": "m", "colour": "blue"}, "unknown option 'colour'"),
        ({"model": "m", "revision": ""}, "'revision'"),
        ({"model": "m", "model_digest": "not-hex"}, "'model_digest'"),
    ]:
        with pytest.raises(ValueError, match=words):
            ClipClapEmbeddingFunction.validate_config(bad)
    with pytest.raises(ValueError, match="batch_size"):
        ClipClapEmbeddingFunction(model_dir, batch_size=-1)

    old = ef.get_config()
    ef.validate_config_update(old, dict(old))  # full, unchanged: fine
    ef.validate_config_update(old, {**old, "batch_size": 8})  # options may change
    unresolved = {k: v for k, v in old.items() if k != "model_digest"}
    for change in ({"model": "antflydb/clipclap"}, {"revision": "abc123"}):
        with pytest.raises(ValueError, match="cannot change the embedding model"):
            ef.validate_config_update(old, {**unresolved, **change})
    with pytest.raises(ValueError, match="cannot change the embedding model"):  # files changed
        ef.validate_config_update(old, {**old, "model_digest": "0" * 32})
    ef.validate_config_update(old, {**old, "model": "/moved/elsewhere"})  # same files, moved


# -- the data loader ----------------------------------------------------------------------------
def test_data_loader_reads_paths_file_and_data_uris(media_dir: Path, tmp_path: Path):
    png, flac = media_dir / "exif_orientation6_300x180.jpg", media_dir / "chirp_3p3s_48k.flac"
    wav_b64 = base64.b64encode((media_dir / "tone_0p5s_48k.wav").read_bytes()).decode()
    loaded = ClipClapDataLoader()(
        [str(png), None, flac.as_uri(), f"data:audio/wav;base64,{wav_b64}"]
    )
    image, nothing, chirp, tone = loaded
    assert image.dtype == np.uint8 and image.shape == (300, 180, 3)  # EXIF-upright, RGB
    assert nothing is None
    assert isinstance(chirp, AudioArray) and chirp.ndim == 1 and chirp.sample_rate == 48_000
    assert abs(chirp.duration - 3.3) < 0.01 and abs(tone.duration - 0.5) < 0.01
    again = pickle.loads(pickle.dumps(chirp))
    assert isinstance(again, AudioArray) and again.sample_rate == 48_000
    np.testing.assert_array_equal(again, chirp)

    text_file = tmp_path / "notes.txt"
    text_file.write_text("hello")
    for uri, words in [
        (str(tmp_path / "missing.png"), "no such file"),
        (str(text_file), "neither an image nor a sound"),
        ("data:text/plain,hello", "holds text"),
        (str(tmp_path), "a folder, not an image or sound file"),
        ("", "an empty URI"),
        ("  ", "an empty URI"),
    ]:
        with pytest.raises(ClipClapInputError, match=words) as info:
            ClipClapDataLoader()([str(png), uri])
        assert info.value.index == 1 and repr(uri) in str(info.value)
    with pytest.raises(ClipClapInputError, match="disabled"):
        ClipClapDataLoader(allow_remote=False)(["http://127.0.0.1:9/cat.png"])


@pytest.mark.server
def test_http_urls_are_fetched_once_and_stored_as_uris(model_dir: Path, media_dir: Path):
    handler = partial(_QuietHandler, directory=str(media_dir))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        image, sound = ClipClapDataLoader()(
            [f"{base}/rgb_320x200.png", f"{base}/tone_0p5s_48k.wav"]
        )
        assert image.shape == (200, 320, 3) and isinstance(sound, AudioArray)
        with pytest.raises(ClipClapInputError, match="404") as info:
            ClipClapDataLoader()([f"{base}/nothing.png"])
        assert "nothing.png" in str(info.value)

        client = chromadb.EphemeralClient(settings=SETTINGS)
        col = _new_collection(Target("ephemeral", client, {}), model_dir, "http")
        _QuietHandler.requests.clear()
        urls = [f"{base}/rgb_320x200.png", f"{base}/tone_0p5s_48k.wav"]
        ids = add_media(col, urls)
        assert sorted(_QuietHandler.requests) == ["/rgb_320x200.png", "/tone_0p5s_48k.wav"]
        got = col.get(ids=ids, include=["uris", "metadatas"])
        assert got["uris"] == urls and [m["modality"] for m in got["metadatas"]] == [
            "image",
            "audio",
        ]
        assert col.query(query_uris=urls, n_results=1)["ids"] == [[i] for i in ids]

        # Many URLs: fetched a group at a time (here 2), each group released once embedded.
        from clipclap_integrations import embedder as adapter  # the core fetches for add_media

        held: list[int] = []
        real = adapter.resolve_remote

        def spy(items, indices, options):  # type: ignore[no-untyped-def]
            held.append(len(items))
            return real(items, indices, options)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(adapter, "URLS_PER_FETCH", 2)
            patch.setattr(adapter, "resolve_remote", spy)
            many = [f"{base}/rgb_320x200.png?copy={i}" for i in range(5)]
            ids = add_media(col, ["a caption", *many], ids=[f"u{i}" for i in range(6)])
        assert held == [2, 2, 1] and col.get(ids=ids)["ids"] == ids
        vectors = col.get(ids=ids[1:], include=["embeddings"])["embeddings"]
        np.testing.assert_allclose(vectors, np.tile(vectors[0], (5, 1)), atol=1e-6)
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(SimpleHTTPRequestHandler):
    requests: list[str] = []  # noqa: RUF012 - shared on purpose: the paths served

    def log_message(self, format: str, *args: Any) -> None:
        self.requests.append(self.path)


# -- packaging ----------------------------------------------------------------------------------
def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **QUIET},
    )


def test_import_is_lazy_and_the_adapter_registers_itself():
    run = _python(
        """
        import sys, clipclap_integrations
        assert "chromadb" not in sys.modules, "chromadb was imported"
        from chromadb.utils.embedding_functions import known_embedding_functions
        assert "clipclap" not in known_embedding_functions
        import clipclap_integrations.chroma as adapter
        assert known_embedding_functions["clipclap"] is adapter.ClipClapEmbeddingFunction
        """
    )
    assert run.returncode == 0, run.stderr


def test_import_without_chromadb_names_the_extra():
    run = _python(
        """
        import sys
        sys.modules["chromadb"] = None  # as if it were not installed
        try:
            import clipclap_integrations.chroma
        except ImportError as exc:
            print(exc)
        else:
            raise SystemExit("imported without chromadb")
        """
    )
    assert run.returncode == 0, run.stderr
    assert 'pip install "clipclap-integrations[chroma]"' in run.stdout


def test_quickstart_example_runs(model_dir: Path, tmp_path: Path):
    run = subprocess.run(
        [sys.executable, str(QUICKSTART), "--model", str(model_dir), "--db", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **QUIET},
    )
    assert run.returncode == 0, run.stderr
    for kind in ("text -> image", "text -> audio", "image -> audio", "audio -> image"):
        assert kind in run.stdout
    assert "(plain Chroma query_uris): siren.flac" in run.stdout


def test_untrusted_input_options_reach_the_embedder_and_the_config(
    model_dir: Path, media_dir: Path
):
    ef = ClipClapEmbeddingFunction(model_dir, allow_local_files=False, allow_remote=False)
    config = ef.get_config()
    assert config["allow_local_files"] is False and config["allow_remote"] is False
    rebuilt = ClipClapEmbeddingFunction.build_from_config(json.loads(json.dumps(config)))
    options = rebuilt.embedder.input_options
    assert options.allow_local_files is False and options.allow_remote is False
    assert options.allow_private_urls is True and "allow_private_urls" not in config
    public_only = ClipClapEmbeddingFunction(model_dir, allow_private_urls=False)
    config = json.loads(json.dumps(public_only.get_config()))
    assert config["allow_private_urls"] is False
    rebuilt = ClipClapEmbeddingFunction.build_from_config(config)
    assert rebuilt.embedder.input_options.allow_private_urls is False
    with pytest.raises(ClipClapInputError, match="loopback address") as info:
        # Strings are documents to Chroma; a wrapper names a URL to fetch.
        rebuilt([np.zeros((8, 8, 3), np.uint8), Image("http://127.0.0.1:9/x.png")])
    assert info.value.index == 1
    with pytest.raises(ValueError, match="allow_private_urls"):
        ClipClapEmbeddingFunction.validate_config({**config, "allow_private_urls": "no"})
    png = str(media_dir / "rgb_320x200.png")
    np.testing.assert_allclose(
        np.stack(rebuilt([png])), rebuilt.embedder.embed_text([png]), atol=ATOL
    )  # the path is only a string to this function


@pytest.mark.server
def test_async_client_modify_refuses_another_model_before_storing_it(
    chroma_server: tuple[str, int], model_dir: Path, tmp_path: Path
):
    import asyncio

    import chromadb

    host, port = chroma_server
    other = _another_model(model_dir, tmp_path / "another-model")
    name = f"async-{next(_names)}"

    async def scenario() -> tuple[str, int]:
        client = await chromadb.AsyncHttpClient(host=host, port=port)
        col = await client.create_collection(
            name, embedding_function=ClipClapEmbeddingFunction(model_dir)
        )
        await col.add(ids=["a"], documents=["stored with the first model"])
        with pytest.raises(ValueError, match="cannot change the embedding model"):
            await col.modify(configuration={"embedding_function": ClipClapEmbeddingFunction(other)})
        again = await client.get_collection(name)
        return again.configuration_json["embedding_function"]["config"][
            "model"
        ], await again.count()

    assert asyncio.run(scenario()) == (str(model_dir.resolve()), 1)


def test_data_loader_without_local_files_never_reads_them(media_dir: Path):
    png = media_dir / "rgb_320x200.png"
    closed = ClipClapDataLoader(allow_local_files=False, allow_remote=False)
    for uri in (str(png), png.as_uri(), "/etc/hostname"):
        with pytest.raises(ClipClapInputError, match="allow_local_files=False") as info:
            closed(["data:image/png;base64," + base64.b64encode(png.read_bytes()).decode(), uri])
        assert info.value.index == 1
    (loaded,) = closed(["data:image/png;base64," + base64.b64encode(png.read_bytes()).decode()])
    assert loaded.shape == (200, 320, 3)


def test_data_loader_public_urls_only():
    loader = ClipClapDataLoader(allow_private_urls=False, remote_timeout=2.0)
    assert "allow_private_urls=False" in repr(loader)
    for uri, kind in [
        ("http://127.0.0.1:9/x.png", "loopback"),
        ("http://169.254.169.254/latest/meta-data/x.png", "link-local"),
        ("https://192.168.0.1/x.wav", "private"),
    ]:
        with pytest.raises(ClipClapInputError, match=f"a {kind} address") as info:
            loader([None, uri])
        assert info.value.index == 1 and uri in info.value.item_description


def test_stored_uri_comes_from_what_was_read(target: Target, model_dir: Path, media_dir: Path):
    png = media_dir / "rgb_320x200.png"
    uri = " data:image/png;base64," + base64.b64encode(png.read_bytes()).decode()
    col = _new_collection(target, model_dir, "uris")
    other = media_dir / "gray_L_300x180.png"
    ids = add_media(col, [uri, f"  {other}"])  # leading spaces: still the file
    got = col.get(ids=ids, include=["uris"])
    assert dict(zip(got["ids"], got["uris"], strict=True)) == {
        ids[0]: None,
        ids[1]: str(other.resolve()),
    }


def test_media_writes_are_checked_whole_before_the_first_batch(
    target: Target, model_dir: Path, media_dir: Path, monkeypatch: pytest.MonkeyPatch
):
    col = _new_collection(target, model_dir, "batched")
    monkeypatch.setattr(col._client, "get_max_batch_size", lambda: 2)  # a small server limit
    texts = [f"text {i}" for i in range(5)]
    with pytest.raises(ValueError, match="metadata"):
        add_media(col, texts, metadatas=[{"k": 1}] * 4 + [{"k": {"nested": 1}}])
    with pytest.raises(chromadb.errors.DuplicateIDError):
        add_media(col, texts[:3], ids=["x", "y", "x"])  # the repeat lands in the 2nd batch
    assert col.count() == 0
    ids = add_media(col, [*texts, str(media_dir / "tone_0p5s_48k.wav")])  # 3 batches of 2
    assert col.count() == 6 and len(set(ids)) == 6
    more = add_media(col, ["x", "y"], metadatas=[None, {}])  # no metadata of one's own: fine
    assert col.get(ids=more)["metadatas"] == [{"modality": "text", "mime_type": "text/plain"}] * 2


@pytest.mark.server
def test_async_media_helpers(
    chroma_server: tuple[str, int], model_dir: Path, media_dir: Path, embedder: ClipClapEmbedder
):
    import asyncio

    from clipclap_integrations.chroma import aadd_media, aquery_media, aupsert_media

    host, port = chroma_server
    siren = str(media_dir / "chirp_3p3s_48k.flac")

    async def scenario() -> None:
        client = await chromadb.AsyncHttpClient(host=host, port=port)
        col = await client.create_collection(
            f"async-media-{next(_names)}", embedding_function=ClipClapEmbeddingFunction(model_dir)
        )
        with pytest.raises(TypeError, match=r"AsyncCollection: use `await aadd_media"):
            add_media(col, ["never written"])
        with pytest.raises(TypeError, match=r"await aquery_media"):
            query_media(col, "anything")
        ids = await aadd_media(col, ["a bird singing", siren])
        assert await col.count() == 2
        again = await aupsert_media(col, ["a bird singing"], metadatas=[{"tag": "again"}])
        assert again == ids[:1] and await col.count() == 2
        got = await aquery_media(col, siren, n_results=2, modality="audio", include=["embeddings"])
        assert got["ids"] == [[ids[1]]]
        np.testing.assert_allclose(got["embeddings"][0][0], embedder.embed([siren])[0], atol=ATOL)

    asyncio.run(scenario())
    sync_col = chromadb.EphemeralClient(settings=SETTINGS).create_collection(f"sync-{next(_names)}")
    with pytest.raises(TypeError, match="not an AsyncCollection: use add_media"):
        asyncio.run(
            aadd_media(sync_col, ["x"], embedding_function=ClipClapEmbeddingFunction(model_dir))
        )


def test_audio_array_scales_integer_pcm(
    model_dir: Path, media_dir: Path, embedder: ClipClapEmbedder
):
    import soundfile

    path = media_dir / "voice_like_2s_16k.wav"
    pcm, rate = soundfile.read(str(path), dtype="int16")
    ef = ClipClapEmbeddingFunction(model_dir)
    (vector,) = ef([AudioArray(pcm, rate)])
    np.testing.assert_allclose(vector, embedder.embed([path])[0], atol=1e-5)
    np.testing.assert_allclose(AudioArray(pcm, rate), pcm / 32768.0, atol=1e-7)
    with pytest.raises(ClipClapInputError, match="int64 audio samples are ambiguous"):
        AudioArray([1000, -1000, 500], 16_000)


def test_none_input_says_what_is_missing(model_dir: Path):
    ef = ClipClapEmbeddingFunction(model_dir)
    with pytest.raises(ClipClapInputError, match=r"input 1 \(None\): nothing to embed") as info:
        ef(["a caption", None])
    assert info.value.index == 1


def test_speed_options_are_stored_and_checked(model_dir: Path, tmp_path: Path):
    ef = ClipClapEmbeddingFunction(model_dir, quantize="int8", optimized_dir=tmp_path / "opt")
    config = json.loads(json.dumps(ef.get_config()))
    assert config["quantize"] == "int8" and config["optimized_dir"] == str(tmp_path / "opt")
    rebuilt = ClipClapEmbeddingFunction.build_from_config(config)
    assert rebuilt.embedder.quantize == "int8"
    with pytest.raises(ValueError, match=r"'quantize' must be .int8."):
        ClipClapEmbeddingFunction.validate_config({**config, "quantize": "int4"})


def test_modify_accepts_a_revision_for_a_config_that_named_none(model_dir: Path):
    ef = ClipClapEmbeddingFunction(model_dir)
    repo, commit = "antflydb/clipclap", "0123456789abcdef0123456789abcdef01234567"
    ef.validate_config_update(
        {"model": repo, "revision": None}, {"model": repo, "revision": commit}
    )
    with pytest.raises(ValueError, match="cannot change the embedding model"):
        ef.validate_config_update(
            {"model": repo, "revision": "f" * 40}, {"model": repo, "revision": commit}
        )
    with pytest.raises(ValueError, match="cannot change the embedding model"):
        ef.validate_config_update({"model": repo, "revision": None}, {"model": "other/model"})


def test_the_media_helpers_classify_each_input_once(
    model_dir: Path, media_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from clipclap_integrations.inputs import classification as inputs

    calls: list[Any] = []
    real = inputs.classify

    def counted(item: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(item)
        return real(item, *args, **kwargs)

    monkeypatch.setattr(inputs, "classify", counted)
    client = chromadb.PersistentClient(path=str(tmp_path), settings=SETTINGS)
    col = _new_collection(Target("ephemeral", client, {}), model_dir, "once")
    png, wav = media_dir / "rgb_320x200.png", media_dir / "tone_0p5s_48k.wav"
    sources = ["a caption", png, str(wav), Image(png.read_bytes())]
    add_media(col, sources)
    assert len(calls) == len(sources)  # not again on a re-wrapped copy
    calls.clear()
    query_media(col, [png, "a caption"], n_results=1)
    assert len(calls) == 2


def test_options_that_change_vectors_are_part_of_a_collections_identity(
    model_dir: Path, media_dir: Path, tmp_path: Path
):
    """A collection built with fast_jpeg=True (or long_audio, quantize, optimize) refuses
    vectors made without it, on every route: Chroma's own calls, the media helpers, modify."""
    client = chromadb.PersistentClient(path=str(tmp_path), settings=SETTINGS)
    made_with = ClipClapEmbeddingFunction(model_dir, fast_jpeg=True, long_audio="first")
    client.create_collection("fast", embedding_function=made_with)
    col = client.get_collection("fast")  # the stored configuration: the same options
    col.add(ids=["a"], documents=["a caption"])
    add_media(col, [media_dir / "rgb_320x200.png"])
    plain = ClipClapEmbeddingFunction(model_dir)
    other = client.get_collection("fast", embedding_function=plain)
    with pytest.raises(ValueError, match=r"long_audio='first', fast_jpeg=True, .*fast_jpeg=False"):
        other.query(query_texts=["a caption"], n_results=1)
    with pytest.raises(ValueError, match="change the vectors"):
        add_media(col, ["another caption"], embedding_function=plain)
    with pytest.raises(ValueError, match="change the vectors"):
        plain.validate_config_update(made_with.get_config(), plain.get_config())
    # options that leave the vectors alone may differ; the same vector options pass
    fine = ClipClapEmbeddingFunction(
        model_dir, fast_jpeg=True, long_audio="first", batch_size=4, max_image_pixels=None
    )
    client.get_collection("fast", embedding_function=fine).query(query_texts=["x"], n_results=1)
    assert col.count() == 2


def test_the_data_loader_takes_the_cores_input_options_and_no_others():
    loader = ClipClapDataLoader(allow_remote=False, max_image_pixels=None, max_remote_bytes=10)
    assert (loader.options.allow_remote, loader.options.max_remote_bytes) == (False, 10)
    assert loader.max_image_pixels is None and loader.max_audio_seconds == 3600.0
    with pytest.raises(TypeError, match="batch_size"):
        ClipClapDataLoader(batch_size=3)
    with pytest.raises(ValueError, match="max_remote_bytes must be a positive integer"):
        ClipClapDataLoader(max_remote_bytes=0)


class _ServerDied(Exception):
    """What the HTTP client raises when the server dies mid-call (httpx.RemoteProtocolError)."""


@pytest.mark.parametrize("helper", [add_media, upsert_media])
def test_a_write_cut_short_says_how_far_it_got_and_a_rerun_heals_it(
    target: Target, model_dir: Path, monkeypatch: pytest.MonkeyPatch, helper: Any
):
    from clipclap_integrations import IncompleteWriteError

    col = _new_collection(target, model_dir, "cut-short")
    monkeypatch.setattr(col._client, "get_max_batch_size", lambda: 2)  # 3 batches of 2
    method = "add" if helper is add_media else "upsert"
    real = getattr(type(col), method)
    calls = []

    def dies_on_the_third(self: Any, **kwargs: Any) -> Any:
        calls.append(len(kwargs["ids"]))
        if len(calls) == 3:
            raise _ServerDied("Server disconnected without sending a response.")
        return real(self, **kwargs)

    monkeypatch.setattr(type(col), method, dies_on_the_third)
    texts = [f"caption {i}" for i in range(6)]
    with pytest.raises(IncompleteWriteError) as caught:
        helper(col, texts)
    error = caught.value
    assert (error.written, error.total) == (4, 6) and col.count() == 4
    assert f"{helper.__name__} wrote 4 of 6 records" in str(error)
    assert "_ServerDied: Server disconnected" in str(error)
    assert "Run the same call again" in str(error)
    assert isinstance(error.__cause__, _ServerDied)
    monkeypatch.setattr(type(col), method, real)
    ids = helper(col, texts)
    assert col.count() == 6 and sorted(col.get()["ids"]) == sorted(ids)


def test_a_first_batch_that_fails_raises_the_database_error(
    target: Target, model_dir: Path, monkeypatch: pytest.MonkeyPatch
):
    """Nothing written: the collection is unchanged and the database's own error stands."""
    col = _new_collection(target, model_dir, "first-fails")

    def dies(self: Any, **kwargs: Any) -> Any:
        raise _ServerDied("refused")

    monkeypatch.setattr(type(col), "add", dies)
    with pytest.raises(_ServerDied):
        add_media(col, ["a caption"])
