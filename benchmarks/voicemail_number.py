"""How long a caller waits, after pressing # at the end of a voicemail, for the first digit of
their tracking number, against the same call's wait for the beep after the menu key.

    .venv/bin/python -m benchmarks.voicemail_number [--calls 10] [--keep DIR]

One SIP worker (`hotline sip worker`, SQLite, the tests' tone prompts, tests/channels/sip/
heard.py) and the pjsua2 phone simulator, one call at a time: key 1, 1.2 s, a Mandarin
message from espeak-ng, #. What the phone received is read back as prompt names with their
times; a call counts only when what it heard after the beep is exactly its letter's number
and code, twice, as the letter is stored. Measured on the caller's clock (the phone's
recording, keyed to when its script pressed the keys):

- number: # to the first digit prompt (the store's commit, then `stored` and `number_is`);
- baseline: the menu key to the beep (the `record` prompt, then the beep), in the same call;
- and the answer to each key alone: # to `stored`, the key to `record`.

The tone prompts are 0.4 s for the menu's, 0.18 s for the number's. Not a timed test: run
by hand; the figures go to docs/channels/sip.md.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from benchmarks.common import percentile, ratio
from gateway.contract.config import load_config
from simulators.phone import DTMF_DURATION_MS, Dtmf, Phone, Play, Step, Wait, wav_seconds
from store.db import make_engine, make_sessionmaker
from store.migrate import upgrade
from store.models import Letter
from tests.channels.sip.conftest import sip_config
from tests.channels.sip.heard import Heard, after_beep, heard, told
from tests.conftest import PII
from tests.support.processes import Child, free_port

CALLER = "13912345678"
# The worker's own count: from the # being handled to intake's answer (close + commit).
READY = re.compile(r"sip\.number_ready\b.*?seconds\W+([0-9.]+)")
MESSAGE_TEXT = "我家楼下的路灯坏了三天，晚上很黑。"
KEY_AT, BEFORE_MESSAGE = 0.3, 1.2  # the script's waits, seconds
# A key step lasts the tone and 60 ms after it (simulators/phone.py, Phone._press).
KEY_STEP = (DTMF_DURATION_MS + 60) / 1000


@dataclass(frozen=True)
class Timed:
    number: float  # # -> first digit
    beep: float  # menu key -> beep
    answer: float  # # -> "stored"
    menu_answer: float  # menu key -> "record"


def message(folder: Path) -> Path:
    raw, wav = folder / "message.raw.wav", folder / "message.wav"
    subprocess.run(["espeak-ng", "-v", "cmn", "-w", str(raw), MESSAGE_TEXT], check=True)
    subprocess.run(["sox", str(raw), "-r", "8000", "-c", "1", "-b", "16", str(wav)], check=True)
    return wav


def first(runs: list[Heard], after: float, wanted: str | None = None) -> float | None:
    """When the first prompt (named ``wanted``, or any) began after ``after`` seconds."""
    for run in runs:
        if run.start >= after and (wanted is None or run.name.startswith(wanted)):
            return run.start
    return None


def timed(runs: list[Heard], hash_at: float) -> Timed | None:
    number = first(runs, hash_at, "digit_")
    answer = first(runs, hash_at, "stored")
    beep = first(runs, KEY_AT, "beep")
    menu_answer = first(runs, KEY_AT, "record")
    if None in (number, answer, beep, menu_answer):
        return None
    assert number is not None and answer is not None
    assert beep is not None and menu_answer is not None
    return Timed(number - hash_at, beep - KEY_AT, answer - hash_at, menu_answer - KEY_AT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--keep", type=Path, help="keep the worker's folder and the WAVs here")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="voicemail-number-"))
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = sip_config(root, port)
    engine = make_engine(load_config(config).database.url, pii=PII)
    upgrade(engine)
    worker = Child(
        [sys.executable, "-m", "gateway.cli", "--config", str(config), "sip", "worker"],
        dict(os.environ),
    )
    spoken = message(root)
    hash_at = KEY_AT + KEY_STEP + BEFORE_MESSAGE + wav_seconds(spoken)
    script: list[Step] = [Wait(KEY_AT), Dtmf("1"), Wait(BEFORE_MESSAGE), Play(spoken), Dtmf("#")]
    results: list[Timed] = []
    failures: list[str] = []
    try:
        worker.wait_for_line("sip.worker.ready")
        headers = {"P-Asserted-Identity": f"<sip:{CALLER}@trunk.example>"}
        with Phone(headers=headers) as phone:
            for n in range(args.calls):
                record_to = root / f"heard-{n}.wav"
                report = phone.call(f"sip:12345@127.0.0.1:{port}", script, record_to=record_to)
                runs = heard(record_to.read_bytes())
                with make_sessionmaker(engine)() as session:
                    letter = session.scalars(
                        select(Letter).where(Letter.external_id.startswith(report.call_id + ";"))
                    ).one_or_none()
                if letter is None:
                    failures.append(f"call {n}: no letter ({report.hung_up_by})")
                    continue
                expected = told(letter.tracking_number, letter.verification_code)
                if after_beep(runs) != expected:
                    failures.append(f"call {n}: heard {after_beep(runs)[:6]}... not its number")
                    continue
                times = timed(runs, hash_at)
                if times is None:
                    failures.append(f"call {n}: a prompt to time is missing")
                    continue
                results.append(times)
    finally:
        worker.stop()
        engine.dispose()
    stores = [float(found[1]) for line in worker.lines if (found := READY.search(line))]

    def p50(values: list[float]) -> float:
        return percentile(values, 50)

    number, beep = p50([t.number for t in results]), p50([t.beep for t in results])
    answer, menu = p50([t.answer for t in results]), p50([t.menu_answer for t in results])
    print(f"calls verified: {len(results)} of {args.calls}")
    for failure in failures:
        print(f"  {failure}")
    print(f"# -> first digit (p50):        {number * 1000:7.0f} ms")
    print(f"menu key -> beep (p50):        {beep * 1000:7.0f} ms   (baseline, same calls)")
    print(f"ratio number / baseline:       {ratio(number, beep)}")
    print(f"# -> first prompt (p50):       {answer * 1000:7.0f} ms")
    print(f"menu key -> first prompt (p50):{menu * 1000:7.0f} ms")
    print(f"ratio answer / menu answer:    {ratio(answer, menu)}")
    print(f"worker: WAV closed and stored (p50 of {len(stores)}): {p50(stores) * 1000:.0f} ms")
    print(f"files: {root}")


if __name__ == "__main__":
    main()
