"""Structured logs: one line per event, as `event key=value` text or as a JSON object, with
contact details masked in every line (138****5678, 110***********1234, z***@example.com)."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

from gateway.contract.redaction import mask


def log_event(logger: logging.Logger, event: str, level: int = logging.INFO, **fields: Any) -> None:
    logger.log(level, event, extra={"fields": fields})


class MaskPii(logging.Filter):
    """Masks mobile numbers, ID numbers and e-mail addresses in each record a handler
    emits: its message, its fields (nested too), its exception and stack. The safety net
    under the rule that no source logs a citizen's contact details."""

    _exceptions = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # arguments that do not fit: shown, masked, as given
            message = f"{record.msg} {record.args!r}"
        record.msg, record.args = mask(message), None
        fields = getattr(record, "fields", None)
        if isinstance(fields, Mapping):
            record.fields = _masked_fields(fields)
        if record.exc_info and not record.exc_text:
            record.exc_text = self._exceptions.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask(record.exc_text)
        if record.stack_info:
            record.stack_info = mask(record.stack_info)
        return True


def _masked_fields(fields: Mapping[Any, Any]) -> dict[Any, Any]:
    return {key: _masked(value) for key, value in fields.items()}


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        return mask(value)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, Mapping):
        return _masked_fields(value)
    if isinstance(value, list | tuple | set | frozenset):
        return [_masked(v) for v in value]
    # Anything else is printed as str(): masked only when that shows a contact detail.
    text = str(value)
    masked = mask(text)
    return value if masked == text else masked


def _exception(formatter: logging.Formatter, record: logging.LogRecord) -> str | None:
    """The formatted exception, as MaskPii left it (logging's own exc_text cache)."""
    if record.exc_info and not record.exc_text:
        record.exc_text = formatter.formatException(record.exc_info)
    return record.exc_text or None


class _Text(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", {})
        parts = [
            f"{key}={value!r}" if isinstance(value, str) and " " in value else f"{key}={value}"
            for key, value in fields.items()
        ]
        line = f"{self.formatTime(record)} {record.levelname} {record.name} {record.getMessage()}"
        if parts:
            line += " " + " ".join(parts)
        exception = _exception(self, record)
        if exception:
            line += "\n" + exception
        if record.stack_info:
            line += "\n" + record.stack_info
        return line


class _Json(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
            **getattr(record, "fields", {}),
        }
        exception = _exception(self, record)
        if exception:
            entry["exception"] = exception
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure(level: str, fmt: str, stream: TextIO | None = None) -> None:
    """One handler on the root logger, to stderr (or ``stream``), masking contact details."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(_Json() if fmt == "json" else _Text())
    handler.addFilter(MaskPii())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Alembic announces every plugin at INFO; the gateway's own events are what matter.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, root.level))
    # aiosmtpd logs every SMTP command at INFO; the channel logs one line per mail instead.
    logging.getLogger("mail.log").setLevel(max(logging.WARNING, root.level))
