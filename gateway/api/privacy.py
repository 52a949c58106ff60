"""What an integrator may see of a citizen: masked by default, a reporter (举报人) not at
all, the full record only with the pii scope, and every such read written to the audit log."""

from __future__ import annotations

from typing import Any

from store.models import Citizen, Letter


def mask_phone(phone: str | None) -> str | None:
    if not phone:
        return None
    digits = phone[-11:] if len(phone) >= 11 else phone
    return digits[:3] + "****" + digits[-4:] if len(digits) >= 7 else "****"


def mask_email(email: str | None) -> str | None:
    if not email or "@" not in email:
        return None
    user, _, domain = email.partition("@")
    return f"{user[:1]}***@{domain}"


def mask_name(name: str | None) -> str | None:
    return name[:1] + "*" * (len(name) - 1) if name else None


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
    if letter.category == "report" or letter.confidential or letter.anonymous:
        return None
    return {
        "name": mask_name(citizen.name),
        "phone": mask_phone(citizen.phone),
        "email": mask_email(citizen.email),
        "address": None,
    }
