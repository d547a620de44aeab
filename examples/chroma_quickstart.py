"""Quickstart: one Chroma collection of texts, pictures and sounds, searched across modalities.

    pip install "clipclap-integrations[chroma]"
    python examples/chroma_quickstart.py                     # the Hub model antflydb/clipclap
    python examples/chroma_quickstart.py --model ./clipclap  # a local model folder
    python examples/chroma_quickstart.py --db ./chroma-db    # keep the database afterwards

The media are in examples/media (regenerate them with examples/media/make_media.py).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import chromadb

from clipclap_integrations.chroma import (
    ClipClapDataLoader,
    ClipClapEmbeddingFunction,
    query_media,
    upsert_media,
)

MEDIA = Path(__file__).resolve().parent / "media"
IMAGES = ["red_circle.png", "blue_square.png", "sunset.jpg", "tree.png", "night_sky.jpg"]
SOUNDS = ["beep_440hz.wav", "siren.flac", "rain.flac", "clock_ticking.wav", "birds_chirping.flac"]


def build(db: str, model: str | None) -> Any:
    """A persistent collection holding every caption, picture and sound of examples/media."""
    client = chromadb.PersistentClient(path=db)
    collection = client.get_or_create_collection(
        "clipclap-quickstart",
        embedding_function=ClipClapEmbeddingFunction(model),
        data_loader=ClipClapDataLoader(),  # lets Chroma load uris= of images and sounds
    )
    captions = [p.read_text(encoding="utf-8").strip() for p in sorted(MEDIA.glob("*.txt"))]
    files = [MEDIA / name for name in IMAGES + SOUNDS]
    # One call for all three modalities; ids are content hashes, so re-running is harmless.
    upsert_media(collection, captions + files)
    return collection


def label(result: dict[str, Any], q: int, k: int) -> str:
    uri = (result.get("uris") or [[None]])[q][k]
    return Path(uri).name if uri else repr(result["documents"][q][k])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model",
        default=None,
        help="Hub id or local folder (default: $CLIPCLAP_MODEL, else antflydb/clipclap)",
    )
    parser.add_argument("--db", default=None, help="database folder (default: a temp dir)")
    parser.add_argument("-k", type=int, default=3, help="results per query")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="clipclap-chroma-") as tmp:
        collection = build(args.db or tmp, args.model)
        print(f"collection {collection.name!r}: {collection.count()} records\n")
        include = ["uris", "documents", "metadatas", "distances"]
        searches = [
            ("text -> image", "the sun setting over the sea", "image"),
            ("text -> audio", "birds chirping in the morning", "audio"),
            ("image -> audio", MEDIA / "sunset.jpg", "audio"),
            ("audio -> image", MEDIA / "birds_chirping.flac", "image"),
            ("audio -> text", MEDIA / "siren.flac", "text"),
        ]
        print(f"{'search':<15} {'query':<32} {'#':>2}  {'result':<38} {'distance':>8}")
        print("-" * 99)
        for kind, query, modality in searches:
            found = query_media(
                collection, query, n_results=args.k, modality=modality, include=include
            )
            shown = query.name if isinstance(query, Path) else repr(query)
            for k in range(len(found["ids"][0])):
                print(
                    f"{kind if k == 0 else '':<15} {shown if k == 0 else '':<32.32} {k + 1:>2}  "
                    f"{label(found, 0, k):<38.38} {found['distances'][0][k]:>8.4f}"
                )
        # Plain Chroma works too: the data loader reads query_uris, metadata filters modality.
        native = collection.query(
            query_uris=[str(MEDIA / "siren.flac")],
            where={"modality": "audio"},
            n_results=1,
            include=include,
        )
        print(f"\nnearest sound to siren.flac (plain Chroma query_uris): {label(native, 0, 0)}")


if __name__ == "__main__":
    main()
