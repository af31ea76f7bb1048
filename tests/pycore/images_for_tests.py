"""The shared tests' stdlib-made images, from the harness (testkit/images.py), under the name the core's
tests (also run in Pyodide, where the repository is mounted and testkit imports the same) use."""

from testkit.images import (  # noqa: F401
    GIF_8x6,
    JPEG_8x6,
    WEBP_LOSSLESS_8x6,
    WEBP_LOSSY_8x6,
    bmp,
    jpeg,
    png,
    png_header_claiming,
)
