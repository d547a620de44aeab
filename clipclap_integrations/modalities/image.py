"""Images: any image payload -> CLIP's pixels (upright, on white, bicubic, center crop),
decoded in worker threads while the model runs the batch before."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Any

import numpy as np

from ..errors import ClipClapInputError
from ..inputs import Item, Media, RemoteURL, Waveform
from ..media.image import ImagePreprocessor, check_image_size, image_from_array, open_image
from ..types import Modality
from .base import ModalityPipeline, loading


class ImagePipeline(ModalityPipeline):
    modality = Modality.IMAGE

    @cached_property
    def preprocessor(self) -> ImagePreprocessor:
        return ImagePreprocessor(self.folder.image)

    def load(self, item: Item, index: int) -> np.ndarray:
        """``pixel_values`` (3, H, W) of one item, checked against the pixel limit."""
        settings = self.folder.image
        edge = settings.shortest_edge if settings.do_resize else None
        limit = self.options.max_image_pixels
        with loading(item, index, "image"):
            payload = item.payload
            if isinstance(payload, Media):
                draft = (edge, edge) if self.options.fast_jpeg and edge else None
                image = open_image(payload.source, max_pixels=limit, draft=draft, resize_to=edge)
            elif isinstance(payload, np.ndarray):
                image = image_from_array(payload, max_pixels=limit, resize_to=edge)
            elif isinstance(payload, Waveform | RemoteURL | str):
                raise ClipClapInputError("not an image")
            else:
                image = upright(payload, limit, edge)
            return self.preprocessor.pixels(image)

    def embed(self, items: Sequence[Item], indices: Sequence[int]) -> np.ndarray:
        return self.run_batches(
            len(items),
            lambda r: self.load(items[r], indices[r]),
            "pixel_values",
            lambda r: (indices[r], items[r].description),
        )


def upright(image: Any, max_pixels: int | None, resize_to: int | None = None) -> Any:
    """A caller's PIL image, checked, loaded and EXIF-upright, copied only if it must be
    (rotated, or in a mode ``to_rgb`` cannot convert); the caller's object is not changed."""
    from PIL import ImageOps

    given = image
    width, height = image.size
    check_image_size(width, height, max_pixels, resize_to)
    try:
        image.load()  # a lazily opened file that is truncated fails here, not in to_rgb
        try:
            orientation = image.getexif().get(0x0112, 1)
        except Exception:
            orientation = 1
        if orientation in (2, 3, 4, 5, 6, 7, 8):
            image = ImageOps.exif_transpose(image)
        if image.mode == "La":  # premultiplied gray+alpha: Pillow converts it only to LA
            image = image.convert("LA")
        return image
    except Exception as exc:  # a broken lazily-loaded PIL image, or a closed one
        raise ClipClapInputError(f"the image cannot be read ({pil_failure(given, exc)})") from None


def pil_failure(image: Any, exc: Exception) -> str:
    """Why a caller's PIL image could not be loaded; Pillow often raises a bare
    ``AssertionError`` or ``ValueError`` for an image whose file was closed."""
    detail = str(exc).strip()
    detail = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    closed = "closed" in str(exc) or (
        getattr(image, "fp", "") is None and isinstance(exc, AssertionError | ValueError)
    )
    if closed:
        detail += (
            "; the image was closed (or its file was, as on leaving `with Image.open(...)`): "
            "pass it while it is open, or a copy made while it was (image.copy())"
        )
    return detail
