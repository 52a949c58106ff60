"""Attachments from the web form, judged by their bytes, never by their names.

Photos (JPEG, PNG, GIF, WebP) must decode as images and PDFs must look like PDFs; anything
else is refused with a message naming the file, so the citizen knows which one to drop.
"""

from __future__ import annotations

import io
import re
import unicodedata
import warnings

from PIL import Image

from gateway.contract.contact import Attachment
from gateway.contract.errors import PayloadError

_IMAGE_FORMATS = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "GIF": "image/gif",
    "WEBP": "image/webp",
}
_EXTENSIONS = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/gif": ".gif",
    "image/webp": ".webp",
    "application/pdf": ".pdf",
}
# Decoding a crafted image could take the server's memory: a photo is far below this.
_MAX_PIXELS = 60_000_000


class UploadError(PayloadError):
    """Why one file was refused, in words for the citizen."""


def media_type_of(data: bytes) -> str | None:
    """The type the bytes really are, among the ones the hotline takes; None otherwise."""
    if data.startswith(b"%PDF-"):
        # A whole PDF ends with %%EOF (a few bytes of trailing whitespace are common).
        return "application/pdf" if b"%%EOF" in data[-1024:] else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                if image.width * image.height > _MAX_PIXELS:
                    return None
                kind = _IMAGE_FORMATS.get(image.format or "")
                image.verify()
    except Exception:  # Pillow raises many types for bytes that are not an image
        return None
    return kind


def safe_filename(name: str, media_type: str, index: int) -> str:
    """The citizen's file name without paths or control characters, with a true extension."""
    base = unicodedata.normalize("NFC", name.replace("\\", "/").rsplit("/", 1)[-1])
    base = re.sub(r"[\x00-\x1f\x7f]", "", base).strip(" .")
    stem = base.rsplit(".", 1)[0] if "." in base else base
    return f"{stem[:80] or f'附件{index}'}{_EXTENSIONS[media_type]}"


def size_text(size: int) -> str:
    return f"{size / 1048576:g} MB" if size >= 1048576 else f"{size / 1024:g} KB"


def check_upload(name: str, data: bytes, index: int, max_bytes: int) -> Attachment:
    shown = name or f"附件{index}"
    if not data:
        raise UploadError(f"文件“{shown}”是空的。")
    if len(data) > max_bytes:
        raise UploadError(f"文件“{shown}”超过 {size_text(max_bytes)}，请压缩后再上传。")
    media_type = media_type_of(data)
    if media_type is None:
        raise UploadError(
            f"文件“{shown}”不是可接受的图片或PDF文件（支持 JPG、PNG、GIF、WebP、PDF）。"
        )
    return Attachment(safe_filename(name, media_type, index), media_type, data)
