"""Exceptions raised by clipclap_integrations."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def _rebuild(cls: type[BaseException], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """An exception made again from its constructor's arguments (for pickle)."""
    return cls(*args, **kwargs)


class ClipClapError(Exception):
    """Base class of every error this package raises on purpose.

    Every subclass pickles (as ``multiprocessing`` and LlamaIndex's parallel ingestion do)
    to an equal error: same message, same attributes.
    """


class ClipClapInputError(ClipClapError, ValueError):
    """An input item cannot be embedded.

    The message names the item's position in the call, a short description of the item and
    the reason. When any item of a call is bad, the call raises before returning anything.
    """

    def __init__(self, reason: str, *, index: int | None = None, item: str = "") -> None:
        self.reason = reason
        self.index = index
        self.item_description = item
        where = f"input {index}" if index is not None else "input"
        if item:
            where += f" ({item})"
        super().__init__(f"{where}: {reason}")

    def __reduce__(self) -> tuple[Any, ...]:
        # BaseException pickles ``args`` (the formatted message), which is not the reason
        kwargs = {"index": self.index, "item": self.item_description}
        return _rebuild, (type(self), (self.reason,), kwargs), self.__dict__

    def at(self, index: int) -> ClipClapInputError:
        """The same error, attributed to position ``index`` of the caller's list."""
        return ClipClapInputError(self.reason, index=index, item=self.item_description)


class NonFiniteVectorError(ClipClapInputError):
    """The model gave a vector with NaN or infinite values for an input.

    Never returned as a vector: the call raises, naming the input. It points at the model
    (broken weights or preprocessing settings) more often than at the input itself.
    """


class ModelFolderError(ClipClapError, FileNotFoundError):
    """A model folder is missing files or holds files that do not fit CLIPCLAP.

    ``problems`` lists every problem found, so one run shows everything that needs fixing.
    """

    def __init__(self, folder: object, problems: Sequence[str]) -> None:
        self.folder = folder
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"the model folder {folder} is not a usable CLIPCLAP model:\n{lines}")

    def __str__(self) -> str:  # FileNotFoundError would otherwise format errno/filename
        return str(self.args[0])

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuild, (type(self), (self.folder, self.problems), {}), self.__dict__


class ModelNotAvailableError(ClipClapError, FileNotFoundError):
    """A Hub model is not in the local cache and cannot be downloaded (offline)."""

    def __str__(self) -> str:
        return str(self.args[0])


class ModelChangedError(ClipClapError, ValueError):
    """The files at a collection's model folder are no longer the ones that made its vectors."""


class DatabaseGoneError(ClipClapError, RuntimeError):
    """The database stopped answering during a run (files written before it are kept)."""


class IncompleteWriteError(ClipClapError, RuntimeError):
    """A write sent in several batches stopped part way (the database failed or went away).

    ``written`` records of ``total`` were written before it (at least: the batch being sent
    may be in part). Running the same call again completes it: the records are written
    under the same ids, so nothing is duplicated.
    """

    def __init__(self, message: str, *, written: int, total: int) -> None:
        self.written = written
        self.total = total
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        kwargs = {"written": self.written, "total": self.total}
        return _rebuild, (type(self), self.args, kwargs), self.__dict__


class OnnxFormatError(ClipClapError, ValueError):
    """The file is not a readable ONNX model."""


class HubUnreachableWarning(UserWarning):
    """The Hub could not be asked about a model, so a cached copy is used instead."""


def missing_extra(package: str, extra: str) -> ImportError:
    """The ImportError raised when an optional integration's package is missing."""
    return ImportError(
        f'{package} is not installed; install it with: pip install "clipclap-integrations[{extra}]"'
    )
