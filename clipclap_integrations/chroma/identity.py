"""Which model made a collection's vectors, and whether another function may add to them.

A stored configuration names the model (a folder or a Hub repo id), the revision and, since
the files can move, ``model_digest``: a digest of the files themselves (``ModelFolder.digest``).
The same files wherever they live are the same model; other files, another repo or another
Hub revision are not, and their vectors are not comparable with the collection's.

Free of chromadb: these are rules about two configurations, used by the embedding function
(when it embeds and when Chroma stores it) and by the CLI.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ModelChangedError
from ..options import OPTION_NAMES, EmbedderOptions
from ..runtime.hub import is_repo_id

# The name Chroma stores the function under: a collection storing another name holds
# another function's vectors.
NAME = "clipclap"
# Stored beside the model: the digest of its files, so a collection knows its model wherever
# the files live, and notices files changed in place.
DIGEST_KEY = "model_digest"
DIGEST = re.compile(r"[0-9a-f]{32}")
Identity = tuple[str, str | None]  # (model folder or repo id, revision)


def normalize_model(model: str | os.PathLike[str]) -> str:
    """A local folder as an absolute path (so other processes find it); a Hub id unchanged."""
    name = os.fspath(model)
    path = Path(name).expanduser()
    if path.is_dir() or not is_repo_id(name):
        return str(path.resolve())
    return name


def identity(config: Mapping[str, Any]) -> Identity:
    """Where the model is said to be: the folder or repo id and its revision."""
    return normalize_model(str(config.get("model"))), config.get("revision")


def same_files(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool | None:
    """True when both configs carry the same model digest, False when both carry one and
    they differ, None when either lacks one (then only the model and revision tell)."""
    old_digest, new_digest = old.get(DIGEST_KEY), new.get(DIGEST_KEY)
    if old_digest is None or new_digest is None:
        return None
    return bool(old_digest == new_digest)


def refuse_other_model(
    stored: Mapping[str, Any],
    current: Mapping[str, Any],
    what: str,
    *,
    allow_revision_change: bool = False,
) -> None:
    """Refuse to embed with ``current`` for vectors ``stored`` made: another model, another
    Hub revision (unless allowed, or the stored config names none) or changed files.

    Raises ``ValueError``; ``ModelChangedError`` when the files at the same place changed.
    Options that change the vectors (``quantize``, ``fast_jpeg``...) must be the same too.
    """
    refuse_other_settings(stored, current, what)
    old, new = identity(stored), identity(current)
    same = same_files(stored, current)
    if same:
        return  # the same files, wherever they live now and however they are named
    if old[0] != new[0]:
        raise ValueError(incompatible(old, new, what))
    revision_changed = old[1] is not None and old[1] != new[1]
    if revision_changed and not allow_revision_change:
        raise ValueError(
            incompatible(old, new, what)
            + f" To use revision {old[1]!r} pass revision={old[1]!r}; to mix revisions "
            "knowingly pass allow_revision_change=True."
        )
    if same is False and not revision_changed:
        raise ModelChangedError(changed_files(old[0], what))


def refuse_model_update(old_config: Mapping[str, Any], new_config: Mapping[str, Any]) -> None:
    """Refuse to store ``new_config`` over ``old_config`` when it is another model or revision.

    A stored config of a Hub model that names no revision (made offline) takes the revision in
    use, as ``refuse_other_model`` does when embedding.
    """
    refuse_other_settings(old_config, new_config, "the collection")
    old, new = identity(old_config), identity(new_config)
    same = same_files(old_config, new_config)
    if same:
        return  # the same files, moved or renamed
    unpinned_hub_model = old[1] is None and is_repo_id(old[0])
    if same is False or old[0] != new[0] or (old[1] != new[1] and not unpinned_hub_model):
        raise ValueError(refused_update(old, new))


def vector_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The values (defaults filled in) of the options that change the vectors."""
    options = {k: v for k, v in config.items() if k in OPTION_NAMES}
    return EmbedderOptions.from_config(options).vector_settings()


def refuse_other_settings(stored: Mapping[str, Any], current: Mapping[str, Any], what: str) -> None:
    """Refuse ``current`` when an option that changes the vectors differs from ``stored``."""
    old, new = vector_settings(stored), vector_settings(current)
    differ = [k for k in old if old[k] != new[k]]
    if differ:
        raise ValueError(other_settings(differ, old, new, what))


# -- the refusals, worded once --------------------------------------------------------------
def describe_model(model: Identity) -> str:
    name, revision = model
    return f"{name!r}" + (f" at revision {revision!r}" if revision else "")


def changed_files(model: str, what: str) -> str:
    return (
        f"{what} was embedded with the CLIPCLAP model files that were at {model!r}, and the "
        "files there are now different ones (another model digest): vectors of different "
        "models are not comparable. Restore the files, or embed again into a new collection."
    )


def incompatible(old: Identity, new: Identity, what: str) -> str:
    return (
        f"{what} was embedded with the CLIPCLAP model {describe_model(old)}, but this "
        f"embedding function uses {describe_model(new)}: vectors of different models or "
        "revisions are not comparable. Re-open the collection without embedding_function= "
        "(its stored configuration is used) or with the same model; use a new collection for "
        "another model."
    )


def other_settings(
    names: list[str], old: Mapping[str, Any], new: Mapping[str, Any], what: str
) -> str:
    def listed(values: Mapping[str, Any]) -> str:
        return ", ".join(f"{n}={values[n]!r}" for n in names)

    return (
        f"{what} was embedded with {listed(old)}, but this embedding function uses "
        f"{listed(new)}: these options change the vectors, and vectors made with other values "
        "are not comparable. Re-open the collection without embedding_function= (its stored "
        "configuration is used) or with the same options; use a new collection for others."
    )


def refused_update(old: Identity, new: Identity) -> str:
    return (
        f"cannot change the embedding model of a collection from {describe_model(old)} to "
        f"{describe_model(new)}: the vectors it holds would not be comparable with new ones. "
        "Create a new collection for another model (options such as batch_size may change)."
    )
