"""E-mail to IncomingContact: MIME walking, Chinese charsets, own words before quotes. Pure."""

from __future__ import annotations

import binascii
import email
import hashlib
import html
import mimetypes
import re
from dataclasses import dataclass, field
from datetime import datetime
from email.message import Message
from email.policy import Compat32
from email.utils import getaddresses
from html.parser import HTMLParser

from channels.charsets import (
    CONTROL,
    b64decode_lenient,
    decode_header_value,
    decode_text,
    one_line,
    raw_bytes,
)
from gateway.contract.contact import Attachment, Channel, Citizen, IncomingContact
from gateway.contract.errors import PayloadError


class _RawHeaders(Compat32):
    """compat32, but header values come back exactly as parsed (raw 8-bit bytes as
    surrogate escapes) instead of as `email.header.Header`: we decode them ourselves."""

    def header_fetch_parse(self, name: str, value: str) -> str:
        return value


_POLICY = _RawHeaders()
# A forwarded message is written back out without refolding its headers.
_EML_POLICY = _POLICY.clone(linesep="\r\n", max_line_length=None)
_MIME = mimetypes.MimeTypes()  # the built-in table only, the same on every machine

_MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*")
_CUT = re.compile(
    r"-{2,}\s*(?:original message|forwarded message|原始邮件|回复的原邮件|转发的邮件)\s*-{2,}"
    r"|_{10,}|--",
    re.IGNORECASE,
)
_ATTRIBUTION = re.compile(r"(?:在.*写道|on\s.*\swrote)\s*[:：]", re.IGNORECASE)


def _payload_bytes(part: Message) -> bytes:
    # decode=True undoes base64 (repairing lost padding) and quoted-printable, and gives 8-bit
    # parts as sent; decode=False would decode them with the label, replacing what fails.
    data = part.get_payload(decode=True)
    if not isinstance(data, bytes):
        return b""
    label = str(part.get("content-transfer-encoding", "")).lower()
    if label.strip() != label:  # the stdlib needs the label exact: "base64 " stays encoded
        if label.strip() == "base64":
            return b64decode_lenient(data)
        if label.strip() == "quoted-printable":
            return binascii.a2b_qp(data)
    return data


def _safe_filename(name: str) -> str:
    name = CONTROL.sub("", re.split(r"[/\\]", name)[-1]).strip()
    if name in (".", ".."):
        return ""
    stem, dot, ext = name.rpartition(".")
    if len(name) > 255:  # the store's column; keep the extension
        name = stem[: 254 - len(ext)] + dot + ext if dot and len(ext) < 20 else name[:255]
    return name


def _filename(part: Message) -> str | None:
    """RFC 2231 (charset, continuations), RFC 2047 inside quotes (Outlook, Foxmail), raw
    GBK bytes; `filename=` on Content-Disposition first, then `name=` on Content-Type."""
    for header, param in (("content-disposition", "filename"), ("content-type", "name")):
        try:
            value = part.get_param(param, None, header)
        except (TypeError, ValueError):  # stdlib cannot order `name*` beside `name*0`
            continue
        if isinstance(value, tuple):
            charset, _language, text = value
            name = _safe_filename(one_line(decode_text(raw_bytes(text, "latin-1"), charset)))
        else:
            name = _safe_filename(decode_header_value(value))
        if name:
            return name
    return None


def _media_type(part: Message) -> str:
    media_type = part.get_content_type()
    ok = _MEDIA_TYPE.fullmatch(media_type) and len(media_type) <= 127
    return media_type if ok else "application/octet-stream"


def _children(part: Message) -> list[Message] | None:
    """The parts inside a multipart or message/* part; None for a leaf."""
    if not part.is_multipart():  # get_payload() on a leaf would decode 8-bit text lossily
        return None
    return [child for child in part.get_payload() if isinstance(child, Message)]


