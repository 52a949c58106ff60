"""E-mail and fax-to-email: an aiosmtpd server on the gateway's event loop.

Replies follow RFC 5321 §4.2: 550 for a recipient that is not ours (never an open relay),
552 past the size limit (aiosmtpd's SIZE handling) or a fax past its page limits (the mail
then kept in quarantine_dir first), 554 for a message we cannot read, 451 when the letter
cannot be stored now so the sending server queues and retries, and 250 only after the
letter is committed.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from channels.mail.fax import as_fax, is_fax
from channels.mail.message import read_email
from gateway.contract.config import SmtpConfig
from gateway.contract.contact import Accept, IncomingContact
from gateway.contract.errors import (
    ConfigurationError,
    PayloadError,
    PayloadTooLarge,
    TransientError,
)
from gateway.contract.logs import log_event
from gateway.engine.quarantine import keep

log = logging.getLogger(__name__)

OK_RCPT = "250 2.1.5 OK"
NOT_OURS = "550 5.1.1 mailbox unavailable: not a 12345 hotline address"
TRY_LATER = "451 4.3.0 cannot store the letter now, please try again later"
UNREADABLE = "554 5.6.0 message not accepted: {reason}"
# RFC 3463 5.3.4: message too big for system. aiosmtpd sends replies as UTF-8 (SMTPUTF8).
OVER_LIMITS = "552 5.3.4 传真超出受理上限，请分批发送 {reason}"
# A typical letter (a few KiB of text) decodes in well under a millisecond: cheaper on the
# event loop than a hop to a worker thread, whose pool the job lanes' claims also wait in.
# A 16 KiB mail takes about 1 ms; anything larger is decoded in a thread.
INLINE_PARSE_BYTES = 16 * 1024


def _now() -> datetime:
    return datetime.now(UTC)


class LetterHandler:
    """The aiosmtpd handler: each message for one of our addresses becomes one letter."""

    def __init__(
        self, settings: SmtpConfig, accept: Accept, clock: Callable[[], datetime] = _now
    ) -> None:
        self.settings = settings
        self.accept = accept
        self.clock = clock
        self.quarantined = 0  # mails kept on disk and refused, since the start

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if not self.settings.accepts(address):
            log_event(log, "smtp.rcpt_refused", logging.INFO, peer=_peer(session))
            return NOT_OURS
        envelope.rcpt_tos.append(address)
        return OK_RCPT

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        try:
            if len(raw) <= INLINE_PARSE_BYTES:
                contact = self.read(raw, envelope)
            else:  # decoding a large mail or a fax's pages takes a while: off the event loop
                contact = await asyncio.to_thread(self.read, raw, envelope)
            accepted = await self.accept(contact)
        except PayloadTooLarge as exc:
            return await self._keep_and_refuse(raw, str(exc), session)
        except PayloadError as exc:
            log_event(log, "smtp.unreadable", logging.WARNING, peer=_peer(session), reason=str(exc))
            return UNREADABLE.format(reason=str(exc)[:200])
        except TransientError as exc:
            log_event(log, "smtp.deferred", logging.WARNING, peer=_peer(session), reason=str(exc))
            return TRY_LATER
        except Exception:  # adapter boundary: the sender retries, the server keeps serving
            log.exception("smtp.failed peer=%s", _peer(session))
            return TRY_LATER
        log_event(  # intake logs the letter at INFO already
            log,
            "smtp.stored",
            logging.DEBUG,
            channel=contact.channel.value,
            tracking_number=accepted.tracking_number,
            created=accepted.created,
        )
        return f"250 2.0.0 OK {accepted.tracking_number}"

    async def _keep_and_refuse(self, raw: bytes, reason: str, session: Session) -> str:
        """552 only once the mail is on disk: refused, never lost (or 451 if it cannot be kept)."""
        # Prepended like a Received: line; the mail below it stays byte for byte as sent.
        marked = f"X-Hotline-Quarantined: {reason}\r\n".encode("ascii", "replace") + raw
        try:
            path = await asyncio.to_thread(
                keep, self.settings.quarantine_dir, marked, self.clock(), ".eml"
            )
        except Exception:  # adapter boundary: a full disk is the sender's retry, not a loss
            log.exception("smtp.quarantine_failed peer=%s", _peer(session))
            return TRY_LATER
        self.quarantined += 1
        log_event(
            log,
            "smtp.quarantined",
            logging.WARNING,
            peer=_peer(session),
            reason=reason,
            file=str(path),
        )
        return OVER_LIMITS.format(reason=reason[:200])

    def read(self, raw: bytes, envelope: Envelope) -> IncomingContact:
        contact, headers = read_email(
            raw,
            source=self.settings.source,
            received_at=self.clock(),
            max_parts=self.settings.max_parts,
        )
        mail_from = envelope.mail_from or ""
        if is_fax(headers, contact.subject, mail_from, envelope.rcpt_tos, self.settings.fax):
            return as_fax(contact, headers, self.settings.fax)
        return contact


def _peer(session: Session) -> str:
    peer = session.peer
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)


class SmtpChannel:
    def __init__(
        self, settings: SmtpConfig, accept: Accept, clock: Callable[[], datetime] = _now
    ) -> None:
        self.settings = settings
        self.handler = LetterHandler(settings, accept, clock)
        self.tls = _tls_context(settings)
        self.server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    def _protocol(self) -> SMTP:
        return SMTP(
            self.handler,
            hostname=self.settings.hostname,
            data_size_limit=self.settings.max_message_bytes,
            enable_SMTPUTF8=True,
            tls_context=self.tls,
            timeout=self.settings.timeout_seconds,
        )

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(
            self._protocol, host=self.settings.host, port=self.settings.port
        )
        log_event(log, "smtp.listening", address=f"{self.settings.host}:{self.port}")

    def health(self) -> dict[str, bool]:
        return {"smtp": self.server is not None and self.server.is_serving()}

    def quarantined(self) -> dict[str, int]:
        return {"smtp": self.handler.quarantined}

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


def _tls_context(settings: SmtpConfig) -> ssl.SSLContext | None:
    if settings.tls_cert_file is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(settings.tls_cert_file, settings.tls_key_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(
            f"channels.mail.smtp.tls_cert_file: cannot load {settings.tls_cert_file}: {exc}"
        ) from exc
    return context
