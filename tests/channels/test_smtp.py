"""The SMTP channel, driven over the wire by smtplib: replies, storage, faxes, receipts."""

from __future__ import annotations

import asyncio
import io
import smtplib
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import SMTP as SMTP_POLICY
from email.policy import default
from pathlib import Path

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from PIL import Image, ImageFile
from sqlalchemy import Engine, select

from channels.mail.smtp import SmtpChannel
from gateway.contract.config import (
    FaxConfig,
    JobsConfig,
    OcrConfig,
    OutgoingMailConfig,
    PageLimits,
    SmtpConfig,
)
from gateway.engine.notifications import Receipts
from gateway.engine.ocr import OcrHandler
from gateway.engine.outbox import DeliveryHandler, Mailer
from gateway.engine.workers import JobRunner
from store.db import make_sessionmaker
from store.jobs import JobQueue
from store.models import Attachment, Citizen, Event, Job, Letter
from tests.conftest import Parts, build_intake, count_rows, require_tool
from tests.support.faxes import FONT, bomb_pdf, bomb_tiff, fax_tiff
from tests.support.tcp_proxy import TcpProxy

OURS = "12345@hotline.local"


def mail(
    subject: str = "人民路路灯不亮", body: str = "路灯坏了三天。", **headers: str
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "张三 <zhangsan@example.cn>"
    message["To"] = OURS
    message["Subject"] = subject
    message["Message-ID"] = headers.pop("message_id", "<m1@example.cn>")
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(body)
    return message


def send(port: int, message: EmailMessage | bytes, to: str = OURS) -> str:
    """Deliver as a mail server would; returns the last reply text (250's carries the number)."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        raw = message if isinstance(message, bytes) else message.as_bytes(policy=SMTP_POLICY)
        client.ehlo()
        client.mail("sender@example.cn")
        code, _ = client.rcpt(to)
        if code != 250:
            raise smtplib.SMTPRecipientsRefused({to: (code, b"")})
        code, reply = client.data(raw)
        if code != 250:
            raise smtplib.SMTPDataError(code, reply)
        return reply.decode()


@dataclass
class Running:
    channel: SmtpChannel
    parts: Parts

    @property
    def port(self) -> int:
        return self.channel.port


async def running(parts: Parts, **settings: object) -> AsyncIterator[Running]:
    settings.setdefault("quarantine_dir", parts.files.root.parent / "quarantine")
    config = SmtpConfig(port=0, **settings)  # type: ignore[arg-type]
    channel = SmtpChannel(config, parts.intake.accept_or_refuse)
    await channel.start()
    try:
        yield Running(channel, parts)
    finally:
        await channel.stop()


@pytest.fixture
async def smtp(parts: Parts) -> AsyncIterator[Running]:
    async for server in running(parts, max_message_bytes=500_000, max_parts=50):
        yield server


async def test_a_mail_to_the_hotline_becomes_a_letter_and_250_names_it(
    smtp: Running, engine: Engine
) -> None:
    reply = await asyncio.to_thread(send, smtp.port, mail())

    number = reply.split()[-1]
    with engine.connect() as conn:
        letter = conn.execute(select(Letter.__table__)).one()
        citizen = conn.execute(select(Citizen.__table__)).one()
    assert letter.tracking_number == number
    assert (letter.channel, letter.subject, letter.text) == (
        "email",
        "人民路路灯不亮",
        "路灯坏了三天。",
    )
    assert letter.external_id == "m1@example.cn"
    assert (citizen.name, citizen.email) == ("张三", "zhangsan@example.cn")


async def test_a_mail_delivered_twice_is_one_letter(smtp: Running, engine: Engine) -> None:
    first = await asyncio.to_thread(send, smtp.port, mail())
    again = await asyncio.to_thread(send, smtp.port, mail())

    assert first.split()[-1] == again.split()[-1]
    assert count_rows(engine, Letter) == 1


async def test_mail_for_someone_else_is_refused_with_550(smtp: Running, engine: Engine) -> None:
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        await asyncio.to_thread(send, smtp.port, mail(), "someone@elsewhere.example")

    assert refused.value.recipients["someone@elsewhere.example"][0] == 550
    assert count_rows(engine, Letter) == 0


async def test_an_oversized_mail_is_refused_with_552_and_nothing_is_stored(
    smtp: Running, engine: Engine
) -> None:
    big = mail(body=("很长的信。" * 10 + "\n") * 3_000)

    def declared() -> None:
        with smtplib.SMTP("127.0.0.1", smtp.port, timeout=30) as client:
            client.sendmail("sender@example.cn", [OURS], big.as_bytes())

    with pytest.raises(smtplib.SMTPSenderRefused) as refused:  # SIZE declared up front
        await asyncio.to_thread(declared)
    assert refused.value.smtp_code == 552
    with pytest.raises(smtplib.SMTPDataError) as too_big:  # no SIZE: refused after DATA
        await asyncio.to_thread(send, smtp.port, big)
    assert too_big.value.smtp_code == 552
    assert count_rows(engine, Letter) == 0


@pytest.mark.parametrize(
    "raw",
    [
        b"Subject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        + b"".join(b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n" for _ in range(10_000))
        + b"--b--\r\n",
        b"Content-Type: multipart/mixed; boundary=a\r\n\r\n"
        + b"".join(
            f"--a\r\nContent-Type: multipart/mixed; boundary=a{i}\r\n\r\n".encode()
            for i in range(60)
        ),
    ],
    ids=["10000-parts", "nested-60-deep"],
)
async def test_a_message_we_cannot_read_gets_554_and_the_server_keeps_serving(
    smtp: Running, engine: Engine, raw: bytes
) -> None:
    with pytest.raises(smtplib.SMTPDataError) as refused:
        await asyncio.to_thread(send, smtp.port, raw)
    assert refused.value.smtp_code == 554

    reply = await asyncio.to_thread(send, smtp.port, mail())
    assert reply.startswith("2.0.0 OK")
    assert count_rows(engine, Letter) == 1
    assert count_rows(engine, Attachment) == 0


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_with_the_database_down_the_sender_is_told_451_and_retries_later(
    database_url: str, engine: Engine, cut_engine: Engine, proxy: TcpProxy, tmp_path: Path
) -> None:
    async for server in running(build_intake(cut_engine, tmp_path)):
        proxy.down()
        with pytest.raises(smtplib.SMTPDataError) as deferred:
            await asyncio.to_thread(send, server.port, mail())
        assert deferred.value.smtp_code == 451
        assert count_rows(engine, Letter) == 0
        assert server.parts.spool.depth() == 0  # the sending server keeps it, not us

        proxy.up()
        reply = await asyncio.to_thread(send, server.port, mail())
        assert reply.startswith("2.0.0 OK")
    assert count_rows(engine, Letter) == 1


def fax_mail(pages: bytes, subtype: str = "tiff", **headers: str) -> EmailMessage:
    message = mail(
        subject="Fax from 0831-2345678",
        body="You have received a 2 page fax.",
        message_id="<fax-1@faxserver.local>",
        **headers,
    )
    message.replace_header("To", "fax@hotline.local")
    maintype = "application" if subtype == "pdf" else "image"
    filename = {"tiff": "fax.tif"}.get(subtype, f"fax.{subtype}")
    message.add_attachment(pages, maintype=maintype, subtype=subtype, filename=filename)
    return message


@pytest.fixture
def font() -> Path:
    return Path(require_tool(str(FONT)))


async def test_a_fax_keeps_each_page_and_the_caller_and_queues_ocr(
    smtp: Running, engine: Engine, font: Path
) -> None:
    pages = fax_tiff(["投诉：人民路井盖丢失", "请尽快处理"])
    message = fax_mail(pages, X_Fax_Caller_ID="+86 831 2345678")

    await asyncio.to_thread(send, smtp.port, message, "fax@hotline.local")

    with engine.connect() as conn:
        letter = conn.execute(select(Letter.__table__)).one()
        phone = conn.execute(select(Citizen.phone)).scalar_one()
        files = conn.execute(select(Attachment.filename, Attachment.media_type)).all()
        jobs = conn.execute(select(Job.kind, Job.letter_id)).all()
    assert letter.channel == "fax"
    # Routed on what OCR reads, not on the fax server's cover mail: it waits for that.
    assert (letter.text_source, letter.text_pending) == ("ocr", True)
    assert phone == "+868312345678"
    assert files == [("fax-p1.png", "image/png"), ("fax-p2.png", "image/png")]
    assert jobs == [("ocr", letter.id)]


@pytest.mark.parametrize(
    ("headers", "body", "expected"),
    [
        ({}, "CallID1: 0831-7654321\nPages: 1", "08317654321"),
        ({"X_Fax_From": "0831 1112222"}, "", "08311112222"),
        ({}, "主叫号码：13800138000", "13800138000"),
    ],
    ids=["hylafax-body", "x-fax-from", "chinese-body"],
)
async def test_the_calling_number_comes_from_where_fax_servers_write_it(
    smtp: Running, engine: Engine, headers: dict[str, str], body: str, expected: str
) -> None:
    message = mail(subject="facsimile received", body=body, **headers)
    message.add_attachment(
        b"%PDF-1.4 not really", maintype="application", subtype="pdf", filename="fax.pdf"
    )

    await asyncio.to_thread(send, smtp.port, message)

    with engine.connect() as conn:
        assert conn.execute(select(Letter.channel)).scalar_one() == "fax"
        assert conn.execute(select(Citizen.phone)).scalar_one() == expected


def run_jobs(engine: Engine, handlers: dict[str, object], **settings: object) -> int:
    runner = JobRunner(
        JobQueue(make_sessionmaker(engine)),
        handlers,  # type: ignore[arg-type]
        JobsConfig(backoff_seconds=0.001, **settings),  # type: ignore[arg-type]
    )
    ran = 0
    # A retry is due a millisecond or two after its failure: claiming again sooner finds
    # nothing, which is not the end of the work (a fast run stopped at 2 of 3 attempts).
    until = time.monotonic() + 30
    while time.monotonic() < until:
        if runner.run_one(list(handlers)):
            ran += 1
        elif not _queued(engine, list(handlers)):
            break
    return ran


def _queued(engine: Engine, kinds: list[str]) -> bool:
    with engine.connect() as conn:
        found = conn.execute(
            select(Job.id).where(Job.kind.in_(kinds), Job.status == "queued").limit(1)
        ).first()
    return found is not None


async def test_fax_pages_are_read_by_ocr_into_the_letter(
    smtp: Running, engine: Engine, font: Path
) -> None:
    require_tool("tesseract")
    message = fax_mail(fax_tiff(["人民路井盖丢失", "请尽快处理"]))
    await asyncio.to_thread(send, smtp.port, message, "fax@hotline.local")
    sessions = make_sessionmaker(engine)
    ocr = OcrHandler(sessions, smtp.parts.files, OcrConfig(), smtp.parts.intake.clock)
    ocr.ready()

    assert await asyncio.to_thread(run_jobs, engine, {"ocr": ocr}) == 1

    with engine.connect() as conn:
        transcript = conn.execute(select(Letter.transcript)).scalar_one()
        kinds = list(conn.execute(select(Event.kind).order_by(Event.id)).scalars())
    assert "井盖" in transcript and "尽快处理" in transcript
    assert kinds == ["received", "ocr_done"]


async def test_a_fax_ocr_cannot_read_stays_a_letter_with_a_recorded_failure_at_once(
    smtp: Running, engine: Engine
) -> None:
    require_tool("tesseract")
    message = fax_mail(b"II*\x00 broken tiff")  # kept as it came: Pillow cannot open it
    await asyncio.to_thread(send, smtp.port, message, "fax@hotline.local")
    ocr = OcrHandler(
        make_sessionmaker(engine), smtp.parts.files, OcrConfig(), smtp.parts.intake.clock
    )

    ran = await asyncio.to_thread(run_jobs, engine, {"ocr": ocr}, max_attempts=5)

    assert ran == 1  # a corrupt page is corrupt on every try
    with engine.connect() as conn:
        kinds = list(conn.execute(select(Event.kind).order_by(Event.id)).scalars())
        job = conn.execute(select(Job.status, Job.attempts)).one()
        files = conn.execute(select(Attachment.filename)).scalars().all()
    assert kinds == ["received", "ocr_failed"]
    assert tuple(job) == ("failed", 1)
    assert files == ["fax.tif"]


def failed_ocr(engine: Engine) -> tuple[str, int, str]:
    with engine.connect() as conn:
        status, attempts, error = conn.execute(
            select(Job.status, Job.attempts, Job.last_error)
        ).one()
        kinds = list(conn.execute(select(Event.kind).order_by(Event.id)).scalars())
    assert kinds == ["received", "ocr_failed"]
    return status, attempts, error


async def test_a_page_tesseract_finds_too_large_fails_at_once_not_after_retries(
    smtp: Running, engine: Engine
) -> None:
    require_tool("tesseract")
    wide = io.BytesIO()  # 0.66 Mpx, within every limit, but wider than Tesseract's 32767
    Image.new("1", (33000, 20), 1).save(wide, format="PNG")
    await asyncio.to_thread(send, smtp.port, fax_mail(wide.getvalue(), "png"), "fax@hotline.local")
    ocr = OcrHandler(
        make_sessionmaker(engine), smtp.parts.files, OcrConfig(), smtp.parts.intake.clock
    )

    assert await asyncio.to_thread(run_jobs, engine, {"ocr": ocr}, max_attempts=5) == 1

    status, attempts, error = failed_ocr(engine)
    assert (status, attempts) == ("failed", 1)
    assert "Image too large" in error


def ocr_with_tesseract(
    smtp: Running, engine: Engine, path: Path, script: str, limits: PageLimits | None = None
) -> OcrHandler:
    """An OCR job whose "tesseract" is this shell script."""
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)
    return OcrHandler(
        make_sessionmaker(engine),
        smtp.parts.files,
        OcrConfig(tesseract=str(path)),
        smtp.parts.intake.clock,
        fax=FaxConfig(limits=limits or PageLimits()),
    )


@pytest.mark.parametrize(
    ("pages", "subtype", "limits", "reason"),
    [
        (fax_tiff(["一", "二", "三"]), "tiff", PageLimits(max_pages=2), "3 pages, more than 2"),
        (
            fax_tiff(["一"]),
            "tiff",
            PageLimits(max_page_pixels=1_000_000),
            "page 1 is 1728x600 pixels",
        ),
        (b"/etc/hostname\n", "png", PageLimits(), "not an image or PDF"),
    ],
    ids=["stored-before-a-lower-page-limit", "page-too-large", "text-labelled-png"],
)
async def test_pages_ocr_must_not_read_fail_at_once_before_tesseract_runs(
    smtp: Running,
    engine: Engine,
    tmp_path: Path,
    font: Path,
    pages: bytes,
    subtype: str,
    limits: PageLimits,
    reason: str,
) -> None:
    await asyncio.to_thread(send, smtp.port, fax_mail(pages, subtype), "fax@hotline.local")
    ran_tesseract = tmp_path / "tesseract-ran"
    script = f"touch {ran_tesseract}\nexit 0"
    ocr = ocr_with_tesseract(smtp, engine, tmp_path / "tesseract", script, limits)

    assert await asyncio.to_thread(run_jobs, engine, {"ocr": ocr}, max_attempts=5) == 1

    status, attempts, error = failed_ocr(engine)
    assert (status, attempts) == ("failed", 1)
    assert reason in error
    assert not ran_tesseract.exists()


async def test_tesseract_killed_mid_page_is_retried(
    smtp: Running, engine: Engine, tmp_path: Path, font: Path
) -> None:
    await asyncio.to_thread(send, smtp.port, fax_mail(fax_tiff(["一"])), "fax@hotline.local")
    # As the OOM killer would leave it.
    ocr = ocr_with_tesseract(smtp, engine, tmp_path / "tesseract", "kill -9 $$")

    assert await asyncio.to_thread(run_jobs, engine, {"ocr": ocr}, max_attempts=3) == 3

    status, attempts, error = failed_ocr(engine)
    assert (status, attempts) == ("failed", 3)
    assert "(-9)" in error


@pytest.fixture
def nothing_decoded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any page decoded in this process (the SMTP server's) fails the test."""

    def load(self: ImageFile.ImageFile) -> None:
        raise AssertionError("a fax page was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)


@pytest.mark.parametrize(
    ("build", "subtype", "reason"),
    [
        (lambda: bomb_tiff(200, 13000, 13000), "tiff", "101 pages, more than 100"),
        (lambda: bomb_pdf(200, 4680, 4680), "pdf", "200 pages, more than 100"),
        (lambda: bomb_tiff(1, 13000, 13000), "tiff", "page 1 is 13000x13000 pixels"),
        (
            lambda: bomb_tiff(41, 5000, 5000),
            "tiff",
            "1025000000 pixels in all, more than 1000000000",
        ),
    ],
    ids=["200-pages-of-13000-square", "pdf-200-pages", "one-page-13000-square", "total"],
)
async def test_a_fax_past_the_limits_gets_552_its_mail_kept_and_no_page_decoded(
    smtp: Running,
    engine: Engine,
    nothing_decoded: None,
    build: Callable[[], bytes],
    subtype: str,
    reason: str,
) -> None:
    require_tool("pdfinfo")
    message = fax_mail(build(), subtype)
    raw = message.as_bytes(policy=SMTP_POLICY)

    started = time.monotonic()
    with pytest.raises(smtplib.SMTPDataError) as refused:
        await asyncio.to_thread(send, smtp.port, raw, "fax@hotline.local")
    took = time.monotonic() - started

    assert refused.value.smtp_code == 552
    text = refused.value.smtp_error.decode()
    assert text.startswith("5.3.4 传真超出受理上限") and reason.split(",")[0] in text
    assert took < 10  # loose: it is not a timed test; the split alone took 113 s
    assert (count_rows(engine, Letter), count_rows(engine, Attachment)) == (0, 0)
    kept = list((smtp.parts.files.root.parent / "quarantine").iterdir())
    assert len(kept) == 1 and kept[0].suffix == ".eml"
    header, _, rest = kept[0].read_bytes().partition(b"\r\n")
    assert header.startswith(b"X-Hotline-Quarantined: fax over the hotline's limits")
    assert rest == raw  # the mail byte for byte as it came
    assert smtp.channel.quarantined() == {"smtp": 1}

    reply = await asyncio.to_thread(send, smtp.port, mail())  # and the server keeps serving
    assert reply.startswith("2.0.0 OK")


async def test_fax_limits_come_from_config_and_a_fax_at_them_is_a_letter(
    parts: Parts, engine: Engine, font: Path
) -> None:
    limits = PageLimits(max_pages=2, max_page_pixels=1728 * 600, max_total_pixels=2 * 1728 * 600)
    async for server in running(parts, fax=FaxConfig(limits=limits)):
        two = fax_mail(fax_tiff(["一", "二"]))
        reply = await asyncio.to_thread(send, server.port, two, "fax@hotline.local")
        assert reply.startswith("2.0.0 OK")

        three = fax_mail(fax_tiff(["一", "二", "三"]))
        three.replace_header("Message-ID", "<fax-2@faxserver.local>")
        with pytest.raises(smtplib.SMTPDataError) as refused:
            await asyncio.to_thread(send, server.port, three, "fax@hotline.local")
        assert refused.value.smtp_code == 552
    with engine.connect() as conn:
        files = conn.execute(select(Attachment.filename)).scalars().all()
    assert files == ["fax-p1.png", "fax-p2.png"]


class Relay:
    """A real SMTP server standing in for the city's mail relay; it keeps what it gets."""

    def __init__(self) -> None:
        self.received: list[bytes] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.received.append(envelope.original_content or b"")
        return "250 OK"


@pytest.fixture
async def relay() -> AsyncIterator[tuple[Relay, int]]:
    handler = Relay()
    server = await asyncio.get_running_loop().create_server(
        lambda: SMTP(handler), host="127.0.0.1", port=0
    )
    yield handler, server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


async def test_the_citizen_gets_a_chinese_receipt_with_number_and_code(
    engine: Engine, tmp_path: Path, relay: tuple[Relay, int]
) -> None:
    parts = build_intake(engine, tmp_path)
    parts.intake.receipts = Receipts(email=True, sms=False)
    outgoing = OutgoingMailConfig(enabled=True, port=relay[1])
    deliver = DeliveryHandler(
        make_sessionmaker(engine),
        {"email": Mailer(outgoing).deliver},
        parts.intake.clock,
        "hotline.local",
    )
    async for server in running(parts):
        reply = await asyncio.to_thread(send, server.port, mail())

    assert await asyncio.to_thread(run_jobs, engine, {"deliver": deliver}) == 1

    number = reply.split()[-1]
    received = BytesParser(policy=default).parsebytes(relay[0].received[0])
    body = received.get_content()
    with engine.connect() as conn:
        code = conn.execute(select(Letter.verification_code)).scalar_one()
        kinds = list(conn.execute(select(Event.kind).order_by(Event.id)).scalars())
    assert received["To"] == "zhangsan@example.cn"
    assert number in received["Subject"] and "来信已收到" in received["Subject"]
    assert f"受理编号：{number}" in body and f"查询码：{code}" in body
    assert kinds == ["received", "notified"]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    openssl = require_tool("openssl")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-days",
            "1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    yield cert, key


async def test_starttls_is_offered_when_a_certificate_is_configured(
    parts: Parts, engine: Engine, certificate: tuple[Path, Path]
) -> None:
    import ssl

    def send_over_tls(port: int) -> None:
        context = ssl.create_default_context(cafile=str(certificate[0]))
        context.check_hostname = False
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            client.starttls(context=context)
            client.send_message(mail())

    async for server in running(parts, tls_cert_file=certificate[0], tls_key_file=certificate[1]):
        await asyncio.to_thread(send_over_tls, server.port)

    assert count_rows(engine, Letter) == 1


PAYLOADS = sorted((Path(__file__).parents[1] / "payloads" / "smtp").glob("*.eml"))


@pytest.mark.parametrize("payload", PAYLOADS, ids=[p.stem for p in PAYLOADS])
async def test_every_captured_style_mail_is_stored_as_the_parser_reads_it(
    smtp: Running, engine: Engine, payload: Path
) -> None:
    from datetime import UTC, datetime

    from channels.mail.message import parse_email

    raw = payload.read_bytes()
    expected = parse_email(raw, source="smtp", received_at=datetime.now(UTC))
    wire = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")

    await asyncio.to_thread(send, smtp.port, wire)

    with engine.connect() as conn:
        letter = conn.execute(select(Letter.subject, Letter.text, Letter.channel)).one()
        files = conn.execute(select(Attachment.filename, Attachment.size)).all()
    assert tuple(letter) == (expected.subject, expected.text, "email")
    assert files == [(a.filename, len(a.data)) for a in expected.attachments]


async def test_an_attachment_whose_type_lies_is_kept_as_sent(smtp: Running, engine: Engine) -> None:
    message = mail()
    message.add_attachment(
        b"MZ\x90\x00 not a picture", maintype="image", subtype="jpeg", filename="照片.jpg"
    )

    await asyncio.to_thread(send, smtp.port, message)

    with engine.connect() as conn:
        assert conn.execute(select(Attachment.filename, Attachment.size)).one() == ("照片.jpg", 18)
