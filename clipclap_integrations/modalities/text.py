"""Text: CLIP's tokenizer, then runs bucketed by length so padding costs as little as it can."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property

import numpy as np

from ..errors import ClipClapInputError
from ..inputs import Item, describe
from ..media.text import TextPreprocessor, check_text_length
from ..runtime.model import GRAPHS
from ..types import Modality
from .base import ModalityPipeline, blaming

# A text model run costs about as much as this many padded tokens: measured on the full model
# (2 cores, calls of 32 captions of 5-60 tokens), throughput is flat from 48 to 256 and drops
# on either side (many small runs use the cores poorly; few runs pad too much).
RUN_OVERHEAD_TOKENS = 96


class TextPipeline(ModalityPipeline):
    modality = Modality.TEXT

    @cached_property
    def preprocessor(self) -> TextPreprocessor:
        return TextPreprocessor(self.folder.path, self.folder.text.max_length)

    def embed(self, items: Sequence[Item], indices: Sequence[int]) -> np.ndarray:
        return self.embed_texts([it.payload for it in items], indices)

    def embed_texts(self, texts: Sequence[str], indices: Sequence[int] | None = None) -> np.ndarray:
        """One vector per text; ``indices``: the texts' positions in the caller's list (for
        messages; default their positions in ``texts``)."""
        out = np.empty((len(texts), self.folder.dim), dtype=np.float32)
        if not texts:
            return out
        positions = range(len(texts)) if indices is None else indices
        for row, text in enumerate(texts):
            try:
                check_text_length(text, self.options.max_text_chars)
            except ClipClapInputError as exc:
                raise ClipClapInputError(
                    exc.reason, index=positions[row], item=describe(text)
                ) from None
        pre = self.preprocessor
        ids = pre.token_ids(list(texts))
        size = self.options.batch_size
        static_len = self.encoders.static_dim(GRAPHS[Modality.TEXT].encoder, "input_ids", 1)
        if static_len is None:  # bucket by length: runs padded only as far as they must be
            runs = length_runs([len(i) for i in ids], size)
        else:
            order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
            runs = [order[s : s + size] for s in range(0, len(order), size)]

        def name(row: int) -> tuple[int, str]:
            return positions[row], describe(texts[row])

        for rows in runs:
            feeds = pre.pad([ids[i] for i in rows], pad_to=static_len)
            with blaming(name, rows):
                out[rows] = self.encoders.project(Modality.TEXT, feeds)
        return out


def length_runs(
    lengths: Sequence[int], batch_size: int, overhead: int = RUN_OVERHEAD_TOKENS
) -> list[list[int]]:
    """Indices grouped into text model runs of at most ``batch_size``, padding minimized.

    Sorted by length, then cut where padding would cost more than starting another run:
    dynamic programming over the sorted lengths, a run of n texts padded to L costing
    ``overhead + n * L`` token-steps. Padding changes no vector (the attention is causal and
    pooling takes the first end token), only the work: on captions of 5-60 tokens this does
    about 30% fewer token-steps than padding each batch to its longest text.
    """
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    sizes = np.asarray([lengths[i] for i in order], dtype=np.float64)
    n = len(order)
    best = np.zeros(n + 1)
    cut = np.zeros(n + 1, dtype=np.int64)
    for k in range(1, n + 1):
        first = max(0, k - batch_size)
        starts = np.arange(first, k)
        costs = best[first:k] + overhead + (k - starts) * sizes[k - 1]
        j = int(np.argmin(costs))  # the first minimum: the longest run among equals
        best[k], cut[k] = costs[j], first + j
    runs: list[list[int]] = []
    k = n
    while k > 0:
        runs.append(order[int(cut[k]) : k])
        k = int(cut[k])
    return runs[::-1]
