"""Image preprocessing: decode -> RGB -> resize -> center crop -> normalize, as CLIP does.

Bit-exact to ``transformers``' ``CLIPImageProcessorPil`` on images opened with Pillow and
passed through ``ImageOps.exif_transpose``: alpha is composited on white, the short side is
resized to 224 with Pillow's bicubic filter on uint8, the crop is floor-centred, and values are
scaled in float64 then normalized in float32.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ClipClapInputError
from ..inputs.arrays import audio_hint, check_image_values, image_array_layout, numeric_array
from ..inputs.sniff import sniff_bytes
from ..runtime.image_settings import ImageSettings
from ..types import Modality
from .failures import brief
from .integrity import jpeg_data_problem, reader

if TYPE_CHECKING:
    from PIL import Image as PILImage

DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's own decompression-bomb limit (Image.MAX_IMAGE_PIXELS)


def open_image(
    source: bytes | Path | str | Any,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    draft: tuple[int, int] | None = None,
    resize_to: int | None = 224,
) -> PILImage.Image:
    """Decode encoded image bytes (or a file) into a loaded, EXIF-upright Pillow image.

    Fails with ``ClipClapInputError`` on anything that is not a whole, decodable image: unknown
    or corrupt data, truncated files (unless the caller set Pillow's own
    ``ImageFile.LOAD_TRUNCATED_IMAGES``), zero size, more than ``max_pixels`` pixels, or an
    aspect ratio so extreme that resizing the short side to ``resize_to`` would exceed
    ``max_pixels``. Sizes are checked from the header, before any pixel is decoded. Pillow's
    global settings (``MAX_IMAGE_PIXELS``, warning filters) are neither read for the limit nor
    changed: ``max_pixels`` alone decides, up or down.

    ``draft`` asks a JPEG decoder for a reduced size no smaller than the given (width, height):
    much faster for large photos, at a small cost in parity.
    """
    import struct

    from PIL import Image, ImageOps

    def identify(fp: Any) -> Any:
        # Image.open() without its global decompression-bomb check (which would warn, or
        # refuse, by Pillow's process-wide limit instead of ``max_pixels``): the same plugin
        # loop, over the same registry, in the same order.
        prefix = fp.read(16)
        if not isinstance(getattr(Image, "ID", None), list) or not hasattr(Image, "OPEN"):
            fp.seek(0)  # a Pillow without the registry this loop knows: its own opener
            return Image.open(fp)
        Image.preinit()
        tried: set[str] = set()
        notes: list[str] = []
        postscript = False
        for stage in (0, 1):
            if stage:
                Image.init()
            for fmt in [f for f in Image.ID if f not in tried]:
                tried.add(fmt)
                try:
                    factory, accept = Image.OPEN[fmt]
                    result = not accept or accept(prefix)
                    if fmt == "EPS":  # Pillow renders PostScript by running Ghostscript
                        postscript = bool(result) and not isinstance(result, str)
                        continue
                    if isinstance(result, str):
                        notes.append(result)
                    elif result:
                        fp.seek(0)
                        return factory(fp, "")
                except (SyntaxError, IndexError, TypeError, KeyError, ValueError, struct.error):
                    continue
        if postscript:
            raise ClipClapInputError(
                "PostScript/EPS images are not decoded (Pillow would run Ghostscript on them)"
            )
        extra = f" ({notes[0]})" if notes else ""
        sniffed = sniff_bytes(prefix)
        if sniffed is not None and sniffed[0] is not Modality.IMAGE:  # Image(a sound)
            extra = f" (the data is {sniffed[0].value}, {sniffed[1]})"
        raise ClipClapInputError(f"not a recognizable image{extra}")

    own: Any = None
    try:
        if isinstance(source, bytes | bytearray | memoryview):
            stream: Any = io.BytesIO(source)
        elif isinstance(source, str | os.PathLike):
            stream = own = open(source, "rb")  # noqa: SIM115 - closed in ``finally``
        else:
            stream = source
        image = identify(stream)
        width, height = image.size
        check_image_size(width, height, max_pixels, resize_to)
        if image.format in ("JPEG", "MPO"):
            problem = jpeg_data_problem(*reader(stream))
            if problem is not None:
                raise ClipClapInputError(problem)
        if draft is not None and image.format == "JPEG":
            image.draft("RGB", draft)
        image.load()  # the first frame of an animation; raises on truncated data
        width, height = image.size
        check_image_size(width, height, max_pixels, resize_to)  # some plugins learn it late
        try:
            orientation = image.getexif().get(0x0112, 1)
        except Exception:  # unreadable EXIF: the pixels are fine, keep them as stored
            orientation = 1
        if orientation in (2, 3, 4, 5, 6, 7, 8):
            ImageOps.exif_transpose(image, in_place=True)  # no copy when upright already
        return image
    except ClipClapInputError:
        raise
    except Image.DecompressionBombError as exc:
        raise ClipClapInputError(f"the image is too large to decode safely ({exc})") from None
    except MemoryError:
        raise ClipClapInputError("the image is too large to decode in memory") from None
    except Exception as exc:
        raise ClipClapInputError(f"corrupt or truncated image ({brief(exc)})") from None
    finally:
        if own is not None:
            own.close()


def check_image_size(
    width: int, height: int, max_pixels: int | None, resize_to: int | None = 224
) -> None:
    """Refuse a zero-size image, one over ``max_pixels``, or one whose short side resized to
    ``resize_to`` would make more than ``max_pixels`` pixels (an extreme aspect ratio)."""
    if width <= 0 or height <= 0:
        raise ClipClapInputError(f"the image has zero size ({width}x{height})")
    if max_pixels is None:
        return
    if width * height > max_pixels:
        raise ClipClapInputError(
            f"the image is {width}x{height} = {width * height:,} pixels, over the limit of "
            f"{max_pixels:,} (max_image_pixels)"
        )
    if resize_to:
        short, long = min(width, height), max(width, height)
        resized = resize_to * int(resize_to * long / short)
        if resized > max_pixels:
            raise ClipClapInputError(
                f"the image is {width}x{height}: resizing its short side to {resize_to} "
                f"would make {resized:,} pixels, over the limit of {max_pixels:,} "
                "(max_image_pixels)"
            )


def image_from_array(
    array: np.ndarray,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    resize_to: int | None = 224,
) -> PILImage.Image:
    """A Pillow image from an image array.

    Layouts: HxW (gray), HxWxC with C = 1 (gray), 2 (gray + alpha), 3 (RGB), 4 (RGBA), or
    CxHxW when the last axis cannot be channels. Values: uint8; bool; other integers within
    [0, 255]; floats within [0, 1] (scaled by 255 and rounded). The layout and value rules
    are ``inputs.arrays``'; this converts.
    """
    from PIL import Image

    arr = numeric_array(array, "an image array")
    layout = image_array_layout(arr.shape)
    if layout == "CHW":
        arr = np.moveaxis(arr, 0, -1)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    try:
        check_image_size(int(arr.shape[1]), int(arr.shape[0]), max_pixels, resize_to)
    except ClipClapInputError as exc:
        hint = audio_hint(arr.shape)
        raise ClipClapInputError(exc.reason + (f" ({hint})" if hint else "")) from None
    check_image_values(arr)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype.kind == "f":
        arr = np.round(np.clip(arr, 0.0, 1.0).astype(np.float64) * 255.0).astype(np.uint8)
    elif arr.dtype != np.uint8:
        arr = arr.astype(np.uint8)
    try:
        return Image.fromarray(np.ascontiguousarray(arr))
    except MemoryError:
        raise ClipClapInputError("the image is too large to hold in memory") from None
    except Exception as exc:
        raise ClipClapInputError(f"cannot be made into an image ({brief(exc)})") from None


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
        # Rescale and normalize through a per-channel table of the 256 levels: the same
        # float operations, done once per level instead of once per pixel.
        lut = self._levels
        out = np.empty((3, *arr.shape[:2]), dtype=np.float32)
        for c in range(3):
            np.take(lut[c], arr[..., c], out=out[c])
        return out

    @cached_property
    def _levels(self) -> np.ndarray:
        """(3, 256) float32: the final value of each uint8 level in each channel."""
        s = self.settings
        levels = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)  # like H, W, 3
        out: np.ndarray
        if s.do_rescale:
            out = (levels.astype(np.float64) * s.rescale_factor).astype(np.float32)
        else:
            out = levels.astype(np.float32)
        if s.do_normalize:
            with np.errstate(over="ignore"):  # a vector gone infinite is refused at the exit
                out = (out - self._mean) / self._std
        return np.ascontiguousarray(out.T)

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