@dataclass
class _Walker:
    """Visits MIME parts in order: body text out of the return value, the rest collected."""

    attachments: list[Attachment] = field(default_factory=list)
    count: int = 0

    def visit(self, part: Message) -> list[tuple[str, str]]:
        """The body texts under `part` as ("plain" | "html", text)."""
        self.count += 1
        index = self.count
        children = _children(part)
        if part.get_content_maintype() != "message" and children is not None:
            found = [self.visit(child) for child in children]
            if part.get_content_subtype() != "alternative":
                return [body for bodies in found for body in bodies]
            for bodies in found:  # RFC 2046 §5.1.4: plain text is what the citizen typed
                if any(kind == "plain" and text.strip() for kind, text in bodies):
                    return [body for body in bodies if body[0] == "plain"]
            return next((bodies for bodies in reversed(found) if bodies), [])
        filename = _filename(part)
        media_type = part.get_content_type()
        # A multipart whose boundary is missing is kept as text rather than lost.
        textual = media_type in ("text/plain", "text/html") or media_type.startswith("multipart/")
        if textual and filename is None and part.get_content_disposition() != "attachment":
            text = decode_text(_payload_bytes(part), part.get_content_charset())
            return [("html" if media_type == "text/html" else "plain", text)]
        if children is None:
            data = _payload_bytes(part)
        else:  # message/rfc822: the parsed message, written back out
            data = b"".join(child.as_bytes(policy=_EML_POLICY) for child in children)
        if filename is None and media_type in ("message/rfc822", "message/global"):
            filename = "forwarded.eml"
        ext = _MIME.guess_extension(media_type) or ".bin"
        name = filename or f"part-{index}{ext}"
        self.attachments.append(Attachment(name, _media_type(part), data))
        return []


class _HTMLText(HTMLParser):
    """Readable text from HTML mail: blocks become line breaks, <blockquote> becomes `> `."""

    SKIP = ("script", "style", "head", "title", "template")
    LINE = ("div", "li", "tr", "dd", "dt", "address", "center", "section")
    PARAGRAPH = ("p", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "table", "hr")
    BREAKS = dict.fromkeys(LINE, 1) | dict.fromkeys((*PARAGRAPH, "blockquote", "pre"), 2)

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.newlines = 2  # at the start of a line
        self.open = dict.fromkeys((*self.SKIP, "pre", "blockquote"), 0)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.parts.append("\n")
            self.newlines += 1
        elif tag in ("td", "th") and not self.newlines:
            self.parts.append(" ")
        self._boundary(tag, 1)

    def handle_endtag(self, tag: str) -> None:
        self._boundary(tag, -1)

    def _boundary(self, tag: str, step: int) -> None:
        while self.parts and self.newlines < self.BREAKS.get(tag, 0):
            self.parts.append("\n")
            self.newlines += 1
        if tag in self.open:
            self.open[tag] = max(0, self.open[tag] + step)

    def handle_data(self, data: str) -> None:
        if any(self.open[tag] for tag in self.SKIP):
            return
        if not self.open["pre"]:
            data = re.sub(r"[ \t\r\n\f\v]+", " ", data)
            data = data.lstrip(" ") if self.newlines else data
        if data:
            self.parts.append(("> " * self.open["blockquote"] if self.newlines else "") + data)
            self.newlines = 0


def _html_to_text(markup: str) -> str:
    parser = _HTMLText()
    try:
        parser.feed(markup)
        parser.close()
    except AssertionError:  # how html.parser reports a malformed <![ ... ]> declaration
        text = html.unescape(re.sub(r"<[^>]*>", " ", markup))
        return re.sub(r"[ \t\xa0]+", " ", text).strip()
    return "".join(parser.parts).replace("\xa0", " ")


def _own_words_first(lines: list[str]) -> str:
    """Quoted replies and the signature are kept, but after the citizen's own words."""
    moved = [line.startswith(">") for line in lines]
    for i, line in enumerate(lines):
        head = line.strip()
        span = 1 if _ATTRIBUTION.fullmatch(head) else 0
        if not span and i + 1 < len(lines) and _ATTRIBUTION.fullmatch(f"{head} {lines[i + 1]}"):
            span = 2  # Gmail wraps a long "On ... wrote:" line
        after = next((rest for rest in lines[i + span :] if rest.strip()), "") if span else ""
        if span and after.startswith(">"):
            moved[i : i + span] = [True] * span
        elif span or (not moved[i] and _CUT.fullmatch(head) and (head != "--" or line == head)):
            moved[i:] = [True] * (len(lines) - i)
            break
    own = [line for line, out in zip(lines, moved, strict=True) if not out]
    blocks: list[list[str]] = [[]]
    for line, out, before in zip(lines, moved, [False, *moved], strict=False):
        if out and not before:
            blocks.append([])
        if out:
            blocks[-1].append(line)
    sections = ("\n".join(section).strip("\n") for section in [own, *blocks])
    return re.sub(r"\n{3,}", "\n\n", "\n\n".join(s for s in sections if s.strip()))


