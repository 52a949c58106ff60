"""What a finished phone call becomes, the same for SIP and Twilio: a voicemail letter, or
the stub of a call an agent answered, for the agent to complete."""

from __future__ import annotations

from datetime import datetime

from gateway.contract.contact import Attachment, Channel, Citizen, IncomingContact


def call_letter(
    source: str,
    call_id: str,
    received_at: datetime,
    caller: str | None,
    category: str | None,
    *,
    voicemail: bool,
    attachments: tuple[Attachment, ...] = (),
    jobs: tuple[str, ...] = (),
    raw: str = "",
    channel: Channel = Channel.PHONE,
) -> IncomingContact:
    """``call_id`` (SIP Call-ID, Twilio CallSid) is the idempotency key; ``channel`` is
    PHONE or, for a browser's call, WEBCALL."""
    return IncomingContact(
        channel=channel,
        source=source,
        external_id=call_id,
        received_at=received_at,
        citizen=Citizen(phone=caller),
        subject="电话留言" if voicemail else "人工坐席来电",
        text="" if voicemail else "（来电已由人工坐席接听，待坐席补充记录。）",
        category=category if voicemail else None,
        # What the caller said is in the recording: the letter is judged on its transcript.
        text_source="transcription" if voicemail else None,
        attachments=attachments,
        jobs=jobs,
        raw=raw,
    )
