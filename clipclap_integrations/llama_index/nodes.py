"""What a node holds (its modality, its content) and the ``modality`` tag stores filter on."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from llama_index.core.schema import (
    BaseNode,
    ImageNode,
    MediaResource,
    MetadataMode,
    Node,
    NodeWithScore,
    TextNode,
)

from ..errors import ClipClapInputError
from ..types import Modality
from .audio_node import AudioNode, exclude_metadata_keys

MODALITY_KEY = "modality"
"""Metadata key holding what a node's vector embeds: ``"text"``, ``"image"`` or ``"audio"``."""

NODE_MODALITIES: tuple[Modality, ...] = (Modality.TEXT, Modality.IMAGE, Modality.AUDIO)
"""What a node can hold. A video is not one node: its moments are image nodes (frames) and
audio nodes (soundtrack windows), ``ClipClapVideoReader``'s."""


def node_modality_of(value: Modality | str) -> Modality:
    """``Modality.parse(value)``, refusing a modality no node holds (``video``)."""
    modality = Modality.parse(value)
    if modality not in NODE_MODALITIES:
        raise ValueError(
            f"{modality.value} is not a modality of nodes (text, image, audio): a video's "
            "moments are image nodes (frames) and audio nodes (soundtrack windows), made by "
            "ClipClapVideoReader; filter them by their track or video_path metadata"
        )
    return modality


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
    exclude_metadata_keys(node, [MODALITY_KEY])


def restore_audio_nodes(results: list[NodeWithScore]) -> list[NodeWithScore]:
    """Turn the ``TextNode`` a store returns for an audio node back into an ``AudioNode``."""
    out = []
    for hit in results:
        node = hit.node
        if type(node) is TextNode and node.metadata.get(MODALITY_KEY) == Modality.AUDIO.value:
            hit = NodeWithScore(node=AudioNode.from_node(node), score=hit.score)
        out.append(hit)
    return out