def _body_text(bodies: list[tuple[str, str]]) -> str:
    text = "\n\n".join(text for kind, text in bodies if kind == "plain")
    if not text.strip():
        text = "\n\n".join(_html_to_text(text) for kind, text in bodies if kind == "html")
    text = CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    return _own_words_first([line.rstrip() for line in text.split("\n")])


def _citizen(message: Message) -> Citizen:
    for header in ("from", "sender", "reply-to"):
        value = message.get(header)
        if not value:
            continue
        # Raw 8-bit bytes become text first, so a GBK trail byte is never read as `@` or `<`.
        for name, address in getaddresses([decode_text(raw_bytes(value), None)]):
            name, address = decode_header_value(name), decode_header_value(address).lower()
            if "@" not in address or len(address) > 320:
                name, address = name or address, ""
            if name or address:
                return Citizen(name=name[:200] or None, email=address or None)
    return Citizen()


def _external_id(message: Message, raw: bytes) -> str:
    value = decode_header_value(message.get("message-id"))
    bracketed = re.search(r"<([^<>]*)>", value)
    ident = re.sub(r"\s+", "", bracketed.group(1) if bracketed else value)
    if not ident:
        return "sha256:" + hashlib.sha256(raw).hexdigest()
    if len(ident) > 255:  # the store's column
        return "sha256:" + hashlib.sha256(ident.encode()).hexdigest()
    return ident


def _check_limits(message: Message, max_parts: int, max_depth: int) -> None:
    stack, count = [(message, 0)], 0
    while stack:
        part, depth = stack.pop()
        count += 1
        if count > max_parts:
            raise PayloadError(f"the message has more than {max_parts} MIME parts (the limit)")
        if depth > max_depth:
            raise PayloadError(f"MIME parts are nested deeper than the limit of {max_depth}")
        stack.extend((child, depth + 1) for child in _children(part) or ())


@dataclass(frozen=True)
class _Letter:
    external_id: str
    citizen: Citizen
    subject: str
    text: str
    attachments: tuple[Attachment, ...]
    message: Message


def _parse(raw: bytes, max_parts: int, max_depth: int) -> _Letter:
    if not raw.strip():
        raise PayloadError("the message is empty")
    message = email.message_from_bytes(raw, policy=_POLICY)
    if not message.keys():
        raise PayloadError("the message has no headers")
    _check_limits(message, max_parts, max_depth)
    walker = _Walker()
    text = _body_text(walker.visit(message))
    subject = decode_header_value(message.get("subject"))
    if not (text or subject or walker.attachments):
        raise PayloadError("the message has no subject, no text and no attachment")
    citizen, external_id = _citizen(message), _external_id(message, raw)
    return _Letter(external_id, citizen, subject, text, tuple(walker.attachments), message)


def parse_email(
    raw: bytes,
    *,
    source: str,
    received_at: datetime,
    max_parts: int = 200,
    max_depth: int = 10,
) -> IncomingContact:
    """Decode one RFC 5322 message into a contact; raise `PayloadError` for what cannot be
    a letter. Any byte input ends as one or the other."""
    return read_email(
        raw, source=source, received_at=received_at, max_parts=max_parts, max_depth=max_depth
    )[0]


def read_email(
    raw: bytes,
    *,
    source: str,
    received_at: datetime,
    max_parts: int = 200,
    max_depth: int = 10,
) -> tuple[IncomingContact, Message]:
    """`parse_email`, and the parsed message for what else a caller reads in its headers (a
    fax server's caller id): the mail is parsed once. Its header values are as they came
    (compat32, raw 8-bit bytes as surrogate escapes), never decoded."""
    try:
        letter = _parse(bytes(raw), max_parts, max_depth)
    except PayloadError:
        raise
    except Exception as exc:  # the adapter boundary: no other exception may reach SMTP
        raise PayloadError(f"the message cannot be parsed ({type(exc).__name__})") from exc
    contact = IncomingContact(
        channel=Channel.EMAIL,
        source=source,
        external_id=letter.external_id,
        received_at=received_at,
        citizen=letter.citizen,
        subject=letter.subject,
        text=letter.text,
        attachments=letter.attachments,
    )
    return contact, letter.message
