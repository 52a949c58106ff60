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

CONTACTS = 1000
KILLS = 20
ROOT = Path(__file__).resolve().parents[2]


def run_child(url: str, root: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.crash_child", url, str(root), str(CONTACTS)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def stored_external_ids(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(select(Letter.external_id)).scalars())


@pytest.mark.slow
def test_kill_9_at_random_points_loses_no_acknowledged_contact(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    rng = random.Random(12345)
    acknowledged: set[str] = set()
    for _ in range(KILLS):
        with run_child(database_url, tmp_path) as child:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready"
            # Let it acknowledge a random number of contacts, then kill it mid-flight.
            for _ in range(rng.randint(1, 60)):
                line = child.stdout.readline()
                if not line:
                    break
                acknowledged.add(line.split()[1])
            os.kill(child.pid, signal.SIGKILL)
            # Acknowledgements printed before the kill landed count too.
            for line in child.stdout.read().splitlines():
                acknowledged.add(line.split()[1])
        stored = stored_external_ids(engine)
        assert len(stored) == len(set(stored)), "a contact was stored twice"
        missing = {n for n in acknowledged if f"8613800138000:26112614300032:{n}" not in stored}
        assert not missing, f"acknowledged but lost after kill -9: {sorted(missing)[:5]}"

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
