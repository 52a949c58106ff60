"""The small error taxonomy every adapter maps to its protocol's reply."""

from __future__ import annotations


class PayloadError(Exception):
    """The sender's input is malformed: reply with a clear error (400, 5xx SMTP), log it."""


class ConfigurationError(Exception):
    """The gateway is misconfigured: refuse to start, name the key."""


class TransientError(Exception):
    """Something outside us failed for now; the sender or a retry loop should try again."""


class StoreUnavailable(TransientError):
    """The database cannot be reached (SMTP answers 451 so the sending server retries)."""


class PayloadTooLarge(PayloadError):
    """The input is past a configured limit (SMTP 552, RFC 5321 §4.2.3 "exceeded storage
    allocation"; HTTP 413): refused, and kept for a person when the channel quarantines."""
