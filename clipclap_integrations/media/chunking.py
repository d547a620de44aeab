"""Splitting text into chunks that fit CLIP's 77-token window, at sentence boundaries."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# A sentence ends at . ! ? followed by whitespace, at CJK sentence punctuation (with or
# without whitespace after it: Chinese and Japanese put none; closing brackets and quotes
# stay with the sentence they close), or at a blank line.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?P<cjk>[。！？｡][」』）〕】》〉”’]*)\s*|\n\s*\n+")
_WORD = re.compile(r"\S+")

CountTokens = Callable[[Sequence[str]], list[int]]
TokenOffsets = Callable[[str], list[tuple[int, int]]]


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
        end = match.end("cjk") if match.group("cjk") else match.start()
        spans.append((pos, end))
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
    count_tokens: CountTokens,
    max_tokens: int = 75,
    *,
    token_offsets: TokenOffsets | None = None,
) -> list[Chunk]:
    """Greedy packing of whole sentences into chunks of at most ``max_tokens`` tokens.

    ``count_tokens`` returns the token count (without special tokens) of each string. A
    sentence longer than the budget is split between words; a word longer than the budget
    (a run of Chinese or Japanese without spaces, a long URL) is cut into pieces that fit:
    at token boundaries when ``token_offsets`` (the ``(start, end)`` character offsets of
    a string's tokens) is given, else at characters. No text is dropped: every character
    other than whitespace between chunks is in exactly one chunk, and every chunk fits
    (unless a single character alone is over the budget).
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be at least 1, got {max_tokens!r}")
    sentences = _spans(text)
    pieces: list[tuple[int, int]] = []
    counts = count_tokens([text[a:b] for a, b in sentences]) if sentences else []
    for (a, b), n in zip(sentences, counts, strict=True):
        if n <= max_tokens:
            pieces.append((a, b))
        else:
            pieces.extend(_split_words(text, a, b, count_tokens, max_tokens, token_offsets))
    return [Chunk(text[a:b], a, b) for a, b in _pack(text, pieces, count_tokens, max_tokens)]


def _pack(
    text: str, spans: list[tuple[int, int]], count_tokens: CountTokens, max_tokens: int
) -> list[tuple[int, int]]:
    """Consecutive ``spans`` merged greedily into spans of at most ``max_tokens`` tokens."""
    out: list[tuple[int, int]] = []
    for a, b in spans:
        if out and count_tokens([text[out[-1][0] : b]])[0] <= max_tokens:
            out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def _split_words(
    text: str,
    a: int,
    b: int,
    count_tokens: CountTokens,
    max_tokens: int,
    token_offsets: TokenOffsets | None = None,
) -> list[tuple[int, int]]:
    spans = [(a + m.start(), a + m.end()) for m in _WORD.finditer(text[a:b])]
    counts = count_tokens([text[wa:wb] for wa, wb in spans]) if spans else []
    words: list[tuple[int, int]] = []
    for (wa, wb), n in zip(spans, counts, strict=True):
        if n <= max_tokens:
            words.append((wa, wb))
        else:
            words.extend(_cut_word(text, wa, wb, count_tokens, max_tokens, token_offsets))
    return _pack(text, words, count_tokens, max_tokens)


def _cut_word(
    text: str,
    a: int,
    b: int,
    count_tokens: CountTokens,
    max_tokens: int,
    token_offsets: TokenOffsets | None,
) -> list[tuple[int, int]]:
    """Consecutive pieces covering ``text[a:b]`` (no whitespace inside), each as long as
    fits in ``max_tokens``: each piece is counted on its own, as it will be embedded."""

    def fits(end: int) -> bool:
        return count_tokens([text[start:end]])[0] <= max_tokens

    out: list[tuple[int, int]] = []
    start = a
    while start < b:
        # A window just long enough to hold more than the budget: the work per piece stays
        # proportional to the piece, however long the word.
        width = 4 * max_tokens
        while start + width < b and fits(start + width):
            width *= 2
        limit = min(b, start + width)
        if fits(limit):
            out.append((start, limit))
            start = limit
            continue
        cut = None
        if token_offsets is not None:
            # cut at the start of a token, the latest one that leaves a piece that fits
            # at the start of token max_tokens of the window, else of an earlier token
            # (a piece re-tokenized on its own can count a token or two more at its end)
            offsets = token_offsets(text[start:limit])
            tried: set[int] = set()
            for k in range(min(max_tokens, len(offsets) - 1), 0, -1):
                candidate = start + offsets[k][0]
                if candidate <= start or candidate in tried:
                    continue
                if len(tried) == 8:
                    break
                tried.add(candidate)
                if fits(candidate):
                    cut = candidate
                    break
        if cut is None:  # the longest prefix that fits, by bisection over characters
            lo, hi = start + 1, limit  # text[start:lo] is kept even if it alone is too long
            while lo + 1 < hi:
                mid = (lo + hi) // 2
                if fits(mid):
                    lo = mid
                else:
                    hi = mid
            cut = lo
        out.append((start, cut))
        start = cut
    return out
