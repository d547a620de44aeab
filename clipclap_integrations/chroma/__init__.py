"""Chroma adapter: one collection for text, images and audio (extra ``chroma``).

* ``ClipClapEmbeddingFunction``: a Chroma embedding function over the shared core. Importing
  this module registers it under the name ``"clipclap"``, so a collection re-opened with
  ``client.get_collection(name)`` rebuilds it from the stored configuration.
* ``ClipClapDataLoader``: a Chroma data loader for ``uris=``: image AND audio files, ``file://``,
  ``data:`` and http(s) URIs, so ``add(uris=...)``, ``query(query_uris=...)`` and
  ``include=["data"]`` work for both.
* ``add_media`` / ``upsert_media`` / ``query_media``: what Chroma cannot do by itself: mixed
  lists in one call, upserts of media, modality and MIME metadata, content-hash ids.

Example::

    import chromadb
    from clipclap_integrations.chroma import ClipClapDataLoader, ClipClapEmbeddingFunction

    client = chromadb.PersistentClient("db")
    media = client.create_collection(
        "media", embedding_function=ClipClapEmbeddingFunction(), data_loader=ClipClapDataLoader()
    )
    media.add(ids=["dog", "bark"], uris=["dog.jpg", "bark.wav"])
    media.query(query_texts=["a dog barking"], n_results=2)

A collection re-opened later (any process) needs only ``import clipclap_integrations.chroma``
first; pass ``data_loader=ClipClapDataLoader()`` again for ``query_uris``/``include=["data"]``
(Chroma does not store data loaders).
"""

from __future__ import annotations

from ..errors import ModelChangedError, missing_extra

try:
    from chromadb.utils.embedding_functions import register_embedding_function
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise missing_extra("chromadb", "chroma") from exc

from .data_loader import AudioArray, ClipClapDataLoader
from .embedding_function import ClipClapEmbeddingFunction
from .media import aadd_media, add_media, aquery_media, aupsert_media, query_media, upsert_media

# Chroma rebuilds a re-opened collection's function by its stored name: importing the adapter
# must register it.
register_embedding_function(ClipClapEmbeddingFunction)

__all__ = [
    "AudioArray",
    "ClipClapDataLoader",
    "ClipClapEmbeddingFunction",
    "ModelChangedError",
    "aadd_media",
    "add_media",
    "aquery_media",
    "aupsert_media",
    "query_media",
    "upsert_media",
]
