"""Splitting text into chunks that fit CLIP's 77-token window, at sentence boundaries."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+|\n\s*\n+")
_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class Chunk:
    """A piece of a text: its characters ``text[start:end]``, stripped of outer blanks."""

    text: str
    start: int
    end: int


def _spans(text: str) -> list[tuple[int, int]]:
    """Sentence spans (start, end) of ``text``, without surrounding whitespace."""
    spans = []
    pos = 0
    for match in _SENTENCE_END.finditer(text):
        spans.append((pos, match.start()))
        pos = match.end()
    spans.append((pos, len(text)))
    out = []
    for a, b in spans:
        piece = text[a:b]
        stripped = piece.strip()
        if stripped:
            lead = len(piece) - len(piece.lstrip())
            out.append((a + lead, a + lead + len(stripped)))
    return out


def chunk_text(
    text: str,
    count_tokens: Callable[[Sequence[str]], list[int]],
    max_tokens: int = 75,
) -> list[Chunk]:
    """Greedy packing of whole sentences into chunks of at most ``max_tokens`` tokens.

    ``count_tokens`` returns the token count (without special tokens) of each string. A
    sentence longer than the budget is split between words; a single word longer than the
    budget becomes its own chunk (the tokenizer truncates it).
    """
    sentences = _spans(text)
    pieces: list[tuple[int, int]] = []
    counts = count_tokens([text[a:b] for a, b in sentences]) if sentences else []
    for (a, b), n in zip(sentences, counts, strict=True):
        if n <= max_tokens:
            pieces.append((a, b))
        else:
            pieces.extend(_split_words(text, a, b, count_tokens, max_tokens))
    chunks: list[Chunk] = []
    start = end = None
    for a, b in pieces:
        if start is None:
            start, end = a, b
            continue
        if count_tokens([text[start:b]])[0] <= max_tokens:
            end = b
        else:
            chunks.append(Chunk(text[start:end], start, end))  # type: ignore[arg-type,index]
            start, end = a, b
    if start is not None:
        chunks.append(Chunk(text[start:end], start, end))  # type: ignore[arg-type,index]
    return chunks


def _split_words(
    text: str, a: int, b: int, count_tokens: Callable[[Sequence[str]], list[int]], max_tokens: int
) -> list[tuple[int, int]]:
    words = [(a + m.start(), a + m.end()) for m in _WORD.finditer(text[a:b])]
    out: list[tuple[int, int]] = []
    start = end = None
    for wa, wb in words:
        if start is None:
            start, end = wa, wb
        elif count_tokens([text[start:wb]])[0] <= max_tokens:
            end = wb
        else:
            out.append((start, end))  # type: ignore[arg-type]
            start, end = wa, wb
    if start is not None:
        out.append((start, end))  # type: ignore[arg-type]
    return out
