"""Text chunking: every chunk fits CLIP's window and, together, the chunks cover the text."""

from __future__ import annotations

from pathlib import Path

import pytest

from clipclap_integrations.media.chunking import Chunk, chunk_text
from clipclap_integrations.media.text import TextPreprocessor

BUDGET = 75

# Unspaced Chinese and Japanese: sentence punctuation with no whitespace after it.
CHINESE = (
    "今天早上，渔民们在天亮之前就出海了。海面很平静，只有远处的海鸥在叫。"
    "到了中午，他们带着满船的鱼回到港口！市场上挤满了买鱼的人，孩子们在摊位之间跑来跑去。"
    "一位老人说这是十年来最好的收成？大家都笑了，然后开始讨价还价。"
) * 6
JAPANESE = (
    "朝早く、漁師たちは港を出た。海は静かで、遠くでカモメが鳴いていた。"
    "昼になると、彼らは魚でいっぱいの船で戻ってきた！市場は人でいっぱいだった。"
    "「今年は豊漁だ。」と老人が言った。"
) * 6


@pytest.fixture(scope="module")
def tokens(tiny_model_dir: Path) -> TextPreprocessor:
    return TextPreprocessor(tiny_model_dir)


def _assert_fit_and_cover(text: str, chunks: list[Chunk], tokens: TextPreprocessor) -> None:
    assert chunks
    counts = tokens.count_tokens([c.text for c in chunks])
    assert max(counts) <= BUDGET, counts
    assert all(text[c.start : c.end] == c.text and c.text == c.text.strip() for c in chunks)
    # in order, no overlap, and only whitespace between (and around) them: nothing dropped
    edges = [0] + [x for c in chunks for x in (c.start, c.end)] + [len(text)]
    gaps = [text[edges[i] : edges[i + 1]] for i in range(0, len(edges), 2)]
    assert all(edges[i] <= edges[i + 1] for i in range(len(edges) - 1))
    assert all(gap.strip() == "" for gap in gaps), gaps


@pytest.mark.parametrize("text", [CHINESE, JAPANESE], ids=["chinese", "japanese"])
def test_unspaced_cjk_is_split_at_sentence_ends(text: str, tokens: TextPreprocessor) -> None:
    total = tokens.count_tokens([text])[0]
    assert total > 6 * BUDGET  # far over one window
    chunks = chunk_text(text, tokens.count_tokens)
    _assert_fit_and_cover(text, chunks, tokens)
    assert "".join(c.text for c in chunks) == text  # no whitespace anywhere: all of it
    assert len(chunks) >= total // BUDGET
    # every chunk is whole sentences (a closing quote stays with its sentence)
    assert all(c.text[-1] in "。！？」" for c in chunks), [c.text[-3:] for c in chunks]


@pytest.mark.parametrize("offsets", [False, True], ids=["by-characters", "by-token-offsets"])
@pytest.mark.parametrize(
    "text",
    [
        "東京は日本の首都で" * 200,  # one "word": no punctuation, no spaces
        "see https://example.com/" + "abcdefghij" * 120 + " and then stop.",
        "今天天气很好我们去公园散步吧" * 40 + "。短い。",
    ],
    ids=["cjk-run", "long-url", "cjk-run-then-sentence"],
)
def test_a_word_over_the_budget_is_cut_not_truncated(
    text: str, offsets: bool, tokens: TextPreprocessor
) -> None:
    chunks = chunk_text(
        text, tokens.count_tokens, token_offsets=tokens.token_offsets if offsets else None
    )
    _assert_fit_and_cover(text, chunks, tokens)
    # cut as late as fits: no two neighbours could have been one chunk
    counts = tokens.count_tokens([c.text for c in chunks])
    assert sum(counts) < 2 * tokens.count_tokens([text])[0]
    assert all(n >= BUDGET // 2 for n in counts[1:-1]), counts


def test_spaced_text_still_splits_between_words(tokens: TextPreprocessor) -> None:
    text = ("The quick brown fox jumps over the lazy dog " * 40).strip()
    chunks = chunk_text(text, tokens.count_tokens)
    _assert_fit_and_cover(text, chunks, tokens)
    words = text.split()
    assert [w for c in chunks for w in c.text.split()] == words  # no word cut in two


def test_small_budgets_and_empty_text(tokens: TextPreprocessor) -> None:
    assert chunk_text("", tokens.count_tokens) == []
    assert chunk_text(" \n\n ", tokens.count_tokens) == []
    text = "雨。" * 5 + "abc"
    chunks = chunk_text(text, tokens.count_tokens, max_tokens=3)
    assert "".join(c.text for c in chunks) == text
    assert max(tokens.count_tokens([c.text for c in chunks])) <= 3
    with pytest.raises(ValueError, match="max_tokens"):
        chunk_text("x", tokens.count_tokens, max_tokens=0)
