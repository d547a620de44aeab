"""Nodes and documents from files: ``load_media_nodes``, ``media_node_from_document`` and
``MediaFileReader`` (media documents for ``SimpleDirectoryReader``)."""

from __future__ import annotations

import logging
import mimetypes
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from llama_index.core.readers.base import BaseReader
from llama_index.core.schema import (
    BaseNode,
    Document,
    ImageDocument,
    ImageNode,
    MediaResource,
    MetadataMode,
    Node,
    NodeRelationship,
    TextNode,
)

from ..errors import ClipClapInputError
from ..inputs.files import HEAD_BYTES, file_kind, kind_of, read_text_file
from ..inputs.sniff import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS
from ..media.audio import decode_audio
from ..media.image import open_image
from ..types import Modality
from .audio_node import AudioNode
from .nodes import node_modality

logger = logging.getLogger(__name__)


def media_node_from_document(document: BaseNode) -> BaseNode | None:
    """An ``ImageNode`` / ``AudioNode`` for a document holding an image or a sound, else None.

    A document holds media through its ``image_resource`` / ``audio_resource``, or, when a
    reader decoded a media file as text (``SimpleDirectoryReader`` does that without
    llama-index-readers-file), through ``metadata["file_path"]``; that text is dropped. A
    document with text of its own about a media file (a transcript) stays text. The
    node keeps the document's caption text, metadata and a SOURCE relationship to it.
    """
    if not isinstance(document, Node):
        return None
    modality = node_modality(document)
    text = (document.text_resource.text or "") if document.text_resource else ""
    data = path = url = mimetype = None
    if modality is not Modality.TEXT:
        res = document.audio_resource if modality is Modality.AUDIO else document.image_resource
        assert res is not None
        data = res.data.decode("ascii") if res.data else None
        path = str(res.path) if res.path is not None else None
        url = str(res.url) if res.url is not None else None
        mimetype = res.mimetype
    else:
        file_path = document.metadata.get("file_path")
        if not isinstance(file_path, str) or not Path(file_path).is_file():
            return None
        try:
            modality = file_modality(Path(file_path)) or Modality.TEXT
        except OSError:  # unreadable now: nothing to embed but the text given
            return None
        if modality is Modality.TEXT or not _is_file_read_as_text(text, Path(file_path)):
            return None  # text of its own (a transcript, a caption) about the file: text
        text, path = "", file_path
    common: dict[str, Any] = {
        "text": text,
        "metadata": dict(document.metadata),
        "excluded_embed_metadata_keys": list(document.excluded_embed_metadata_keys),
        "excluded_llm_metadata_keys": list(document.excluded_llm_metadata_keys),
        "relationships": {NodeRelationship.SOURCE: document.as_related_node_info()},
    }
    if modality is Modality.AUDIO:
        return AudioNode(
            audio=data, audio_path=path, audio_url=url, audio_mimetype=mimetype, **common
        )
    return ImageNode(image=data, image_path=path, image_url=url, image_mimetype=mimetype, **common)


def media_node_for(node: BaseNode) -> BaseNode | None:
    """The image or sound node ``node`` is or stands for, or None for a text node.

    ``ImageNode`` / ``AudioNode``: itself. A document: ``media_node_from_document``. A plain
    ``TextNode`` with no text that a splitter made of a media document (LlamaIndex's node
    parsers turn every document but an ``ImageDocument`` into a ``TextNode``):
    ``recovered_media_node``.
    """
    if isinstance(node, AudioNode | ImageNode):
        return node
    if isinstance(node, Node):
        return media_node_from_document(node)
    return recovered_media_node(node)


