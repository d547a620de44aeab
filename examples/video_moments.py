"""Find the moment: a video's frames and soundtrack in one Chroma collection, with times.

    pip install "clipclap-integrations[chroma,video]"
    python examples/video_moments.py                     # the Hub model antflydb/clipclap
    python examples/video_moments.py --model ./clipclap  # a local model folder ($CLIPCLAP_MODEL)

A short video is made in code (red frames with a 440 Hz tone, then blue frames with a rising
sweep, then green frames with noise), stored as its moments (a frame a second, a soundtrack
window every 10 s, plus the whole video) and searched with a sentence, a picture and a sound.
Each result prints as ``path  mm:ss-mm:ss  score``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import chromadb
import numpy as np
from PIL import Image

from clipclap_integrations import Audio
from clipclap_integrations.chroma import ClipClapEmbeddingFunction, query_media, upsert_media
from clipclap_integrations.testing.video import make_video, sound

SEGMENTS = [(6, (255, 0, 0), 440.0), (6, (0, 0, 255), "sweep"), (8, (0, 160, 0), "noise")]


def clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds + 1e-6), 60)
    return f"{minutes:02d}:{secs:02d}"


def moment(meta: dict[str, Any], uri: str | None) -> str:
    """``path  mm:ss-mm:ss`` for a moment, the path alone for the whole video."""
    path = uri or "?"
    if meta.get("kind") != "moment":
        return path
    return f"{path}  {clock(meta['start_s'])}-{clock(meta['end_s'])}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model",
        default=None,
        help="Hub id or local folder (default: $CLIPCLAP_MODEL, else antflydb/clipclap)",
    )
    parser.add_argument("-k", type=int, default=3, help="results per query")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="clipclap-video-") as tmp:
        video = make_video(Path(tmp) / "clip.mp4", SEGMENTS)
        client = chromadb.PersistentClient(path=str(Path(tmp) / "db"))
        collection = client.create_collection(
            "moments", embedding_function=ClipClapEmbeddingFunction(args.model)
        )
        [whole_id] = upsert_media(collection, [video])  # the moments and the whole video
        print(f"{video.name}: {collection.count()} records (whole video id {whole_id})\n")

        red_picture = Image.fromarray(np.full((240, 320, 3), (255, 0, 0), np.uint8))
        tone = Audio(sound(440.0, 3.0, 48_000), sample_rate=48_000)
        searches = [
            ("sentence", "a blue screen", "'a blue screen'"),
            ("image", red_picture, "a red picture"),
            ("sound", tone, "a 440 Hz tone"),
        ]
        for kind, query, shown in searches:
            found = query_media(
                collection,
                query,
                n_results=args.k,
                modality="video",
                include=["metadatas", "uris", "distances"],
            )
            print(f"{kind}: {shown}")
            for meta, uri, distance in zip(
                found["metadatas"][0], found["uris"][0], found["distances"][0], strict=True
            ):
                track = f"({meta['track']})" if meta.get("track") else "(whole video)"
                print(f"  {moment(meta, uri)}  {1 - distance:.4f}  {track}")
            print()


if __name__ == "__main__":
    main()
