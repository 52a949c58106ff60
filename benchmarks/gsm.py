"""SMS letters per second through one and four simulated modems, against what real modems
can receive (a GSM modem takes on the order of 10-20 SMS a minute).

    .venv/bin/python -m benchmarks.gsm [--messages 200]

Each modem is the project's simulator on a real pty driven by python-gsmmodem-new; every
SMS goes the whole way: +CMTI, AT+CMGL, decoding, a committed letter (SQLite), AT+CMGD.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import threading
import time
from pathlib import Path

from channels.gsm import GsmChannel
from gateway.config import GsmConfig, ModemConfig
from simulators.modem import ModemProfile, ModemSimulator
from store.db import make_engine
from store.migrate import upgrade
from store.models import Letter
from tests.conftest import PII, build_intake, count_rows

REAL_MODEM_PER_MINUTE = 20  # the fast end of what a GSM modem receives


async def run(modems: int, messages: int, workdir: Path) -> float:
    engine = make_engine(f"sqlite:///{workdir / f'gsm-{modems}.db'}", pii=PII)
    upgrade(engine)
    parts = build_intake(engine, workdir / f"m{modems}")
    simulators = [ModemSimulator(ModemProfile(capacity=50)) for _ in range(modems)]
    devices = {f"modem-{i}": sim.start() for i, sim in enumerate(simulators)}
    settings = GsmConfig(
        modems=[ModemConfig(name=name, device=device) for name, device in devices.items()],
        sweep_interval_seconds=0.5,
        malformed_dir=workdir / "malformed",
    )
    channel = GsmChannel(settings, parts.intake.accept, devices)
    await channel.start()
    for worker in channel.workers:
        assert await asyncio.to_thread(worker.connected.wait, 30)

    def feed(sim: ModemSimulator, n: int) -> None:
        for k in range(messages // modems):
            sim.deliver_text(f"+86138{n:02d}{k:06d}", f"第{k}条：人民路的路灯坏了，请尽快修理。")

    started = time.perf_counter()
    feeders = [threading.Thread(target=feed, args=(s, n)) for n, s in enumerate(simulators)]
    for t in feeders:
        t.start()
    total = messages // modems * modems
    while count_rows(engine, Letter) < total:
        await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - started
    for t in feeders:
        t.join()
    await channel.stop()
    for sim in simulators:
        sim.stop()
    engine.dispose()
    return total / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for modems in (1, 4):
            rate = asyncio.run(run(modems, args.messages, Path(tmp)))
            physical = modems * REAL_MODEM_PER_MINUTE / 60
            print(
                f"gsm, {modems} modem(s): {rate:.1f} letters/s end to end; real modems take "
                f"{physical:.2f}/s; gateway/physical limit = {rate / physical:.0f}x"
            )


if __name__ == "__main__":
    main()
