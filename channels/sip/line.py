"""A call leg as pjsua2 sees it. Lives on the PJSIP thread; its callbacks only hand events
to the asyncio loop, where the call's session decides what to do."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pjsua2 as pj

from channels.sip.pjthread import in_loop


@dataclass(frozen=True)
class Connected:
    pass


@dataclass(frozen=True)
class MediaReady:
    pass


@dataclass(frozen=True)
class DtmfDigit:
    digit: str


@dataclass(frozen=True)
class Disconnected:
    status: int  # the final SIP status: 200 for a call that ended after being answered


LineEvent = Connected | MediaReady | DtmfDigit | Disconnected
# pjmedia's PJMEDIA_STREAM_DTMF_IS_UPDATE (pjsua2 does not export it).
DTMF_IS_UPDATE = 1


class Line(pj.Call):  # type: ignore[misc]  # pjsua2 ships no types
    def __init__(
        self,
        account: pj.Account,
        call_id: int,
        loop: asyncio.AbstractEventLoop,
        on_event: Callable[[LineEvent], Any],
    ) -> None:
        super().__init__(account, call_id)
        self.loop = loop
        self.on_event = on_event
        self.ended = False
        # Set by the bridge: drops every object of this call, from inside the callback.
        self.release: Callable[[], None] = lambda: None

    def _post(self, event: LineEvent) -> None:
        in_loop(self.loop, self.on_event, event)

    def onCallState(self, prm: Any) -> None:
        info = self.getInfo()
        if info.state == pj.PJSIP_INV_STATE_CONFIRMED:
            self._post(Connected())
        elif info.state == pj.PJSIP_INV_STATE_DISCONNECTED and not self.ended:
            self.ended = True
            self._post(Disconnected(int(info.lastStatusCode)))
            # Now, not later: pjsua reuses the call's slot for the next INVITE, maybe in
            # the same poll, and a Call object outliving its slot acts on the new call
            # (seen as segfaults at 40 calls). pjsua2 allows deleting it here.
            self.release()

    def onCallMediaState(self, prm: Any) -> None:
        # The CallInfo must stay referenced while its media vector is read: iterating
        # getInfo().media directly reads freed memory.
        info = self.getInfo()
        for media in info.media:
            if media.type == pj.PJMEDIA_TYPE_AUDIO and media.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                self._post(MediaReady())
                return

    def onDtmfEvent(self, prm: Any) -> None:
        """RFC 4733 and SIP INFO alike (pjsua2 2.15 reports both here, not in onDtmfDigit).
        A long key press comes as a first event, updates and an end: one digit, once."""
        if not int(prm.flags) & DTMF_IS_UPDATE:
            self._post(DtmfDigit(str(prm.digit)))

    def audio(self) -> pj.AudioMedia | None:
        """The call's audio port in the conference bridge (PJSIP thread only)."""
        info = self.getInfo()
        for index, media in enumerate(info.media):
            if media.type == pj.PJMEDIA_TYPE_AUDIO and media.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                return self.getAudioMedia(index)
        return None


def answer(line: Line, status: int) -> None:
    param = pj.CallOpParam()
    param.statusCode = status
    line.answer(param)


def hang_up(line: Line, status: int = 200) -> None:
    if line.ended:
        return
    param = pj.CallOpParam()
    param.statusCode = status
    with contextlib.suppress(pj.Error):  # already gone: the far end's BYE crossed ours
        line.hangup(param)
