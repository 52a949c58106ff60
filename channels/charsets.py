"""Text from the bytes Chinese senders really send: declared, mislabelled or unlabelled
charsets (GB2312 that is GBK/GB18030, Big5-HKSCS, HZ, UTF-16) and RFC 2047 headers."""

from __future__ import annotations

import binascii
import codecs
import re

from charset_normalizer import from_bytes

_LABEL = re.compile(r"[a-z0-9][a-z0-9._:+-]{0,39}")
_ALIASES = {
    "x-gbk": "gbk",
    "windows-936": "gbk",
    "x-euc-cn": "gb2312",
    "x-gb2312": "gb2312",
    "csgb2312": "gb2312",
    "x-big5": "big5",
    "cn-big5": "big5",
    "big5-hkscs": "big5hkscs",
    "unicode-1-1-utf-8": "utf-8",
}
# "GB2312" mail is GBK or GB18030 in practice, "Big5" is often HKSCS: decode the superset.
_FAMILY = {"gb2312": "gb18030", "gbk": "gb18030", "big5": "big5hkscs"}
_LATIN = frozenset({"ascii", "iso8859-1", "iso8859-15", "cp1252"})
_NOT_TEXT = frozenset({"unicode-escape", "raw-unicode-escape", "punycode", "idna", "undefined"})
_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# Unlabelled or mislabelled text with this many 8-bit bytes (eight Chinese characters) is
# judged by charset-normalizer among the charsets Chinese senders use; shorter text takes
# the first charset that decodes it. GB18030 decodes most Big5 text without an error (as
# gibberish), so the first clean decode alone never reaches Big5.
_JUDGED_FROM = 16
_CHINESE = ["utf_8", "gb18030", "big5hkscs"]
# C0 controls (PostgreSQL refuses NUL), stray BOMs, lone surrogates (no column takes them).
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufeff\ud800-\udfff]")
_ENCODED_WORD = re.compile(rb"=\?([^?\s]*)\?([bBqQ])\?([^?]*)\?=")


def _codec(label: str | None) -> str | None:
    """The Python codec for a MIME charset label, or None when it names no text codec."""
    name = (label or "").strip().strip("\"'").lower().partition("*")[0]  # RFC 2231 language
    if not _LABEL.fullmatch(name):
        return None
    try:
        name = codecs.lookup(_ALIASES.get(name, name)).name
    except LookupError:
        return None
    return None if name in _NOT_TEXT else _FAMILY.get(name, name)


def decode_text(data: bytes, declared: str | None) -> str:
    """Decode text bytes from the declared charset, or from what the bytes really are.

    Order: a byte-order mark; the declared charset (GB2312/GBK as GB18030, Big5 as
    Big5-HKSCS; UTF-16 without a BOM as big-endian, RFC 2781 §4.3); then, for text long
    enough to judge, the one of UTF-8, GB18030 and Big5-HKSCS whose text reads as text;
    then UTF-8, GB18030, Big5-HKSCS, the first strict decode wins. A Latin-1/ASCII label on
    8-bit bytes is usually a lie, so it is judged, then UTF-8 and GB18030 are tried before
    it. Last resort: GB18030, replacing.
    """
    if not data:
        return ""
    codec = _codec(declared)
    bom = next((name for mark, name in _BOMS if data.startswith(mark)), None)
    if bom and (codec is None or codec in _LATIN or codec.startswith("utf")):
        codec = bom
    elif codec in ("utf-16", "utf-32"):
        codec += "-be"
    tries = ["utf-8", "gb18030", "big5hkscs"]
    if codec in _LATIN and not data.isascii():
        tries = ["utf-8", "gb18030", codec]
    elif codec is not None and (text := _strict(data, codec)) is not None:
        return text
    if not bom and (judged := _judged(data)) is not None:
        return judged
    for name in dict.fromkeys(tries):
        if (text := _strict(data, name)) is not None:
            return text
    return data.decode("gb18030", errors="replace")


def _strict(data: bytes, codec: str) -> str | None:
    try:
        return data.decode(codec)
    except (UnicodeDecodeError, LookupError):  # LookupError: not a text codec
        return None


def _judged(data: bytes) -> str | None:
    """The text in whichever Chinese charset charset-normalizer finds it reads best in; None
    for text too short to judge, or that none of them decodes."""
    if sum(byte >= 0x80 for byte in data) < _JUDGED_FROM:
        return None
    best = from_bytes(data, cp_isolation=_CHINESE).best()
    # Large input is judged on samples: the whole must still decode.
    return _strict(data, best.encoding) if best is not None else None


def raw_bytes(text: str, codec: str = "utf-8") -> bytes:
    """The bytes behind a parsed value: 8-bit header bytes are surrogate escapes in it."""
    try:
        return text.encode(codec, "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape")


def b64decode_lenient(data: bytes) -> bytes:
    """Lenient base64: stray characters skipped, missing padding repaired, and words that
    some encoders pad one by one decoded one after another."""
    out = bytearray()
    for chunk in re.split(rb"=+", re.sub(rb"[^A-Za-z0-9+/=]", b"", data)):
        chunk = chunk[:-1] if len(chunk) % 4 == 1 else chunk
        out += binascii.a2b_base64(chunk + b"=" * (-len(chunk) % 4))
    return bytes(out)


def one_line(text: str) -> str:
    return CONTROL.sub("", re.sub(r"[\t\r\n]", " ", text)).strip()


def decode_header_value(value: str | bytes | None) -> str:
    """Decode a header value to one line of text.

    Handles folding (RFC 5322 §2.2.3), RFC 2047 encoded words in any charset `decode_text`
    knows, raw 8-bit bytes with no encoding at all, and a mix of both. Adjacent encoded
    words in one charset are joined before decoding because clients split multi-byte
    characters across them; whitespace between encoded words is dropped (RFC 2047 §6.2).
    """
    if value is None:
        return ""
    data = re.sub(rb"\r?\n(?=[ \t])", b"", raw_bytes(value) if isinstance(value, str) else value)
    pieces: list[tuple[str | None, bytes]] = []  # (charset, bytes); None: raw header text
    end = 0
    for word in _ENCODED_WORD.finditer(data):
        gap = data[end : word.start()]
        if gap and not (gap.isspace() and pieces and pieces[-1][0] is not None):
            pieces.append((None, gap))
        charset = word.group(1).decode("latin-1").lower()
        encoded = word.group(3)
        decoded = (
            b64decode_lenient(encoded)
            if word.group(2) in b"bB"
            else binascii.a2b_qp(encoded, header=True)
        )
        if pieces and pieces[-1][0] == charset:
            pieces[-1] = (charset, pieces[-1][1] + decoded)
        else:
            pieces.append((charset, decoded))
        end = word.end()
    pieces.append((None, data[end:]))
    return one_line("".join(decode_text(chunk, charset) for charset, chunk in pieces))
