"""Fax pages drawn the way a fax machine sends them: 1-bit, 204x196 dpi, multi-page TIFF."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, TiffImagePlugin
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


def g4_strip(width: int, height: int) -> bytes:
    """One blank page of width × height as a single CCITT G4 strip: a few KB for any size."""
    out = io.BytesIO()
    Image.new("1", (width, height), 1).save(out, format="TIFF", compression="group4")
    # The plugin reads the header only, without Image.open's decompression-bomb warning.
    with TiffImagePlugin.TiffImageFile(io.BytesIO(out.getvalue())) as page:
        offset, count = page.tag_v2[273][0], page.tag_v2[279][0]
    return out.getvalue()[offset : offset + count]


def bomb_tiff(pages: int, width: int, height: int, strip: bytes | None = None) -> bytes:
    """A TIFF whose headers declare ``pages`` pages of width × height, every page pointing at
    one shared G4 strip (a valid blank page when ``strip`` is None): tiny to mail, huge to
    decode."""
    strip = g4_strip(width, height) if strip is None else strip
    entries = [
        (256, 4, width),  # ImageWidth, LONG
        (257, 4, height),  # ImageLength
        (258, 3, 1),  # BitsPerSample
        (259, 3, 4),  # Compression: CCITT T.6 (G4)
        (262, 3, 0),  # PhotometricInterpretation: WhiteIsZero
        (273, 4, 8),  # StripOffsets: the strip right after the header
        (277, 3, 1),  # SamplesPerPixel
        (278, 4, height),  # RowsPerStrip
        (279, 4, len(strip)),  # StripByteCounts
    ]
    ifd_size = 2 + 12 * len(entries) + 4
    first = 8 + len(strip) + (len(strip) % 2)
    out = bytearray(b"II*\x00" + first.to_bytes(4, "little"))
    out += strip + b"\x00" * (len(strip) % 2)
    for number in range(pages):
        here = first + number * ifd_size
        following = here + ifd_size if number < pages - 1 else 0
        out += len(entries).to_bytes(2, "little")
        for tag, kind, value in entries:
            out += tag.to_bytes(2, "little") + kind.to_bytes(2, "little")
            out += (1).to_bytes(4, "little") + value.to_bytes(4, "little")
        out += following.to_bytes(4, "little")
    return bytes(out)


def bomb_pdf(pages: int, width_pt: float, height_pt: float) -> bytes:
    """A PDF of ``pages`` empty pages of width × height points (what pdftoppm renders at
    200 dpi for OCR: 4680 pt is 13000 px)."""
    kids = " ".join(f"{3 + n} 0 R" for n in range(pages))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {pages} >>".encode(),
        *(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {width_pt} {height_pt}] >>".encode()
            for _ in range(pages)
        ),
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\n".encode()
    out += f"startxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)
