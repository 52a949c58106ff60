"""Twilio's SIDs checked by their documented shape before a request is believed.

A SID is two letters naming the resource and 32 hex digits (Twilio's OpenAPI patterns,
e.g. ``^SM[0-9a-fA-F]{32}$``). The shape is a guard, not tidiness: the signature Twilio
puts on a webhook runs names and values together with nothing between them, so a value
lengthened by the next parameter's name and value signs the same ("MessageSid" "SM…" plus
"NumMedia" "0" is "MessageSid" "SM…NumMedia0"). A SID of the documented shape cannot be so
lengthened, so a captured request cannot be replayed as a new letter.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from gateway.contract.errors import PayloadError

# Parameter → the resource prefixes its SID may have. Every webhook names the account.
KINDS: Mapping[str, tuple[str, ...]] = {
    "AccountSid": ("AC",),
    "MessageSid": ("SM", "MM"),
    "SmsSid": ("SM", "MM"),
    "SmsMessageSid": ("SM", "MM"),
    "MessagingServiceSid": ("MG",),
    "CallSid": ("CA",),
    "DialCallSid": ("CA",),
    "ParentCallSid": ("CA",),
    "RecordingSid": ("RE",),
}
REQUIRED = ("AccountSid",)
_HEX32 = re.compile(r"[0-9a-fA-F]{32}")


def check_sids(params: Mapping[str, str]) -> None:
    """Raise PayloadError naming the first SID parameter that is missing or misshapen."""
    for name, prefixes in KINDS.items():
        value = params.get(name)
        if value is None and name not in REQUIRED:
            continue
        if not (value and value[:2] in prefixes and _HEX32.fullmatch(value, 2)):
            shown = "missing" if not value else f"{value[:40]!r} is not"
            raise PayloadError(
                f"{name} {shown} a Twilio SID ({' or '.join(prefixes)} and 32 hex digits)"
            )
