"""How many pages a fax file declares and how large each is, read from its headers without
decoding a pixel, and whether that stays within the configured limits.

Intake (channels/mail/fax.py) refuses a fax past the limits before splitting it; OCR checks the
same way before Tesseract or pdftoppm touches a page. Both use this one rule.
"""

from __future__ import annotations

import io
import re
import subprocess
import tempfile
from dataclasses import dataclass

from PIL import (
    BmpImagePlugin,
    GifImagePlugin,
    ImageFile,
    JpegImagePlugin,
    PngImagePlugin,
    TiffImagePlugin,
)

from gateway.contract.config import PageLimits

# OCR renders PDF pages with pdftoppm at this resolution: a page of w × h points is
# (w / 72 × 200) × (h / 72 × 200) pixels to Tesseract.
PDF_RENDER_DPI = 200

# Constructing a plugin's image file reads its header only; unlike Image.open it runs no
# decompression-bomb check (whose warning is global state), which is the check done here.
_IMAGES: tuple[tuple[tuple[bytes, ...], type[ImageFile.ImageFile]], ...] = (
    ((b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"), TiffImagePlugin.TiffImageFile),
    ((b"\x89PNG\r\n\x1a\n",), PngImagePlugin.PngImageFile),
    ((b"\xff\xd8\xff",), JpegImagePlugin.JpegImageFile),
    ((b"GIF87a", b"GIF89a"), GifImagePlugin.GifImageFile),
    ((b"BM",), BmpImagePlugin.BmpImageFile),
)
_PDF_PAGES = re.compile(rb"^Pages:\s+(\d+)\s*$", re.MULTILINE)
_PDF_SIZE = re.compile(rb"^Page\s+\d+\s+size:\s+([\d.]+) x ([\d.]+) pts", re.MULTILINE)


class Unmeasurable(Exception):
    """The file looks like an image or PDF but its header cannot be read: no page of it is
    ever decoded (split_pages keeps it as it came, OCR gives up on it)."""


@dataclass(frozen=True)
class Declared:
    """What one file says about itself. ``count`` may exceed ``len(sizes)``: sizes are read
    for no more pages than it takes to pass the page limit."""

    count: int
    sizes: tuple[tuple[int, int], ...]


def measure(
    data: bytes, *, max_pages: int, pdfinfo: str = "pdfinfo", timeout: float = 10
) -> Declared | None:
    """The pages ``data`` declares, judged by its content (not its label); None when it is
    neither an image nor a PDF. At most ``max_pages + 1`` pages are looked at."""
    head = data[:1024]
    if b"%PDF-" in head:
        return _measure_pdf(data, max_pages, pdfinfo, timeout)
    for magics, plugin in _IMAGES:
        if head.startswith(magics):
            return _measure_image(data, plugin, max_pages)
    return None


def _measure_image(data: bytes, plugin: type[ImageFile.ImageFile], max_pages: int) -> Declared:
    try:
        image = plugin(io.BytesIO(data))
    except (SyntaxError, OSError, ValueError, EOFError) as exc:
        raise Unmeasurable(f"unreadable {plugin.format} header: {exc}") from exc
    with image:
        sizes = [image.size]
        # Only a TIFF's further pages are read as pages (Tesseract reads them all); a GIF's
        # or APNG's other frames are not, and seeking them would decode.
        while plugin is TiffImagePlugin.TiffImageFile and len(sizes) <= max_pages:
            try:
                image.seek(len(sizes))
            except EOFError:
                break
            except (SyntaxError, OSError, ValueError) as exc:
                raise Unmeasurable(f"unreadable TIFF page {len(sizes) + 1}: {exc}") from exc
            sizes.append(image.size)
    return Declared(len(sizes), tuple(sizes))


def _measure_pdf(data: bytes, max_pages: int, pdfinfo: str, timeout: float) -> Declared:
    with tempfile.NamedTemporaryFile(suffix=".pdf") as pdf:
        pdf.write(data)
        pdf.flush()
        try:
            done = subprocess.run(
                [pdfinfo, "-f", "1", "-l", str(max_pages + 1), pdf.name],
                capture_output=True,
                timeout=timeout,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise Unmeasurable(f"pdfinfo: {exc}") from exc
    count = _PDF_PAGES.search(done.stdout)
    if done.returncode != 0 or count is None:
        raise Unmeasurable(f"unreadable PDF: {done.stderr.decode(errors='replace')[-200:]}")
    scale = PDF_RENDER_DPI / 72
    sizes = tuple(
        (round(float(w) * scale), round(float(h) * scale))
        for w, h in _PDF_SIZE.findall(done.stdout)
    )
    return Declared(int(count.group(1)), sizes)


def over_limits(files: list[Declared], limits: PageLimits) -> str | None:
    """Why these files, taken as one fax, are past the limits; None when they are not."""
    pages = sum(f.count for f in files)
    if pages > limits.max_pages:
        return f"{pages} pages, more than {limits.max_pages}"
    total = 0
    for number, (width, height) in enumerate((s for f in files for s in f.sizes), start=1):
        if width * height > limits.max_page_pixels:
            return (
                f"page {number} is {width}x{height} pixels, "
                f"more than {limits.max_page_pixels} per page"
            )
        total += width * height
    if total > limits.max_total_pixels:
        return f"{total} pixels in all, more than {limits.max_total_pixels}"
    return None
