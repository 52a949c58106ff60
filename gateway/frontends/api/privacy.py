"""What an integrator may see of a citizen: masked by default, a reporter (举报人) not at
all, the full record only with the pii scope, and every such read written to the audit log.

Without the full record, the letter's own words (subject, text, transcript, history notes,
file names) are scrubbed too: citizens write their phone or ID number into the letter."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from gateway.contract.redaction import mask_email, mask_phone, scrub
from gateway.core.access import hidden
from store.models import Citizen, Letter

__all__ = [
    "as_written",
    "citizen_view",
    "mask_email",
    "mask_name",
    "mask_phone",
    "redactor",
    "reveals",
    "scrub_detail",
]


def mask_name(name: str | None) -> str | None:
    return name[:1] + "*" * (len(name) - 1) if name else None


def reveals(letter: Any, pii: bool, department: str | None) -> bool:
    """Whether a token sees this letter's citizen and words unscrubbed: with the pii scope,
    and never a hidden citizen to a department (a department token may hold pii to call a
    complainant back, never to learn who reported it)."""
    return pii and not (department is not None and hidden(letter))


def citizen_view(letter: Letter, citizen: Citizen | None, full: bool) -> dict[str, Any] | None:
    """None for a reporter or a confidential letter unless ``full`` (the pii scope)."""
    if citizen is None:
        return None
    if full:
        return {
            "name": citizen.name,
            "phone": citizen.phone,
            "email": citizen.email,
            "address": citizen.address,
        }
    if hidden(letter):
        return None
    return {
        "name": mask_name(citizen.name),
        "phone": mask_phone(citizen.phone),
        "email": mask_email(citizen.email),
        "address": None,
    }


def redactor(letter: Letter, citizen: Citizen | None, full: bool) -> Callable[[str], str]:
    """How the letter's words read: as written when ``full``, else without any contact
    detail's shape and without the citizen's own details (a hidden one's address too)."""
    if full:
        return as_written
    known: list[str | None] = []
    if citizen is not None:
        known += [citizen.name, citizen.phone, citizen.email, citizen.id_number]
        if hidden(letter):
            known.append(citizen.address)

    def clean(text: str) -> str:
        return scrub(text, known)

    return clean


def scrub_detail(detail: Mapping[str, Any], clean: Callable[[str], str]) -> dict[str, Any]:
    """An event's detail with every string in it (nested too) cleaned."""
    return {key: _cleaned(value, clean) for key, value in detail.items()}


def _cleaned(value: Any, clean: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, Mapping):
        return scrub_detail(value, clean)
    if isinstance(value, list | tuple):
        return [_cleaned(v, clean) for v in value]
    return value


def as_written(text: str) -> str:
    return text
