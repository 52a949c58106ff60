"""kill -9 at random points: every acknowledged contact is stored exactly once."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from store.attachments import AttachmentStore
from store.models import Attachment, Citizen, Letter
from tests.conftest import make_contact

CONTACTS = 1000
KILLS = 20
ROOT = Path(__file__).resolve().parents[2]


def run_child(url: str, root: Path, start: int = 0) -> subprocess.Popen[str]:
    child = "tests.support.crash_child"
    return subprocess.Popen(
        [sys.executable, "-m", child, url, str(root), str(CONTACTS), str(start)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def stored_external_ids(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(select(Letter.external_id)).scalars())


def not_whole(engine: Engine, numbers: set[int]) -> list[int]:
    """The acknowledged contacts whose letter does not hold what was sent: its text and its
    attachment's digest."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(Letter.external_id, Letter.text, Attachment.sha256).join(
                Attachment, Attachment.letter_id == Letter.id
            )
        ).all()
    found = {external_id: (text, digest) for external_id, text, digest in rows}

    def sent(n: int) -> tuple[str, str]:
        contact = make_contact(n)
        return contact.text, hashlib.sha256(contact.attachments[0].data).hexdigest()

    return sorted(n for n in numbers if found.get(make_contact(n).external_id) != sent(n))


@pytest.mark.slow
@pytest.mark.timeout(600)  # 21 processes started and killed: minutes on a loaded machine
def test_kill_9_at_random_points_loses_no_acknowledged_contact(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    rng = random.Random(12345)
    acknowledged: set[int] = set()
    fresh = 0  # kills that landed while storing contacts never stored before
    for _ in range(KILLS):
        # From the first contact not acknowledged: most kills land on new inserts, not on
        # the duplicate path of contacts already stored (the final run covers that).
        start = max(acknowledged) + 1 if acknowledged else 0
        before = len(stored_external_ids(engine))
        with run_child(database_url, tmp_path, start) as child:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready"
            # Let it acknowledge a random number of contacts, then kill it mid-flight.
            for _ in range(rng.randint(1, 60)):
                line = child.stdout.readline()
                if not line:
                    break
                acknowledged.add(int(line.split()[1]))
            os.kill(child.pid, signal.SIGKILL)
            # Acknowledgements printed before the kill landed count too.
            for line in child.stdout.read().splitlines():
                acknowledged.add(int(line.split()[1]))
        stored = stored_external_ids(engine)
        fresh += len(stored) > before
        assert len(stored) == len(set(stored)), "a contact was stored twice"
        missing = {n for n in acknowledged if f"8613800138000:26112614300032:{n}" not in stored}
        assert not missing, f"acknowledged but lost after kill -9: {sorted(missing)[:5]}"
        assert not_whole(engine, acknowledged) == [], "stored, but not what was sent"
    assert fresh >= KILLS * 3 // 4, f"only {fresh} of {KILLS} kills landed on new work"

    with run_child(database_url, tmp_path) as child:
        out, _ = child.communicate(timeout=300)
    assert child.returncode == 0
    assert out.count("ack ") == CONTACTS

    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Letter)).scalar_one() == CONTACTS
        assert conn.execute(select(func.count()).select_from(Citizen)).scalar_one() == CONTACTS
        rows = conn.execute(select(Attachment.letter_id, Attachment.sha256)).all()
        orphans = conn.execute(
            select(func.count())
            .select_from(Attachment)
            .where(Attachment.letter_id.not_in(select(Letter.id)))
        ).scalar_one()
    assert orphans == 0
    assert len(rows) == CONTACTS
    assert len({letter_id for letter_id, _ in rows}) == CONTACTS
    files = AttachmentStore(tmp_path / "attachments")
    for _, digest in rows:
        assert hashlib.sha256(files.read(digest)).hexdigest() == digest
