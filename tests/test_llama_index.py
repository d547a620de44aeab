"""LlamaIndex adapter, used the way LlamaIndex users do: the ``MultiModalEmbedding`` contract,
LlamaIndex's own ``MultiModalVectorStoreIndex`` (in memory and on Chroma), and ``ClipClapIndex``
for text, images and audio in one store, re-opened from a second Python process.

The tiny synthetic model's vectors mean nothing, but they are deterministic and distinct, so
"an item's nearest neighbour is itself", "the ranking equals a brute-force ranking of the core's
vectors" and "the stored vector equals the core's vector" are exact checks of the plumbing.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import pickle
import re
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("llama_index.core")

from llama_index.core import StorageContext, load_index_from_storage
from llama_index.core.callbacks import CallbackManager, CBEventType, LlamaDebugHandler
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.indices import MultiModalVectorStoreIndex
from llama_index.core.ingestion import IngestionPipeline
from llama_index.core.schema import (
    BaseNode,
    Document,
    ImageDocument,
    ImageNode,
    MediaResource,
    MetadataMode,
    Node,
    NodeRelationship,
    NodeWithScore,
    TextNode,
)
from llama_index.core.storage.docstore.utils import doc_to_json, json_to_doc
from llama_index.core.vector_stores.types import MetadataFilter, MetadataFilters
from PIL import Image as PILImage

from clipclap_integrations import Audio, ClipClapEmbedder, ClipClapInputError, Modality
from clipclap_integrations.llama_index import (
    MODALITY_KEY,
    AudioNode,
    ClipClapEmbedding,
    ClipClapIndex,
    ClipClapRetriever,
    load_media_nodes,
    media_file_extractor,
    media_node_from_document,
    node_modality,
    tag_node_in_place,
)

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ["rgb_320x200.png", "tall_150x420.jpg", "cmyk_280x210.jpg"]
SOUNDS = ["chirp_3p3s_48k.flac", "chord_2p5s_44k1.flac", "voice_like_2s_16k.wav"]
TEXTS = ["a dog barking in a park", "a red boat on a calm lake", "rain on a tin roof"]
NEW_IMAGE = "gray_L_300x180.png"  # given as Node(image_resource=...)
NEW_SOUND = "stereo_1p2s_48k.wav"  # given as Node(audio_resource=...)
INLINE_SOUND = "tone_0p5s_48k.wav"  # given as AudioNode(audio=<bytes>)


# -- fixtures ------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def model_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The committed tiny model; built on the fly (needs torch) while it is not committed."""
    if (tiny_model_dir / "text_model.onnx").is_file():
        return tiny_model_dir
    pytest.importorskip("torch")
    out = tmp_path_factory.mktemp("model") / "clipclap-tiny"
    build = ["build", "--size", "tiny", "--seed", "0", "--out", str(out)]
    subprocess.run(
        [sys.executable, "-m", "clipclap_integrations.testing", *build],
        check=True,
        capture_output=True,
    )
    return out


@pytest.fixture(scope="session")
def core(model_dir: Path) -> ClipClapEmbedder:
    return ClipClapEmbedder(model_dir)


