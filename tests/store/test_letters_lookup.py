"""Intake's check for letters already stored looks each key up in the index: it must not
cost more as the table grows (a row-value IN made SQLite scan every letter per batch)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from store.db import make_engine
from store.letters import tracking_numbers_of
from store.migrate import upgrade
from tests.conftest import PII


def test_the_already_stored_lookup_searches_the_index_and_scans_nothing(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'h.db'}", pii=PII)
    upgrade(engine)
    ran: list[tuple[str, Any]] = []
    event.listen(engine, "before_cursor_execute", lambda c, cur, s, p, ctx, m: ran.append((s, p)))
    with Session(engine) as session:
        tracking_numbers_of(session, {("smtp", "<1@x>"), ("smtp", "<2@x>"), ("modem-1", "a:1")})
    selects = [(s, p) for s, p in ran if s.lstrip().startswith("SELECT")]
    assert len(selects) == 2  # one per source
    with engine.connect() as conn:
        plan = [
            row[3]
            for statement, parameters in selects
            for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
        ]
    engine.dispose()
    assert not [step for step in plan if step.startswith("SCAN")], plan
    assert sum(step.startswith("SEARCH letters") for step in plan) == 2, plan
