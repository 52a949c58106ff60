"""The IVR's actions as TwiML: each webhook answers with what Twilio should do until the
next event, and carries the call's state in the callback URL (Twilio signs that URL, so
the state cannot be forged)."""

from __future__ import annotations

from collections.abc import Sequence

from twilio.twiml.voice_response import Gather as TwimlGather
from twilio.twiml.voice_response import VoiceResponse

from gateway.contract.config import TwilioConfig
from ivr.flow import Action, CallState, Enqueue, Gather, Hangup, Play, Record, Transfer
from ivr.menu import IvrConfig


def twiml(
    actions: Sequence[Action], state: CallState, ivr: IvrConfig, settings: TwilioConfig
) -> str:
    response = VoiceResponse()
    # Absolute, from the public URL: behind a proxy that strips a path prefix, a relative
    # action would send Twilio to the wrong place.
    base = settings.public_url.rstrip("/") + "/twilio/voice"
    s = state.encode()
    for action in actions:
        if isinstance(action, Play):
            _say(response, ivr, settings, action.prompt)
        elif isinstance(action, Gather):
            # actionOnEmptyResult: silence comes back to us as NoInput, not the next verb.
            gather = response.gather(
                input="dtmf",
                num_digits=1,
                timeout=max(1, round(action.timeout_seconds)),
                action=f"{base}/digit?s={s}",
                method="POST",
                action_on_empty_result=True,
            )
            for prompt in action.prompts:
                _say(gather, ivr, settings, prompt)
        elif isinstance(action, Record):
            response.record(
                action=f"{base}/recorded?s={s}",
                method="POST",
                max_length=max(1, round(action.max_seconds)),
                timeout=max(1, round(action.silence_seconds)),
                finish_on_key=action.finish_key,
                play_beep=True,
                trim="trim-silence",
            )
            # Twilio skips the action when nothing at all was recorded and goes on here.
            response.redirect(f"{base}/recorded?s={s}&empty=1", method="POST")
        elif isinstance(action, Transfer):
            dial = response.dial(
                action=f"{base}/dialed?s={s}",
                method="POST",
                timeout=max(5, round(action.timeout_seconds)),
            )
            if action.uri.startswith(("sip:", "sips:")):
                dial.sip(action.uri)
            else:
                dial.number(action.uri)
        elif isinstance(action, Enqueue) and settings.queue_uri:
            # The seats' queue, on the SIP side: the caller waits and talks there.
            dial = response.dial(action=f"{base}/dialed?s={s}", method="POST")
            dial.sip(settings.queue_uri)
        elif isinstance(action, Hangup):
            response.hangup()
    return str(response)


def _say(
    parent: VoiceResponse | TwimlGather, ivr: IvrConfig, settings: TwilioConfig, prompt: str
) -> None:
    text = getattr(ivr.prompts, prompt)
    parent.say(text, voice=settings.voice, language=settings.language)