@pytest.fixture(scope="session")
def embed_model(model_dir: Path) -> ClipClapEmbedding:
    return ClipClapEmbedding(model_dir)


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def http_media(media_dir: Path) -> Iterator[str]:
    """Base URL of a loopback HTTP server serving the test media."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=media_dir))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _chroma_store(path: Path, name: str) -> Any:
    chromadb = pytest.importorskip("chromadb")
    from llama_index.vector_stores.chroma import ChromaVectorStore

    client = chromadb.PersistentClient(path=str(path))
    collection = client.get_or_create_collection(name, configuration={"hnsw": {"space": "cosine"}})
    return ChromaVectorStore(chroma_collection=collection)


def _vec(embedding: Any) -> np.ndarray:
    return np.asarray(embedding, dtype=np.float32)


def _ranking(query: np.ndarray, candidates: dict[str, np.ndarray], k: int) -> list[str]:
    """Ids of the ``k`` candidates nearest ``query`` by cosine, brute force."""
    ids = list(candidates)
    scores = np.stack([candidates[i] for i in ids]) @ query
    return [ids[i] for i in np.argsort(-scores, kind="stable")[:k]]


def _ids(hits: list[NodeWithScore]) -> list[str]:
    return [h.node.node_id for h in hits]


# -- ClipClapEmbedding: the MultiModalEmbedding contract -----------------------------------------
def test_fields_are_described_and_configure_the_core(model_dir: Path, media_dir: Path):
    fields = ClipClapEmbedding.model_fields
    own = ["model_name", "revision", "cache_dir", "local_files_only", "providers", "threads"]
    options = ["allow_remote", "allow_private_urls", "allow_local_files", "embed_batch_size"]
    options += ["strict_paths", "max_remote_bytes", "remote_timeout", "max_image_pixels"]
    options += ["max_audio_seconds", "fast_jpeg", "optimize", "quantize", "optimized_dir"]
    for name in [*own, "long_audio", *options]:
        assert fields[name].description, name
    emb = ClipClapEmbedding(
        model=model_dir, threads=1, long_audio="first", embed_batch_size=4, allow_remote=False
    )
    assert ClipClapEmbedding.class_name() == "ClipClapEmbedding"
    assert emb.model_name == str(model_dir) and emb.dim == 512
    assert emb.embedder.batch_size == 4 and emb.embedder.long_audio == "first"
    long_clip = str(media_dir / "long_25s_16k.flac")
    first = ClipClapEmbedder(model_dir, long_audio="first").embed_audio([long_clip])[0]
    mean = ClipClapEmbedder(model_dir).embed_audio([long_clip])[0]
    assert np.array_equal(_vec(emb.get_audio_embedding(long_clip)), first)
    assert not np.allclose(first, mean)
    with pytest.raises(ClipClapInputError, match="disabled"):
        emb.get_image_embedding("http://127.0.0.1:9/x.png")
    closed = ClipClapEmbedding(model=model_dir, allow_local_files=False)
    assert closed.embedder.input_options.allow_local_files is False
    with pytest.raises(ClipClapInputError, match="allow_local_files=False"):
        closed.get_image_embedding(str(media_dir / "rgb_320x200.png"))
    public_only = ClipClapEmbedding(model=model_dir, allow_private_urls=False)
    with pytest.raises(ClipClapInputError, match="loopback address"):
        public_only.get_image_embedding("http://127.0.0.1:9/x.png")
    # Serializable like any LlamaIndex component; the core is rebuilt, not serialized.
    again = ClipClapEmbedding.from_dict(emb.to_dict())
    assert again.long_audio == "first" and again.embed_batch_size == 4
    assert again.get_text_embedding("x") == emb.get_text_embedding("x")
    with pytest.raises(ValueError):
        ClipClapEmbedding(model_dir, embed_batch_size=0)
    with pytest.raises(ValueError, match="allow_private_url"):  # a typo is not ignored
        ClipClapEmbedding(model_dir, allow_private_url=False)
    limited = ClipClapEmbedding(model_dir, max_image_pixels=10, strict_paths=True)
    assert limited.embedder.input_options.strict_paths is True
    with pytest.raises(ClipClapInputError, match="over the limit of 10"):
        limited.get_image_embedding(str(media_dir / "rgb_320x200.png"))
    assert ClipClapEmbedding.from_dict(limited.to_dict()).embedder.max_image_pixels == 10


def test_model_is_another_name_for_model_name(model_dir: Path):
    """Issue 15 item 14: ``model`` as in the core, as a keyword and as an attribute."""
    embedding = ClipClapEmbedding(model=model_dir)
    assert embedding.model == embedding.model_name == str(model_dir)
    embedding.model = Path(model_dir)
    assert embedding.model_name == str(model_dir)
    assert ClipClapEmbedding(model_name=str(model_dir)).model == str(model_dir)
    with pytest.raises(ValueError, match="name two models"):
        ClipClapEmbedding(model=model_dir, model_name="elsewhere")


def test_vectors_equal_the_core(embed_model: ClipClapEmbedding, core, media_dir: Path):
    images = [str(media_dir / n) for n in IMAGES]
    sounds = [str(media_dir / n) for n in SOUNDS]
    text_vectors = embed_model.get_text_embedding_batch(TEXTS)
    assert all(type(x) is float for x in text_vectors[0]) and len(text_vectors[0]) == 512
    np.testing.assert_array_equal(_vec(text_vectors), core.embed_text(TEXTS))
    np.testing.assert_array_equal(
        _vec(embed_model.get_image_embedding_batch(images)), core.embed_images(images)
    )
    np.testing.assert_array_equal(
        _vec(embed_model.get_audio_embedding_batch(sounds)), core.embed_audio(sounds)
    )
    np.testing.assert_array_equal(
        _vec(embed_model.get_query_embedding(TEXTS[0])), core.embed_text(TEXTS[:1])[0]
    )


def test_every_method_sync_and_async_agrees_with_the_batch(model_dir: Path, media_dir: Path):
    emb = ClipClapEmbedding(model_dir, embed_batch_size=2)  # 3 items -> batches of 2 and 1
    images = [str(media_dir / n) for n in IMAGES]
    sounds = [str(media_dir / n) for n in SOUNDS]

    async def run_async() -> dict[str, Any]:
        return {
            "text": await emb.aget_text_embedding_batch(TEXTS, show_progress=True),
            "text1": [await emb.aget_text_embedding(t) for t in TEXTS],
            "query1": [await emb.aget_query_embedding(t) for t in TEXTS],
            "text_": await emb._aget_text_embeddings(TEXTS),
            "image": await emb.aget_image_embedding_batch(images, show_progress=True),
            "image1": [await emb.aget_image_embedding(p) for p in images],
            "image_": await emb._aget_image_embeddings(images),
            "audio": await emb.aget_audio_embedding_batch(sounds, show_progress=True),
            "audio1": [await emb.aget_audio_embedding(p) for p in sounds],
            "audio_": await emb._aget_audio_embeddings(sounds),
        }

    text = emb.get_text_embedding_batch(TEXTS, show_progress=True)
    image = emb.get_image_embedding_batch(images, show_progress=True)
    audio = emb.get_audio_embedding_batch(sounds, show_progress=True)
    sync_variants = {
        "text": [emb.get_text_embedding(t) for t in TEXTS],
        "query": [emb.get_query_embedding(t) for t in TEXTS],
        "text_": emb._get_text_embeddings(TEXTS),
        "text1_": [emb._get_text_embedding(t) for t in TEXTS],
        "query_": [emb._get_query_embedding(t) for t in TEXTS],
        "image": [emb.get_image_embedding(p) for p in images],
        "image_": emb._get_image_embeddings(images),
        "image1_": [emb._get_image_embedding(p) for p in images],
        "audio": [emb.get_audio_embedding(p) for p in sounds],
        "audio_": emb._get_audio_embeddings(sounds),
    }
    expected = {"text": text, "query": text, "image": image, "audio": audio}
    for name, got in [*sync_variants.items(), *asyncio.run(run_async()).items()]:
        want = expected[name.rstrip("_1")]
        np.testing.assert_allclose(_vec(got), _vec(want), atol=1e-5, err_msg=name)
    assert len(image) == len(audio) == 3
    assert np.allclose(np.linalg.norm(_vec(audio), axis=1), 1.0, atol=1e-5)


def test_async_runs_whole_batches_in_worker_threads(model_dir: Path, media_dir: Path, monkeypatch):
    emb = ClipClapEmbedding(model_dir, embed_batch_size=2)
    calls: list[tuple[str, int, int]] = []
    for method in ("embed_text", "embed_images", "embed_audio"):
        real = getattr(emb.embedder, method)

        def spy(items: Any, _real: Any = real, _name: str = method) -> Any:
            calls.append((_name, len(items), threading.get_ident()))
            return _real(items)

        monkeypatch.setattr(emb.embedder, method, spy)

    async def run() -> None:
        await emb.aget_text_embedding_batch(TEXTS)
        await emb.aget_image_embedding_batch([str(media_dir / n) for n in IMAGES])
        await emb.aget_audio_embedding_batch([str(media_dir / n) for n in SOUNDS])
        await emb.aget_query_embedding("q")

    asyncio.run(run())
    main = threading.get_ident()
    assert all(thread != main for _, _, thread in calls)
    sizes = {m: sorted(n for name, n, _ in calls if name == m) for m, _, _ in calls}
    assert sizes == {"embed_text": [1, 1, 2], "embed_images": [1, 2], "embed_audio": [1, 2]}


@pytest.mark.server
def test_every_image_type_and_core_input(embed_model, media_dir: Path, http_media: str):
    path = media_dir / "rgb_320x200.png"
    data = path.read_bytes()
    want = _vec(embed_model.get_image_embedding(str(path)))
    pil = PILImage.open(path)
    inputs = {
        "Path": path,
        "BytesIO": io.BytesIO(data),
        "bytes": data,
        "http URL": f"{http_media}/{path.name}",
        "file URL": path.as_uri(),
        "data URI": "data:image/png;base64," + base64.b64encode(data).decode(),
        "PIL": pil,
        "array": np.asarray(pil.convert("RGB")),
    }
    got = embed_model.get_image_embedding_batch(list(inputs.values()))
    for name, vector in zip(inputs, got, strict=True):
        np.testing.assert_allclose(_vec(vector), want, atol=1e-6, err_msg=name)
    sound = media_dir / SOUNDS[0]
    for clip in (sound.read_bytes(), io.BytesIO(sound.read_bytes()), f"{http_media}/{sound.name}"):
        np.testing.assert_allclose(
            _vec(embed_model.get_audio_embedding(clip)),
            _vec(embed_model.get_audio_embedding(str(sound))),
            atol=1e-6,
        )
    with pytest.raises(ClipClapInputError, match=r"no_such\.png"):
        embed_model.get_image_embedding(str(media_dir / "no_such.png"))


def test_callback_events_for_audio_batches(model_dir: Path, media_dir: Path):
    debug = LlamaDebugHandler()
    emb = ClipClapEmbedding(
        model_dir, embed_batch_size=2, callback_manager=CallbackManager([debug])
    )
    sounds = [str(media_dir / n) for n in SOUNDS]
    emb.get_audio_embedding_batch(sounds)
    asyncio.run(emb.aget_audio_embedding(sounds[0]))
    pairs = debug.get_event_pairs(CBEventType.EMBEDDING)
    chunks = [end.payload["chunks"] for _, end in pairs]
    assert chunks == [sounds[:2], sounds[2:], sounds[:1]]


def test_one_batch_method_for_every_modality(model_dir: Path, media_dir: Path):
    """get_embedding_batch(modality, items): the image and audio methods and embed_nodes use it."""
    emb = ClipClapEmbedding(model_dir, embed_batch_size=2)
    images = [str(media_dir / n) for n in IMAGES]
    sounds = [str(media_dir / n) for n in SOUNDS]
    np.testing.assert_array_equal(
        _vec(emb.get_embedding_batch("audio", sounds)), _vec(emb.get_audio_embedding_batch(sounds))
    )
    np.testing.assert_array_equal(
        _vec(asyncio.run(emb.aget_embedding_batch(Modality.IMAGE, images))),
        _vec(emb.get_image_embedding_batch(images)),
    )
    np.testing.assert_allclose(
        _vec(emb.get_embedding_batch("TEXT", TEXTS)),
        _vec(emb.get_text_embedding_batch(TEXTS)),
        atol=1e-6,
    )
    bad = [*TEXTS, "bad \ud800"]  # the 4th text, in the 2nd batch of 2
    with pytest.raises(ClipClapInputError, match="not valid Unicode") as info:
        emb.get_embedding_batch("text", bad)
    assert info.value.index == 3
    with pytest.raises(ClipClapInputError, match="not valid Unicode") as info:
        asyncio.run(emb.aget_embedding_batch("text", bad))
    assert info.value.index == 3
    with pytest.raises(ValueError, match="unknown modality"):
        emb.get_embedding_batch("smell", sounds)
    with pytest.raises(ValueError, match="video is not a modality of nodes"):
        emb.get_embedding_batch("video", sounds)
    with pytest.raises(TypeError, match="wrap a single item"):
        emb.get_embedding_batch("audio", sounds[0])


# -- LlamaIndex's MultiModalVectorStoreIndex with ClipClapEmbedding as both models ---------------
def _mm_nodes(media_dir: Path) -> list[BaseNode]:
    images = [ImageNode(image_path=str(media_dir / n), metadata={"file_name": n}) for n in IMAGES]
    return [*images, *(TextNode(text=t) for t in TEXTS)]


def _check_multimodal_index(
    index: MultiModalVectorStoreIndex, core: ClipClapEmbedder, media_dir: Path
) -> None:
    image_vectors = dict(
        zip(IMAGES, core.embed_images([str(media_dir / n) for n in IMAGES]), strict=True)
    )
    retriever = index.as_retriever(similarity_top_k=2, image_similarity_top_k=3)
    query = "a photo of a dog"
    by_text = retriever.text_to_image_retrieve(query)
    assert all(isinstance(h.node, ImageNode) for h in by_text)
    names = [h.node.metadata["file_name"] for h in by_text]
    assert names == _ranking(core.embed_text([query])[0], image_vectors, 3)
    for name in IMAGES:
        by_image = retriever.image_to_image_retrieve(str(media_dir / name))
        assert [h.node.metadata["file_name"] for h in by_image] == _ranking(
            image_vectors[name], image_vectors, 3
        )
        assert by_image[0].score == pytest.approx(1.0, abs=1e-4)
    both = retriever.retrieve(query)
    kinds = [type(h.node).__name__ for h in both]
    assert kinds[-3:] == ["ImageNode"] * 3 and set(kinds[:-3]) == {"TextNode"}  # text, images
    assert both[0].node.get_content() in TEXTS

    async def run() -> tuple[list[NodeWithScore], list[NodeWithScore]]:
        return (
            await retriever.atext_to_image_retrieve(query),
            await retriever.aimage_to_image_retrieve(str(media_dir / IMAGES[1])),
        )

    a_text, a_image = asyncio.run(run())
    assert [h.node.metadata["file_name"] for h in a_text] == names
    assert a_image[0].node.metadata["file_name"] == IMAGES[1]


@pytest.mark.parametrize("use_async", [False, True])
def test_multimodal_index_in_memory_persist_and_reload(
    embed_model, core, media_dir: Path, tmp_path: Path, use_async: bool
):
    index = MultiModalVectorStoreIndex(
        _mm_nodes(media_dir),
        embed_model=embed_model,
        image_embed_model=embed_model,
        use_async=use_async,
    )
    _check_multimodal_index(index, core, media_dir)
    index.storage_context.persist(persist_dir=str(tmp_path))
    reloaded = load_index_from_storage(
        StorageContext.from_defaults(persist_dir=str(tmp_path)),
        embed_model=embed_model,
        image_embed_model=embed_model,
    )
    assert isinstance(reloaded, MultiModalVectorStoreIndex)
    _check_multimodal_index(reloaded, core, media_dir)


def test_multimodal_index_on_chroma_and_reopened(embed_model, core, media_dir, tmp_path: Path):
    db = tmp_path / "db"
    storage = StorageContext.from_defaults(
        vector_store=_chroma_store(db, "text-col"), image_store=_chroma_store(db, "image-col")
    )
    index = MultiModalVectorStoreIndex(
        _mm_nodes(media_dir),
        storage_context=storage,
        embed_model=embed_model,
        image_embed_model=embed_model,
    )
    _check_multimodal_index(index, core, media_dir)
    reopened = MultiModalVectorStoreIndex.from_vector_store(
        vector_store=_chroma_store(db, "text-col"),
        image_vector_store=_chroma_store(db, "image-col"),
        embed_model=embed_model,
        image_embed_model=embed_model,
    )
    _check_multimodal_index(reopened, core, media_dir)


def test_multimodal_index_from_image_documents(embed_model, core, media_dir: Path):
    """As the docs teach: ImageDocuments (what an image reader yields) and text Documents."""
    documents = [
        *(ImageDocument(image_path=str(media_dir / n), metadata={"file_name": n}) for n in IMAGES),
        *(Document(text=t) for t in TEXTS),
    ]
    index = MultiModalVectorStoreIndex.from_documents(
        documents, embed_model=embed_model, image_embed_model=embed_model
    )
    _check_multimodal_index(index, core, media_dir)


# -- AudioNode -----------------------------------------------------------------------------------
def test_multimodal_index_warns_once_that_it_drops_sounds(
    embed_model, media_dir: Path, tmp_path: Path, caplog
):
    """Issue 15 item 5: MultiModalVectorStoreIndex indexes no audio; with our embedding it
    says so, once per index, and names ClipClapIndex."""
    from llama_index.core import SimpleDirectoryReader
    from llama_index.core.embeddings import MockMultiModalEmbedding

    for name in [IMAGES[0], *SOUNDS]:
        (tmp_path / name).write_bytes((media_dir / name).read_bytes())
    documents = SimpleDirectoryReader(
        str(tmp_path), file_extractor=media_file_extractor()
    ).load_data()
    with caplog.at_level("WARNING"):
        MultiModalVectorStoreIndex.from_documents(
            documents, embed_model=embed_model, image_embed_model=embed_model
        )
    warnings = [r for r in caplog.records if "ClipClapIndex" in r.getMessage()]
    assert len(warnings) == 1 and "3 node(s) holding a sound" in warnings[0].getMessage()

    sounds = [AudioNode(audio_path=str(media_dir / n)) for n in SOUNDS]
    caplog.clear()
    with caplog.at_level("WARNING"):
        index = MultiModalVectorStoreIndex(
            [TextNode(text="t"), *sounds[:2]],
            embed_model=embed_model,
            image_embed_model=embed_model,
        )
        index.insert_nodes(sounds[2:])  # the same index: warned already
        other = MultiModalVectorStoreIndex(
            [TextNode(text="t")], embed_model=embed_model, image_embed_model=embed_model
        )
        asyncio.run(other.ainsert_nodes(sounds[2:]))
    warnings = [r.getMessage() for r in caplog.records if "ClipClapIndex" in r.getMessage()]
    assert len(warnings) == 2 and "2 node(s)" in warnings[0] and "1 node(s)" in warnings[1]

    caplog.clear()
    mock = MockMultiModalEmbedding(embed_dim=8)
    with caplog.at_level("WARNING"):  # other models: none of our business
        MultiModalVectorStoreIndex(sounds, embed_model=mock, image_embed_model=mock)
    assert "ClipClapIndex" not in caplog.text


def test_readme_leads_with_clipclap_index_and_says_image_embed_model(embed_model):
    """Issue 15 item 15: ClipClapIndex is the first route shown; the MultiModalVectorStoreIndex
    snippet passes image_embed_model= and the README says why (LlamaIndex's default image
    model, whose ImportError is checked to be still what users meet)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## LlamaIndex\n", 1)[1].split("\n## ", 1)[0]
    snippets = re.findall(r"```python\n(.*?)```", section, re.S)
    assert "ClipClapIndex(" in snippets[0] and "MultiModalVectorStoreIndex" not in snippets[0]
    multimodal = next(code for code in snippets if "MultiModalVectorStoreIndex(" in code)
    assert "image_embed_model=embed_model" in multimodal
    assert "**Pass it\ntwice, as `embed_model=` AND `image_embed_model=`**" in section
    assert "llama-index-embeddings-clip package not found" in section
    with pytest.raises(ImportError, match="llama-index-embeddings-clip"):
        MultiModalVectorStoreIndex([TextNode(text="t")], embed_model=embed_model)


