"""``ClipClapVideoReader``: a video as nodes for its moments, already embedded.

A sampled frame becomes an ``ImageNode`` and a soundtrack window an ``AudioNode``, each
carrying the vector ``embed_video`` gave it (the video is decoded once; nothing is embedded
again when the nodes are indexed) and, in metadata, the video's path (``video_path``), the
``track`` ("frames" or "audio") and the moment's ``start_s``/``end_s``. The nodes are tagged
with the modality their vector embeds ("image" or "audio"), so ``ClipClapIndex`` stores them
with everything else and ``ClipClapRetriever`` returns them for a query of any modality
(``text_to_image`` gives frames, ``text_to_audio`` soundtrack windows).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from llama_index.core.readers.base import BaseReader
from llama_index.core.schema import BaseNode, ImageNode

from ..runtime.digests import content_sha256
from ..runtime.model import CLAP_WINDOW_S
from .audio_node import AudioNode, exclude_metadata_keys
from .embedding import ClipClapEmbedding
from .nodes import tag_node_in_place

VIDEO_KEYS = ("video_path", "track", "start_s", "end_s")
"""Metadata keys of a moment's node (kept out of its embedded text)."""


class ClipClapVideoReader(BaseReader):
    """Reads a video into one node per moment (see the module).

    Args:
        embed_model: the ``ClipClapEmbedding`` whose model embeds the moments (the index's:
            query vectors must come from the same model). Default: ``ClipClapEmbedding()``.
        frame_every_s: a frame every this many seconds (default: the model's
            ``frame_every_s`` option, 1 s).
        window_s: the soundtrack's window length in seconds (at most 10).
        keyframes_only: embed only the keyframes (each a moment up to the next).

    Node ids are ``<path hash>-<content hash>-<track>-<k>``: the same video read twice gives
    the same ids. A video that cannot be read raises ``ClipClapInputError`` naming it.

    Example:
        nodes = ClipClapVideoReader(embed_model).load_data("clip.mp4")
        index = ClipClapIndex(nodes, embed_model=embed_model)
        for hit in index.as_retriever().retrieve("a siren wailing"):
            print(hit.node.metadata["start_s"], hit.node.metadata["end_s"])
    """

    def __init__(
        self,
        embed_model: ClipClapEmbedding | None = None,
        *,
        frame_every_s: float | None = None,
        window_s: float = CLAP_WINDOW_S,
        keyframes_only: bool = False,
    ) -> None:
        self.embed_model = embed_model if embed_model is not None else ClipClapEmbedding()
        self.frame_every_s = frame_every_s
        self.window_s = window_s
        self.keyframes_only = keyframes_only

    def load_data(
        self, file: str | os.PathLike[str], extra_info: dict[str, Any] | None = None, **_: Any
    ) -> list[BaseNode]:
        """The moment nodes of the video at ``file`` (``extra_info`` added to each node's
        metadata), frames first, then the soundtrack windows, each in time."""
        path = Path(file).expanduser().resolve()
        moments = self.embed_model.embedder.embed_video(
            path,
            frame_every_s=self.frame_every_s,
            window_s=self.window_s,
            keyframes_only=self.keyframes_only,
        )
        prefix = "-".join(
            (
                hashlib.sha256(str(path).encode()).hexdigest()[:16],
                content_sha256(path)[:16],
            )
        )
        nodes: list[BaseNode] = []
        counts = {"frames": 0, "audio": 0}
        for vector, start, end, track in zip(
            moments.vectors, moments.starts, moments.ends, moments.tracks, strict=True
        ):
            metadata = {
                **(extra_info or {}),
                "video_path": str(path),
                "track": track,
                "start_s": float(start),
                "end_s": float(end),
            }
            common: dict[str, Any] = {
                "id_": f"{prefix}-{track}-{counts[track]}",
                "text": "",
                "metadata": metadata,
                "embedding": [float(x) for x in vector],
            }
            counts[track] += 1
            node: BaseNode = ImageNode(**common) if track == "frames" else AudioNode(**common)
            exclude_metadata_keys(node, VIDEO_KEYS)
            tag_node_in_place(node)
            nodes.append(node)
        return nodes
