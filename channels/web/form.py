"""The letter form: what the citizen typed, checked, with errors in Chinese next to each field.

The values come back into the form on any error, so nothing the citizen wrote is lost.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from gateway.contract.config import CATEGORIES, WebConfig
from gateway.contract.contact import Attachment, Channel, Citizen, IncomingContact

FIELDS = ("category", "subject", "text", "district", "address", "name", "phone", "email")
_MOBILE = re.compile(r"^(?:\+?86)?1[3-9]\d{9}$")
_LANDLINE = re.compile(r"^0\d{2,3}\d{7,8}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# Characters, as the store's columns and the page's maxlength attributes hold them.
LIMITS = {"subject": 100, "district": 64, "address": 200, "name": 50, "phone": 20, "email": 254}
LABELS = {
    "subject": "标题",
    "text": "诉求内容",
    "district": "所在区域",
    "address": "详细地址",
    "name": "姓名",
    "phone": "联系电话",
    "email": "电子邮箱",
}


def phone_problem(phone: str) -> str | None:
    """What is wrong with a typed phone number (empty is fine: it is optional)."""
    phone = re.sub(r"[\s\-()]", "", phone)
    if phone and not (_MOBILE.match(phone) or _LANDLINE.match(phone)):
        return "请填写正确的手机号码或带区号的固定电话。"
    return None


@dataclass
class LetterForm:
    values: dict[str, str]
    publish: bool
    errors: dict[str, str] = field(default_factory=dict)
    cut: frozenset[str] = frozenset()  # fields of which only the start could be kept

    @classmethod
    def read(cls, form: dict[str, str], cut: frozenset[str] = frozenset()) -> LetterForm:
        values = {name: (form.get(name) or "").strip() for name in FIELDS}
        values["phone"] = re.sub(r"[\s\-()]", "", values["phone"])
        return cls(values, publish=form.get("publish") == "yes", cut=cut)

    def too_long(self, settings: WebConfig) -> dict[str, int]:
        """The fields past their limit, with the limit in characters."""
        limits = {**LIMITS, "text": settings.max_text_chars}
        return {
            name: limit
            for name, limit in limits.items()
            if len(self.values[name]) > limit or name in self.cut
        }

    def validate(self, settings: WebConfig, districts: list[str]) -> None:
        v, errors = self.values, self.errors
        if v["category"] not in CATEGORIES:
            errors["category"] = "请选择诉求类别。"
        if not v["text"]:
            errors["text"] = "请填写诉求内容。"
        for name, limit in self.too_long(settings).items():
            kept = "，过长的部分未能保留" if name in self.cut else ""
            errors[name] = f"{LABELS[name]}请不要超过 {limit} 字（现有 {len(v[name])} 字{kept}）。"
        if problem := phone_problem(v["phone"]):
            errors["phone"] = problem
        if v["email"] and not _EMAIL.match(v["email"]):
            errors["email"] = "请填写正确的电子邮箱地址。"
        if districts and v["district"] and v["district"] not in districts:
            errors["district"] = "请从列表中选择所在区域。"
        if v["category"] == "report":
            # 举报 must be made under one's real name (the hotline's rules).
            if not v["name"]:
                errors["name"] = "举报须提供真实姓名。"
            if not v["phone"]:
                errors["phone"] = "举报须提供联系电话。"

    def contact(
        self,
        source: str,
        key: str,
        received_at: datetime,
        ip: str,
        attachments: tuple[Attachment, ...],
    ) -> IncomingContact:
        v = self.values
        return IncomingContact(
            channel=Channel.WEB,
            source=source,
            external_id=key,
            received_at=received_at,
            citizen=Citizen(
                name=v["name"] or None,
                phone=v["phone"] or None,
                email=v["email"] or None,
                address=v["address"] or None,
                ip=ip,
            ),
            subject=v["subject"] or v["text"][:30],
            text=v["text"],
            attachments=attachments,
            category=v["category"],
            district=v["district"] or None,
            anonymous=not (v["name"] or v["phone"] or v["email"]),
            publish_consent=self.publish,
        )