def test_audio_node_fields_resolve_and_survive_serialization(media_dir: Path):
    path = media_dir / SOUNDS[0]
    by_path = AudioNode(audio_path=str(path), text="a chirp", metadata={"take": 2})
    assert by_path.audio_path == str(path) and by_path.audio_mimetype == "audio/flac"
    assert by_path.resolve_audio() == str(path)
    assert AudioNode.class_name() == "AudioNode" and by_path.audio is None
    # Audio attributes are never embedded nor shown to an LLM.
    assert by_path.get_content(MetadataMode.EMBED) == "take: 2\n\na chirp"
    assert "flac" not in by_path.get_content(MetadataMode.LLM)

    raw = (media_dir / INLINE_SOUND).read_bytes()
    inline = AudioNode(audio=raw)
    assert base64.b64decode(inline.audio) == raw
    resolved = inline.resolve_audio()
    assert isinstance(resolved, io.BytesIO) and resolved.getvalue() == raw
    assert AudioNode(audio=base64.b64encode(raw)).audio == inline.audio  # base64 kept as is

    from_resource = AudioNode(audio_resource=MediaResource(path=path))
    assert from_resource.audio_path == str(path)
    blocks = by_path.get_content_blocks()
    assert type(blocks[-1]).__name__ == "AudioBlock" and str(blocks[-1].path) == str(path)
    with pytest.raises(ValueError, match="no audio"):
        AudioNode(text="nothing").resolve_audio()

    # Docstores and vector stores rebuild unknown classes as TextNode; the fields survive.
    as_text = json_to_doc(doc_to_json(inline))
    assert type(as_text) is TextNode
    back = AudioNode.from_node(as_text)
    assert back.audio == inline.audio and back.node_id == inline.node_id
    assert node_modality(back) is node_modality(inline)


# -- ClipClapIndex: text, image and audio nodes in one store -------------------------------------
@dataclass
class Corpus:
    nodes: list[BaseNode]
    queries: dict[str, Any]  # node id -> the node's own content, as a user would pass it
    vectors: dict[str, np.ndarray]  # node id -> the core's vector
    modality: dict[str, str]  # node id -> "text" | "image" | "audio"


