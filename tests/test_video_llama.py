"""Video in LlamaIndex: ``ClipClapVideoReader`` nodes carry the moments' times, track, path and
vectors (those ``embed_video`` gives, checked against frames decoded with PyAV directly), and
``ClipClapIndex`` retrieves them for text and image queries, also through Chroma."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

av = pytest.importorskip("av")
pytest.importorskip("llama_index.core")

from inputs_media import frame_at  # noqa: E402
from llama_index.core.schema import ImageNode  # noqa: E402

from clipclap_integrations import ClipClapInputError  # noqa: E402
from clipclap_integrations.llama_index import (  # noqa: E402
    AudioNode,
    ClipClapEmbedding,
    ClipClapIndex,
    ClipClapVideoReader,
)

ATOL = 1e-5
_names = itertools.count()


@pytest.fixture(scope="module")
def embed_model(tiny_model_dir: Path) -> ClipClapEmbedding:
    return ClipClapEmbedding(tiny_model_dir)


def test_the_reader_makes_one_node_per_moment(embed_model: ClipClapEmbedding, video: Path) -> None:
    nodes = ClipClapVideoReader(embed_model).load_data(video, extra_info={"topic": "colors"})
    frames = [n for n in nodes if n.metadata["track"] == "frames"]
    sound = [n for n in nodes if n.metadata["track"] == "audio"]
    assert len(frames) == 12 and len(sound) == 2
    assert all(isinstance(n, ImageNode) and n.metadata["modality"] == "image" for n in frames)
    assert all(isinstance(n, AudioNode) and n.metadata["modality"] == "audio" for n in sound)
    for k, node in enumerate(frames):
        assert node.metadata["start_s"] == pytest.approx(k)
        assert node.metadata["end_s"] == pytest.approx(k + 1)
        assert node.metadata["video_path"] == str(video.resolve())
        assert node.metadata["topic"] == "colors"
    assert sound[-1].metadata["end_s"] == pytest.approx(12.0, abs=0.1)
    # the vector of a frame node is the frame decoded independently, embedded as an image
    reference = embed_model.embedder.embed_images([frame_at(video, 7.0)])[0]
    np.testing.assert_allclose(frames[7].embedding, reference, atol=ATOL)
    # the same video read again: the same ids
    again = ClipClapVideoReader(embed_model).load_data(str(video))
    assert [n.node_id for n in again] == [n.node_id for n in nodes]
    with pytest.raises(ClipClapInputError, match="nope"):
        ClipClapVideoReader(embed_model).load_data(video.parent / "nope.mp4")


def test_the_index_retrieves_moments(embed_model: ClipClapEmbedding, video: Path) -> None:
    nodes = ClipClapVideoReader(embed_model).load_data(video)

    def no_model(*args: object, **kwargs: object) -> None:
        raise AssertionError("a moment node was embedded again")

    with pytest.MonkeyPatch.context() as patch:  # the nodes carry their vectors
        patch.setattr(embed_model.embedder.encoders, "project", no_model)
        index = ClipClapIndex(nodes, embed_model=embed_model, raise_on_error=True)
    retriever = index.as_retriever(similarity_top_k=20)
    hits = retriever.retrieve("a red square")
    assert len(hits) == 14 and all("start_s" in h.node.metadata for h in hits)
    query = embed_model.embedder.embed_text(["a red square"])[0]
    expected = max(float(np.dot(n.embedding, query)) for n in nodes)
    assert hits[0].score == pytest.approx(expected, abs=1e-4)
    frames = retriever.text_to_image("a red square")
    assert frames and all(h.node.metadata["track"] == "frames" for h in frames)
    sound = retriever.text_to_audio("a siren")
    assert sound and all(h.node.metadata["track"] == "audio" for h in sound)
    # a decoded red frame finds a red moment first, a blue frame a blue one
    for t, red in ((2.0, True), (9.0, False)):
        top = retriever.image_to_image(frame_at(video, t))[0].node.metadata
        assert top["track"] == "frames" and (top["start_s"] < 6) == red


def test_moments_through_chroma(
    embed_model: ClipClapEmbedding, video: Path, tmp_path: Path
) -> None:
    chromadb = pytest.importorskip("chromadb")
    stores = pytest.importorskip("llama_index.vector_stores.chroma")
    from llama_index.core import StorageContext

    client = chromadb.PersistentClient(
        path=str(tmp_path / "db"), settings=chromadb.Settings(anonymized_telemetry=False)
    )
    collection = client.create_collection(
        f"moments-{next(_names)}", configuration={"hnsw": {"space": "cosine"}}
    )
    store = stores.ChromaVectorStore(chroma_collection=collection)
    nodes = ClipClapVideoReader(embed_model).load_data(video)
    index = ClipClapIndex(
        nodes,
        embed_model=embed_model,
        storage_context=StorageContext.from_defaults(vector_store=store),
    )
    hits = index.as_retriever(similarity_top_k=3).text_to_audio("a tone")
    assert hits and isinstance(hits[0].node, AudioNode)
    assert hits[0].node.metadata["track"] == "audio"
    assert hits[0].node.metadata["video_path"] == str(video.resolve())
