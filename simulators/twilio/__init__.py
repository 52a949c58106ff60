"""Twilio without the internet: REST API, webhooks, a TwiML caller (docs/simulators/twilio.md)."""

from simulators.twilio.api import (
    AsyncLocalHttpClient,
    Callback,
    LocalHttpClient,
    LoopbackServer,
    Recording,
    SentMessage,
    TwilioApi,
)
from simulators.twilio.caller import (
    CallLoopError,
    CallResult,
    DialAttempt,
    DialOutcome,
    Exchange,
    HangUp,
    Press,
    Prompt,
    ScriptError,
    Silence,
    Speak,
    TwilioCaller,
)
from simulators.twilio.twiml import TwimlError, parse_messages, parse_voice

__all__ = [
    "AsyncLocalHttpClient",
    "CallLoopError",
    "CallResult",
    "Callback",
    "DialAttempt",
    "DialOutcome",
    "Exchange",
    "HangUp",
    "LocalHttpClient",
    "LoopbackServer",
    "Press",
    "Prompt",
    "Recording",
    "ScriptError",
    "SentMessage",
    "Silence",
    "Speak",
    "TwilioApi",
    "TwilioCaller",
    "TwimlError",
    "parse_messages",
    "parse_voice",
]
