"""Image bytes opened with Pillow inside the core's bounds (rules.json "image"), for every decoder on the
server (predictions, batches, stream workers, `tejas predict`, training): the header is checked by the core
first (the canvas every frame fits in, its pixels and its sides' ratio), then the resize the model asks
for, and Pillow's own decompression-bomb limit is the same number with its warning made an error. So an
image is decoded within a fixed memory bound (docs/predictions.md, "Image sizes") or refused with a sentence,
and the images a process decodes at once (decode threads, concurrent requests) share one budget of pixels.
"""

from __future__ import annotations

import io
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from tejas.images import ImageError, sniff_image
from tejas.limits import DEFAULT_LIMITS, Limits
from tejas.rules import image_size_problem, resize_problem

__all__ = ["ImageError", "decoded_rgb", "open_rgb", "pillow"]

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
        _give_back_freed_canvases()
        _configured = True
    return Image


def _give_back_freed_canvases() -> None:
    """glibc raises its mmap threshold as large blocks are freed, after which freed canvases stay in each
    thread's malloc arena: four decode threads kept four 36-megapixel canvases (568 MB) though they decoded
    one at a time. A fixed threshold (which also stops the raising) makes every block of 1 MiB or more its
    own mapping, returned to the system when freed (144 MB). Elsewhere than glibc: nothing to do."""
    import ctypes

    M_MMAP_THRESHOLD = -3
    try:
        ctypes.CDLL(None).mallopt(M_MMAP_THRESHOLD, 1 << 20)
    except (OSError, AttributeError):
        pass


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


class PixelBudget:
    """Canvases decoded at once in this process, in pixels: a decode waits while the others in flight would
    take the total over `budget` (one image alone always proceeds), so threads decoding together never hold
    more than about one largest image's worth of memory, however many run."""

    def __init__(self, budget: int):
        self.budget, self.used = budget, 0
        self.changed = threading.Condition()

    @contextmanager
    def hold(self, pixels: int) -> Iterator[None]:
        pixels = min(pixels, self.budget)
        with self.changed:
            self.changed.wait_for(lambda: self.used + pixels <= self.budget)
            self.used += pixels
        try:
            yield
        finally:
            with self.changed:
                self.used -= pixels
                self.changed.notify_all()


# One largest image's canvas (the core's max_pixels) at a time, or many small ones together.
BUDGET = PixelBudget(DEFAULT_LIMITS.max_pixels)


@contextmanager
def decoded_rgb(data: bytes, shorter_side: int | None = None, limits: Limits = DEFAULT_LIMITS):
    """open_rgb within the process's pixel budget, held (and the image open) until the block ends: resize
    inside it. The header is checked before waiting, so a refused image never waits."""
    info = sniff_image(data, limits.max_pixels, limits.max_aspect_ratio)
    with BUDGET.hold(info.width * info.height):
        image = open_rgb(data, shorter_side, limits)
        try:
            yield image
        finally:
            image.close()
