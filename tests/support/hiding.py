"""Letters whose citizen a department never sees — a report (举报), a citizen who asked to
stay anonymous, a confidential letter — each with a voicemail and a photo, beside an
ordinary complaint to compare: the API and console tests of who gets which file."""

from __future__ import annotations

from gateway.contract.contact import Attachment, Channel, IncomingContact
from tests.conftest import make_contact
from tests.support.canaries import REPORTER, voice

# How each kind of hidden letter comes in; the city's rules give all four to city-admin.
HIDING: dict[str, dict[str, object]] = {
    "report": {"text": "举报翠屏区人民路路灯工程偷工减料，请查处。"},
    "anonymous": {"anonymous": True},
    "confidential": {"confidential": True},
}
CASES = [*HIDING, "complaint"]
PHOTO = Attachment("照片.jpg", "image/jpeg", b"\xff\xd8\xff" + b"\x10" * 64)
VOICE = Attachment("voicemail.wav", "audio/wav", voice(REPORTER))
FAX_PAGE = Attachment("fax-p1.png", "image/png", b"\x89PNG\r\n\x1a\n" + b"\x20" * 64)


# A phone letter an agent typed, with the caller's voicemail and a photo sent after.
VOICED: dict[str, object] = {
    "channel": Channel.PHONE,
    "citizen": REPORTER.citizen(),
    "attachments": (PHOTO, VOICE),
}


def voiced(n: int, why: str) -> IncomingContact:
    return make_contact(n, **VOICED, **HIDING.get(why, {}))


# A fax: its pages carry the sending machine's number and the citizen's hand.
FAXED: dict[str, object] = {
    "channel": Channel.FAX,
    "citizen": REPORTER.citizen(),
    "attachments": (FAX_PAGE,),
}


def faxed(n: int, why: str) -> IncomingContact:
    return make_contact(n, **FAXED, **HIDING.get(why, {}))
