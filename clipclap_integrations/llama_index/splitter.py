"""``ClipTextSplitter``: text chunks that fit CLIP's 77-token window, counted in CLIP tokens.

LlamaIndex's default ``SentenceSplitter(chunk_size=1024)`` suits embedding models that read
thousands of tokens; CLIP reads 75 (plus its two special tokens) and silently drops the rest,
so a 1024-token chunk is embedded by its first sentence or two. ``ClipClapIndex`` uses this
splitter when no transformations are configured.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llama_index.core.bridge.pydantic import Field
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.node_parser.node_utils import build_nodes_from_splits
from llama_index.core.schema import BaseNode, MetadataMode
from llama_index.core.utils import get_tqdm_iterable

from ..errors import ClipClapInputError
from ..media.text import load_tokenizer
from ..runtime.model import TOKENIZER
from .loading import media_node_for

if TYPE_CHECKING:
    from .embedding import ClipClapEmbedding

logger = logging.getLogger(__name__)

READER_METADATA_KEYS: tuple[str, ...] = (
    "file_path",
    "file_name",
    "file_type",
    "file_size",
    "creation_date",
    "last_modified_date",
    "last_accessed_date",
)
"""Bookkeeping keys ``SimpleDirectoryReader`` adds; the splitter keeps them out of the vector."""

MIN_TEXT_TOKENS = 16
"""Fewer tokens than this left for the text itself after the embedded metadata is an error."""


class ClipTokenCounter:
    """``text -> CLIP token ids`` (no special tokens, no truncation); picklable."""

    def __init__(self, tokenizer_file: str | Path) -> None:
        self.tokenizer_file = str(tokenizer_file)

    def __call__(self, text: str) -> list[int]:
        tokenizer = load_tokenizer(Path(self.tokenizer_file), None)
        return list(tokenizer.encode(text, add_special_tokens=False).ids)

    def __repr__(self) -> str:
        return f"ClipTokenCounter({self.tokenizer_file!r})"


class ClipTextSplitter(SentenceSplitter):
    """A ``SentenceSplitter`` sized for CLIP: chunks of at most 75 CLIP tokens with metadata.

    Differences from ``SentenceSplitter``: tokens are counted with the model's own tokenizer;
    only the metadata that is embedded counts against the window (the LLM's view of the node
    does not reach CLIP); the reader's bookkeeping keys (``file_path``, dates, sizes) are
    excluded from embedding, as they would take a third of the window; and metadata that leaves
    fewer than 16 tokens for the text is an error naming the node. Image and sound nodes and
    documents pass through whole, as ``ImageNode`` / ``AudioNode`` (LlamaIndex's splitters
    turn a sound document into an empty text node).

    Example:
        splitter = ClipTextSplitter.from_embed_model(embed_model)
        nodes = splitter.get_nodes_from_documents(documents)
    """

    tokenizer_file: str = Field(
        default="", description="The model's tokenizer.json: tokens are counted with it."
    )
    exclude_reader_metadata: bool = Field(
        default=True,
        description="Exclude SimpleDirectoryReader's file_path, file_name, dates and sizes "
        "from the embedded text (they stay in metadata and in the LLM's view).",
    )

    def __init__(
        self,
        tokenizer_file: str | Path,
        chunk_size: int = 75,
        chunk_overlap: int = 15,
        exclude_reader_metadata: bool = True,
        **kwargs: Any,
    ) -> None:
        kwargs.pop("tokenizer", None)  # always CLIP's own, from tokenizer_file
        if isinstance(kwargs.get("id_func"), dict):  # to_dict() keeps only its name
            if kwargs["id_func"].get("id_func_name") != "default_id_func":
                raise ValueError("a custom id_func cannot be restored from a dict: pass it again")
            del kwargs["id_func"]
        super().__init__(
            chunk_size=chunk_size,
            chunk_overlap=chunk_overlap,
            tokenizer=ClipTokenCounter(tokenizer_file),
            **kwargs,
        )
        self.tokenizer_file = str(tokenizer_file)
        self.exclude_reader_metadata = exclude_reader_metadata

    @classmethod
    def class_name(cls) -> str:
        return "ClipTextSplitter"

    @classmethod
    def from_embed_model(cls, embed_model: ClipClapEmbedding, **kwargs: Any) -> ClipTextSplitter:
        """A splitter for the text window and tokenizer of ``embed_model``'s model."""
        text = embed_model.embedder.text_preprocessor
        kwargs.setdefault("chunk_size", text.max_length - 2)  # BOS and EOS take two
        kwargs.setdefault("chunk_overlap", max(1, kwargs["chunk_size"] // 5))
        return cls(text.folder / TOKENIZER, **kwargs)

    def _parse_nodes(
        self, nodes: Sequence[BaseNode], show_progress: bool = False, **kwargs: Any
    ) -> list[BaseNode]:
        out: list[BaseNode] = []
        for node in get_tqdm_iterable(nodes, show_progress, "Parsing nodes"):
            try:
                media = media_node_for(node)
            except ClipClapInputError as exc:
                logger.warning(
                    "ClipTextSplitter: left out %s: %s", exc.item_description, exc.reason
                )
                continue
            if media is not None:  # an image or a sound is not text to split: passed on whole
                out.append(media)
                continue
            source = _without_reader_keys(node) if self.exclude_reader_metadata else node
            metadata_str = source.get_metadata_str(mode=MetadataMode.EMBED)  # only it reaches CLIP
            try:
                splits = self.split_text_metadata_aware(
                    source.get_content(metadata_mode=MetadataMode.NONE), metadata_str
                )
            except ValueError as exc:
                raise ValueError(f"node {source.node_id!r}: {exc}") from None
            out.extend(build_nodes_from_splits(splits, source, id_func=self.id_func))
        return out

    def split_text_metadata_aware(self, text: str, metadata_str: str) -> list[str]:
        metadata_len = len(self._tokenizer(metadata_str)) if metadata_str else 0
        if self.chunk_size - metadata_len < MIN_TEXT_TOKENS:
            raise ValueError(
                f"its embedded metadata ({metadata_str[:60]!r}...) takes {metadata_len} of "
                f"the {self.chunk_size} CLIP tokens of a chunk, leaving fewer than "
                f"{MIN_TEXT_TOKENS} for the text: exclude keys from embedding "
                "(node.excluded_embed_metadata_keys)"
            )
        return self._split_text(text, chunk_size=self.chunk_size - metadata_len)


def _without_reader_keys(node: BaseNode) -> BaseNode:
    present = [k for k in READER_METADATA_KEYS if k in node.metadata]
    if all(k in node.excluded_embed_metadata_keys for k in present):
        return node
    copy = node.model_copy()
    copy.excluded_embed_metadata_keys = list(node.excluded_embed_metadata_keys) + [
        k for k in present if k not in node.excluded_embed_metadata_keys
    ]
    return copy
