"""``AudioNode``, the modality of a node, and embedding nodes by their own content."""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import mimetypes
import uuid
from collections.abc import Iterable, Sequence
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any

import filetype  # a llama-index-core dependency
from llama_index.core.base.embeddings.base import Embedding
from llama_index.core.schema import (
    BaseNode,
    ImageNode,
    MediaResource,
    MetadataMode,
    Node,
    NodeRelationship,
    NodeWithScore,
    TextNode,
)

from ..errors import ClipClapInputError
from ..inputs.files import file_kind
from ..types import Modality

if TYPE_CHECKING:
    from llama_index.core.base.llms.types import BaseContentBlock

    from .embedding import ClipClapEmbedding

logger = logging.getLogger(__name__)

MODALITY_KEY = "modality"
"""Metadata key holding what a node's vector embeds: ``"text"``, ``"image"`` or ``"audio"``."""

# AudioNode attribute -> metadata key. Kept in metadata so that every vector store and docstore
# round trip (which rebuild unknown node classes as TextNode) keeps them.
_AUDIO_KEYS = {
    "audio": "audio_base64",
    "audio_path": "audio_path",
    "audio_url": "audio_url",
    "audio_mimetype": "audio_mimetype",
}


def _add_excluded(keys: list[str], new: Iterable[str]) -> list[str]:
    return keys + [k for k in new if k not in keys]


def _audio_property(attribute: str) -> property:
    key = _AUDIO_KEYS[attribute]

    def get(self: AudioNode) -> str | None:
        return self.metadata.get(key) or None  # stores may turn None into ""

    def set_(self: AudioNode, value: str | None) -> None:
        metadata = {k: v for k, v in self.metadata.items() if k != key}
        if value is not None:
            metadata[key] = str(value)
        TextNode.__setattr__(self, "metadata", metadata)  # a removal here is meant

    return property(get, set_, doc=f"``metadata[{key!r}]``")