@pytest.fixture(scope="module")
def corpus(media_dir: Path, core: ClipClapEmbedder) -> Corpus:
    texts = [TextNode(text=t) for t in TEXTS]
    images: list[BaseNode] = [ImageNode(image_path=str(media_dir / n)) for n in IMAGES]
    images.append(Node(image_resource=MediaResource(path=media_dir / NEW_IMAGE)))
    sounds: list[BaseNode] = [AudioNode(audio_path=str(media_dir / n)) for n in SOUNDS]
    inline = (media_dir / INLINE_SOUND).read_bytes()
    sounds.append(AudioNode(audio=inline))
    sounds.append(Node(audio_resource=MediaResource(path=media_dir / NEW_SOUND)))
    image_queries = [str(media_dir / n) for n in [*IMAGES, NEW_IMAGE]]
    sound_queries: list[Any] = [str(media_dir / n) for n in SOUNDS]
    sound_queries += [Audio(inline), str(media_dir / NEW_SOUND)]
    queries = dict(zip([n.node_id for n in texts], TEXTS, strict=True))
    queries |= dict(zip([n.node_id for n in images], image_queries, strict=True))
    queries |= dict(zip([n.node_id for n in sounds], sound_queries, strict=True))
    vectors = dict(zip([n.node_id for n in texts], core.embed_text(TEXTS), strict=True))
    vectors |= dict(zip([n.node_id for n in images], core.embed_images(image_queries), strict=True))
    vectors |= dict(zip([n.node_id for n in sounds], core.embed_audio(sound_queries), strict=True))
    modality = {
        n.node_id: m
        for m, group in [("text", texts), ("image", images), ("audio", sounds)]
        for n in group
    }
    return Corpus([*texts, *images, *sounds], queries, vectors, modality)


def _stored_vectors(index: ClipClapIndex, ids: list[str]) -> dict[str, np.ndarray]:
    store = index.vector_store
    if type(store).__name__ == "ChromaVectorStore":
        got = store.client.get(ids=ids, include=["embeddings"])
        return dict(zip(got["ids"], np.asarray(got["embeddings"], dtype=np.float32), strict=True))
    return {i: _vec(store.get(i)) for i in ids}


def _build(kind: str, corpus: Corpus, embed_model, tmp_path: Path, **kw: Any) -> ClipClapIndex:
    if kind == "chroma":
        kw["storage_context"] = StorageContext.from_defaults(
            vector_store=_chroma_store(tmp_path / "db", "clipclap-all")
        )
    return ClipClapIndex(corpus.nodes, embed_model=embed_model, **kw)


def _check_clipclap_index(index: ClipClapIndex, corpus: Corpus, every_node: bool = True) -> None:
    """Stored vectors are the core's; each node (or one per class and modality) finds itself
    first and ranks every modality exactly as brute force does."""
    ids = [n.node_id for n in corpus.nodes]
    stored = _stored_vectors(index, ids)
    assert set(stored) == set(ids)  # no node dropped, text or not
    for i in ids:
        np.testing.assert_allclose(stored[i], corpus.vectors[i], atol=1e-6)

    retriever = index.as_retriever(similarity_top_k=3)
    by_modality = {
        m: {i: v for i, v in corpus.vectors.items() if corpus.modality[i] == m}
        for m in ("text", "image", "audio")
    }
    kinds = {(type(n), corpus.modality[n.node_id]): n for n in reversed(corpus.nodes)}
    for node in corpus.nodes if every_node else list(kinds.values()):
        own, query = corpus.modality[node.node_id], corpus.queries[node.node_id]
        # its own content finds itself first (the node class survives the store)
        hits = getattr(retriever, f"{own}_to_{own}")(query)
        assert hits[0].node.node_id == node.node_id, (own, query)
        assert hits[0].score == pytest.approx(1.0, abs=1e-4)
        assert type(hits[0].node) is type(node)
    for node in kinds.values():  # one node per class and modality
        own, query = corpus.modality[node.node_id], corpus.queries[node.node_id]
        # the same with the modality detected, and with the node itself as the query
        for hits in (retriever.any_to_any(query, own), retriever.any_to_any(node, [own])):
            assert hits[0].node.node_id == node.node_id, (own, query)
        # from its modality to every modality: exactly the brute-force ranking
        for target, candidates in by_modality.items():
            hits = getattr(retriever, f"{own}_to_{target}")(query)
            assert {h.node.metadata[MODALITY_KEY] for h in hits} == {target}
            assert _ids(hits) == _ranking(corpus.vectors[node.node_id], candidates, 3)
    everything = retriever.retrieve(TEXTS[0])
    assert len(everything) == 3 and everything[0].node.get_content() == TEXTS[0]


@pytest.mark.parametrize("kind", ["memory", "chroma"])
def test_clipclap_index_every_node_finds_itself(kind, corpus, embed_model, tmp_path: Path):
    index = _build(kind, corpus, embed_model, tmp_path)
    _check_clipclap_index(index, corpus)
    hit = index.as_retriever(similarity_top_k=1).audio_to_audio(corpus.queries[_sound(corpus)])
    assert isinstance(hit[0].node, AudioNode) and hit[0].node.audio_path


def _sound(corpus: Corpus) -> str:
    """The id of the first AudioNode given by path."""
    return next(n.node_id for n in corpus.nodes if isinstance(n, AudioNode) and n.audio_path)


def _image(corpus: Corpus) -> str:
    """The id of the first ImageNode."""
    return next(n.node_id for n in corpus.nodes if isinstance(n, ImageNode))


@pytest.mark.parametrize("kind", ["memory", "chroma"])
def test_clipclap_index_async_build_and_retrieval(kind, corpus, embed_model, tmp_path: Path):
    index = _build(kind, corpus, embed_model, tmp_path, use_async=True)
    retriever = index.as_retriever(similarity_top_k=3)
    sound_id = _sound(corpus)
    sound, image = corpus.queries[sound_id], corpus.queries[_image(corpus)]

    async def run() -> dict[str, list[NodeWithScore]]:
        return {
            "a2a": await retriever.aaudio_to_audio(sound),
            "a2i": await retriever.aaudio_to_image(sound),
            "t2a": await retriever.atext_to_audio(TEXTS[1]),
            "i2a": await retriever.aimage_to_audio(image),
            "any": await retriever.aany_to_any(sound, ["image", "text"]),
            "retrieve": await retriever.aretrieve(TEXTS[2]),
        }

    got = asyncio.run(run())
    assert got["a2a"][0].node.node_id == sound_id and isinstance(got["a2a"][0].node, AudioNode)
    assert _ids(got["a2i"]) == _ids(retriever.audio_to_image(sound))
    assert _ids(got["t2a"]) == _ids(retriever.text_to_audio(TEXTS[1]))
    assert _ids(got["i2a"]) == _ids(retriever.image_to_audio(image))
    assert {h.node.metadata[MODALITY_KEY] for h in got["any"]} <= {"image", "text"}
    assert got["retrieve"][0].node.get_content() == TEXTS[2]
    _check_clipclap_index(index, corpus, every_node=False)  # the async build is the same


def test_clipclap_index_reopened_from_chroma_in_a_new_process(
    corpus, embed_model, model_dir: Path, media_dir: Path, tmp_path: Path
):
    index = _build("chroma", corpus, embed_model, tmp_path)
    retriever = index.as_retriever(similarity_top_k=3)
    sound, image = str(media_dir / SOUNDS[1]), str(media_dir / IMAGES[2])
    expected = {
        "audio_to_audio": _ids(retriever.audio_to_audio(sound)),
        "audio_to_image": _ids(retriever.audio_to_image(sound)),
        "image_to_audio": _ids(retriever.image_to_audio(image)),
        "text_to_audio": _ids(retriever.text_to_audio(TEXTS[0])),
    }
    script = textwrap.dedent(
        """
        import json, sys
        import chromadb
        from llama_index.vector_stores.chroma import ChromaVectorStore
        from clipclap_integrations.llama_index import ClipClapEmbedding, ClipClapIndex

        db, model, sound, image, text = sys.argv[1:]
        client = chromadb.PersistentClient(path=db)
        store = ChromaVectorStore(chroma_collection=client.get_collection("clipclap-all"))
        index = ClipClapIndex.from_vector_store(store, embed_model=ClipClapEmbedding(model))
        r = index.as_retriever(similarity_top_k=3)
        hits = {
            "audio_to_audio": r.audio_to_audio(sound),
            "audio_to_image": r.audio_to_image(sound),
            "image_to_audio": r.image_to_audio(image),
            "text_to_audio": r.text_to_audio(text),
        }
        out = {k: [h.node.node_id for h in v] for k, v in hits.items()}
        top = hits["audio_to_audio"][0].node
        out["top"] = [type(top).__name__, top.audio_path]
        print(json.dumps(out))
        """
    )
    args = [str(tmp_path / "db"), str(model_dir), sound, image, TEXTS[0]]
    proc = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got.pop("top") == ["AudioNode", sound]
    assert got == expected


def test_clipclap_index_persisted_and_reloaded(corpus, embed_model, tmp_path: Path):
    index = ClipClapIndex(corpus.nodes, embed_model=embed_model)
    index.storage_context.persist(persist_dir=str(tmp_path))
    reloaded = ClipClapIndex.from_storage(
        StorageContext.from_defaults(persist_dir=str(tmp_path)), embed_model=embed_model
    )
    _check_clipclap_index(reloaded, corpus, every_node=False)


