"""SMS letters verifiably stored per second through one and four simulated modems, as a
ratio of what a plain python-gsmmodem-new reader takes off the same simulators in the run.

    .venv/bin/python -m benchmarks.gsm [--messages 200]

Each modem is the project's simulator on a real pty. The gateway's GSM channel drives it
the whole way: +CMTI, AT+CMGL, decoding, a committed letter (SQLite), AT+CMGD. The baseline
is the library's own reader on the same kind of simulator: woken by +CMTI like the channel
(and swept as often), it lists the SIM and deletes each message it read, with no database.

An SMS counts when it arrived once with its sender and its text: for the gateway, as a
letter from that citizen's number with that text; for the baseline, as a message read. A
run also fails every message still on a SIM or held back by the network at its end.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from gsmmodem.modem import GsmModem
from sqlalchemy import Engine, func, select

from benchmarks.common import Tally, ratio
from channels.gsm import GsmChannel
from gateway.contract.config import GsmConfig, ModemConfig
from simulators.modem import ModemProfile, ModemSimulator
from store.db import make_engine
from store.migrate import upgrade
from store.models import Citizen, Letter
from tests.conftest import PII, build_intake

SWEEP_SECONDS = 0.5  # the channel's sweep_interval_seconds, for both
SETTLE_SECONDS = 30  # a run ends when nothing new arrived for this long


def messages_for(modems: int, messages: int) -> list[list[tuple[str, str]]]:
    """(sender, text) for each modem: every SMS from a number of its own."""
    return [
        [
            (f"+86138{n:02d}{k:06d}", f"第{k}条：人民路{n}-{k}号的路灯坏了，请尽快修理。")
            for k in range(messages // modems)
        ]
        for n in range(modems)
    ]


def feed(simulators: list[ModemSimulator], plan: list[list[tuple[str, str]]]) -> None:
    def deliver(sim: ModemSimulator, sms: list[tuple[str, str]]) -> None:
        for sender, text in sms:
            sim.deliver_text(sender, text)

    threads = [
        threading.Thread(target=deliver, args=(s, p)) for s, p in zip(simulators, plan, strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def wait_for(count: Callable[[], int], total: int, settle: float = SETTLE_SECONDS) -> float:
    """Until ``count()`` reaches ``total`` or stops growing; returns when it last grew
    (perf_counter). Both sides are another thread's or process's work: read, not told."""
    seen, grew = -1, time.perf_counter()
    while True:
        now = count()
        if now != seen:
            seen, grew = now, time.perf_counter()
        if now >= total or time.perf_counter() - grew > settle:
            return grew
        time.sleep(0.02)  # resolution of the measurement, 20 ms on runs of seconds


def check(
    tally: Tally,
    got: list[tuple[str, str]],
    plan: list[list[tuple[str, str]]],
    simulators: list[ModemSimulator],
) -> Tally:
    wanted = Counter(sms for sms in (s for p in plan for s in p))
    arrived = Counter(got)
    for sms, n in arrived.items():
        if sms not in wanted:
            tally.fail("messages with a sender or text never sent", n)
            continue
        tally.verified += 1
        tally.fail("messages stored twice", n - 1)
    tally.fail("messages never stored", len(set(wanted) - set(arrived)))
    wait_for(lambda: -sum(len(s.stored()) for s in simulators), 0, 5)  # last AT+CMGDs
    tally.fail("messages left on a SIM", sum(len(s.stored()) for s in simulators))
    tally.fail("messages the network still held back", sum(s.pending for s in simulators))
    return tally


async def gateway_run(modems: int, messages: int, workdir: Path) -> Tally:
    engine = make_engine(f"sqlite:///{workdir / f'gsm-{modems}.db'}", pii=PII)
    upgrade(engine)
    parts = build_intake(engine, workdir / f"m{modems}")
    simulators = [ModemSimulator(ModemProfile(capacity=50)) for _ in range(modems)]
    devices = {f"modem-{i}": sim.start() for i, sim in enumerate(simulators)}
    settings = GsmConfig(
        modems=[ModemConfig(name=name, device=device) for name, device in devices.items()],
        sweep_interval_seconds=SWEEP_SECONDS,
        malformed_dir=workdir / f"malformed-{modems}",
    )
    channel = GsmChannel(settings, parts.intake.accept, devices)
    await channel.start()
    tally = Tally()
    try:
        for worker in channel.workers:
            assert await asyncio.to_thread(worker.connected.wait, 30)
        plan = messages_for(modems, messages)
        total = sum(len(p) for p in plan)
        started = time.perf_counter()
        feeder = asyncio.create_task(asyncio.to_thread(feed, simulators, plan))
        last = await asyncio.to_thread(wait_for, lambda: letters(engine), total)
        await feeder
        tally.seconds = last - started
        check(tally, stored(engine), plan, simulators)
        aside = settings.malformed_dir
        tally.fail(
            "PDUs the channel set aside", len(list(aside.iterdir())) if aside.exists() else 0
        )
    finally:
        await channel.stop()
        for sim in simulators:
            sim.stop()
        engine.dispose()
    return tally


def letters(engine: Engine) -> int:
    with engine.execution_options(read_only=True).connect() as conn:  # never the write lock
        return int(conn.execute(select(func.count()).select_from(Letter)).scalar_one())


def stored(engine: Engine) -> list[tuple[str, str]]:
    """(sender, text) of every letter, the sender decrypted as the citizen's phone."""
    query = select(Citizen.phone, Letter.text).join(Citizen, Letter.citizen_id == Citizen.id)
    with engine.execution_options(read_only=True).connect() as conn:
        found = [(str(phone), str(text)) for phone, text in conn.execute(query)]
    everything = letters(engine)
    return found + [("", "")] * (everything - len(found))  # letters without a citizen


