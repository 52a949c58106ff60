"""Fax pages drawn the way a fax machine sends them: 1-bit, 204x196 dpi, multi-page TIFF."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont
from PIL.Image import Dither

NONE = Dither.NONE

FONT = Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc")


def fax_tiff(pages: list[str]) -> bytes:
    font = ImageFont.truetype(str(FONT), 64)
    images = []
    for text in pages:
        page = Image.new("L", (1728, 600), 255)
        ImageDraw.Draw(page).text((80, 200), text, font=font, fill=0)
        # A fax machine thresholds text to black and white; it does not dither it.
        images.append(page.point(lambda p: 255 if p > 128 else 0).convert("1", dither=NONE))
    out = io.BytesIO()
    images[0].save(
        out,
        format="TIFF",
        compression="group4",
        save_all=True,
        append_images=images[1:],
        dpi=(204, 196),
    )
    return out.getvalue()