def test_documents_with_media_become_media_nodes(embed_model, core, media_dir: Path):
    sound, image = media_dir / SOUNDS[2], media_dir / IMAGES[0]
    documents = [
        Document(audio_resource=MediaResource(path=sound), metadata={"file_name": sound.name}),
        ImageDocument(image_path=str(image), metadata={"file_name": image.name}),
        Document(text=TEXTS[0], metadata={"file_name": "caption.txt"}),
    ]
    index = ClipClapIndex.from_documents(documents, embed_model=embed_model)
    retriever = index.as_retriever(similarity_top_k=1)
    hit = retriever.text_to_audio("anything")[0].node
    assert isinstance(hit, AudioNode) and hit.audio_path == str(sound)
    assert hit.relationships[NodeRelationship.SOURCE].node_id == documents[0].id_
    assert retriever.image_to_image(str(image))[0].node.metadata["file_name"] == image.name
    assert retriever.text_to_text(TEXTS[0])[0].node.get_content() == TEXTS[0]
    # insert() takes the same path; a document read as text from a sound file is the sound
    sound_file = media_dir / SOUNDS[0]
    as_text = Document(  # what SimpleDirectoryReader stores for a file it has no parser for
        text=sound_file.read_bytes().decode("utf-8", errors="ignore"),
        metadata={"file_path": str(sound_file)},
    )
    transcript = Document(text="birds chirping at dawn", metadata={"file_path": str(sound_file)})
    assert media_node_from_document(transcript) is None  # its own text: stays a text document
    index.insert(as_text)
    top = retriever.audio_to_audio(str(media_dir / SOUNDS[0]))[0]
    assert top.node.ref_doc_id == as_text.id_ and top.score == pytest.approx(1.0, abs=1e-4)
    np.testing.assert_allclose(
        _vec(index.vector_store.get(top.node.node_id)),
        core.embed_audio([str(media_dir / SOUNDS[0])])[0],
        atol=1e-6,
    )
    with pytest.raises(ValueError, match="both"):
        ClipClapIndex(
            [
                Node(
                    image_resource=MediaResource(path=image),
                    audio_resource=MediaResource(path=sound),
                )
            ],
            embed_model=embed_model,
        )


def test_text_documents_are_split_to_fit_clips_window(embed_model, core, model_dir: Path):
    from llama_index.core import Settings
    from llama_index.core.node_parser import SentenceSplitter
    from tokenizers import Tokenizer

    from clipclap_integrations.llama_index import ClipTextSplitter

    clip = Tokenizer.from_file(str(model_dir / "tokenizer.json"))  # the reference count
    clip.no_truncation()
    words = [f"word{i}" for i in range(400)]
    intro = " ".join(words[:150]) + "."
    deep = "/data/" + "/".join(f"department{i}" for i in range(6)) + "/notes.txt"
    docs = [
        Document(text=intro + " The ending is about boats.", metadata={"file_path": deep}),
        Document(text=intro + " The ending is about apples.", metadata={"file_path": deep}),
        Document(text=" ".join(words) + ".", metadata={"title": "counting words"}),
    ]
    index = ClipClapIndex.from_documents(docs, embed_model=embed_model)
    nodes = list(index.docstore.docs.values())
    by_doc: dict[str, list[BaseNode]] = {}
    for node in nodes:
        by_doc.setdefault(node.ref_doc_id, []).append(node)
    for node in nodes:
        embedded = node.get_content(metadata_mode=MetadataMode.EMBED)
        assert len(clip.encode(embedded).ids) <= 77, embedded  # with BOS and EOS
        assert "department" not in embedded  # the reader's path stays out of the vector
        source = next(d for d in docs if d.id_ == node.ref_doc_id)
        assert {k: node.metadata[k] for k in source.metadata} == source.metadata  # kept
        stored = _vec(index.vector_store.get(node.node_id))
        np.testing.assert_allclose(stored, core.embed_text([embedded])[0], atol=1e-6)
    # Nothing is dropped: every word of the long document is in one of its chunks.
    long_chunks = " ".join(n.get_content() for n in by_doc[docs[2].id_])
    assert all(w in long_chunks.split() or w + "." in long_chunks.split() for w in words)
    assert all(
        "title: counting words" in n.get_content(MetadataMode.EMBED) for n in by_doc[docs[2].id_]
    )
    # The two documents differ only after 150 words: their last chunks differ.
    ends = [by_doc[d.id_][-1].get_content() for d in docs[:2]]
    assert ends[0].endswith("boats.") and ends[1].endswith("apples.")
    # Metadata too long for the window is an error naming the node.
    heavy = Document(text="short", metadata={"summary": " ".join(words[:80])}, id_="heavy")
    with pytest.raises(ValueError, match=r"node 'heavy'.*excluded_embed_metadata_keys"):
        ClipClapIndex.from_documents([heavy], embed_model=embed_model)
    # Transformations the user configured are used as they are.
    assert len(Settings.transformations) == 1  # LlamaIndex's default, filled in on first read
    assert len(ClipClapIndex.from_documents([docs[2]], embed_model=embed_model).docstore.docs) > 1
    Settings.transformations = [SentenceSplitter(chunk_size=2048)]
    try:
        whole = ClipClapIndex.from_documents([docs[2]], embed_model=embed_model)
        assert len(whole.docstore.docs) == 1
    finally:
        Settings.transformations = None  # type: ignore[assignment]
    splitter = ClipTextSplitter.from_embed_model(embed_model)
    assert splitter.chunk_size == 75 and pickle.loads(pickle.dumps(splitter)).chunk_size == 75
    restored = ClipTextSplitter.from_json(splitter.to_json())  # IngestionPipeline caches by it
    assert restored.tokenizer_file == str(model_dir / "tokenizer.json")
    assert restored.split_text(docs[2].text) == splitter.split_text(docs[2].text)


def test_load_media_nodes_and_filters(embed_model, media_dir: Path, tmp_path: Path):
    (tmp_path / "caption.md").write_text("a dog barking", encoding="utf-8")
    for name in [*IMAGES, *SOUNDS, "texts.json"]:
        (tmp_path / name).write_bytes((media_dir / name).read_bytes())
    nodes = load_media_nodes(tmp_path)
    kinds = sorted(type(n).__name__ for n in nodes)
    assert kinds == ["AudioNode"] * 3 + ["ImageNode"] * 3 + ["TextNode"]  # .json skipped
    assert [n.node_id for n in load_media_nodes(tmp_path)] == [n.node_id for n in nodes]
    listed = [tmp_path / IMAGES[0], tmp_path / "missing.png"]
    with pytest.raises(FileNotFoundError, match="item 1: no such file"):
        load_media_nodes(listed)  # a file named on purpose is never skipped quietly
    with pytest.raises(ClipClapInputError, match=r"input 1 .*texts\.json.*neither an image"):
        load_media_nodes([tmp_path / IMAGES[0], tmp_path / "texts.json"])
    assert len(load_media_nodes(listed[:1])) == 1
    # A file that cannot be read: left out of a folder with a warning (or raised), an error
    # when listed.
    real_open = open

    def refusing_open(file, *args, **kwargs):
        if str(file).endswith(IMAGES[1]):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("builtins.open", refusing_open)
        assert len(load_media_nodes(tmp_path)) == len(nodes) - 1
        with pytest.raises(PermissionError):
            load_media_nodes(tmp_path, raise_on_error=True)
        with pytest.raises(ClipClapInputError, match=r"input 0 .*cannot be read \(Permission"):
            load_media_nodes([tmp_path / IMAGES[1]])

    index = ClipClapIndex(nodes, embed_model=embed_model)
    only = MetadataFilters(filters=[MetadataFilter(key="file_name", value=SOUNDS[1])])
    retriever = index.as_retriever(similarity_top_k=5, filters=only)
    assert [h.node.metadata["file_name"] for h in retriever.text_to_audio("x")] == [SOUNDS[1]]
    assert retriever.text_to_image("x") == []
    images_only = index.as_retriever(similarity_top_k=10, modalities="image")
    assert {h.node.metadata[MODALITY_KEY] for h in images_only.retrieve("x")} == {"image"}
    assert len(images_only.retrieve("x")) == 3
    with pytest.raises(ValueError, match="the query is image, not audio"):
        retriever.audio_to_audio(next(n for n in nodes if isinstance(n, ImageNode)))
    with pytest.raises(ValueError, match="unknown modality"):
        index.as_retriever(modalities=["smell"])
    with pytest.raises(ValueError, match="video is not a modality of nodes"):
        index.as_retriever(modalities=["video"])


