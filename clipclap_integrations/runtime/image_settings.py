"""CLIP's image processor settings, read from ``preprocessor_config.json`` and checked value by
value when the model folder is validated, so that a broken config is a ``ModelFolderError``
naming the file instead of NaN vectors or an error blaming a good image."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
CLIP_IMAGE_SIZE = 224  # the short side after resizing, and the square crop
BICUBIC = 3  # PIL.Image.BICUBIC, CLIP's resampling filter
PREPROCESSOR_CONFIG = "preprocessor_config.json"
# Pillow's resampling filters by number (what transformers writes as "resample").
RESAMPLE_FILTERS = {0: "NEAREST", 1: "LANCZOS", 2: "BILINEAR", 3: "BICUBIC", 4: "BOX", 5: "HAMMING"}
# Larger sizes are not an image model's: resizing every image's short side to them only costs
# memory (CLIP variants use 224 or 336).
MAX_IMAGE_EDGE = 2048
FLAGS = ("do_resize", "do_center_crop", "do_rescale", "do_normalize")


@dataclass(frozen=True)
class ImageSettings:
    """CLIP image processor settings, read from ``preprocessor_config.json``."""

    shortest_edge: int = CLIP_IMAGE_SIZE
    crop_height: int = CLIP_IMAGE_SIZE
    crop_width: int = CLIP_IMAGE_SIZE
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD
    rescale_factor: float = 1 / 255
    resample: int = BICUBIC
    do_resize: bool = True
    do_center_crop: bool = True
    do_rescale: bool = True
    do_normalize: bool = True

    @classmethod
    def from_config(
        cls, config: dict[str, Any], problems: list[str] | None = None
    ) -> ImageSettings:
        """Settings from either saved form of a CLIP processor config (flat, or nested under
        ``image_processor``). Each unusable value adds a problem naming it to ``problems``
        (then the defaults stand in); without ``problems`` the first one raises ValueError."""
        found: list[str] = []
        settings = _read(config, found)
        if problems is None and found:
            raise ValueError(found[0])
        if problems is not None:
            problems.extend(found)
        return settings


def _unusable(key: str, value: Any, need: str) -> str:
    return f"{PREPROCESSOR_CONFIG} has unusable {key} ({value!r}): it must be {need}"


def _whole(value: Any) -> int | None:
    """``value`` as an int when it is a whole number (an int, or a float with an integer value)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        return None
    return int(value)


def _edge(key: str, value: Any, problems: list[str]) -> int:
    edge = _whole(value)
    if edge is None or not 1 <= edge <= MAX_IMAGE_EDGE:
        problems.append(_unusable(key, value, f"a whole number from 1 to {MAX_IMAGE_EDGE}"))
        return CLIP_IMAGE_SIZE
    return edge


def _triple(
    key: str, value: Any, default: tuple[float, float, float], problems: list[str], positive: bool
) -> tuple[float, float, float]:
    """Three finite numbers, one per RGB channel (a single number stands for all three)."""
    items = [value] * 3 if isinstance(value, int | float) else value
    ok = isinstance(items, list | tuple) and len(items) == 3
    ok = ok and all(
        isinstance(v, int | float)
        and not isinstance(v, bool)
        and math.isfinite(v)
        and (v > 0 or not positive)
        for v in items
    )
    if not ok:
        need = "3 " + ("positive " if positive else "") + "finite numbers, one per RGB channel"
        problems.append(_unusable(key, value, need))
        return default
    return (float(items[0]), float(items[1]), float(items[2]))


def _read(config: dict[str, Any], problems: list[str]) -> ImageSettings:
    if isinstance(config.get("image_processor"), dict):
        config = config["image_processor"]
    edge = CLIP_IMAGE_SIZE
    size = config.get("size", edge)
    if isinstance(size, dict):
        if "shortest_edge" in size:
            shortest = _edge("size.shortest_edge", size["shortest_edge"], problems)
        else:
            height = _edge("size.height", size.get("height", edge), problems)
            width = _edge("size.width", size.get("width", edge), problems)
            shortest = min(height, width)
    else:
        shortest = _edge("size", size, problems)
    crop = config.get("crop_size", edge)
    if isinstance(crop, dict):
        crop_h = _edge("crop_size.height", crop.get("height", edge), problems)
        crop_w = _edge("crop_size.width", crop.get("width", edge), problems)
    else:
        crop_h = crop_w = _edge("crop_size", crop, problems)
    mean = _triple("image_mean", config.get("image_mean", CLIP_MEAN), CLIP_MEAN, problems, False)
    std = _triple("image_std", config.get("image_std", CLIP_STD), CLIP_STD, problems, True)
    rescale = config.get("rescale_factor", ImageSettings.rescale_factor)
    if not (
        isinstance(rescale, int | float)
        and not isinstance(rescale, bool)
        and math.isfinite(rescale)
        and rescale > 0
    ):
        problems.append(_unusable("rescale_factor", rescale, "a positive finite number"))
        rescale = ImageSettings.rescale_factor
    resample = config.get("resample", BICUBIC)
    if _whole(resample) not in RESAMPLE_FILTERS:
        names = ", ".join(f"{n} ({name})" for n, name in RESAMPLE_FILTERS.items())
        problems.append(_unusable("resample", resample, f"one of Pillow's filters: {names}"))
        resample = BICUBIC
    flags = {}
    for key in FLAGS:
        flags[key] = config.get(key, True)
        if not isinstance(flags[key], bool):
            problems.append(_unusable(key, flags[key], "true or false"))
            flags[key] = True
    if not flags["do_center_crop"]:
        problems.append(
            f"{PREPROCESSOR_CONFIG} has do_center_crop false: images of different shapes "
            "would give pixels of different sizes, and the visual model takes one size"
        )
    return ImageSettings(
        shortest_edge=shortest,
        crop_height=crop_h,
        crop_width=crop_w,
        mean=mean,
        std=std,
        rescale_factor=float(rescale),
        resample=int(resample),
        **flags,
    )
