"""The package's exceptions survive pickling (multiprocessing, parallel ingestion) intact."""

from __future__ import annotations

import copy
import pickle
from pathlib import Path

import pytest

from clipclap_integrations import errors
from clipclap_integrations.errors import (
    ClipClapError,
    ClipClapInputError,
    DatabaseGoneError,
    HubUnreachableWarning,
    IncompleteWriteError,
    ModelChangedError,
    ModelFolderError,
    ModelNotAvailableError,
    NonFiniteVectorError,
    OnnxFormatError,
)

CASES = [
    (ClipClapInputError("bad", index=3, item="'x.png'"), "input 3 ('x.png'): bad"),
    (ClipClapInputError("bad"), "input: bad"),
    (ClipClapInputError("no such file", index=0), "input 0: no such file"),
    (ClipClapInputError("odd", item="<int>"), "input (<int>): odd"),
    (
        ModelFolderError("/f", ["a", "b"]),
        "the model folder /f is not a usable CLIPCLAP model:\n  - a\n  - b",
    ),
    (
        ModelFolderError(Path("/models/x"), ("missing text_model.onnx",)),
        "the model folder /models/x is not a usable CLIPCLAP model:\n  - missing text_model.onnx",
    ),
    (NonFiniteVectorError("nan", index=2, item="'a'"), "input 2 ('a'): nan"),
    (ModelNotAvailableError("antflydb/clipclap is not cached"), "antflydb/clipclap is not cached"),
    (ClipClapError("something"), "something"),
    (OnnxFormatError("truncated varint"), "truncated varint"),
    (ModelChangedError("other files"), "other files"),
    (DatabaseGoneError("gone"), "gone"),
    (IncompleteWriteError("2 of 5", written=2, total=5), "2 of 5"),
    (HubUnreachableWarning("offline"), "offline"),
]
ATTRIBUTES = (
    *("reason", "index", "item_description", "folder", "problems", "args", "errno"),
    *("written", "total"),
)


@pytest.mark.parametrize(("error", "message"), CASES, ids=lambda x: type(x).__name__)
@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])
def test_errors_round_trip_through_pickle(
    error: BaseException, message: str, protocol: int
) -> None:
    assert str(error) == message
    for copied in (pickle.loads(pickle.dumps(error, protocol)), copy.deepcopy(error)):
        assert type(copied) is type(error)
        assert str(copied) == message
        for name in ATTRIBUTES:
            assert getattr(copied, name, None) == getattr(error, name, None), name


class Mine(ClipClapInputError):
    """A caller's own subclass."""


def test_extra_attributes_and_subclasses_survive() -> None:
    error = Mine("bad", index=1, item="'y.wav'")
    error.note = "kept"  # type: ignore[attr-defined]
    copied = pickle.loads(pickle.dumps(error))
    assert str(copied) == "input 1 ('y.wav'): bad" and copied.note == "kept"  # type: ignore[attr-defined]
    assert copied.at(5).index == 5 and str(copied.at(5)) == "input 5 ('y.wav'): bad"


def test_every_exception_class_of_the_module_is_covered() -> None:
    classes = {
        obj
        for obj in vars(errors).values()
        if isinstance(obj, type) and issubclass(obj, BaseException)
    }
    assert classes <= {type(e) for e, _ in CASES}


def test_every_error_the_package_defines_is_a_clipclap_error() -> None:
    """One base error: ``except ClipClapError`` catches whatever the package raises on purpose,
    and the built-in base each error had before is kept (``except ValueError`` still works)."""
    import inspect

    import clipclap_integrations

    defined = [
        obj
        for _, obj in inspect.getmembers(errors, inspect.isclass)
        if issubclass(obj, Exception)
        and not issubclass(obj, Warning)
        and obj.__module__ == errors.__name__
    ]
    assert {DatabaseGoneError, ModelChangedError, OnnxFormatError} <= set(defined)
    assert all(issubclass(cls, ClipClapError) for cls in defined), defined
    assert issubclass(ModelChangedError, ValueError)
    assert issubclass(OnnxFormatError, ValueError)
    assert issubclass(DatabaseGoneError, RuntimeError)
    for cls in defined:  # every error is reachable from the top-level package
        assert getattr(clipclap_integrations, cls.__name__) is cls
    # and nothing else in the package defines an exception of its own
    import pkgutil

    for info in pkgutil.walk_packages(clipclap_integrations.__path__, "clipclap_integrations."):
        if info.name.endswith("__main__") or info.name.startswith(
            ("clipclap_integrations.testing", "clipclap_integrations.llama")
        ):
            continue
        module = __import__(info.name, fromlist=["_"])
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, Exception) and obj.__module__ == info.name != errors.__name__:
                raise AssertionError(f"{info.name} defines {obj.__name__} outside errors.py")