def test_unreadable_media_are_dropped_and_reported(
    embed_model, media_dir: Path, tmp_path: Path, caplog
):
    """Issue 15 item 4: a truncated image is left out of load_media_nodes (reported); an
    index given bad nodes reports them and indexes the rest, or raises with raise_on_error."""
    for name in [IMAGES[0], SOUNDS[0]]:
        (tmp_path / name).write_bytes((media_dir / name).read_bytes())
    whole = (media_dir / IMAGES[1]).read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    sound = (media_dir / SOUNDS[1]).read_bytes()
    (tmp_path / "truncated.flac").write_bytes(sound[:200])
    with caplog.at_level("WARNING"):
        nodes = load_media_nodes(tmp_path)
    assert sorted(n.metadata["file_name"] for n in nodes) == sorted([IMAGES[0], SOUNDS[0]])
    assert "truncated.jpg" in caplog.text and "truncated.flac" in caplog.text
    with pytest.raises(ClipClapInputError, match="truncated"):
        load_media_nodes(tmp_path, raise_on_error=True)
    with pytest.raises(ClipClapInputError, match=r"input 0 .*truncated\.jpg.*cannot be read"):
        load_media_nodes([tmp_path / "truncated.jpg"])
    unchecked = load_media_nodes(tmp_path, verify=False)
    assert len(unchecked) == 4

    caplog.clear()
    with caplog.at_level("WARNING"):
        index = ClipClapIndex(unchecked, embed_model=embed_model)
    bad = {n.node_id for n in unchecked if n.metadata["file_name"].startswith("truncated")}
    good = {n.node_id for n in unchecked} - bad
    assert set(index.index_struct.nodes_dict) == good
    for node_id in bad:
        assert node_id in caplog.text
    hits = index.as_retriever(similarity_top_k=5).text_to_image("x")
    assert [h.node.metadata["file_name"] for h in hits] == [IMAGES[0]]
    with pytest.raises(ClipClapInputError, match="truncated"):
        ClipClapIndex(unchecked, embed_model=embed_model, raise_on_error=True)
    nothing = AudioNode(text="")
    index = ClipClapIndex([TextNode(text="kept")], embed_model=embed_model)
    index.insert_nodes([nothing, TextNode(text="also kept")])
    assert len(index.index_struct.nodes_dict) == 3 - 1


def test_ingestion_pipeline_embeds_each_node_by_its_content(corpus, embed_model, tmp_path: Path):
    store = _chroma_store(tmp_path / "db", "clipclap-pipeline")
    fresh = [n.model_copy(deep=True) for n in corpus.nodes]
    IngestionPipeline(transformations=[embed_model], vector_store=store).run(nodes=fresh)
    index = ClipClapIndex.from_vector_store(store, embed_model=embed_model)
    _check_clipclap_index(index, corpus, every_node=False)


def test_media_documents_survive_text_splitters(embed_model, core, media_dir, tmp_path, caplog):
    """Issue 15 item 3: a sound read by the media reader and sent through a text splitter
    stays a sound: ClipTextSplitter passes it through, and what LlamaIndex's SentenceSplitter
    makes of it (an empty TextNode) is repaired by the embedding, the index and the
    retriever, with a warning; one whose file is gone is left out, with a warning."""
    from llama_index.core import SimpleDirectoryReader
    from llama_index.core.node_parser import SentenceSplitter

    from clipclap_integrations.llama_index import ClipTextSplitter

    (tmp_path / "caption.txt").write_text(TEXTS[0], encoding="utf-8")
    for name in [IMAGES[0], SOUNDS[0]]:
        (tmp_path / name).write_bytes((media_dir / name).read_bytes())
    documents = SimpleDirectoryReader(
        str(tmp_path), file_extractor=media_file_extractor()
    ).load_data()
    sound_vector = core.embed_audio([media_dir / SOUNDS[0]])[0]
    image_vector = core.embed_images([media_dir / IMAGES[0]])[0]

    def check(nodes: list[BaseNode]) -> None:
        by_name = {n.metadata["file_name"]: n for n in nodes}
        assert set(by_name) == {"caption.txt", IMAGES[0], SOUNDS[0]}
        sound, image = by_name[SOUNDS[0]], by_name[IMAGES[0]]
        assert isinstance(sound, AudioNode) and sound.metadata[MODALITY_KEY] == "audio"
        assert isinstance(image, ImageNode) and image.metadata[MODALITY_KEY] == "image"
        np.testing.assert_allclose(_vec(sound.embedding), sound_vector, atol=1e-6)
        np.testing.assert_allclose(_vec(image.embedding), image_vector, atol=1e-6)
        retriever = ClipClapIndex(nodes, embed_model=embed_model).as_retriever(similarity_top_k=3)
        hits = retriever.audio_to_audio(str(media_dir / SOUNDS[0]))
        assert [h.node.metadata["file_name"] for h in hits] == [SOUNDS[0]]
        assert [h.node.metadata["file_name"] for h in retriever.text_to_text("x")] == [
            "caption.txt"
        ]

    ours = ClipTextSplitter.from_embed_model(embed_model)
    split = ours.get_nodes_from_documents(documents)
    assert sorted(type(n).__name__ for n in split) == ["AudioNode", "ImageNode", "TextNode"]
    with caplog.at_level("WARNING"):
        check(IngestionPipeline(transformations=[ours, embed_model]).run(documents=documents))
    assert "arrived as text nodes" not in caplog.text  # nothing to repair

    theirs = SentenceSplitter().get_nodes_from_documents(documents)
    empty = next(n for n in theirs if n.metadata["file_name"] == SOUNDS[0])
    assert type(empty) is TextNode and empty.text == ""  # what LlamaIndex does
    with caplog.at_level("WARNING"):
        check(
            IngestionPipeline(transformations=[SentenceSplitter(), embed_model]).run(
                documents=documents
            )
        )
    assert "arrived as text nodes with no text" in caplog.text and SOUNDS[0] in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        index = ClipClapIndex(theirs, embed_model=embed_model)
    assert "ClipClapIndex" in caplog.text and empty.node_id in caplog.text
    stored = index.docstore.get_node(empty.node_id)
    assert stored.metadata[MODALITY_KEY] == "audio"  # the docstore gives back a TextNode
    assert AudioNode.from_node(stored).audio_path == str(tmp_path / SOUNDS[0])
    np.testing.assert_allclose(_vec(index.vector_store.get(empty.node_id)), sound_vector, atol=1e-6)
    retriever = index.as_retriever(similarity_top_k=1)
    assert retriever.any_to_any(empty, "audio")[0].node.node_id == empty.node_id
    assert retriever.text_to_text("x")[0].node.metadata["file_name"] == "caption.txt"

    # a sound whose file is gone cannot be repaired: left out (and named), never text
    lost = empty.model_copy()
    lost.id_ = "lost-sound"
    lost.metadata = {**empty.metadata, "file_path": str(tmp_path / "gone.wav")}
    caplog.clear()
    with caplog.at_level("WARNING"):
        index = ClipClapIndex([lost, TextNode(text="kept")], embed_model=embed_model)
        assert len(embed_model([lost.model_copy()])) == 0
    assert "lost-sound" not in index.index_struct.nodes_dict
    assert len(index.index_struct.nodes_dict) == 1
    assert "'lost-sound'" in caplog.text and "gone.wav" in caplog.text
    with pytest.raises(ClipClapInputError, match="cannot be read again"):
        index.as_retriever().any_to_any(lost)


def test_indexes_refuse_what_cannot_work(embed_model, media_dir: Path):
    with pytest.raises(TypeError, match="ClipClapEmbedding"):
        ClipClapIndex([TextNode(text="x")], embed_model=MockEmbedding(embed_dim=8))
    index = ClipClapIndex([TextNode(text="x")], embed_model=embed_model)
    with pytest.raises(TypeError, match="ClipClapEmbedding"):
        ClipClapRetriever(index, embed_model=MockEmbedding(embed_dim=8))
    with pytest.raises(ValueError, match="similarity_top_k"):
        index.as_retriever().text_to_text("x", similarity_top_k=0)


def test_token_counting_handler_survives_media(model_dir: Path, media_dir: Path):
    from llama_index.core.callbacks import TokenCountingHandler

    counter = TokenCountingHandler()
    callbacks = CallbackManager([counter])
    model = ClipClapEmbedding(model_dir, callback_manager=callbacks)
    sound = media_dir / "tone_0p5s_48k.wav"
    png = (media_dir / "rgb_320x200.png").read_bytes()
    nodes = [
        AudioNode(audio=sound.read_bytes()),
        ImageNode(image=base64.b64encode(png).decode()),
        TextNode(text="a red square"),
    ]
    # The index hands its callback manager to the model (LlamaIndex does): give it ours.
    index = ClipClapIndex(nodes, embed_model=model, callback_manager=callbacks)
    assert len(counter.embedding_token_counts) == 3  # raised TypeError on the bytes chunks
    assert len(index.as_retriever(similarity_top_k=3).retrieve("square")) == 3
    model.get_audio_embedding((np.zeros(4800, np.float32) + 0.1, 48_000))
    model.get_image_embedding(io.BytesIO(png))
    assert asyncio.run(model.aget_audio_embedding_batch([sound, str(sound)]))
    assert counter.total_embedding_token_count > 0


