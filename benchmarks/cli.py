"""`hotline letters list --json` (100 rows) against the least any Python command reading the
same rows with the same libraries pays: start, import SQLAlchemy's ORM and pydantic, read.

    .venv/bin/python -m benchmarks.cli [--letters 100] [--rounds 7]

Both run as fresh processes on the same SQLite file, alternating; a run counts only when it
printed the 100 rows (the list's JSON parsed, each with its tracking number). Prints the
medians and baseline/list (1.0: the command costs no more than its libraries).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gateway.intake import Intake
from gateway.metrics import Metrics
from gateway.spool import Spool
from store.attachments import AttachmentStore
from store.db import make_engine, make_sessionmaker
from store.migrate import upgrade
from tests.conftest import PII, SHANGHAI, make_contact

ROOT = Path(__file__).resolve().parents[1]
# What any command reading letters has to pay: the interpreter, the ORM, pydantic, a query.
BASELINE = """
import json, sqlite3, sys
import pydantic, sqlalchemy.orm
rows = sqlite3.connect(sys.argv[1]).execute(
    "SELECT tracking_number, channel, received_at, status FROM letters "
    "ORDER BY id DESC LIMIT 100").fetchall()
print(json.dumps([dict(zip(("tracking_number", "channel", "received_at", "status"), r))
                  for r in rows]))
"""


def timed(command: list[str], env: dict[str, str], expected: int) -> float | None:
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    took = time.perf_counter() - began
    try:
        rows = json.loads(done.stdout)
    except json.JSONDecodeError:
        return None
    ok = done.returncode == 0 and len(rows) == expected
    return took if ok and all(row.get("tracking_number") for row in rows) else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--letters", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        database = Path(workdir) / "hotline.db"
        url = f"sqlite:///{database}"
        engine = make_engine(url, pii=PII)
        upgrade(engine)
        metrics = Metrics()
        intake = Intake(
            make_sessionmaker(engine),
            AttachmentStore(Path(workdir) / "files"),
            Spool(Path(workdir) / "spool", metrics),
            metrics,
            SHANGHAI,
        )
        for n in range(args.letters):
            intake.accept_sync(make_contact(n + 1))
        engine.dispose()
        env = {**os.environ, "HOTLINE_DATABASE_URL": url, "HOTLINE_CONFIG": ""}
        hotline = [sys.executable, "-m", "gateway.cli", "letters", "list", "--json"]
        hotline += ["--limit", str(args.letters)]
        plain = [sys.executable, "-c", BASELINE, str(database)]
        listed: list[float] = []
        base: list[float] = []
        failures = {"list": 0, "baseline": 0}
        for _ in range(args.rounds):
            for name, command, into in (("list", hotline, listed), ("baseline", plain, base)):
                took = timed(command, env, args.letters)
                if took is None:
                    failures[name] += 1
                else:
                    into.append(took)
    if not listed or not base:
        sys.exit(f"no verified run: failures {failures}")
    list_s, base_s = statistics.median(listed), statistics.median(base)
    print(
        f"hotline letters list --json ({args.letters} rows): median {list_s:.3f} s "
        f"over {len(listed)} verified runs, {failures['list']} failed"
    )
    print(
        f"baseline (python, ORM and pydantic imported, sqlite3 read): median {base_s:.3f} s "
        f"over {len(base)} verified runs, {failures['baseline']} failed"
    )
    print(f"baseline/list = {base_s / list_s:.2f}")


if __name__ == "__main__":
    main()
