"""Text preprocessing: CLIP's tokenizer, truncated to 77 tokens, padded per batch."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ClipClapInputError, ModelFolderError
from ..runtime.model import EOS_ID, MAX_TOKENS, TOKENIZER, TOKENIZER_CONFIG, check_tokenizer

if TYPE_CHECKING:
    from tokenizers import Tokenizer

# The default limit of a text's length (max_text_chars): far beyond any caption or passage
# (only the first 77 tokens, ~400 characters of English, count), far below a denial of service.
DEFAULT_MAX_TEXT_CHARS = 1_000_000
# Texts up to this many characters are tokenized whole (normal text: the first 77 tokens of
# English take ~400); longer ones only as far as their first 77 tokens reach.
SHORT_TEXT = 2048

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


def leading_part(text: str, size: int) -> str:
    """The first ``size`` characters of ``text``, cut back to the last whitespace in their
    second half (so no word is cut; CLIP tokenizes words separately, and whitespace gives
    no token), or at ``size`` when that half holds none (one giant "word")."""
    if size >= len(text):
        return text
    cut = max(text.rfind(c, size // 2, size) for c in " \n\t\r")
    return text[: cut if cut > 0 else size]


def _pad_token(folder: Path) -> str:
    try:
        config = json.loads((folder / TOKENIZER_CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "<|endoftext|>"
    pad = config.get("pad_token") if isinstance(config, dict) else None
    if isinstance(pad, dict):
        pad = pad.get("content")
    return pad if isinstance(pad, str) else "<|endoftext|>"


def check_text_length(text: str, max_chars: int | None) -> None:
    """Refuse a text longer than ``max_chars`` characters (None: no limit)."""
    if max_chars is not None and len(text) > max_chars:
        raise ClipClapInputError(
            f"the text is {len(text):,} characters, over the limit of {max_chars:,} "
            "(max_text_chars); only its first 77 tokens would count: split long texts into "
            "passages (ClipTextSplitter, or `clipclap index`, does)"
        )


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
        """Token ids of each text, with specials, truncated; no padding.

        A long text is tokenized only as far as its first ``max_length`` tokens reach (see
        ``leading_part``): the cost of a text no longer grows with its length."""
        short = [t if len(t) <= SHORT_TEXT else "" for t in texts]
        ids = [enc.ids for enc in self.tokenizer.encode_batch(short)]
        for row, text in enumerate(texts):
            if len(text) > SHORT_TEXT:
                ids[row] = self.leading_ids(text)
        return ids

    def leading_ids(self, text: str) -> list[int]:
        """The truncated token ids of a long ``text``, from growing prefixes cut at whitespace
        until one fills the ``max_length`` tokens: words before a whitespace cut are
        tokenized as in the whole text, so the ids are the whole text's."""
        size = SHORT_TEXT
        while True:
            part = leading_part(text, size)
            ids: list[int] = self.tokenizer.encode(part).ids
            if len(part) == len(text) or len(ids) >= self.max_length:
                return ids
            size *= 4

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