def test_errors_name_the_node_and_its_place(model_dir: Path, media_dir: Path):
    model = ClipClapEmbedding(model_dir, embed_batch_size=2)
    good = [ImageNode(image_path=str(media_dir / "rgb_320x200.png"), id_=f"g{i}") for i in range(4)]
    junk = base64.b64encode(b"garbage bytes here").decode()
    nodes = [TextNode(text="t"), *good, ImageNode(image=junk, id_="the-bad-node")]
    # raise_on_error: the first bad node stops the build (by default it is skipped, reported)
    with pytest.raises(ClipClapInputError, match="not a recognizable image") as info:
        ClipClapIndex(nodes, embed_model=model, raise_on_error=True)
    assert info.value.index == 5 and "'the-bad-node'" in str(info.value)
    with pytest.raises(ClipClapInputError, match="not a recognizable image") as info:
        index = ClipClapIndex([], embed_model=model, raise_on_error=True)
        asyncio.run(index.ainsert_nodes(nodes))
    assert info.value.index == 5 and "'the-bad-node'" in str(info.value)
    texts = [TextNode(text=f"text {i}", id_=f"n{i}") for i in range(3)]
    texts.append(TextNode(text="bad \ud800", id_="n3"))  # an unpaired surrogate
    with pytest.raises(ClipClapInputError, match="not valid Unicode") as info:
        # the 4th text, in the 2nd batch of 2
        ClipClapIndex(texts, embed_model=model, raise_on_error=True)
    assert info.value.index == 3 and "'n3'" in str(info.value)
    broken = ImageNode(image="@@not base64@", id_="bad-b64")
    with pytest.raises(ClipClapInputError, match="not valid base64") as info:
        ClipClapIndex([*good[:1], broken], embed_model=model, raise_on_error=True)
    assert info.value.index == 1 and "'bad-b64'" in str(info.value)
    paths = [str(media_dir / "rgb_320x200.png")] * 3 + [str(media_dir / "no-such.png")]
    with pytest.raises(ClipClapInputError) as info:  # the 4th item, in the 2nd batch of 2
        model.get_image_embedding_batch(paths)
    assert info.value.index == 3
    with pytest.raises(ClipClapInputError) as info:
        asyncio.run(model.aget_image_embedding_batch(paths))
    assert info.value.index == 3


def test_fields_changed_after_construction_reach_the_core(model_dir: Path, media_dir: Path):
    from pydantic import ValidationError

    model = ClipClapEmbedding(model_dir)
    png = str(media_dir / "rgb_320x200.png")
    model.get_image_embedding(png)
    model.allow_local_files = False
    with pytest.raises(ClipClapInputError, match="allow_local_files=False"):
        model.get_image_embedding(png)
    assert model.to_dict()["allow_local_files"] is False
    copied = ClipClapEmbedding(model_dir).model_copy(update={"allow_local_files": False})
    with pytest.raises(ClipClapInputError, match="allow_local_files=False"):
        copied.get_image_embedding(png)
    long_clip = str(media_dir / "long_25s_16k.flac")
    model.allow_local_files = True
    model.long_audio = "first"
    first = ClipClapEmbedder(model_dir, long_audio="first").embed_audio([long_clip])[0]
    np.testing.assert_array_equal(np.asarray(model.get_audio_embedding(long_clip)), first)
    with pytest.raises(ValidationError):
        model.long_audio = "bogus"  # type: ignore[assignment]


def test_every_directed_search_is_made_and_declared_for_type_checkers():
    """The x_to_y methods come from one loop over the modalities; type checkers read a list."""
    import ast
    import inspect
    import itertools
    import re

    kinds = (Modality.TEXT, Modality.IMAGE, Modality.AUDIO)  # a video's moments are images/sounds
    pairs = [f"{q.value}_to_{t.value}" for q, t in itertools.product(kinds, repeat=2)]
    made = {n for n in dir(ClipClapRetriever) if re.fullmatch(r"a?[a-z]+_to_[a-z]+", n)}
    assert made - {"any_to_any", "aany_to_any"} == {*pairs, *(f"a{p}" for p in pairs)}
    tree = ast.parse(textwrap.dedent(inspect.getsource(ClipClapRetriever)))
    declared = {
        line.target.id
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and ast.unparse(block.test) == "TYPE_CHECKING"
        for line in block.body
        if isinstance(line, ast.AnnAssign) and isinstance(line.target, ast.Name)
    }
    assert declared == made - {"any_to_any", "aany_to_any"}
    for name in pairs:
        search, asearch = getattr(ClipClapRetriever, name), getattr(ClipClapRetriever, "a" + name)
        assert not inspect.iscoroutinefunction(search) and inspect.iscoroutinefunction(asearch)
        assert list(inspect.signature(search).parameters) == ["self", "query", "similarity_top_k"]
        assert search.__qualname__ == f"ClipClapRetriever.{name}" and search.__doc__
        assert name in (asearch.__doc__ or "")


def test_retriever_refuses_indexes_it_cannot_filter(embed_model, media_dir: Path):
    from llama_index.core import VectorStoreIndex

    plain = VectorStoreIndex([TextNode(text="a siren")], embed_model=embed_model)
    with pytest.raises(ValueError, match="no 'modality' metadata"):
        ClipClapRetriever(plain)
    tagged = TextNode(text="a siren")
    tag_node_in_place(tagged)
    fine = VectorStoreIndex([tagged], embed_model=embed_model)
    assert len(ClipClapRetriever(fine).text_to_text("siren")) == 1
    image = ImageNode(image_path=str(media_dir / "rgb_320x200.png"))
    multi = MultiModalVectorStoreIndex(
        [TextNode(text="x"), image], embed_model=embed_model, image_embed_model=embed_model
    )
    with pytest.raises(TypeError, match="MultiModalVectorStoreIndex"):
        ClipClapRetriever(multi, embed_model=embed_model)


def test_indexes_sharing_a_storage_context_stay_apart(embed_model, tmp_path: Path):
    from llama_index.core import VectorStoreIndex

    storage = StorageContext.from_defaults()
    apples = ClipClapIndex(
        [TextNode(text="apples", id_="A1")], embed_model=embed_model, storage_context=storage
    )
    boats = ClipClapIndex(
        [TextNode(text="boats", id_="B1")], embed_model=embed_model, storage_context=storage
    )
    assert [h.node.node_id for h in boats.as_retriever().retrieve("boats")] == ["B1"]
    assert [h.node.node_id for h in apples.as_retriever().retrieve("boats")] == ["A1"]
    # An untagged plain index in the same docstore is not this index's business.
    VectorStoreIndex(
        [TextNode(text="other", id_="O1")], embed_model=embed_model, storage_context=storage
    )
    assert len(boats.as_retriever().text_to_text("x")) == 1
    storage.persist(str(tmp_path))
    reloaded = ClipClapIndex.from_storage(
        StorageContext.from_defaults(persist_dir=str(tmp_path)),
        embed_model=embed_model,
        index_id=boats.index_id,
    )
    assert [h.node.node_id for h in reloaded.as_retriever().retrieve("apples")] == ["B1"]


def test_image_similarity_top_k_as_in_llama_index(embed_model, media_dir: Path):
    images = [ImageNode(image_path=str(media_dir / name)) for name in IMAGES]
    index = ClipClapIndex([TextNode(text="a red square"), *images], embed_model=embed_model)
    retriever = index.as_retriever(similarity_top_k=1, image_similarity_top_k=3)
    assert len(retriever.text_to_image_retrieve("a photo")) == 3
    assert len(retriever.image_to_image_retrieve(str(media_dir / IMAGES[0]))) == 3
    assert len(asyncio.run(retriever.atext_to_image_retrieve("a photo"))) == 3
    assert len(retriever.text_retrieve("a photo")) == 1


def test_or_filters_with_a_modality_on_the_default_store(embed_model, media_dir: Path):
    from llama_index.core.vector_stores.types import FilterCondition

    nodes = [
        ImageNode(image_path=str(media_dir / IMAGES[0]), metadata={"tag": "a"}),
        AudioNode(audio_path=str(media_dir / SOUNDS[0]), metadata={"tag": "b"}),
        TextNode(text="a red square", metadata={"tag": "c"}),
        TextNode(text="a blue circle", metadata={"tag": "a"}),
    ]
    index = ClipClapIndex(nodes, embed_model=embed_model)  # SimpleVectorStore: no nesting
    either = MetadataFilters(
        filters=[MetadataFilter(key="tag", value="a"), MetadataFilter(key="tag", value="b")],
        condition=FilterCondition.OR,
    )
    retriever = index.as_retriever(similarity_top_k=5, filters=either)
    assert [h.node.metadata["tag"] for h in retriever.text_to_audio("x")] == ["b"]
    assert [h.node.metadata["tag"] for h in retriever.text_to_image("x")] == ["a"]
    assert [h.node.get_content() for h in retriever.text_to_text("x")] == ["a blue circle"]
    assert len(retriever.retrieve("x")) == 3  # all modalities: the user's filter alone


