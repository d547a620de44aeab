"""``AudioNode``: a node holding a sound, in the spirit of ``ImageNode``."""

from __future__ import annotations

import base64
import binascii
import mimetypes
from collections.abc import Iterable
from io import BytesIO
from typing import TYPE_CHECKING, Any

import filetype  # a llama-index-core dependency
from llama_index.core.schema import BaseNode, MediaResource, MetadataMode, TextNode

if TYPE_CHECKING:
    from llama_index.core.base.llms.types import BaseContentBlock

# AudioNode attribute -> metadata key. Kept in metadata so that every vector store and docstore
# round trip (which rebuild unknown node classes as TextNode) keeps them.
_AUDIO_KEYS = {
    "audio": "audio_base64",
    "audio_path": "audio_path",
    "audio_url": "audio_url",
    "audio_mimetype": "audio_mimetype",
}


def exclude_metadata_keys(node: BaseNode, keys: Iterable[str]) -> None:
    """Keep ``keys`` out of the node's embedded and LLM text: bookkeeping, not content."""
    keys = list(keys)
    for attribute in ("excluded_embed_metadata_keys", "excluded_llm_metadata_keys"):
        current: list[str] = getattr(node, attribute)
        setattr(node, attribute, current + [k for k in keys if k not in current])


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
        exclude_metadata_keys(self, _AUDIO_KEYS.values())
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
