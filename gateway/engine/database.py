"""The store's engine as the config describes it: one place, light to import (the SIP
workers need it and nothing of the HTTP side)."""

from __future__ import annotations

from sqlalchemy import Engine

from gateway.contract.config import Config
from gateway.engine.keys import pii_keyring
from store.db import make_engine


def engine_for(config: Config) -> Engine:
    db = config.database
    return make_engine(
        db.url,
        pii=pii_keyring(config.pii),
        connect_timeout=db.connect_timeout_seconds,
        busy_timeout=db.busy_timeout_seconds,
        pool_size=db.pool_size,
    )
