"""Multimodal retrieval with LlamaIndex: captions, pictures and sounds in ONE Chroma collection.

    pip install "clipclap-integrations[llama-index]"
    python examples/llamaindex_multimodal_rag.py                     # Hub model antflydb/clipclap
    python examples/llamaindex_multimodal_rag.py --model ./clipclap  # a local model folder
    python examples/llamaindex_multimodal_rag.py --db ./llama-db --query "rain at night" \\
        --audio-query examples/media/siren.flac --generate

A folder of mixed media becomes nodes (ImageNode, AudioNode, TextNode), the nodes go into a
persistent Chroma collection through ``ClipClapIndex``, and one retriever answers a text query
with pictures and sounds, and a sound with pictures. Retrieval needs no LLM and no API key;
``--generate`` shows where a multimodal LLM would take the retrieved media to write an answer.
Re-running reuses the database: node ids derive from file paths, so only new and changed files
are embedded, and nodes of files no longer in the folder are removed. A file that cannot be
embedded is reported and skipped (if it changed, its old vector goes: it described content
that is gone); a file that cannot be opened is logged and keeps its vector.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import chromadb
from llama_index.core.base.llms.types import ChatMessage, ContentBlock, TextBlock
from llama_index.core.llms import LLM
from llama_index.core.schema import BaseNode, MetadataMode, NodeWithScore
from llama_index.vector_stores.chroma import ChromaVectorStore

from clipclap_integrations import ClipClapInputError
from clipclap_integrations.llama_index import (
    MODALITY_KEY,
    AudioNode,
    ClipClapEmbedding,
    ClipClapIndex,
    embed_nodes,
    load_media_nodes,
)

HERE = Path(__file__).resolve().parent
MEDIA_DIRS = [HERE / "media", HERE.parent / "tests" / "fixtures" / "media"]
COLLECTION = "clipclap-llamaindex"
SIGNATURE = "file_signature"


def build_or_update(db: str, media: Path, embed_model: ClipClapEmbedding) -> ClipClapIndex:
    """The index over a persistent Chroma collection, with every file of ``media`` in it."""
    client = chromadb.PersistentClient(path=db)
    collection = client.get_or_create_collection(
        COLLECTION, configuration={"hnsw": {"space": "cosine"}}
    )
    index = ClipClapIndex.from_vector_store(
        ChromaVectorStore(chroma_collection=collection), embed_model=embed_model
    )
    # verify=False: broken files are kept here, to be reported by embed_or_report and to have
    # their old vectors removed when they changed
    nodes = load_media_nodes(media, verify=False)
    for node in nodes:  # what tells a changed file: its size and modification time
        st = os.stat(node.metadata["file_path"])
        node.metadata[SIGNATURE] = f"{st.st_size}:{st.st_mtime_ns}"
        node.excluded_embed_metadata_keys.append(SIGNATURE)
        node.excluded_llm_metadata_keys.append(SIGNATURE)
    everything = collection.get(include=["metadatas"])
    stored = {i: m or {} for i, m in zip(everything["ids"], everything["metadatas"], strict=True)}
    root = str(media.resolve()) + os.sep
    current = {n.node_id for n in nodes}
    gone = [  # deleted files (a file that is there but cannot be read keeps its vector)
        i
        for i, m in stored.items()
        if i not in current
        and str(m.get("file_path", "")).startswith(root)
        and not os.path.exists(m["file_path"])
    ]
    changed = [
        n
        for n in nodes
        if n.node_id in stored and stored[n.node_id].get(SIGNATURE) != n.metadata[SIGNATURE]
    ]
    new = [n for n in nodes if n.node_id not in stored]
    # Embed first, then replace: an error never leaves the collection half-updated. A changed
    # file that can no longer be embedded is reported and its old vector removed (it described
    # content that is gone), as `clipclap index` does.
    embedded, failed = embed_or_report(new + changed, embed_model)
    if gone or changed:
        collection.delete(ids=gone + [n.node_id for n in changed])
    if embedded:
        index.insert_nodes(embedded)  # vectors already set: stored as they are
    print(
        f"{len(nodes)} files in {media}; {len(new)} new, {len(changed)} changed, "
        f"{len(gone)} removed, {len(failed)} failed; {collection.count()} stored"
    )
    for path, reason in failed:
        print(f"  skipped {path}: {reason}")
    return index


def embed_or_report(
    nodes: list[BaseNode], embed_model: ClipClapEmbedding
) -> tuple[list[BaseNode], list[tuple[str, str]]]:
    """Embed ``nodes`` by their own content, batch by batch; a batch with an unreadable file
    is embedded node by node, so one bad file costs only itself."""
    embedded: list[BaseNode] = []
    failed: list[tuple[str, str]] = []
    size = embed_model.embed_batch_size
    for start in range(0, len(nodes), size):
        batch = nodes[start : start + size]
        try:
            vectors = embed_nodes(batch, embed_model)
        except ClipClapInputError:
            vectors = []
            for node in batch:
                try:
                    vectors.extend(embed_nodes([node], embed_model))
                except ClipClapInputError as exc:
                    failed.append((node.metadata.get("file_path", node.node_id), exc.reason))
                    vectors.append(None)
        for node, vector in zip(batch, vectors, strict=True):
            if vector is not None:
                node.embedding = vector
                embedded.append(node)
    return embedded, failed


def show(title: str, hits: list[NodeWithScore]) -> None:
    print(f"\n{title}")
    for hit in hits:
        node = hit.node
        name = node.metadata.get("file_name") or node.get_content()[:40]
        print(f"  {hit.score or 0.0:6.3f}  {node.metadata.get(MODALITY_KEY, '?'):5}  {name}")


def generate(question: str, hits: list[NodeWithScore], llm: LLM | None = None) -> str:
    """Where generation plugs in: the retrieved media become one multimodal chat message.

    Pass any LlamaIndex LLM that takes image/audio blocks (e.g. ``OpenAI(model="gpt-4o")``
    from llama-index-llms-openai, or a local one). Without one, describe the message.
    """
    blocks: list[ContentBlock] = [TextBlock(text=f"Answer using these media: {question}")]
    for hit in hits:
        blocks.extend(hit.node.get_content_blocks(MetadataMode.LLM))  # type: ignore[arg-type]
    message = ChatMessage(role="user", blocks=blocks)
    if llm is None:
        kinds = ", ".join(type(b).__name__ for b in message.blocks)
        return f"(no LLM configured) would send one message with: {kinds}"
    return str(llm.chat([message]).message.content)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model",
        default=None,
        help="local folder or Hub id (default: $CLIPCLAP_MODEL, else antflydb/clipclap)",
    )
    parser.add_argument("--media", type=Path, default=None, help="folder of mixed media")
    parser.add_argument("--db", default=None, help="Chroma folder (default: a temporary one)")
    parser.add_argument("--query", default="birds singing in the morning")
    parser.add_argument("--audio-query", type=Path, default=None, help="a sound to search with")
    parser.add_argument("--top-k", type=int, default=3)
    parser.add_argument("--generate", action="store_true", help="show the LLM hand-off")
    args = parser.parse_args(argv)

    if args.media is not None and not args.media.is_dir():
        parser.error(f"--media {args.media}: no such folder")
    media = args.media or next((d for d in MEDIA_DIRS if d.is_dir()), None)
    if media is None:
        parser.error(f"no media folder: pass --media (looked in {', '.join(map(str, MEDIA_DIRS))})")
    embed_model = ClipClapEmbedding(args.model)
    with tempfile.TemporaryDirectory() as scratch:
        index = build_or_update(args.db or scratch, media, embed_model)
        retriever = index.as_retriever(similarity_top_k=args.top_k)

        images = retriever.text_to_image(args.query)
        sounds = retriever.text_to_audio(args.query)
        show(f"text {args.query!r} -> images", images)
        show(f"text {args.query!r} -> sounds", sounds)

        files = [n.audio_path for n in load_media_nodes(media) if isinstance(n, AudioNode)]
        sound = args.audio_query or (Path(files[0]) if files else None)
        if sound is not None:
            show(f"sound {sound.name} -> images", retriever.audio_to_image(str(sound)))
            show(f"sound {sound.name} -> sounds", retriever.audio_to_audio(str(sound)))

        if args.generate:
            print("\n" + generate(args.query, images + sounds))


if __name__ == "__main__":
    main()