class AudioNode(TextNode):
    """A node holding a sound, in the spirit of ``ImageNode``.

    Give one of ``audio`` (base64 string, or raw bytes which are encoded), ``audio_path`` or
    ``audio_url``, and optionally ``audio_mimetype`` and ``text`` (a caption or transcript).
    ``ClipClapIndex`` embeds the sound itself, so a node without text is indexed too.

    The four audio attributes are stored in ``metadata`` (excluded from embedding and LLM
    text), so they survive vector stores and docstores, which rebuild unknown node classes as
    ``TextNode``; ``restore_audio_nodes`` turns such nodes back into ``AudioNode``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        resource = kwargs.pop("audio_resource", None)
        given = {name: kwargs.pop(name, None) for name in _AUDIO_KEYS}
        if isinstance(resource, dict):
            resource = MediaResource(**resource)
        if isinstance(resource, MediaResource):
            given["audio"] = given["audio"] or resource.data
            given["audio_path"] = given["audio_path"] or resource.path
            given["audio_url"] = given["audio_url"] or resource.url
            given["audio_mimetype"] = given["audio_mimetype"] or resource.mimetype
        super().__init__(*args, **kwargs)
        keys = list(_AUDIO_KEYS.values())
        self.excluded_embed_metadata_keys = _add_excluded(self.excluded_embed_metadata_keys, keys)
        self.excluded_llm_metadata_keys = _add_excluded(self.excluded_llm_metadata_keys, keys)
        data = given["audio"]
        if isinstance(data, bytes | bytearray):  # raw bytes, or base64 bytes (MediaResource)
            data = (bytes(data) if _is_base64(data) else base64.b64encode(data)).decode("ascii")
        elif isinstance(data, str):
            data, mimetype = _base64_audio(data, self.node_id)
            given["audio_mimetype"] = given["audio_mimetype"] or mimetype
        given["audio"] = data
        for name, value in given.items():
            if value is not None:
                setattr(self, name, str(value))
        if self.audio_mimetype is None and self.audio is not None:
            kind = filetype.guess(base64.b64decode(self.audio[:64]))
            self.audio_mimetype = kind.mime if kind else None
        elif self.audio_mimetype is None and self.audio_path is not None:
            self.audio_mimetype = mimetypes.guess_type(self.audio_path)[0]

    def __setattr__(self, name: str, value: Any) -> None:
        # The sound lives in metadata: replacing the metadata keeps it (clear it through
        # the audio attributes themselves).
        if name == "metadata" and isinstance(value, dict):
            old = self.__dict__.get("metadata") or {}
            kept = {k: old[k] for k in _AUDIO_KEYS.values() if k in old and k not in value}
            value = {**value, **kept}
        super().__setattr__(name, value)

    audio = _audio_property("audio")
    audio_path = _audio_property("audio_path")
    audio_url = _audio_property("audio_url")
    audio_mimetype = _audio_property("audio_mimetype")

    @classmethod
    def class_name(cls) -> str:
        return "AudioNode"

    @classmethod
    def from_node(cls, node: BaseNode) -> AudioNode:
        """An ``AudioNode`` from the ``TextNode`` a store returned for one."""
        return cls.from_dict(node.to_dict())

    def resolve_audio(self) -> str | BytesIO:
        """The sound in a form soundfile and ``ClipClapEmbedding`` read.

        ``BytesIO`` of the inline data, else the local path, else the URL's content.
        """
        if self.audio is not None:
            return BytesIO(base64.b64decode(self.audio))
        if self.audio_path is not None:
            return self.audio_path
        if self.audio_url is not None:
            from ..inputs.remote import fetch

            return BytesIO(fetch(self.audio_url, timeout=60.0, max_bytes=256 * 2**20).data)
        raise ValueError(f"AudioNode {self.node_id} has no audio, audio_path or audio_url")

    def get_content_blocks(
        self, metadata_mode: MetadataMode = MetadataMode.NONE
    ) -> list[BaseContentBlock]:
        """Metadata and caption as text blocks, then the sound as an ``AudioBlock``."""
        from llama_index.core.base.llms.types import AudioBlock, TextBlock

        blocks: list[BaseContentBlock] = list(self.get_metadata_content_blocks(metadata_mode))
        if self.text:
            blocks.append(TextBlock(text=self.text))
        kind = filetype.get_type(mime=self.audio_mimetype) if self.audio_mimetype else None
        blocks.append(
            AudioBlock(
                audio=self.audio.encode("ascii") if self.audio else None,
                path=self.audio_path,
                url=self.audio_url,
                format=kind.extension if kind else None,
            )
        )
        return blocks


def _base64_audio(data: str, node_id: str) -> tuple[str, str | None]:
    """``audio=`` given as a string: base64 (checked), or a ``data:`` URI (unwrapped)."""
    mimetype = None
    if data[:5].lower() == "data:":
        header, sep, payload = data.partition(",")
        if not sep or not header.lower().endswith(";base64"):
            raise ValueError(f"AudioNode {node_id}: audio= takes a base64 data: URI")
        mimetype, data = header[5:-7] or None, payload
    data = "".join(data.split())  # line breaks of MIME-style base64
    data += "=" * (-len(data) % 4)  # padding left off
    try:
        base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(
            f"AudioNode {node_id}: audio= must be base64 data or raw bytes, got "
            f"{data[:40]!r}: for a file use audio_path=, for a link audio_url="
        ) from None
    return data, mimetype


def _is_base64(data: bytes | bytearray) -> bool:
    try:
        base64.b64decode(bytes(data), validate=True)
    except ValueError:
        return False
    return bool(data)


# -- what a node holds ------------------------------------------------------------------------
def node_modality(node: BaseNode) -> Modality:
    """Which encoder embeds ``node``: its sound, its image, or else its text.

    ``AudioNode`` -> audio; ``ImageNode`` -> image; a ``Node``/``Document`` by its
    ``audio_resource`` or ``image_resource`` (not both); everything else -> text.
    """
    if isinstance(node, AudioNode):
        return Modality.AUDIO
    if isinstance(node, ImageNode):
        return Modality.IMAGE
    if isinstance(node, Node):
        has_audio = _has_media(node.audio_resource)
        has_image = _has_media(node.image_resource)
        if has_audio and has_image:
            raise ValueError(
                f"node {node.node_id} has both an image_resource and an audio_resource; "
                "one vector cannot hold both: make one node per medium"
            )
        if has_audio:
            return Modality.AUDIO
        if has_image:
            return Modality.IMAGE
    return Modality.TEXT


def _has_media(resource: MediaResource | None) -> bool:
    return resource is not None and any(
        v is not None for v in (resource.data, resource.path, resource.url)
    )


def media_source(node: BaseNode) -> Any:
    """The image or sound of a media node, as the core takes it (bytes, path or URL)."""
    modality = node_modality(node)
    if isinstance(node, AudioNode):
        data, path, url = node.audio, node.audio_path, node.audio_url
    elif isinstance(node, ImageNode):
        data, path, url = node.image, node.image_path, node.image_url
    elif isinstance(node, Node) and modality is not Modality.TEXT:
        res = node.audio_resource if modality is Modality.AUDIO else node.image_resource
        assert res is not None
        data = res.data
        path = str(res.path) if res.path is not None else None
        url = str(res.url) if res.url is not None else None
    else:
        raise ValueError(f"node {node.node_id} holds no image or audio")
    if data:
        try:
            return base64.b64decode(data)
        except (binascii.Error, ValueError) as exc:
            raise ClipClapInputError(
                f"its {modality.value} is not valid base64 ({exc})",
                item=f"node {node.node_id!r}",
            ) from None
    if path:
        return path
    if url:
        return url
    raise ValueError(f"node {node.node_id} has no {modality.value} data, path or URL")


def node_content(node: BaseNode) -> str | Any:
    """What is embedded for ``node``: its embed-mode text, or its image / sound source."""
    if node_modality(node) is Modality.TEXT:
        return node.get_content(metadata_mode=MetadataMode.EMBED)
    return media_source(node)


def has_content(node: BaseNode) -> bool:
    """True if the node has media, or non-empty text to embed."""
    return node_modality(node) is not Modality.TEXT or bool(
        node.get_content(metadata_mode=MetadataMode.EMBED)
    )


# -- the modality tag -------------------------------------------------------------------------
def tagged(node: BaseNode) -> BaseNode:
    """A copy of ``node`` whose metadata names its modality (excluded from embed/LLM text)."""
    copy = node.model_copy()
    copy.metadata = dict(node.metadata)
    copy.excluded_embed_metadata_keys = list(node.excluded_embed_metadata_keys)
    copy.excluded_llm_metadata_keys = list(node.excluded_llm_metadata_keys)
    tag_node_in_place(copy)
    return copy


def tag_node_in_place(node: BaseNode) -> None:
    """Set ``node.metadata[MODALITY_KEY]`` to the modality its vector embeds."""
    node.metadata = {**node.metadata, MODALITY_KEY: node_modality(node).value}
    node.excluded_embed_metadata_keys = _add_excluded(
        node.excluded_embed_metadata_keys, [MODALITY_KEY]
    )
    node.excluded_llm_metadata_keys = _add_excluded(node.excluded_llm_metadata_keys, [MODALITY_KEY])


def restore_audio_nodes(results: list[NodeWithScore]) -> list[NodeWithScore]:
    """Turn the ``TextNode`` a store returns for an audio node back into an ``AudioNode``."""
    out = []
    for hit in results:
        node = hit.node
        if type(node) is TextNode and node.metadata.get(MODALITY_KEY) == Modality.AUDIO.value:
            hit = NodeWithScore(node=AudioNode.from_node(node), score=hit.score)
        out.append(hit)
    return out


# -- embedding nodes --------------------------------------------------------------------------
def _groups(nodes: Sequence[BaseNode], skip_embedded: bool) -> dict[Modality, list[int]]:
    groups: dict[Modality, list[int]] = {m: [] for m in Modality}
    for i, node in enumerate(nodes):
        if not (skip_embedded and node.embedding is not None):
            groups[node_modality(node)].append(i)
    return groups


def _contents(nodes: Sequence[BaseNode], rows: list[int]) -> list[Any]:
    out = []
    for i in rows:
        try:
            out.append(node_content(nodes[i]))
        except ClipClapInputError as exc:
            raise ClipClapInputError(
                exc.reason, index=i, item=f"node {nodes[i].node_id!r}"
            ) from None
    return out


def _name_the_node(
    exc: ClipClapInputError, nodes: Sequence[BaseNode], rows: list[int]
) -> ClipClapInputError:
    """``exc`` (positioned in one modality's list) positioned in ``nodes``, naming the node."""
    if exc.index is None or not 0 <= exc.index < len(rows):
        return exc
    row = rows[exc.index]
    item = f"node {nodes[row].node_id!r}"
    if exc.item_description:
        item += f", {exc.item_description}"
    return ClipClapInputError(exc.reason, index=row, item=item)


def embed_nodes(
    nodes: Sequence[BaseNode],
    embed_model: ClipClapEmbedding,
    show_progress: bool = False,
    skip_embedded: bool = True,
) -> list[Embedding]:
    """One vector per node from its own text, image or sound, batched per modality.

    A node that cannot be embedded raises ``ClipClapInputError`` naming its position in
    ``nodes`` and its id.
    """
    out: list[Any] = [n.embedding if skip_embedded else None for n in nodes]
    for modality, rows in _groups(nodes, skip_embedded).items():
        if not rows:
            continue
        items = _contents(nodes, rows)
        try:
            if modality is Modality.TEXT:  # positions counted over the whole list, as below
                vectors = embed_model._embed_in_batches(
                    items, embed_model._get_text_embeddings, show_progress, "text"
                )
            elif modality is Modality.IMAGE:
                vectors = embed_model.get_image_embedding_batch(items, show_progress=show_progress)
            else:
                vectors = embed_model.get_audio_embedding_batch(items, show_progress=show_progress)
        except ClipClapInputError as exc:
            raise _name_the_node(exc, nodes, rows) from None
        for i, vector in zip(rows, vectors, strict=True):
            out[i] = vector
    return out


async def aembed_nodes(
    nodes: Sequence[BaseNode],
    embed_model: ClipClapEmbedding,
    show_progress: bool = False,
    skip_embedded: bool = True,
) -> list[Embedding]:
    """``embed_nodes`` without blocking the event loop; the modalities run concurrently."""
    out: list[Any] = [n.embedding if skip_embedded else None for n in nodes]
    groups = [(m, rows) for m, rows in _groups(nodes, skip_embedded).items() if rows]

    async def one(modality: Modality, rows: list[int]) -> list[Embedding]:
        items = _contents(nodes, rows)
        try:
            if modality is Modality.TEXT:
                return await embed_model._aembed_in_batches(
                    items, embed_model._aget_text_embeddings, show_progress, "text"
                )
            if modality is Modality.IMAGE:
                return await embed_model.aget_image_embedding_batch(
                    items, show_progress=show_progress
                )
            return await embed_model.aget_audio_embedding_batch(items, show_progress=show_progress)
        except ClipClapInputError as exc:
            raise _name_the_node(exc, nodes, rows) from None

    results = await asyncio.gather(*(one(m, rows) for m, rows in groups))
    for (_, rows), vectors in zip(groups, results, strict=True):
        for i, vector in zip(rows, vectors, strict=True):
            out[i] = vector
    return out


# -- building nodes from files and documents --------------------------------------------------
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
) -> list[BaseNode]:
    """Nodes for a folder (or list) of mixed media: ``ImageNode``, ``AudioNode``, ``TextNode``.

    Images and sounds are recognized by content, then extension; ``.txt``/``.md`` files become
    text nodes. In a folder, other files are skipped, and a file that cannot be read is logged
    (a warning) and left out, or raises with ``raise_on_error=True`` (as in
    ``SimpleDirectoryReader``); a listed path that is missing, unreadable or of another kind is
    always an error naming it. Node ids derive from the resolved path, so indexing the same
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
            node = _file_node(path)
        except OSError as exc:
            if listed:
                reason = f"cannot be read ({exc.strerror or exc})"
                raise ClipClapInputError(reason, index=i, item=repr(str(path))) from None
            if raise_on_error:
                raise
            logger.warning("load_media_nodes: skipped %s, which cannot be read (%s)", path, exc)
            continue
        if node is not None:
            nodes.append(node)
        elif listed:
            raise ClipClapInputError(
                "neither an image, a sound nor a .txt/.md text file", index=i, item=repr(str(path))
            )
    return nodes


def _file_node(path: Path) -> BaseNode | None:
    modality = file_modality(path)
    if modality is None:
        return None
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
    text = path.read_text(encoding="utf-8", errors="replace")
    return TextNode(text=text, **common)
