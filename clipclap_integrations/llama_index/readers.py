"""``MediaFileReader``: images and sounds as documents for ``SimpleDirectoryReader``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llama_index.core.readers.base import BaseReader
from llama_index.core.schema import Document, ImageDocument, MediaResource

from ..sniff import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS
from ..types import Modality
from .nodes import file_modality


class MediaFileReader(BaseReader):
    """Reads an image file as an ``ImageDocument`` and a sound file as a ``Document`` whose
    ``audio_resource`` is the file.

    ``SimpleDirectoryReader`` without llama-index-readers-file decodes media files as text;
    give it this reader for them (``media_file_extractor()``). ``MultiModalVectorStoreIndex``
    then indexes the images; ``ClipClapIndex`` indexes images and sounds.
    """

    def load_data(
        self, file: str | Path, extra_info: dict[str, Any] | None = None, **kwargs: Any
    ) -> list[Document]:
        path = Path(file)
        metadata = dict(extra_info or {})
        modality = file_modality(path)
        if modality is Modality.IMAGE:
            return [ImageDocument(image_path=str(path), metadata=metadata)]
        if modality is Modality.AUDIO:
            return [Document(audio_resource=MediaResource(path=path), metadata=metadata)]
        raise ValueError(f"{path} is neither a recognizable image nor a sound")


def media_file_extractor() -> dict[str, BaseReader]:
    """``file_extractor`` for ``SimpleDirectoryReader``: every image and audio extension.

    Example:
        docs = SimpleDirectoryReader("media", file_extractor=media_file_extractor()).load_data()
    """
    reader = MediaFileReader()
    return {ext: reader for ext in sorted(IMAGE_EXTENSIONS | AUDIO_EXTENSIONS)}