def recovered_media_node(node: BaseNode) -> BaseNode | None:
    """For a ``TextNode`` with no text whose metadata names an image or sound file
    (``file_path``, as ``SimpleDirectoryReader`` sets, and ``file_type``): the ``ImageNode`` /
    ``AudioNode`` it was before a splitter made text of it (same id, metadata, relationships).
    None for any other node.

    Raises ``ClipClapInputError`` naming the node when it stands for media that cannot be
    found again (the file is gone, or was read from another filesystem): embedded as text it
    would be a wrong record.
    """
    if type(node) is not TextNode or node.text.strip():
        return None
    file_path = node.metadata.get("file_path")
    file_type = str(node.metadata.get("file_type") or "")
    suffix = Path(file_path).suffix.lower() if isinstance(file_path, str) else ""
    looks_like_media = file_type.startswith(("image/", "audio/")) or suffix in (
        IMAGE_EXTENSIONS | AUDIO_EXTENSIONS
    )
    if not looks_like_media:
        return None
    modality = None
    if isinstance(file_path, str) and Path(file_path).is_file():
        try:
            modality = file_modality(Path(file_path))
        except OSError:
            modality = None
    if modality is None or modality is Modality.TEXT:
        raise ClipClapInputError(
            "an image or sound that a text splitter turned into a text node with no text, "
            "and whose file cannot be read again: keep media documents out of text splitters",
            item=f"node {node.node_id!r}, {file_path!r}",
        )
    common: dict[str, Any] = {
        "id_": node.node_id,
        "text": "",
        "metadata": dict(node.metadata),
        "excluded_embed_metadata_keys": list(node.excluded_embed_metadata_keys),
        "excluded_llm_metadata_keys": list(node.excluded_llm_metadata_keys),
        "relationships": dict(node.relationships),
    }
    if modality is Modality.AUDIO:
        return AudioNode(audio_path=file_path, **common)
    return ImageNode(image_path=file_path, **common)


def stands_for_audio(node: BaseNode) -> bool:
    """Whether ``node`` holds a sound (``AudioNode``, ``audio_resource``), or is the empty
    text node a text splitter made of one (metadata ``file_type`` / ``file_path``)."""
    try:
        if node_modality(node) is Modality.AUDIO:
            return True
    except ValueError:  # both an image and a sound
        return True
    if node.get_content(metadata_mode=MetadataMode.NONE).strip():
        return False
    file_path = node.metadata.get("file_path")
    suffix = Path(file_path).suffix.lower() if isinstance(file_path, str) else ""
    file_type = str(node.metadata.get("file_type") or "")
    return file_type.startswith("audio/") or suffix in AUDIO_EXTENSIONS


def repaired_media_nodes(nodes: Iterable[BaseNode], who: str) -> list[BaseNode]:
    """``nodes`` with each text node a splitter made of an image or sound turned back into a
    media node, and those that cannot be (``recovered_media_node``) left out; both warned
    about, naming the nodes, as ``who``."""
    out: list[BaseNode] = []
    repaired: list[str] = []
    for node in nodes:
        try:
            media = recovered_media_node(node)
        except ClipClapInputError as exc:
            logger.warning("%s: left out %s: %s", who, exc.item_description, exc.reason)
            continue
        if media is not None:
            repaired.append(f"{node.node_id!r} ({node.metadata.get('file_path')})")
        out.append(node if media is None else media)
    if repaired:
        logger.warning(
            "%s: %d image/sound node(s) arrived as text nodes with no text (a text splitter "
            "made them; keep media documents out of it, or use ClipTextSplitter, which passes "
            "them through): embedded as media again: %s",
            who,
            len(repaired),
            ", ".join(repaired[:5]) + (" ..." if len(repaired) > 5 else ""),
        )
    return out


def _is_file_read_as_text(text: str, path: Path) -> bool:
    """Whether ``text`` is the file itself decoded as text (what a reader without a media
    parser stores: ``SimpleDirectoryReader`` decodes UTF-8, ignoring errors), or empty."""
    if not text.strip():
        return True
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    for errors in ("ignore", "replace"):
        decoded = head.decode("utf-8", errors=errors)[:-4]  # the cut may split a character
        if decoded and text.startswith(decoded):
            return True
    return False


