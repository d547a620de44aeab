"""``chroma/compat.py`` pinned to the supported chromadb range (pyproject: the ``chroma`` extra).

compat.py reaches into chromadb's internals because Chroma offers no public route from an
embedding function to its collection. Each test here checks one thing it relies on, so that a
chromadb release that moves any of it fails here, loudly and by name, instead of silently
turning the model-identity guard off.
"""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

chromadb = pytest.importorskip("chromadb")

from chromadb.api.types import Documents, EmbeddingFunction, Embeddings  # noqa: E402
from chromadb.utils.embedding_functions import register_embedding_function  # noqa: E402
from packaging.specifiers import SpecifierSet  # noqa: E402

from clipclap_integrations.chroma import compat  # noqa: E402

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
SETTINGS = chromadb.Settings(anonymized_telemetry=False)
MOVED = "chromadb's internals moved: update clipclap_integrations/chroma/compat.py"


def test_the_installed_chromadb_is_in_the_supported_range() -> None:
    spec = re.search(r'"chromadb([^"]*)"', PYPROJECT.read_text(encoding="utf-8"))
    assert spec, "pyproject.toml names no chromadb requirement"
    supported = SpecifierSet(spec.group(1))
    assert str(supported) == "<2,>=1.0", f"the supported range changed ({supported}): " + (
        "re-check every assumption of compat.py against its ends, then update this test"
    )
    assert chromadb.__version__ in supported, (
        f"chromadb {chromadb.__version__} is outside the range compat.py is checked for "
        f"({supported})"
    )


@pytest.mark.parametrize("where", compat.EMBED_METHODS + compat.MODIFY_METHODS)
def test_the_methods_compat_looks_for_exist(where: tuple[str, str, str]) -> None:
    module, cls, method = where
    found = getattr(getattr(importlib.import_module(module), cls, None), method, None)
    assert found is not None, f"{MOVED}: {module}.{cls}.{method} is gone"
    params = inspect.signature(found).parameters
    assert "self" in params, f"{MOVED}: {cls}.{method} has no self"
    if method == "modify":
        assert "configuration" in params, f"{MOVED}: {cls}.modify takes no configuration="
    assert found.__code__ in compat.EMBED_CODES + compat.MODIFY_CODES
    assert len(compat.EMBED_CODES) == len(compat.EMBED_METHODS)
    assert len(compat.MODIFY_CODES) == len(compat.MODIFY_METHODS)


def test_async_clients_still_say_their_batch_size() -> None:
    from chromadb.api.async_client import AsyncClient
    from chromadb.api.models.AsyncCollection import AsyncCollection

    assert inspect.iscoroutinefunction(AsyncClient.get_max_batch_size), MOVED
    assert "client" in inspect.signature(AsyncCollection.__init__).parameters, MOVED


class _Probe(EmbeddingFunction[Documents]):
    """An embedding function that asks compat, from inside Chroma's own calls, which
    collection it is working for."""

    def __init__(self) -> None:
        self.calling: list[Any] = []
        self.modifying: list[Any] = []

    def __call__(self, input: Documents) -> Embeddings:
        self.calling.append(compat.calling_collection(self))
        return [np.full(4, 0.5, dtype=np.float32) for _ in input]

    @staticmethod
    def name() -> str:
        return "clipclap-compat-probe"

    def get_config(self) -> dict[str, Any]:
        self.modifying.append(compat.modifying_collection(self))
        return {}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> _Probe:
        return _Probe()

    @staticmethod
    def validate_config(config: dict[str, Any]) -> None:
        pass

    def validate_config_update(
        self, old_config: dict[str, Any], new_config: dict[str, Any]
    ) -> None:
        pass


register_embedding_function(_Probe)


def test_a_real_call_holds_the_frames_and_attributes_compat_reads(tmp_path: Path) -> None:
    client = chromadb.PersistentClient(path=str(tmp_path), settings=SETTINGS)
    probe = _Probe()
    col = client.create_collection("compat-probe", embedding_function=probe)
    assert compat.attached_embedding_function(col) is probe, f"{MOVED}: _embedding_function"

    col.add(ids=["a"], documents=["some text"])
    col.query(query_texts=["some text"], n_results=1)
    assert probe.calling and all(found is col for found in probe.calling), (
        f"{MOVED}: no CollectionCommon._embed frame with self = the collection on the stack of "
        "an embedding function's __call__"
    )
    assert compat.calling_collection(probe) is None  # outside Chroma's call: nothing found

    other = _Probe()
    col.modify(configuration={"embedding_function": other})
    assert col in other.modifying, (
        f"{MOVED}: no modify frame with self and configuration= on the stack of get_config "
        "while Chroma stores a new embedding function"
    )

    limit = compat.max_batch_size(col)
    assert isinstance(limit, int) and limit > 0, f"{MOVED}: collection._client.get_max_batch_size"
    stored = col.configuration_json["embedding_function"]
    assert stored["type"] == "known" and stored["name"] == _Probe.name(), (
        f"{MOVED}: the persisted form of a known embedding function is {stored!r}"
    )
    with pytest.raises(ValueError, match="not clipclap"):
        compat.stored_config(col)
