"""Text preprocessing: CLIP's tokenizer, truncated to 77 tokens, padded per batch."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ModelFolderError
from ..runtime.model import EOS_ID, MAX_TOKENS, TOKENIZER, TOKENIZER_CONFIG, check_tokenizer

if TYPE_CHECKING:
    from tokenizers import Tokenizer

_tokenizers: dict[tuple[str, int | None], Tokenizer] = {}
_lock = threading.Lock()


def load_tokenizer(path: Path, max_length: int | None) -> Tokenizer:
    """The shared tokenizer for ``path``, truncating to ``max_length`` (None: never)."""
    key = (str(path), max_length)
    with _lock:
        tok = _tokenizers.get(key)
        if tok is None:
            from tokenizers import Tokenizer

            try:
                tok = Tokenizer.from_file(str(path))
            except Exception:  # the file changed since its folder was validated
                problem = check_tokenizer(path) or f"{path.name} cannot be loaded as a tokenizer"
                raise ModelFolderError(path.parent, [problem]) from None
            tok.no_padding()
            if max_length is None:
                tok.no_truncation()
            else:
                # Truncation counts the specials the post-processor adds: [BOS, 75, EOS].
                tok.enable_truncation(max_length=max_length)
            _tokenizers[key] = tok
    return tok


def _pad_token(folder: Path) -> str:
    try:
        config = json.loads((folder / TOKENIZER_CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "<|endoftext|>"
    pad = config.get("pad_token") if isinstance(config, dict) else None
    if isinstance(pad, dict):
        pad = pad.get("content")
    return pad if isinstance(pad, str) else "<|endoftext|>"


class TextPreprocessor:
    """Turns strings into ``input_ids`` / ``attention_mask`` exactly as CLIPTokenizerFast does."""

    def __init__(self, folder: Path, max_length: int = MAX_TOKENS) -> None:
        self.folder = folder
        self.max_length = max_length
        self._pad_id: int | None = None

    @property
    def tokenizer(self) -> Tokenizer:
        return load_tokenizer(self.folder / TOKENIZER, self.max_length)

    @property
    def pad_id(self) -> int:
        if self._pad_id is None:
            pad_id = self.tokenizer.token_to_id(_pad_token(self.folder))
            self._pad_id = EOS_ID if pad_id is None else pad_id
        return self._pad_id

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Untruncated token counts, without the two special tokens."""
        tok = load_tokenizer(self.folder / TOKENIZER, None)
        return [len(e.ids) for e in tok.encode_batch(list(texts), add_special_tokens=False)]

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        """The ``(start, end)`` character offsets in ``text`` of its tokens (untruncated,
        without the special tokens), for cutting a text at token boundaries."""
        tok = load_tokenizer(self.folder / TOKENIZER, None)
        return [(a, b) for a, b in tok.encode(text, add_special_tokens=False).offsets]

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text, with specials, truncated; no padding."""
        return [enc.ids for enc in self.tokenizer.encode_batch(list(texts))]

    def __call__(self, texts: Sequence[str], *, pad_to: int | None = None) -> dict[str, np.ndarray]:
        """Batch tensors, padded to the longest text (or to ``pad_to``) with the pad id."""
        return self.pad(self.token_ids(texts), pad_to=pad_to)

    def pad(
        self, ids: Sequence[Sequence[int]], *, pad_to: int | None = None
    ) -> dict[str, np.ndarray]:
        """Pad token id lists into ``input_ids`` and ``attention_mask`` (int64)."""
        length = pad_to if pad_to is not None else max((len(i) for i in ids), default=0)
        input_ids = np.full((len(ids), length), self.pad_id, dtype=np.int64)
        attention_mask = np.zeros((len(ids), length), dtype=np.int64)
        for row, seq in enumerate(ids):
            input_ids[row, : len(seq)] = seq
            attention_mask[row, : len(seq)] = 1
        return {"input_ids": input_ids, "attention_mask": attention_mask}
