"""A fax's pages are counted and sized from their headers, never decoded, and judged against
the limits; refused inputs are kept under names no two inputs share."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PIL import Image, ImageFile

from gateway.contract.config import PageLimits
from gateway.engine.pages import Declared, Unmeasurable, measure, over_limits
from gateway.engine.quarantine import keep, quarantine_name
from tests.conftest import require_tool
from tests.support.faxes import bomb_pdf, bomb_tiff

LIMITS = PageLimits(max_pages=3, max_page_pixels=100, max_total_pixels=250)


@pytest.fixture
def nothing_decoded(monkeypatch: pytest.MonkeyPatch) -> None:
    def load(self: ImageFile.ImageFile) -> None:
        raise AssertionError("a page was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)


def png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("1", (width, height), 1).save(out, format="PNG")
    return out.getvalue()


def test_a_200_page_13000_square_tiff_is_measured_from_its_headers(nothing_decoded: None) -> None:
    declared = measure(bomb_tiff(200, 13000, 13000, strip=b"\x00"), max_pages=100)

    # No further page is looked at than it takes to pass the limit.
    assert declared == Declared(101, ((13000, 13000),) * 101)


def test_a_small_tiff_gives_every_page(nothing_decoded: None) -> None:
    assert measure(bomb_tiff(2, 1728, 2200), max_pages=100) == Declared(
        2, ((1728, 2200), (1728, 2200))
    )


def test_a_png_is_one_page_whatever_it_is_labelled(nothing_decoded: None) -> None:
    assert measure(png(33000, 20), max_pages=100) == Declared(1, ((33000, 20),))


def test_a_pdf_page_is_sized_as_pdftoppm_renders_it_for_ocr() -> None:
    require_tool("pdfinfo")
    declared = measure(bomb_pdf(200, 4680, 4680), max_pages=100)

    assert declared == Declared(200, ((13000, 13000),) * 101)


@pytest.mark.parametrize(
    "data",
    [b"II*\x00 broken tiff", b"\x89PNG\r\n\x1a\n broken", b"%PDF-1.4 not really"],
    ids=["tiff", "png", "pdf"],
)
def test_a_header_that_cannot_be_read_is_unmeasurable(data: bytes) -> None:
    require_tool("pdfinfo")
    with pytest.raises(Unmeasurable):
        measure(data, max_pages=100)


def test_what_is_neither_image_nor_pdf_is_not_measured() -> None:
    assert measure(b"/etc/passwd\n", max_pages=100) is None


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ([Declared(3, ((10, 10), (10, 10), (5, 10)))], None),
        ([Declared(2, ((10, 10),) * 2), Declared(2, ((5, 5),) * 2)], "4 pages, more than 3"),
        ([Declared(101, ((1, 1),) * 4)], "101 pages, more than 3"),
        ([Declared(1, ((10, 11),))], "page 1 is 10x11 pixels, more than 100 per page"),
        (
            [Declared(1, ((10, 10),)), Declared(1, ((1, 101),))],
            "page 2 is 1x101 pixels, more than 100 per page",
        ),
        ([Declared(3, ((10, 10), (10, 10), (6, 10)))], "260 pixels in all, more than 250"),
    ],
    ids=[
        "at-every-limit",
        "pages-summed-over-files",
        "page-count-read-past-the-limit",
        "one-page-too-large",
        "a-later-file's-page",
        "total-past",
    ],
)
def test_the_limits(files: list[Declared], expected: str | None) -> None:
    assert over_limits(files, LIMITS) == expected


def test_the_defaults_take_a_long_fine_fax_and_refuse_the_bomb() -> None:
    defaults = PageLimits()
    fine_a4 = Declared(100, ((1728, 2200),) * 100)
    a3_600_dpi = Declared(1, ((7016, 9921),))
    bomb = Declared(1, ((13000, 13000),))

    assert over_limits([fine_a4], defaults) is None
    assert over_limits([a3_600_dpi], defaults) is None
    assert over_limits([bomb], defaults) is not None


def test_quarantined_inputs_never_share_a_name(tmp_path: Path) -> None:
    at = datetime(2026, 4, 12, 8, 30, 15, tzinfo=UTC)
    first = keep(tmp_path, b"one mail", at, ".eml")
    other = keep(tmp_path, b"another mail", at, ".eml")
    later = keep(tmp_path, b"one mail", at.replace(microsecond=1), ".eml")

    assert len({first, other, later}) == 3
    assert first.read_bytes() == b"one mail"
    assert first.name == quarantine_name(b"one mail", at, ".eml")
    assert first.name.startswith("20260412T083015.000000Z-")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name for p in (first, other, later)
    )