def test_audio_node_inline_data_is_checked(media_dir: Path):
    raw = (media_dir / INLINE_SOUND).read_bytes()
    encoded = base64.b64encode(raw).decode("ascii")
    wrapped = base64.encodebytes(raw).decode("ascii")  # MIME style: lines of 76
    assert "\n" in wrapped and AudioNode(audio=wrapped).audio == encoded
    assert AudioNode(audio=encoded.rstrip("=")).audio == encoded  # padding left off
    with pytest.raises(ValueError, match=r"AudioNode n1: audio= must be base64.*audio_path="):
        AudioNode(audio="siren.flac", id_="n1")  # a path given as data
    from_uri = AudioNode(audio=f"data:audio/wav;base64,{encoded}")
    assert from_uri.audio == encoded and from_uri.audio_mimetype == "audio/wav"
    assert base64.b64decode(AudioNode(audio=raw).audio or "") == raw


def test_replacing_an_audio_nodes_metadata_keeps_its_sound(media_dir: Path):
    path = str(media_dir / SOUNDS[0])
    node = AudioNode(audio_path=path, metadata={"old": 1})
    node.metadata = {"new": "meta"}
    assert node.audio_path == path and node.metadata["new"] == "meta" and "old" not in node.metadata
    assert node.audio_mimetype is not None
    node.audio_path = None  # the attribute itself still clears it
    assert node.audio_path is None and "audio_path" not in node.metadata


# -- packaging -----------------------------------------------------------------------------------
_BLOCKERS = {
    "sys.modules": "sys.modules['llama_index'] = None",
    "meta_path": textwrap.dedent(
        """
        class Blocker:
            def find_spec(self, name, path=None, target=None):
                if name == "llama_index" or name.startswith("llama_index."):
                    raise ModuleNotFoundError(f"No module named {name!r}")
        sys.meta_path.insert(0, Blocker())
        """
    ),
}


def test_importing_the_package_does_not_import_llama_index():
    code = (
        "import sys, clipclap_integrations\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'llama_index'))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


@pytest.mark.parametrize("how", sorted(_BLOCKERS))
def test_missing_llama_index_gives_the_install_command(how: str):
    code = (
        "import sys\n"
        + _BLOCKERS[how]
        + textwrap.dedent(
            """
        import clipclap_integrations
        try:
            import clipclap_integrations.llama_index
        except ImportError as exc:
            print(exc)
        else:
            raise SystemExit("imported without llama_index")
        """
        )
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert 'pip install "clipclap-integrations[llama-index]"' in proc.stdout


def test_example_runs_offline(model_dir: Path, tmp_path: Path):
    pytest.importorskip("chromadb")
    media = ROOT / "examples" / "media"
    if not media.is_dir():
        media = ROOT / "tests" / "fixtures" / "media"
    args = ["--model", str(model_dir), "--media", str(media), "--db", str(tmp_path / "db")]
    script = str(ROOT / "examples" / "llamaindex_multimodal_rag.py")
    proc = subprocess.run(
        [sys.executable, script, *args, "--generate"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert " new, 0 changed, 0 removed, 0 failed" in proc.stdout
    assert "-> images" in proc.stdout and "-> sounds" in proc.stdout
    assert "  audio  " in proc.stdout and "  image  " in proc.stdout
    assert "AudioBlock" in proc.stdout and "ImageBlock" in proc.stdout


def test_example_updates_changed_and_removed_files(model_dir: Path, media_dir: Path, tmp_path):
    pytest.importorskip("chromadb")
    media = tmp_path / "media"
    media.mkdir()
    names = ["rgb_320x200.png", "tall_150x420.jpg", "tone_0p5s_48k.wav", "click_1s_48k.wav"]
    for name in names:
        (media / name).write_bytes((media_dir / name).read_bytes())
    script = str(ROOT / "examples" / "llamaindex_multimodal_rag.py")
    args = [script, "--model", str(model_dir), "--media", str(media), "--db", str(tmp_path / "db")]

    def run() -> str:
        proc = subprocess.run([sys.executable, *args], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    assert "4 new, 0 changed, 0 removed, 0 failed; 4 stored" in run()
    assert "0 new, 0 changed, 0 removed, 0 failed; 4 stored" in run()
    # another picture under the same name, and a sound gone
    (media / "rgb_320x200.png").write_bytes((media_dir / "gray_L_300x180.png").read_bytes())
    (media / "click_1s_48k.wav").unlink()
    assert "0 new, 1 changed, 1 removed, 0 failed; 3 stored" in run()

    import chromadb

    def vector(name: str) -> np.ndarray:
        # The example wrote from another process: open the folder afresh each time.
        chromadb.api.client.SharedSystemClient.clear_system_cache()
        client = chromadb.PersistentClient(str(tmp_path / "db"))
        got = client.get_collection("clipclap-llamaindex").get(
            where={"file_name": name}, include=["embeddings"]
        )
        return np.asarray(got["embeddings"][0])

    core = ClipClapEmbedder(model_dir)
    expected = core.embed_images([media_dir / "gray_L_300x180.png"])[0]
    np.testing.assert_allclose(vector("rgb_320x200.png"), expected, atol=1e-5)
    # A broken new file and a changed file that is now broken: both reported, the rest stored,
    # and the changed file's old vector removed (as clipclap index does).
    (media / "broken.png").write_bytes(b"not an image")
    (media / "tall_150x420.jpg").write_bytes(b"not a jpeg either")
    (media / "click_1s_48k.wav").write_bytes((media_dir / "click_1s_48k.wav").read_bytes())
    out = run()
    assert "2 new, 1 changed, 0 removed, 2 failed; 3 stored" in out, out
    assert "skipped " in out and "broken.png" in out and "tall_150x420.jpg" in out
    with pytest.raises(IndexError):
        vector("tall_150x420.jpg")
    expected = core.embed_audio([media_dir / "click_1s_48k.wav"])[0]
    np.testing.assert_allclose(vector("click_1s_48k.wav"), expected, atol=1e-5)


def test_simple_directory_reader_with_the_media_reader(embed_model, core, media_dir, tmp_path):
    """SimpleDirectoryReader (no llama-index-readers-file here) -> from_documents, both indexes."""
    from llama_index.core import SimpleDirectoryReader

    (tmp_path / "caption.txt").write_text(TEXTS[0], encoding="utf-8")
    for name in [*IMAGES, *SOUNDS]:
        (tmp_path / name).write_bytes((media_dir / name).read_bytes())
    plain = SimpleDirectoryReader(str(tmp_path)).load_data()
    reader = SimpleDirectoryReader(str(tmp_path), file_extractor=media_file_extractor())
    documents = reader.load_data()
    kinds = sorted(type(d).__name__ for d in documents)
    assert kinds == ["Document"] * 4 + ["ImageDocument"] * 3

    multimodal = MultiModalVectorStoreIndex.from_documents(
        documents, embed_model=embed_model, image_embed_model=embed_model
    )
    _check_multimodal_index(multimodal, core, media_dir)

    for docs in (documents, plain):  # media decoded as text are recognized by their file_path
        index = ClipClapIndex.from_documents(docs, embed_model=embed_model)
        retriever = index.as_retriever(similarity_top_k=3)
        for name in SOUNDS:
            top = retriever.audio_to_audio(str(media_dir / name))[0].node
            assert isinstance(top, AudioNode) and top.metadata["file_name"] == name
        for name in IMAGES:
            top = retriever.image_to_image(str(media_dir / name))[0].node
            assert isinstance(top, ImageNode) and top.metadata["file_name"] == name
        assert retriever.text_to_text(TEXTS[0])[0].node.get_content() == TEXTS[0]


def test_media_reader_on_another_filesystem(embed_model, core, media_dir: Path):
    """SimpleDirectoryReader(fs=...) over fsspec's memory filesystem: bytes kept inline."""
    import fsspec
    from llama_index.core import SimpleDirectoryReader

    fs = fsspec.filesystem("memory")
    fs.pipe("/clipclap-media/sound.flac", (media_dir / SOUNDS[0]).read_bytes())
    fs.pipe("/clipclap-media/picture.png", (media_dir / IMAGES[0]).read_bytes())
    try:
        reader = SimpleDirectoryReader(
            "/clipclap-media", fs=fs, file_extractor=media_file_extractor()
        )
        documents = reader.load_data()
    finally:
        fs.rm("/clipclap-media", recursive=True)
    assert sorted(type(d).__name__ for d in documents) == ["Document", "ImageDocument"]
    index = ClipClapIndex.from_documents(documents, embed_model=embed_model)
    retriever = index.as_retriever(similarity_top_k=1)
    sound = retriever.text_to_audio("x")[0].node
    picture = retriever.text_to_image("x")[0].node
    np.testing.assert_allclose(
        _vec(index.vector_store.get(sound.node_id)),
        core.embed_audio([media_dir / SOUNDS[0]])[0],
        atol=1e-6,
    )
    np.testing.assert_allclose(
        _vec(index.vector_store.get(picture.node_id)),
        core.embed_images([media_dir / IMAGES[0]])[0],
        atol=1e-6,
    )
