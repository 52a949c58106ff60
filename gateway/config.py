"""config.yaml: one validated file, environment overrides for secrets and the database URL."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from gateway.errors import ConfigurationError

# Environment variables that override a key: secrets and the database URL stay out of files.
ENV_OVERRIDES: Mapping[str, tuple[str, ...]] = {
    "HOTLINE_DATABASE_URL": ("database", "url"),
    "HOTLINE_RELAY_PASSWORD": ("outgoing_mail", "password"),
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


class FaxConfig(Section):
    """Which mail is a fax: by envelope sender, by our recipient address, or by the headers
    fax servers write (X-Fax-*, HylaFAX's "facsimile received" subject)."""

    senders: list[str] = []
    recipients: list[str] = ["fax@hotline.local"]
    detect_by_headers: bool = True


class SmtpConfig(Section):
    enabled: bool = True
    source: str = "smtp"
    host: str = "127.0.0.1"
    port: int = Field(default=2525, ge=0, le=65535)
    hostname: str = "hotline.local"
    # Mail is taken only for these addresses and domains: never an open relay.
    recipients: list[str] = ["12345@hotline.local"]
    domains: list[str] = []
    max_message_bytes: int = Field(default=25 * 1024 * 1024, gt=0)
    max_parts: int = Field(default=200, gt=0)
    timeout_seconds: float = Field(default=300, gt=0)
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    fax: FaxConfig = FaxConfig()

    def accepts(self, address: str) -> bool:
        """Ours: a listed recipient, a fax recipient, or any address at a listed domain."""
        address = address.strip().lower()
        ours = {r.lower() for r in (*self.recipients, *self.fax.recipients)}
        return address in ours or address.rpartition("@")[2] in {d.lower() for d in self.domains}

    @model_validator(mode="after")
    def _tls_pair(self) -> SmtpConfig:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together")
        return self


class ModemConfig(Section):
    name: str
    # A serial device, or "simulator" to attach the project's modem simulator (demos, tests).
    device: str = "simulator"
    baud: int = Field(default=115200, gt=0)
    pin: str | None = None
    smsc: str | None = None


class GsmConfig(Section):
    """SMS through a pool of GSM modems (python-gsmmodem-new's serial and AT layers)."""

    enabled: bool = True
    modems: list[ModemConfig] = [ModemConfig(name="modem-1")]
    # The simulator's control socket when a modem's device is "simulator".
    simulator_control: str = "127.0.0.1:7100"
    # +CMTI only wakes the sweep; AT+CMGL runs this often anyway (notifications get lost).
    sweep_interval_seconds: float = Field(default=0.5, gt=0)
    command_timeout_seconds: float = Field(default=10, gt=0)
    # A long message whose parts have not all arrived by then is stored with what came.
    incomplete_after_seconds: float = Field(default=600, gt=0)
    send_per_minute: float = Field(default=20, gt=0)
    reconnect_min_seconds: float = Field(default=1, gt=0)
    reconnect_max_seconds: float = Field(default=60, gt=0)
    # After this many failed connects in a row a modem leaves the pool for sending.
    max_failures: int = Field(default=5, ge=1)
    malformed_dir: Path = Path("var/gsm/malformed")


class ChannelsConfig(Section):
    smtp: SmtpConfig = SmtpConfig()
    gsm: GsmConfig = GsmConfig()


class OutgoingMailConfig(Section):
    """The relay the hotline sends its e-mail (receipts, replies) through."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(default=25, ge=0, le=65535)
    starttls: bool = False
    username: str | None = None
    password: str | None = None
    from_address: str = "12345@hotline.local"
    from_name: str = "12345市民热线"
    timeout_seconds: float = Field(default=30, gt=0)


class OcrConfig(Section):
    enabled: bool = True
    tesseract: str = "tesseract"
    pdftoppm: str = "pdftoppm"
    languages: str = "chi_sim+eng"
    # 6 = one uniform block of text: a citizen's letter is one column, and Tesseract's
    # automatic layout (3) breaks short Chinese lines into fragments.
    page_segmentation_mode: int = Field(default=6, ge=0, le=13)
    timeout_seconds: float = Field(default=120, gt=0)


class JobsConfig(Section):
    poll_interval_seconds: float = Field(default=2.0, gt=0)
    lease_seconds: float = Field(default=600, gt=0)
    max_attempts: int = Field(default=5, ge=1)
    # Retry n waits backoff * 2**(n-1) seconds.
    backoff_seconds: float = Field(default=30, gt=0)


class Config(Section):
    timezone: str = "Asia/Shanghai"
    database: DatabaseConfig = DatabaseConfig()
    storage: StorageConfig = StorageConfig()
    http: HttpConfig = HttpConfig()
    logging: LoggingConfig = LoggingConfig()
    channels: ChannelsConfig = ChannelsConfig()
    outgoing_mail: OutgoingMailConfig = OutgoingMailConfig()
    ocr: OcrConfig = OcrConfig()
    jobs: JobsConfig = JobsConfig()

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
    smtp = config.channels.smtp
    smtp = smtp.model_copy(
        update={
            "tls_cert_file": smtp.tls_cert_file and base / smtp.tls_cert_file,
            "tls_key_file": smtp.tls_key_file and base / smtp.tls_key_file,
        }
    )
    gsm = config.channels.gsm.model_copy(
        update={"malformed_dir": base / config.channels.gsm.malformed_dir}
    )
    channels = config.channels.model_copy(update={"smtp": smtp, "gsm": gsm})
    return config.model_copy(
        update={"storage": storage, "database": database, "channels": channels}
    )
