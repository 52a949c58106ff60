"""Several nodes starting at once on one PostgreSQL: one migrates, the others wait for it
and find nothing left to do; none fails or hangs on what another is creating."""

from __future__ import annotations

import subprocess
import sys
import uuid

from sqlalchemy import create_engine, make_url, text

from tests.conftest import POSTGRES_URL
from tests.support.processes import ROOT

NODES = 4
# Each node is a process of its own, as `hotline serve` on several machines is.
START = (
    "import os, sys; from store.db import make_engine; from store.migrate import upgrade; "
    "from store.pii import ENV, Keyring; "
    "upgrade(make_engine(sys.argv[1], pii=Keyring.parse(os.environ[ENV])))"
)


def test_nodes_upgrading_a_new_database_at_once_all_start() -> None:
    admin = create_engine(POSTGRES_URL)
    schema = f"hotline_nodes_{uuid.uuid4().hex[:10]}"
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        nodes = [
            subprocess.Popen(
                [sys.executable, "-c", START, url.render_as_string(hide_password=False)],
                cwd=ROOT,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(NODES)
        ]
        ended = [(node.communicate(timeout=90)[1], node.returncode) for node in nodes]
        assert [code for _, code in ended] == [0] * NODES, [e.splitlines()[-1:] for e, _ in ended]
        with admin.connect() as conn:
            versions = conn.execute(text(f'SELECT version_num FROM "{schema}".alembic_version'))
            assert len(versions.all()) == 1
    finally:
        for node in nodes:
            node.kill()
            node.wait()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
