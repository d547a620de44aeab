"""Image preprocessing: decode -> RGB -> resize -> center crop -> normalize, as CLIP does.

Bit-exact to ``transformers``' ``CLIPImageProcessorPil`` on images opened with Pillow and
passed through ``ImageOps.exif_transpose``: alpha is composited on white, the short side is
resized to 224 with Pillow's bicubic filter on uint8, the crop is floor-centred, and values are
scaled in float64 then normalized in float32.
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import ClipClapInputError
from .model import ImageSettings

if TYPE_CHECKING:
    from PIL import Image as PILImage

DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's own decompression-bomb limit (Image.MAX_IMAGE_PIXELS)


def open_image(
    source: bytes | Path | str,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    draft: tuple[int, int] | None = None,
) -> PILImage.Image:
    """Decode encoded image bytes (or a file) into a loaded, EXIF-upright Pillow image.

    ``draft`` asks a JPEG decoder for a reduced size no smaller than the given (width, height):
    much faster for large photos, at a small cost in parity.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    stream: Any = io.BytesIO(source) if isinstance(source, bytes | bytearray) else source
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(stream)
            width, height = image.size
            if width <= 0 or height <= 0:
                raise ClipClapInputError("the image has zero size")
            if max_pixels is not None and width * height > max_pixels:
                raise ClipClapInputError(
                    f"the image is {width}x{height} = {width * height:,} pixels, over the "
                    f"limit of {max_pixels:,} (raise max_image_pixels to allow it)"
                )
            if getattr(image, "n_frames", 1) > 1:
                image.seek(0)
            if draft is not None and image.format == "JPEG":
                image.draft("RGB", draft)
            image.load()
            return ImageOps.exif_transpose(image) or image
    except ClipClapInputError:
        raise
    except UnidentifiedImageError:
        raise ClipClapInputError("not a recognizable image") from None
    except Image.DecompressionBombError as exc:
        raise ClipClapInputError(f"the image is too large to decode safely ({exc})") from None
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as exc:
        raise ClipClapInputError(f"corrupt or truncated image ({exc})") from None


def image_from_array(array: np.ndarray) -> PILImage.Image:
    """A Pillow image from an HxW, HxWx1, HxWx3 or HxWx4 array (uint8, or float in [0, 1])."""
    from PIL import Image

    arr = np.asarray(array)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)):
        raise ClipClapInputError(
            f"an image array must be HxW, HxWx3 or HxWx4, got shape {tuple(arr.shape)}"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ClipClapInputError("the image has zero size")
    if arr.dtype != np.uint8:
        if arr.dtype == np.bool_:
            arr = arr.astype(np.uint8) * 255
        elif np.issubdtype(arr.dtype, np.floating):
            if not np.all(np.isfinite(arr)) or arr.min() < 0.0 or arr.max() > 1.0:
                raise ClipClapInputError("a float image array must hold finite values in [0, 1]")
            arr = np.round(arr * 255.0).astype(np.uint8)
        elif np.issubdtype(arr.dtype, np.integer) and arr.min() >= 0 and arr.max() <= 255:
            arr = arr.astype(np.uint8)
        else:
            raise ClipClapInputError(
                f"an image array must be uint8 (or float in [0, 1]), got {arr.dtype}"
            )
    mode = {2: "L", 3: "RGB", 4: "RGBA"}[arr.ndim if arr.ndim == 2 else arr.shape[-1]]
    return Image.fromarray(np.ascontiguousarray(arr), mode=mode)


def to_rgb(image: PILImage.Image) -> PILImage.Image:
    """RGB copy of ``image``; transparency is composited onto white (as CLIP's processor does)."""
    from PIL import Image

    if image.mode == "RGB":
        return image
    if "A" in image.getbands() or image.info.get("transparency") is not None:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


class ImagePreprocessor:
    """RGB Pillow images -> ``pixel_values`` (B, 3, crop_h, crop_w) float32."""

    def __init__(self, settings: ImageSettings) -> None:
        self.settings = settings
        self._mean = np.asarray(settings.mean, dtype=np.float32)
        self._std = np.asarray(settings.std, dtype=np.float32)

    def resized_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) after resizing the short side to ``shortest_edge``."""
        size = self.settings.shortest_edge
        if width <= height:
            return size, int(size * height / width)
        return int(size * width / height), size

    def pixels(self, image: PILImage.Image) -> np.ndarray:
        """One image -> (3, crop_h, crop_w) float32."""
        s = self.settings
        rgb = to_rgb(image)
        if s.do_resize:
            rgb = rgb.resize(self.resized_size(*rgb.size), resample=s.resample)
        arr = np.asarray(rgb)  # H, W, 3 uint8
        if s.do_center_crop:
            arr = _center_crop(arr, s.crop_height, s.crop_width)
        out: np.ndarray = arr
        if s.do_rescale:
            out = (arr.astype(np.float64) * s.rescale_factor).astype(np.float32)
        else:
            out = arr.astype(np.float32)
        if s.do_normalize:
            out = (out - self._mean) / self._std
        return np.ascontiguousarray(out.transpose(2, 0, 1))

    def __call__(self, images: Sequence[PILImage.Image]) -> np.ndarray:
        s = self.settings
        if not images:
            return np.zeros((0, 3, s.crop_height, s.crop_width), dtype=np.float32)
        return np.stack([self.pixels(im) for im in images])


def _center_crop(arr: np.ndarray, crop_h: int, crop_w: int) -> np.ndarray:
    h, w = arr.shape[:2]
    if h < crop_h or w < crop_w:  # pad with zeros around the image first, as transformers does
        new_h, new_w = max(h, crop_h), max(w, crop_w)
        padded = np.zeros((new_h, new_w, arr.shape[2]), dtype=arr.dtype)
        top, left = math.ceil((new_h - h) / 2), math.ceil((new_w - w) / 2)
        padded[top : top + h, left : left + w] = arr
        arr, h, w = padded, new_h, new_w
    top, left = (h - crop_h) // 2, (w - crop_w) // 2
    return arr[top : top + crop_h, left : left + crop_w]
