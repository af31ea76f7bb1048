#!/usr/bin/env python3
"""Draw the app's PNG icons (pwa/icons/icon-192.png, icon-512.png, icon-maskable-512.png) from the same
design as icon.svg: an amber sun on a rounded square. The maskable one is full-bleed, its sun inside
the central 80% safe zone. Run after changing the design; the PNGs are committed."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

ICONS = Path(__file__).resolve().parent.parent / "pwa" / "icons"
BACKGROUND, SUN = "#b45309", "#fde68a"
RAYS = [
    (256, 64, 256, 120),
    (256, 392, 256, 448),
    (64, 256, 120, 256),
    (392, 256, 448, 256),
    (120, 120, 160, 160),
    (352, 352, 392, 392),
    (120, 392, 160, 352),
    (352, 160, 392, 120),
]


def draw(size: int, maskable: bool) -> Image.Image:
    scale = 4  # draw large, then downsample: smooth edges
    big = 512 * scale
    image = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    pen = ImageDraw.Draw(image)
    if maskable:
        pen.rectangle((0, 0, big, big), fill=BACKGROUND)
    else:
        pen.rounded_rectangle((0, 0, big - 1, big - 1), radius=96 * scale, fill=BACKGROUND)
    shrink = 0.72 if maskable else 1.0  # the sun within the maskable safe zone (a circle of 40% radius)

    def at(v: float) -> float:
        return (256 + (v - 256) * shrink) * scale

    r = 120 * shrink * scale
    pen.ellipse((at(256) - r, at(256) - r, at(256) + r, at(256) + r), fill=SUN)
    width = round(28 * shrink * scale)
    for x0, y0, x1, y1 in RAYS:
        pen.line((at(x0), at(y0), at(x1), at(y1)), fill=SUN, width=width)
        for x, y in ((x0, y0), (x1, y1)):  # round caps
            pen.ellipse((at(x) - width / 2, at(y) - width / 2, at(x) + width / 2, at(y) + width / 2), fill=SUN)
    return image.resize((size, size), Image.Resampling.LANCZOS)


def main() -> None:
    draw(192, False).save(ICONS / "icon-192.png", optimize=True)
    draw(512, False).save(ICONS / "icon-512.png", optimize=True)
    draw(512, True).save(ICONS / "icon-maskable-512.png", optimize=True)


if __name__ == "__main__":
    main()