class _PlainModem(GsmModem):  # type: ignore[misc]
    def __init__(self, device: str, wake: threading.Event) -> None:
        super().__init__(device, 115200)
        self._wake = wake

    def _handleModemNotification(self, lines: list[str]) -> None:
        self._wake.set()


def baseline_run(modems: int, messages: int) -> Tally:
    simulators = [ModemSimulator(ModemProfile(capacity=50)) for _ in range(modems)]
    devices = [sim.start() for sim in simulators]
    got: list[tuple[str, str]] = []
    stop = threading.Event()
    ready = threading.Barrier(modems + 1, timeout=30)
    tally = Tally()

    def read(device: str) -> None:
        wake = threading.Event()
        modem = _PlainModem(device, wake)
        try:
            modem.connect()
            ready.wait()
            while not stop.is_set():
                wake.clear()
                # Deleted one by one: the library's delete=True sends AT+CMGD=1,4 after the
                # listing, and what arrived in between is lost unread.
                for sms in modem.listStoredSms():
                    got.append((sms.number, sms.text))
                    modem.deleteStoredSms(sms.index)
                wake.wait(SWEEP_SECONDS)
        except Exception as exc:  # the reader's boundary: its death is reported
            tally.deaths.append(f"{type(exc).__name__}: {exc}"[:200])
            ready.abort()
        finally:
            modem.close()

    readers = [threading.Thread(target=read, args=(d,), daemon=True) for d in devices]
    for t in readers:
        t.start()
    try:
        ready.wait()
        plan = messages_for(modems, messages)
        total = sum(len(p) for p in plan)
        started = time.perf_counter()
        feeder = threading.Thread(target=feed, args=(simulators, plan))
        feeder.start()
        last = wait_for(lambda: len(got), total)
        feeder.join()
        tally.seconds = last - started
        stop.set()
        for t in readers:
            t.join(10)
        check(tally, got, plan, simulators)
    finally:
        stop.set()
        for sim in simulators:
            sim.stop()
    return tally


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for modems in (1, 4):
            plain = baseline_run(modems, args.messages)
            gateway = asyncio.run(gateway_run(modems, args.messages, Path(tmp)))
            print(
                f"gsm, {modems} modem(s): gateway {gateway.rate:.1f} verified letters/s "
                f"({gateway.verified}/{args.messages // modems * modems}; "
                f"{gateway.problems()}); plain python-gsmmodem-new reader {plain.rate:.1f} "
                f"SMS/s ({plain.verified}; {plain.problems()}); "
                f"gateway/plain reader = {ratio(gateway.rate, plain.rate)}"
            )


if __name__ == "__main__":
    main()
