"""`hotline letters list --json` (100 rows) against the least any Python command printing the
same JSON with the same libraries pays: start, import SQLAlchemy's ORM and pydantic, read.

    .venv/bin/python -m benchmarks.cli [--letters 100] [--rounds 7]

All run as fresh processes on the same SQLite file, taking turns. A run counts only when it
printed the stored letters, newest first, as JSON; the baseline's output must also be the
list's, byte for byte, so both did the same work. Prints the wall and CPU medians of each,
the floor (Python and sqlite3 alone) for scale, and baseline/list (1.0: the command costs no
more than its libraries).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from gateway.engine.intake import Intake
from gateway.engine.metrics import Metrics
from gateway.engine.spool import Spool
from store.attachments import AttachmentStore
from store.db import make_engine, make_sessionmaker
from store.migrate import upgrade
from tests.conftest import PII, SHANGHAI, make_contact

ROOT = Path(__file__).resolve().parents[1]
# The list's JSON (docs/cli.md) read with the driver alone: what no command can undercut.
FLOOR = """
import json, sqlite3, sys
from datetime import UTC, datetime
rows = sqlite3.connect(sys.argv[1]).execute(
    "SELECT tracking_number, channel, source, received_at, status,"
    " CASE WHEN text_pending THEN text_source END, category, subject,"
    " (SELECT count(*) FROM attachments WHERE letter_id = letters.id)"
    " FROM letters ORDER BY received_at DESC, id DESC LIMIT ?", (int(sys.argv[2]),))
keys = ("tracking_number", "channel", "source", "received_at", "status", "awaiting_text",
        "category", "subject", "attachments")
views = []
for row in rows:
    view = dict(zip(keys, row))
    at = datetime.fromisoformat(view["received_at"]).replace(tzinfo=UTC)
    view["received_at"] = at.isoformat().replace("+00:00", "Z")
    views.append(view)
json.dump(views, sys.stdout, ensure_ascii=False, indent=2)
sys.stdout.write("\\n")
"""
# What any command reading letters has to pay besides: the ORM and pydantic imported.
BASELINE = "import pydantic, sqlalchemy.orm\n" + FLOOR


@dataclass
class Runs:
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def line(self, name: str) -> str:
        if not self.wall:
            return f"{name}: no verified run, {len(self.failed)} failed ({self.failed[:1]})"
        return (
            f"{name}: median {statistics.median(self.wall):.3f} s wall, "
            f"{statistics.median(self.cpu):.3f} s CPU over {len(self.wall)} verified runs, "
            f"{len(self.failed)} failed{f' ({self.failed[0]})' if self.failed else ''}"
        )


def timed(
    command: list[str], env: dict[str, str], runs: Runs, check: Callable[[str], str | None]
) -> str:
    """Run once; count the run only if ``check(stdout)`` finds nothing wrong."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    took = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    problem = f"exit {done.returncode}: {done.stderr[-200:]}" if done.returncode else None
    problem = problem or check(done.stdout)
    if problem:
        runs.failed.append(problem)
    else:
        runs.wall.append(took)
        runs.cpu.append(cpu)
    return done.stdout


def rows_problem(stdout: str, expected: list[str], same_as: str | None = None) -> str | None:
    try:
        rows = json.loads(stdout)
    except json.JSONDecodeError as exc:
        return f"not JSON: {exc}"
    numbers = [row.get("tracking_number") for row in rows]
    if numbers != expected:
        return f"{len(numbers)} rows, not the {len(expected)} stored letters newest first"
    if same_as is not None and stdout != same_as:
        return "printed other JSON than the list"
    return None


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
        stored = [
            intake.accept_sync(make_contact(n + 1)).tracking_number for n in range(args.letters)
        ]
        engine.dispose()
        expected = [str(number) for number in reversed(stored)]  # one arrival time: by id
        env = {**os.environ, "HOTLINE_DATABASE_URL": url, "HOTLINE_CONFIG": ""}
        hotline = [sys.executable, "-m", "gateway.cli", "letters", "list", "--json"]
        hotline += ["--limit", str(args.letters)]
        rows = [str(database), str(args.letters)]
        listed, base, floor = Runs(), Runs(), Runs()
        for _ in range(args.rounds):
            printed = timed(hotline, env, listed, partial(rows_problem, expected=expected))
            same = partial(rows_problem, expected=expected, same_as=printed)
            for script, runs in ((BASELINE, base), (FLOOR, floor)):
                timed([sys.executable, "-c", script, *rows], env, runs, same)
    print(listed.line(f"hotline letters list --json ({args.letters} rows)"))
    print(base.line("baseline (python, ORM and pydantic imported, the same JSON via sqlite3)"))
    print(floor.line("floor (python and sqlite3 only, the same JSON)"))
    if not listed.wall or not base.wall:
        sys.exit("no verified run of the list or the baseline")
    ratio = statistics.median(base.wall) / statistics.median(listed.wall)
    cpu_ratio = statistics.median(base.cpu) / statistics.median(listed.cpu)
    print(f"baseline/list = {ratio:.2f} wall, {cpu_ratio:.2f} CPU")


if __name__ == "__main__":
    main()