def file_modality(path: Path) -> Modality | None:
    """The modality of a file (``inputs.files.file_kind``); None for other files.

    Raises ``OSError`` when the file cannot be read.
    """
    kind = file_kind(path)
    return kind[0] if kind else None


def load_media_nodes(
    folder: str | Path | Iterable[str | Path],
    *,
    recursive: bool = True,
    raise_on_error: bool = False,
    verify: bool = True,
) -> list[BaseNode]:
    """Nodes for a folder (or list) of mixed media: ``ImageNode``, ``AudioNode``, ``TextNode``.

    Images and sounds are recognized by content, then extension; text files (``.txt``, ``.md``,
    ``.rst``...) become
    text nodes. In a folder, other files are skipped, and a file that cannot be read is logged
    (a warning) and left out, or raises with ``raise_on_error=True`` (as in
    ``SimpleDirectoryReader``); a listed path that is missing, unreadable or of another kind is
    always an error naming it. With ``verify`` (the default) each image and sound is decoded
    once, so that a truncated or corrupt file counts as unreadable here rather than failing
    at indexing. Node ids derive from the resolved path, so indexing the same
    files again updates rather than duplicates. Metadata: ``file_name``, ``file_path``.
    """
    listed = not isinstance(folder, str | Path)
    if isinstance(folder, str | Path):
        root = Path(folder).expanduser()
        if not root.is_dir():
            raise FileNotFoundError(f"no such folder: {root}")
        pattern = root.rglob("*") if recursive else root.glob("*")
        paths = sorted(p for p in pattern if p.is_file() and not p.name.startswith("."))
    else:
        paths = [Path(p).expanduser() for p in folder]
        for i, path in enumerate(paths):
            if not path.is_file():
                raise FileNotFoundError(f"item {i}: no such file: {str(path)!r}")
    nodes: list[BaseNode] = []
    for i, path in enumerate(paths):
        try:
            node = _file_node(path, verify)
        except (OSError, ClipClapInputError) as exc:
            reason = exc.reason if isinstance(exc, ClipClapInputError) else exc.strerror or exc
            if listed:
                raise ClipClapInputError(
                    f"cannot be read ({reason})", index=i, item=repr(str(path))
                ) from None
            if raise_on_error:
                raise
            logger.warning("load_media_nodes: skipped %s, which cannot be read (%s)", path, reason)
            continue
        if node is not None:
            nodes.append(node)
        elif listed:
            raise ClipClapInputError(
                "neither an image, a sound nor a text file (.txt, .md, .rst...)",
                index=i,
                item=repr(str(path)),
            )
    return nodes


def _file_node(path: Path, verify: bool) -> BaseNode | None:
    modality = file_modality(path)
    if modality is None:
        return None
    if verify:
        check_media_file(path, modality)
    resolved = path.resolve()
    common: dict[str, Any] = {
        "id_": str(uuid.uuid5(uuid.NAMESPACE_URL, resolved.as_uri())),
        "metadata": {"file_name": path.name, "file_path": str(resolved)},
        "excluded_embed_metadata_keys": ["file_name", "file_path"],
        "excluded_llm_metadata_keys": ["file_path"],
    }
    if modality is Modality.IMAGE:
        return ImageNode(image_path=str(resolved), **common)
    if modality is Modality.AUDIO:
        return AudioNode(audio_path=str(resolved), **common)
    text = read_text_file(path, errors="replace")
    return TextNode(text=text, **common)


def check_media_file(path: Path, modality: Modality) -> None:
    """Decode the image or sound at ``path`` once; ``ClipClapInputError`` if it cannot be
    (truncated, corrupt, empty, or over the default pixel limit: a decompression bomb is not
    decoded here). The length of a sound is the embedder's to judge (``long_audio``)."""
    if modality is Modality.IMAGE:
        open_image(path, resize_to=None).close()
    elif modality is Modality.AUDIO:
        decode_audio(path, max_seconds=None)


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
