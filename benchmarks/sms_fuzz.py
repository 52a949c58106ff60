"""Bad SMS never stop the modem: mutated PDUs through the decoder, then bad and good SMS
interleaved through a real modem sweep.

    .venv/bin/python -m benchmarks.sms_fuzz [--mutations 1000000] [--rounds 200]

1. ``--mutations`` PDUs, each a real one (7-bit, UCS2, concatenated) with 1-4 bytes set,
   cut, inserted or dropped, through ``parse_pdu``: every one must decode or raise
   PduError; anything else is counted as a failure and printed. Rate against the same
   number of unmutated PDUs decoded in the same run.
2. ``--rounds`` rounds against the modem simulator on a pty (python-gsmmodem-new, a
   committed letter on SQLite, AT+CMGD): each round puts a mutated PDU the decoder refuses
   on the SIM, then a good SMS with a text of its own. Verified: every good SMS is a
   letter with its text and sender, every bad one is set aside on disk, the SIM ends
   empty and the modem thread never dies. Rate of good letters against a run of only
   good SMS on a fresh channel in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from pathlib import Path

from sqlalchemy import select

from channels.gsm import GsmChannel
from channels.gsm.pdu import PduError, parse_pdu
from gateway.contract.config import GsmConfig, ModemConfig
from simulators.modem import ModemProfile, ModemSimulator
from store.db import make_engine, make_read_sessionmaker
from store.migrate import upgrade
from store.models import Letter
from tests.channels.test_sms_pdu import SEEDS
from tests.conftest import PII, build_intake, count_rows

SENDER = "+8613800138000"


def mutated(rng: random.Random) -> str:
    data = bytearray.fromhex(rng.choice(SEEDS))
    for _ in range(rng.randint(1, 4)):
        op, at = rng.random(), rng.randrange(len(data) + 1)
        if op < 0.5 and at < len(data):
            data[at] = rng.randrange(256)
        elif op < 0.7:
            del data[at:]
        elif op < 0.85:
            data.insert(at, rng.randrange(256))
        elif at < len(data):
            del data[at]
    return data.hex().upper()


def decode_all(pdus: list[str]) -> tuple[float, int, int, list[str]]:
    """Seconds, decoded, refused (PduError) and the failures (anything else)."""
    decoded = refused = 0
    failures: list[str] = []
    started = time.perf_counter()
    for pdu in pdus:
        try:
            _ = parse_pdu(pdu).text
            decoded += 1
        except PduError:
            refused += 1
        except Exception as exc:  # what the benchmark exists to find
            failures.append(f"{type(exc).__name__}: {exc} <- {pdu}")
    return time.perf_counter() - started, decoded, refused, failures


def refused_pdus(rng: random.Random, count: int) -> list[str]:
    found: list[str] = []
    while len(found) < count:
        pdu = mutated(rng)
        try:
            parse_pdu(pdu)
        except PduError:
            found.append(pdu)
    return found


async def sweep(rounds: int, bad: list[str], workdir: Path) -> tuple[float, dict[str, int]]:
    """Seconds to store ``rounds`` good SMS (each after a bad PDU when ``bad`` is given)."""
    engine = make_engine(f"sqlite:///{workdir / 'letters.db'}", pii=PII)
    upgrade(engine)
    parts = build_intake(engine, workdir)
    simulator = ModemSimulator(ModemProfile(capacity=50))
    device = simulator.start()
    settings = GsmConfig(
        modems=[ModemConfig(name="modem-1", device=device)],
        sweep_interval_seconds=0.2,
        reconnect_min_seconds=0.1,
        malformed_dir=workdir / "set-aside",
    )
    channel = GsmChannel(settings, parts.intake.accept, {"modem-1": device})
    await channel.start()
    worker = channel.workers[0]
    assert await asyncio.to_thread(worker.connected.wait, 30)
    texts = [f"第{n}条：人民路{n}号的路灯坏了，请修理。" for n in range(rounds)]
    started = time.perf_counter()
    for n, text in enumerate(texts):
        if bad:
            await asyncio.to_thread(simulator.deliver_pdu, bad[n])
        await asyncio.to_thread(simulator.deliver_text, SENDER, text)
        while simulator.pending:  # the SIM is full: let the sweep free it
            await asyncio.sleep(0.05)
    while count_rows(engine, Letter) < rounds:
        await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - started
    # A read session: a write session would hold SQLite's lock the intake needs.
    with make_read_sessionmaker(engine)() as session:
        stored = {letter.text: letter.citizen.phone for letter in session.scalars(select(Letter))}
    await asyncio.sleep(1)  # a last sweep for the last bad PDU
    checks = {
        "good stored with their text and sender": sum(stored.get(text) == SENDER for text in texts),
        "letters": len(stored),
        "set aside on disk": len(list((workdir / "set-aside").glob("*.pdu"))),
        "left on the SIM": len(simulator.stored()),
        "thread alive": int(worker._thread.is_alive()),
        "reconnects": worker.failures,
    }
    await channel.stop()
    simulator.stop()
    engine.dispose()
    return elapsed, checks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mutations", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--seed", type=int, default=4475)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    pdus = [mutated(rng) for _ in range(args.mutations)]
    originals = [SEEDS[n % len(SEEDS)] for n in range(args.mutations)]
    base_seconds, _, base_refused, base_failures = decode_all(originals)
    seconds, decoded, refused, failures = decode_all(pdus)
    print(
        f"decoder: {args.mutations:,} mutated PDUs: {decoded:,} decoded, {refused:,} PduError, "
        f"{len(failures)} other exceptions (must be 0); {args.mutations / seconds:,.0f}/s, "
        f"ratio to unmutated PDUs {base_seconds / seconds:.2f} "
        f"(unmutated: {base_refused:,} refused, {len(base_failures)} other)"
    )
    for failure in failures[:10]:
        print("  ", failure)

    bad = refused_pdus(rng, args.rounds)
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        good_seconds, good = asyncio.run(sweep(args.rounds, [], Path(a)))
        mixed_seconds, mixed = asyncio.run(sweep(args.rounds, bad, Path(b)))
    print(f"sweep, good only: {args.rounds / good_seconds:.1f} letters/s; {good}")
    print(
        f"sweep, a bad PDU before each good SMS: {args.rounds / mixed_seconds:.1f} good "
        f"letters/s, ratio {good_seconds / mixed_seconds:.2f}; {mixed}"
    )
    ok = (
        not failures
        and mixed["good stored with their text and sender"] == args.rounds
        and mixed["set aside on disk"] == args.rounds
        and mixed["left on the SIM"] == 0
        and mixed["thread alive"] == 1
    )
    print("verified" if ok else "FAILED: see the counts above")


if __name__ == "__main__":
    main()
