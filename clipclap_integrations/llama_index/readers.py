"""``MediaFileReader``: images and sounds as documents for ``SimpleDirectoryReader``."""

from __future__ import annotations

import mimetypes
from pathlib import Path
from typing import Any

from llama_index.core.readers.base import BaseReader
from llama_index.core.schema import Document, ImageDocument, MediaResource

from ..inputs.files import HEAD_BYTES, kind_of
from ..inputs.sniff import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS
from ..types import Modality
from .loading import file_modality


class MediaFileReader(BaseReader):
    """Reads an image file as an ``ImageDocument`` and a sound file as a ``Document`` whose
    ``audio_resource`` is the file.

    ``SimpleDirectoryReader`` without llama-index-readers-file decodes media files as text;
    give it this reader for them (``media_file_extractor()``). ``MultiModalVectorStoreIndex``
    then indexes the images; ``ClipClapIndex`` indexes images and sounds. Files from a
    non-local fsspec filesystem (``SimpleDirectoryReader(..., fs=...)``) are stored inline.
    """

    def load_data(
        self,
        file: str | Path,
        extra_info: dict[str, Any] | None = None,
        fs: Any = None,
        **kwargs: Any,
    ) -> list[Document]:
        """One document for ``file``; from an fsspec filesystem ``fs`` other than the local
        disk (``SimpleDirectoryReader(..., fs=...)``), the bytes are read and kept inline."""
        path = Path(file)
        metadata = dict(extra_info or {})
        if fs is not None and not _is_local(fs):
            with fs.open(str(file), "rb") as f:
                data = f.read()
            kind = kind_of(path.name, data[:HEAD_BYTES])
            modality = kind[0] if kind else None
            mimetype = mimetypes.guess_type(path.name)[0]
            if modality is Modality.IMAGE:
                return [ImageDocument(image=data, image_mimetype=mimetype, metadata=metadata)]
            if modality is Modality.AUDIO:
                resource = MediaResource(data=data, mimetype=mimetype)
                return [Document(audio_resource=resource, metadata=metadata)]
        else:
            modality = file_modality(path)
            if modality is Modality.IMAGE:
                return [ImageDocument(image_path=str(path), metadata=metadata)]
            if modality is Modality.AUDIO:
                return [Document(audio_resource=MediaResource(path=path), metadata=metadata)]
        raise ValueError(f"{path} is neither a recognizable image nor a sound")


def _is_local(fs: Any) -> bool:
    protocol = getattr(fs, "protocol", None)
    protocols = protocol if isinstance(protocol, tuple | list) else (protocol,)
    return bool({"file", "local"} & set(protocols))


def media_file_extractor() -> dict[str, BaseReader]:
    """``file_extractor`` for ``SimpleDirectoryReader``: every image and audio extension.

    Example:
        docs = SimpleDirectoryReader("media", file_extractor=media_file_extractor()).load_data()
    """
    reader = MediaFileReader()
    return {ext: reader for ext in sorted(IMAGE_EXTENSIONS | AUDIO_EXTENSIONS)}
