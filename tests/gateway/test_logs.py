"""Log lines, text and JSON: contact details masked in the message, the fields and the
traceback, whatever a source passes; the rest of the line as it was."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from gateway.contract.logs import configure, log_event
from gateway.contract.redaction import mask

log = logging.getLogger("hotline.test")
_QUIET = ("alembic", "mail.log", "sqlalchemy")


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """The gateway's own logging set up on a buffer; the test run's put back after."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level, {n: logging.getLogger(n).level for n in _QUIET}
    stream = io.StringIO()
    yield stream
    root.handlers[:], root.level = saved[0], saved[1]
    for name, level in saved[2].items():
        logging.getLogger(name).setLevel(level)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sms from 13812345678", "sms from 138****5678"),
        ("sms from +8613812345678", "sms from 138****5678"),
        ("sms from 86 138 1234 5678.", "sms from 138****5678."),
        ("call from +86-138-1234-5678;tag=x", "call from 138****5678;tag=x"),
        ("id 110105198002294612 ok", "id 110***********4612 ok"),
        ("id 11010519491231002x", "id 110***********002x"),
        ("MAIL FROM:<zhao.san@example.com>", "MAIL FROM:<z***@example.com>"),
        ("key 8613812345678:26112614300032:1", "key 138****5678:26112614300032:1"),
        # What must stay: tracking numbers, SMSC stamps, ids, ports, times, IP addresses.
        ("letter 202611230000011 job=4242 port=5060", "letter 202611230000011 job=4242 port=5060"),
        (
            "stamp 26112614300032 at 2026-11-23T10:00:00",
            "stamp 26112614300032 at 2026-11-23T10:00:00",
        ),
        ("peer 10.1.2.3:52123 took 1234.5 ms", "peer 10.1.2.3:52123 took 1234.5 ms"),
    ],
    ids=[
        "mobile",
        "plus-86",
        "86-spaced",
        "dashed",
        "id-number",
        "id-number-x",
        "e-mail",
        "sms-key",
        "tracking-number",
        "smsc-stamp",
        "peer",
    ],
)
def test_contact_details_are_masked_and_nothing_else(text: str, expected: str) -> None:
    assert mask(text) == expected
    assert mask(expected) == expected  # masking twice changes nothing


def test_text_without_a_digit_or_an_at_is_returned_as_it_is() -> None:
    text = "routing.done status=assigned"
    assert mask(text) is text


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_every_part_of_a_record_is_masked(captured: io.StringIO, fmt: str) -> None:
    configure("DEBUG", fmt, captured)

    log_event(
        log,
        "smtp.received",
        sender="zhao.san@example.com",
        envelope={"rcpt": ["li.si@example.cn"], "caller": ("+8613812345678", 3)},
        parts=2,
        tracking_number="202611230000011",
    )
    log.warning("sms from %s refused", "13987654321")
    try:
        raise ValueError("the 'To' number +86 139 1111 2222 is not valid")
    except ValueError:
        log.exception("outbox.failed id=%s", "110105198002294612")
    log.info("a %d b", "not a number")  # arguments that do not fit the message
    out = captured.getvalue()

    for secret in (
        "zhao.san",
        "li.si",
        "13812345678",
        "13987654321",
        "139 1111 2222",
        "110105198002294612",
    ):
        assert secret not in out
    for masked in (
        "z***@example.com",
        "l***@example.cn",
        "138****5678",
        "139****4321",
        "139****2222",
        "110***********4612",
        "202611230000011",
        "Traceback",
    ):
        assert masked in out
    if fmt == "json":
        entries = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        assert entries[0]["envelope"] == {
            "rcpt": ["l***@example.cn"],
            "caller": ["138****5678", 3],
        }
        assert entries[0]["parts"] == 2
        assert "139****2222" in entries[2]["exception"]


def test_sqlalchemy_never_echoes_rows_even_at_debug(captured: io.StringIO) -> None:
    # Rows carry letters' texts and names, which masking cannot catch; SQLAlchemy keeps
    # its own loggers at WARNING unless told otherwise, and nothing here tells it.
    configure("DEBUG", "text", captured)
    assert not logging.getLogger("sqlalchemy.engine.Engine").isEnabledFor(logging.INFO)
