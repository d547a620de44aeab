"""``ClipClapEmbedding``'s option fields, made from ``EmbedderOptions``: one declaration gives
each field its type, default, description and check."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from llama_index.core.bridge.pydantic import Field

from ..options import EmbedderOptions, option_info

# batch_size is LlamaIndex's own embed_batch_size; the model has a field of its own
NOT_FIELDS = ("batch_size",)


def option_fields() -> tuple[dict[str, Any], dict[str, Any]]:
    """(annotations, defaults) of one pydantic field per option, for a class body."""
    hints = typing.get_type_hints(EmbedderOptions)
    annotations: dict[str, Any] = {}
    defaults: dict[str, Any] = {}
    for f in dataclasses.fields(EmbedderOptions):
        if f.name in NOT_FIELDS:
            continue
        info = option_info(f.name)
        annotations[f.name] = info.json_type if info.json_type is not None else hints[f.name]
        defaults[f.name] = Field(default=f.default, description=info.help)
    return annotations, defaults


def check_option(name: str, value: Any) -> Any:
    """``value`` if option ``name`` accepts it; else the option's own message, as ValueError."""
    problem = option_info(name).problem(name, value)
    if problem is not None:
        raise ValueError(problem)
    return value
