"""What every modality's pipeline shares: the items it embeds, the options and encoders it
runs with, and how a failure while loading one item is reported."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import ClassVar

import numpy as np

from ..errors import ClipClapInputError, NonFiniteVectorError
from ..inputs import Item
from ..options import EmbedderOptions
from ..runtime.encoders import Encoders
from ..runtime.model import GRAPHS, ModelFolder
from ..runtime.prefetch import Prefetch
from ..types import Modality


class ModalityPipeline:
    """Embeds classified items of one modality: load each payload, preprocess it as the source
    model did, run batches through the encoders. Cheap to create: heavy state (tokenizer,
    filters, sessions) is made on first use."""

    modality: ClassVar[Modality]

    def __init__(self, folder: ModelFolder, options: EmbedderOptions, encoders: Encoders) -> None:
        self.folder = folder
        self.options = options
        self.encoders = encoders

    def embed(self, items: Sequence[Item], indices: Sequence[int]) -> np.ndarray:
        """One L2-normalized float32 row per item; ``indices`` are the items' positions in the
        caller's list (for error messages)."""
        raise NotImplementedError

    def prepare(self) -> None:
        """Make the heavy state now rather than on first use: the preprocessor and the
        onnxruntime sessions. Safe from another thread while the pipeline is used (a run
        that needs a session being made waits for it)."""
        getattr(self, "preprocessor", None)
        pair = GRAPHS[self.modality]
        self.encoders.session(pair.encoder)
        self.encoders.session(pair.projection)

    def run_batches(
        self, count: int, load: Callable[[int], np.ndarray], feed: str, name: Namer
    ) -> np.ndarray:
        """One vector per row ``0..count-1``: ``load(row)`` (the model input ``feed`` of one
        row) runs in worker threads, the next batch while the model runs this one; ``name``
        says which input a row is, should the model give it a non-finite vector."""
        out = np.empty((count, self.folder.dim), dtype=np.float32)
        size = self.options.batch_size
        with Prefetch(count, load, budget=2 * size) as loaded:
            for start in range(0, count, size):
                rows = range(start, min(start + size, count))
                batch = np.stack([loaded.get(r) for r in rows])
                with blaming(name, rows):
                    out[start : rows.stop] = self.encoders.project(self.modality, {feed: batch})
        return out


# Which input row ``r`` of a run is: (its position in the caller's list, its description).
Namer = Callable[[int], tuple[int, str]]


@contextmanager
def blaming(name: Namer, rows: Sequence[int]) -> Iterator[None]:
    """A ``NonFiniteVectorError`` of a model run (``index``: the row of the run) names the
    input that row is: ``name(rows[row])``."""
    try:
        yield
    except NonFiniteVectorError as exc:
        index, item = name(rows[exc.index or 0])
        raise NonFiniteVectorError(exc.reason, index=index, item=item) from None


@contextmanager
def loading(item: Item, index: int, what: str) -> Iterator[None]:
    """Any failure while loading ``item`` as ``what`` ("image", "audio") becomes a
    ``ClipClapInputError`` naming the item and its position."""
    try:
        yield
    except ClipClapInputError as exc:
        raise ClipClapInputError(exc.reason, index=index, item=item.description) from None
    except MemoryError:
        raise ClipClapInputError(
            f"the {what} is too large to process in memory", index=index, item=item.description
        ) from None
    except Exception as exc:  # a decoder or plugin failing in a way nobody listed
        raise ClipClapInputError(
            f"the {what} cannot be processed ({type(exc).__name__}: {exc})",
            index=index,
            item=item.description,
        ) from None
