"""config.yaml: one validated file, environment overrides for secrets and the database URL."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from gateway.errors import ConfigurationError

# Environment variables that override a key: secrets and the database URL stay out of files.
ENV_OVERRIDES: Mapping[str, tuple[str, ...]] = {
    "HOTLINE_DATABASE_URL": ("database", "url"),
}


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatabaseConfig(Section):
    url: str = "sqlite:///var/hotline.db"
    connect_timeout_seconds: float = Field(default=5.0, gt=0)
    # SQLite waits this long for another writer before giving up.
    busy_timeout_seconds: float = Field(default=10.0, gt=0)
    pool_size: int = Field(default=5, ge=1)


class StorageConfig(Section):
    attachments_dir: Path = Path("var/attachments")
    spool_dir: Path = Path("var/spool")
    spool_drain_interval_seconds: float = Field(default=5.0, gt=0)


class HttpConfig(Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)


class LoggingConfig(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["text", "json"] = "text"


class Config(Section):
    timezone: str = "Asia/Shanghai"
    database: DatabaseConfig = DatabaseConfig()
    storage: StorageConfig = StorageConfig()
    http: HttpConfig = HttpConfig()
    logging: LoggingConfig = LoggingConfig()

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def load_config(path: Path | None, environ: Mapping[str, str] | None = None) -> Config:
    """Read, override from the environment, validate and anchor relative paths.

    Relative paths (and a relative SQLite file) are taken from the config file's folder,
    so the gateway behaves the same whatever directory it is started from.
    """
    environ = os.environ if environ is None else environ
    raw: dict[str, Any] = {}
    base = Path.cwd()
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigurationError(f"{path}: cannot read: {exc.strerror}") from exc
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigurationError(f"{path}: not valid YAML: {exc}") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigurationError(f"{path}: the top level must be a mapping of sections")
        raw = loaded or {}
        base = path.resolve().parent
    for name, keys in ENV_OVERRIDES.items():
        if environ.get(name):
            _set_path(raw, keys, environ[name])
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigurationError(_describe(path, exc)) from exc
    return _anchor(config, base)


def _set_path(raw: dict[str, Any], keys: tuple[str, ...], value: str) -> None:
    node = raw
    for key in keys[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    node[keys[-1]] = value


def _describe(path: Path | None, exc: ValidationError) -> str:
    where = str(path) if path else "configuration"
    lines = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"]) or "(top level)"
        problem = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
        lines.append(f"{where}: {key}: {problem}")
    return "\n".join(lines)


def _anchor(config: Config, base: Path) -> Config:
    storage = config.storage.model_copy(
        update={
            "attachments_dir": base / config.storage.attachments_dir,
            "spool_dir": base / config.storage.spool_dir,
        }
    )
    url = config.database.url
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
        url = prefix + str(base / url[len(prefix) :])
    database = config.database.model_copy(update={"url": url})
    return config.model_copy(update={"storage": storage, "database": database})
