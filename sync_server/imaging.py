"""Image bytes opened with Pillow inside the core's bounds (rules.json "image"), for every decoder on the
server (predictions, batches, stream workers, `tejas predict`, training): the header is checked by the core
first (the canvas every frame fits in, its pixels and its sides' ratio), then the resize the model asks
for, and Pillow's own decompression-bomb limit is the same number with its warning made an error. So an
image is decoded within a fixed memory bound (docs/predictions.md, "Image sizes") or refused with a sentence.
"""

from __future__ import annotations

import io
import warnings

from tejas.images import ImageError, sniff_image
from tejas.limits import DEFAULT_LIMITS, Limits
from tejas.rules import image_size_problem, resize_problem

__all__ = ["ImageError", "open_rgb", "pillow"]

PILLOW_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP", "gif": "GIF", "bmp": "BMP"}
_configured = False


def pillow():
    """PIL.Image with MAX_IMAGE_PIXELS set to the core's max_pixels and DecompressionBombWarning an error
    (Pillow only warns between its limit and twice it)."""
    global _configured
    from PIL import Image

    if not _configured:
        Image.MAX_IMAGE_PIXELS = DEFAULT_LIMITS.max_pixels
        warnings.filterwarnings("error", category=Image.DecompressionBombWarning)
        _configured = True
    return Image


def open_rgb(data: bytes, shorter_side: int | None = None, limits: Limits = DEFAULT_LIMITS):
    """The image's first frame as an RGB PIL image, checked before Pillow allocates anything: ImageError
    (a sentence) when its header is refused, when resizing it to a `shorter_side` px shorter side would
    be too large, or when Pillow cannot decode it."""
    info = sniff_image(data, limits.max_pixels, limits.max_aspect_ratio)
    if shorter_side is not None and (
        problem := resize_problem(info.width, info.height, shorter_side, limits.max_pixels)
    ):
        raise ImageError(problem)
    Image = pillow()
    try:
        # Only the decoder of the format the bytes were checked as (never one the header check did not read).
        image = Image.open(io.BytesIO(data), formats=[PILLOW_FORMATS[info.format]])
        if problem := image_size_problem(image.width, image.height, limits.max_pixels, limits.max_aspect_ratio):
            raise ImageError(problem)  # Pillow's canvas, should it ever differ from the header check's
        image.load()
        if image.mode == "RGB":
            return image  # convert("RGB") would copy it: one decoded canvas in memory, not two
        with image:
            return image.convert("RGB")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"image too large ({exc})") from None
    except MemoryError:
        raise ImageError("cannot be decoded now: the server is short of memory (try again later)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:  # what Pillow raises for damaged bytes
        if isinstance(exc, ImageError):
            raise
        raise ImageError(f"cannot be decoded ({exc})") from None
