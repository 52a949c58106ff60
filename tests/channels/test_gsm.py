"""The GSM channel with python-gsmmodem-new on a real pty, against the modem simulator."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from prometheus_client import generate_latest
from sqlalchemy import Engine, select

from channels.gsm import GsmChannel
from channels.gsm.pdu import parse_pdu
from gateway.contract.config import GsmConfig, JobsConfig, ModemConfig
from gateway.contract.contact import Accepted, IncomingContact
from gateway.engine.http import build_app
from gateway.engine.metrics import Metrics
from gateway.engine.notifications import Receipts
from gateway.engine.outbox import DeliveryReports, delivery_handlers
from gateway.engine.workers import JobRunner
from simulators.modem import ModemProfile, ModemSimulator
from simulators.modem.pdu import deliver_pdus
from store.db import engine_of, make_sessionmaker
from store.jobs import JobQueue
from store.models import Citizen, Event, Letter, OutboxMessage
from tests.conftest import Parts, count_rows

CITIZEN = "+8613800138000"
# 300 characters: five UCS2 parts of at most 67 characters each.
LONG = ("翠屏区人民路和南岸西路口的路灯已经坏了三天，晚上非常黑，老人小孩过马路很危险。" * 8)[:300]


@pytest.fixture
def modem(tmp_path: Path) -> Iterator[ModemSimulator]:
    # Through a link, as udev names a USB modem: plugged in again, the modem gets a new
    # pty, and another process may have taken the old number meanwhile.
    simulator = ModemSimulator(ModemProfile(capacity=10), symlink=tmp_path / "ttyGSM0")
    simulator.start()
    yield simulator
    simulator.stop()


@dataclass
class Running:
    channel: GsmChannel
    modem: ModemSimulator
    parts: Parts

    async def deleted(self, count: int = 1, timeout: float = 15) -> None:
        """Wait until the channel deleted ``count`` more SIM records (it does so only
        after the letter is committed)."""
        start = len(self.modem.commands)
        for _ in range(count):
            start = 1 + await asyncio.to_thread(
                self.modem.wait_for_command, "AT+CMGD", after=start, timeout=timeout
            )


def settings(device: str, tmp_path: Path, **changes: object) -> GsmConfig:
    values: dict[str, object] = {
        "sweep_interval_seconds": 0.1,
        "command_timeout_seconds": 3,
        "reconnect_min_seconds": 0.1,
        "send_per_minute": 6000,
        "malformed_dir": tmp_path / "malformed",
    }
    return GsmConfig(
        modems=[ModemConfig(name="modem-1", device=device)],
        **(values | changes),  # type: ignore[arg-type]
    )


async def run_channel(
    modem: ModemSimulator, parts: Parts, tmp_path: Path, **changes: object
) -> AsyncIterator[Running]:
    assert modem.device is not None
    device = str(tmp_path / "ttyGSM0")
    config = settings(device, tmp_path, **changes)
    reports = DeliveryReports(parts.intake.sessions, parts.intake.clock)
    channel = GsmChannel(config, parts.intake.accept, {"modem-1": device}, report=reports)
    await channel.start()
    assert await asyncio.to_thread(channel.workers[0].connected.wait, 15)
    try:
        yield Running(channel, modem, parts)
    finally:
        await channel.stop()


@pytest.fixture
async def gsm(modem: ModemSimulator, parts: Parts, tmp_path: Path) -> AsyncIterator[Running]:
    async for running in run_channel(modem, parts, tmp_path):
        yield running


def letters(engine: Engine) -> list[tuple[str, str, str | None]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(Letter.channel, Letter.text, Citizen.phone)
            .join(Citizen, Letter.citizen_id == Citizen.id)
            .order_by(Letter.id)
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


@pytest.mark.parametrize(
    "text",
    ["Streetlight broken at Renmin Rd [no.5] ~ 50€", "人民路5号的路灯坏了，请修理。", "谢谢👍"],
    ids=["gsm7-extension", "ucs2-chinese", "emoji"],
)
async def test_an_sms_becomes_a_letter_and_leaves_the_sim(
    gsm: Running, engine: Engine, text: str
) -> None:
    gsm.modem.deliver_text(CITIZEN, text)
    await gsm.deleted()

    assert letters(engine) == [("sms", text, CITIZEN)]
    assert gsm.modem.stored() == {}


async def test_a_long_sms_in_five_parts_out_of_order_with_a_duplicate_is_one_letter(
    gsm: Running, engine: Engine
) -> None:
    indexes = gsm.modem.deliver_text(CITIZEN, LONG, part_order=[3, 1, 5, 2, 4], duplicate_parts=[2])
    assert len(indexes) == 6
    await gsm.deleted(6)

    assert letters(engine) == [("sms", LONG, CITIZEN)]
    with engine.connect() as conn:
        raw = conn.execute(select(Letter.raw)).scalar_one()
    assert len(raw.splitlines()) == 5  # the PDUs are kept beside the text


async def test_a_16_bit_reference_message_is_joined_too(gsm: Running, engine: Engine) -> None:
    gsm.modem.deliver_text(CITIZEN, LONG[:150], ref_bits=16, concat_ref=0xBEEF)
    await gsm.deleted(3)
    assert letters(engine) == [("sms", LONG[:150], CITIZEN)]


async def test_messages_that_arrived_while_the_gateway_was_down_are_read_at_start(
    modem: ModemSimulator, parts: Parts, engine: Engine, tmp_path: Path
) -> None:
    modem.deliver_text(CITIZEN, "第一条")
    modem.deliver_text("+8613900139000", "第二条")

    async for running in run_channel(modem, parts, tmp_path):
        await running.deleted(2)

    assert sorted(text for _, text, _ in letters(engine)) == ["第一条", "第二条"]


async def test_a_modem_left_waiting_for_a_message_body_is_reset_at_connect(
    modem: ModemSimulator, parts: Parts, engine: Engine, tmp_path: Path
) -> None:
    """A gateway killed between AT+CMGS and its PDU leaves the modem taking every byte as
    the message body until Ctrl-Z: the next gateway's AT commands would vanish into it and
    every connect time out. ESC ends that entry (TS 27.005 §3.5.1) and sends nothing."""
    assert modem.device is not None
    fd = os.open(modem.device, os.O_RDWR | os.O_NOCTTY)
    try:
        os.write(fd, b"AT+CMGS=23\r")
        await asyncio.to_thread(modem.wait_for_command, "AT+CMGS", timeout=5)
    finally:
        os.close(fd)  # killed: the body and its Ctrl-Z never come
    modem.deliver_text(CITIZEN, "重启后的第一条")

    async for running in run_channel(modem, parts, tmp_path):
        await running.deleted()

    assert letters(engine) == [("sms", "重启后的第一条", CITIZEN)]
    assert modem.sent == []


async def test_a_full_sim_is_emptied_and_the_waiting_message_arrives(
    modem: ModemSimulator, parts: Parts, engine: Engine, tmp_path: Path
) -> None:
    modem.fill_storage()
    modem.deliver_text(CITIZEN, "SIM满了也要收到")
    assert modem.pending == 1

    async for running in run_channel(modem, parts, tmp_path):
        await running.deleted(11)

    assert ("sms", "SIM满了也要收到", CITIZEN) in letters(engine)
    assert count_rows(engine, Letter) == 11


async def test_a_malformed_pdu_is_kept_for_inspection_and_the_channel_goes_on(
    gsm: Running, engine: Engine, tmp_path: Path
) -> None:
    gsm.modem.deliver_pdu("0791683108100005F0040D91683108")  # cut short by the modem
    await gsm.deleted()
    gsm.modem.deliver_text(CITIZEN, "后面这条照常收到")
    await gsm.deleted()

    assert letters(engine) == [("sms", "后面这条照常收到", CITIZEN)]
    kept = list((tmp_path / "malformed").iterdir())
    assert len(kept) == 1 and kept[0].read_text().startswith("0791683108100005F0040D91683108")


# A UDH flag, a user data length and no user data: the decoder read past the end
# (IndexError), the modem thread ended and the SIM filled up while /healthz said ok.
NO_UDH = "0891683108100005F0440D91683108108300F000006221400100002305"


async def test_bad_pdus_in_one_sweep_are_each_kept_apart_and_the_next_sms_is_read(
    gsm: Running, engine: Engine, tmp_path: Path
) -> None:
    bad = [NO_UDH, "0791683108100005F0040D91683108", *[NO_UDH] * 9]
    for pdu in bad:
        gsm.modem.deliver_pdu(pdu)
    await gsm.deleted(len(bad))
    gsm.modem.deliver_text(CITIZEN, "后面这条照常收到")
    await gsm.deleted()

    assert letters(engine) == [("sms", "后面这条照常收到", CITIZEN)]
    assert gsm.modem.stored() == {}
    kept = sorted((tmp_path / "malformed").iterdir())
    assert len(kept) == len(bad)  # one file each, none overwritten in the same second
    assert sorted(k.read_text().splitlines()[0] for k in kept) == sorted(bad)
    assert gsm.channel.workers[0].connected.is_set()
    metrics = Metrics()
    metrics.watch_quarantines(gsm.channel)
    scraped = generate_latest(metrics.registry).decode()
    assert f'hotline_inputs_quarantined_total{{channel="gsm:modem-1"}} {len(bad)}.0' in scraped


async def test_a_message_that_fails_to_store_is_kept_apart_and_the_channel_goes_on(
    modem: ModemSimulator, parts: Parts, engine: Engine, tmp_path: Path
) -> None:
    """Whatever goes wrong with one message (here the intake port refuses it with an error
    nobody foresaw), that message is kept on disk and the modem keeps reading."""

    async def accept(contact: IncomingContact) -> Accepted:
        if "毒" in contact.text:
            raise RuntimeError("a fault nobody foresaw")
        return await parts.intake.accept(contact)

    device = modem.device
    assert device is not None
    channel = GsmChannel(settings(device, tmp_path), accept, {"modem-1": device})
    await channel.start()
    try:
        running = Running(channel, modem, parts)
        modem.deliver_text(CITIZEN, "有毒的短信")
        await running.deleted()
        modem.deliver_text(CITIZEN, "下一条照常收到")
        await running.deleted()
        assert letters(engine) == [("sms", "下一条照常收到", CITIZEN)]
        [kept] = (tmp_path / "malformed").iterdir()
        assert "RuntimeError" in kept.read_text() and modem.stored() == {}
        assert parse_pdu(kept.read_text().splitlines()[0]).text == "有毒的短信"
    finally:
        await channel.stop()


async def test_health_says_a_modem_is_down_while_unplugged_and_up_once_it_is_back(
    gsm: Running, engine: Engine
) -> None:
    app = build_app(Metrics(), lambda: True, lambda: 0, parts=gsm.channel.health)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")
    async with client:
        assert (await client.get("/healthz")).status_code == 200
        gsm.modem.disconnect()  # unplugged: reads fail, the worker reconnects with backoff
        down = await _health_until(client, 503)
        assert down.json()["parts"] == {"gsm:modem-1": "down"}
        assert (
            'hotline_channel_up{channel="gsm:modem-1"} 0.0' in (await client.get("/metrics")).text
        )
        gsm.modem.start()
        up = await _health_until(client, 200)
        assert up.json()["parts"] == {"gsm:modem-1": "ok"} and up.json()["status"] == "ok"
    gsm.modem.deliver_text(CITIZEN, "插回去以后照常收到")
    await gsm.deleted()
    assert letters(engine) == [("sms", "插回去以后照常收到", CITIZEN)]


async def _health_until(client: httpx.AsyncClient, status: int) -> httpx.Response:
    """The health answer once it is ``status`` (within 60 s: a sweep interval is 0.1 s,
    reconnects back off from 0.1 s, but a loaded machine stretches every step)."""
    for _ in range(600):
        answer = await client.get("/healthz")
        if answer.status_code == status:
            return answer
        await asyncio.sleep(0.1)
    raise AssertionError(f"/healthz never answered {status}: {answer.json()}")


async def test_a_long_sms_missing_a_part_is_stored_incomplete_after_the_wait(
    modem: ModemSimulator, parts: Parts, engine: Engine, tmp_path: Path
) -> None:
    pdus = deliver_pdus(
        smsc="+8613800100500",
        sender=CITIZEN,
        text=LONG[:200],
        timestamp=datetime.now(UTC),
        encoding="auto",
        reference=7,
        ref_bits=8,
    )
    assert len(pdus) == 3
    for pdu in (pdus[0], pdus[2]):  # the second part never comes
        modem.deliver_pdu(pdu)

    async for running in run_channel(modem, parts, tmp_path, incomplete_after_seconds=0.5):
        await running.deleted(2)

    [(_, text, _)] = letters(engine)
    assert text.endswith("（此短信不完整：共3段，只收到第1、3段）")


async def test_a_crash_between_commit_and_delete_gives_no_second_letter(
    gsm: Running, engine: Engine
) -> None:
    gsm.modem.hang_next("AT+CMGD")  # the delete is lost: the modem stops answering
    gsm.modem.deliver_text(CITIZEN, "只算一封")
    await gsm.deleted(2)  # the hung one, then again after the channel reconnected

    assert letters(engine) == [("sms", "只算一封", CITIZEN)]
    assert gsm.modem.stored() == {}


def run_jobs(parts: Parts, channel: GsmChannel) -> int:
    sessions = make_sessionmaker(engine_of(parts.intake.sessions))
    handlers = delivery_handlers(sessions, {"sms": channel.deliver}, parts.intake.clock, "h.local")
    runner = JobRunner(JobQueue(sessions), handlers, JobsConfig(backoff_seconds=0.001))
    ran = 0
    while runner.run_one(list(handlers)):
        ran += 1
    return ran


async def test_the_citizen_gets_a_chinese_sms_receipt_even_after_a_cms_error(
    gsm: Running, engine: Engine
) -> None:
    gsm.parts.intake.receipts = Receipts(email=False, sms=True)
    gsm.modem.deliver_text(CITIZEN, "井盖丢了")
    await gsm.deleted()
    gsm.modem.fail_next("AT+CMGS", "+CMS ERROR: 500")

    assert await asyncio.to_thread(run_jobs, gsm.parts, gsm.channel) == 2  # failed, retried

    with engine.connect() as conn:
        number, code = conn.execute(select(Letter.tracking_number, Letter.verification_code)).one()
    texts = [parse_pdu(sent.pdu).text for sent in gsm.modem.sent]
    receipt = "".join(texts)
    assert all(sent.destination == CITIZEN for sent in gsm.modem.sent)
    assert f"编号{number}" in receipt and f"查询码{code}" in receipt

    gsm.modem.send_status_report(gsm.modem.sent[-1].reference, status=0)
    await gsm.deleted()
    with engine.connect() as conn:
        assert conn.execute(select(OutboxMessage.status)).scalar_one() == "delivered"
        kinds = list(conn.execute(select(Event.kind).order_by(Event.id)).scalars())
    assert kinds == ["received", "notified", "delivery_report"]


async def test_a_queue_of_receipts_never_keeps_a_citizens_sms_unread(
    modem: ModemSimulator, parts: Parts, engine: Engine, tmp_path: Path
) -> None:
    """Reading has priority over sending: at the carriers' rate (here one SMS every 0.5 s)
    eight receipts take 3.5 s; the citizen's SMS that comes meanwhile is read at the next
    sweep, between two of them, not after the last."""
    async for running in run_channel(modem, parts, tmp_path, send_per_minute=120):
        worker = running.channel.workers[0]
        receipts = [worker.send("+8613900139000", f"回执{n}") for n in range(8)]
        await asyncio.to_thread(modem.wait_for_command, "AT+CMGS", timeout=10)
        modem.deliver_text(CITIZEN, "发送排队时也要先收")
        await running.deleted()
        unsent = sum(not receipt.done() for receipt in receipts)
        assert letters(engine) == [("sms", "发送排队时也要先收", CITIZEN)]
        assert unsent >= 4, f"read only after {8 - unsent} of 8 receipts were sent"
        for receipt in receipts:  # and every receipt still goes, in order
            await asyncio.wrap_future(receipt)
        assert [parse_pdu(s.pdu).text for s in modem.sent] == [f"回执{n}" for n in range(8)]


async def test_a_modem_unplugged_during_a_command_is_down_at_once_not_after_its_timeout(
    modem: ModemSimulator, parts: Parts, tmp_path: Path
) -> None:
    """The library's reader sees the device vanish at once; the command waiting for an
    answer used to wait out its whole timeout (here 30 s) while /healthz said ok."""
    async for running in run_channel(modem, parts, tmp_path, command_timeout_seconds=30):
        app = build_app(Metrics(), lambda: True, lambda: 0, parts=running.channel.health)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")
        async with client:
            modem.hang_next("AT+CMGL")  # the next sweep's listing is never answered
            await asyncio.to_thread(modem.wait_for_command, "AT+CMGL", timeout=10)
            await asyncio.sleep(0.2)
            unplugged = time.monotonic()
            modem.disconnect()
            await _health_until(client, 503)
            assert time.monotonic() - unplugged < 5
            plugged = time.monotonic()
            modem.start()  # and it is read again at once, not after the hung command's 30 s
            await _health_until(client, 200)
            assert time.monotonic() - plugged < 10
