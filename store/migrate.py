"""Alembic, driven from code so `hotline db upgrade` needs no alembic.ini on disk."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(engine: Engine) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(
    engine: Engine, revision: str = "head", progress: Callable[[str], object] | None = None
) -> None:
    """``progress`` is told each migration's revision as it is applied."""
    cfg = alembic_config(engine)
    if progress is not None:
        told = progress
        cfg.attributes["on_version_apply"] = lambda step, **_: told(step.up_revision_id or "")
    command.upgrade(cfg, revision)


def pending(engine: Engine) -> int:
    """How many migrations upgrade to head would apply."""
    script = ScriptDirectory.from_config(alembic_config(engine))
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_heads()
    return sum(1 for _ in script.iterate_revisions("heads", current or "base"))
